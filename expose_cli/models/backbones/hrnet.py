"""HRNet-W48 as ExPose's body backbone (MMHuman3D's ``PoseHighResolutionNetExpose``).

Runs the stem, ``layer1``, stages 2 and 3 and ``transition3``; then brings the 2nd, 3rd and new
4th branch to 1/32 resolution (``subsample_3``: two stride-2 convs, ``subsample_2``: one), concatenates
them (1152 channels for W48), applies five Bottlenecks to 2048 channels (``conv_layers``; each
downsample a bare 1x1 conv) and averages over space. MMHuman3D's ``stage4``, ``final_layer`` and
``downsample_stage_*`` never influence this output, so they are not built.
"""

from __future__ import annotations

import torch
from torch import nn

from expose_cli.models.backbones.blocks import BasicBlock, Bottleneck, conv_bn


class HRModule(nn.Module):
    """One multi-resolution module: per-branch BasicBlocks, then all-to-all fusion."""

    def __init__(self, channels: list[int], num_blocks: int) -> None:
        super().__init__()
        n = len(channels)
        self.branches = nn.ModuleList(
            nn.Sequential(*[BasicBlock(c, c) for _ in range(num_blocks)]) for c in channels
        )
        fuse = []
        for i in range(n):
            row: list[nn.Module | None] = []
            for j in range(n):
                if j > i:  # lower resolution: 1x1 conv + BN, then nearest upsampling
                    row.append(nn.Sequential(
                        nn.Conv2d(channels[j], channels[i], 1, bias=False), nn.BatchNorm2d(channels[i]),
                        nn.Upsample(scale_factor=2 ** (j - i), mode="nearest")))
                elif j == i:
                    row.append(None)
                else:  # higher resolution: stride-2 3x3 convs
                    steps = []
                    for k in range(i - j):
                        last = k == i - j - 1
                        steps.append(conv_bn(channels[j], channels[i] if last else channels[j], 3, 2, relu=not last))
                    row.append(nn.Sequential(*steps))
            fuse.append(nn.ModuleList(row))
        self.fuse_layers = nn.ModuleList(fuse)
        self.relu = nn.ReLU(inplace=False)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs, strict=True)]
        out = []
        for row in self.fuse_layers:
            # Summed in branch order, as MMHuman3D does, so float rounding matches too.
            terms = [x if layer is None else layer(x) for layer, x in zip(row, xs, strict=True)]
            y = terms[0]
            for t in terms[1:]:
                y = y + t
            out.append(self.relu(y))
        return out


def _transition(pre: list[int], cur: list[int]) -> nn.ModuleList:
    """MMHuman3D's transition layer: adapt existing branches, create new lower-resolution ones."""
    layers: list[nn.Module | None] = []
    for i, c in enumerate(cur):
        if i < len(pre):
            layers.append(None if pre[i] == c else conv_bn(pre[i], c, 3, 1, relu=True))
        else:
            steps = []
            for k in range(i + 1 - len(pre)):
                src = pre[-1]
                dst = c if k == i - len(pre) else src
                steps.append(conv_bn(src, dst, 3, 2, relu=True))
            layers.append(nn.Sequential(*steps))
    return nn.ModuleList(layers)


class HRNetExpose(nn.Module):
    """ExPose's HRNet body backbone -> ``[B, out_channels]`` features (2048 at full size).

    ``width`` is the first branch's channels (48 for W48); ``out_channels`` the final width (2048).
    """

    def __init__(self, width: int = 48, out_channels: int = 2048, stage3_modules: int = 4, num_blocks: int = 4) -> None:
        super().__init__()
        c = [width, 2 * width, 4 * width, 8 * width]
        self.conv1 = nn.Conv2d(3, 64, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.conv2 = nn.Conv2d(64, 64, 3, 2, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        down = nn.Sequential(nn.Conv2d(64, 256, 1, bias=False), nn.BatchNorm2d(256))
        self.layer1 = nn.Sequential(Bottleneck(64, 64, 1, down), *[Bottleneck(256, 64) for _ in range(3)])
        self.transition1 = _transition([256], c[:2])
        self.stage2 = nn.Sequential(HRModule(c[:2], num_blocks))
        self.transition2 = _transition(c[:2], c[:3])
        self.stage3 = nn.Sequential(*[HRModule(c[:3], num_blocks) for _ in range(stage3_modules)])
        self.transition3 = _transition(c[:3], c)
        self.subsample_3 = self._subsample(c[1], 2)
        self.subsample_2 = self._subsample(c[2], 1)
        in_dims = 4 * c[1] + 2 * c[2] + c[3]
        layers = []
        for _ in range(5):
            layers.append(Bottleneck(in_dims, out_channels // 4, 1, nn.Conv2d(in_dims, out_channels, 1, bias=False)))
            in_dims = out_channels
        self.conv_layers = nn.Sequential(*layers)
        self.out_channels = out_channels

    @staticmethod
    def _subsample(in_ch: int, num_layers: int) -> nn.Sequential:
        layers: list[nn.Module] = []
        for _ in range(num_layers):
            layers += [nn.Conv2d(in_ch, 2 * in_ch, 3, 2, 1), nn.BatchNorm2d(2 * in_ch), nn.ReLU(inplace=True)]
            in_ch *= 2
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        x = self.layer1(x)
        xs = [t(x) if t is not None else x for t in self.transition1]
        ys = self.stage2(xs)
        xs = [t(ys[-1]) if t is not None else ys[i] for i, t in enumerate(self.transition2)]
        ys = self.stage3(xs)
        xs = [t(ys[-1]) if t is not None else ys[i] for i, t in enumerate(self.transition3)]
        feats = torch.cat([self.subsample_3(xs[1]), self.subsample_2(xs[2]), xs[3]], dim=1)
        return self.conv_layers(feats).mean(dim=(2, 3))
