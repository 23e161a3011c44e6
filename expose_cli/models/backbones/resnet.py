"""ResNet-18 with mmcv parameter names; returns the average-pooled last-stage features (512)."""

from __future__ import annotations

import torch
from torch import nn

from expose_cli.models.backbones.blocks import BasicBlock


class ResNet18(nn.Module):
    """ResNet-18 (``conv1, bn1, layer1..layer4``) -> ``[B, 8 * width]`` pooled features.

    ``width`` 64 is the real network; smaller widths are for fast tests.
    """

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        chans = [width, 2 * width, 4 * width, 8 * width]
        in_ch = width
        for i, ch in enumerate(chans):
            stride = 1 if i == 0 else 2
            down = None
            if stride != 1 or in_ch != ch:
                down = nn.Sequential(nn.Conv2d(in_ch, ch, 1, stride, bias=False), nn.BatchNorm2d(ch))
            layer = nn.Sequential(BasicBlock(in_ch, ch, stride, down), BasicBlock(ch, ch))
            self.add_module(f"layer{i + 1}", layer)
            in_ch = ch
        self.out_channels = in_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return x.mean(dim=(2, 3))
