"""Realistic stand-in weights: BatchNorm statistics set by images, as training would set them.

Random weights with arbitrary BatchNorm statistics let activations grow or vanish through HRNet's
~100 layers, so a reduced-precision run compared on them says little. Running a few batches of
natural-looking images through each backbone in train mode sets every BatchNorm's running mean and
variance to the statistics its input really has (cumulative average), as a trained network's are.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from expose_cli.kinds import part_modules
from expose_cli.models.inputs import MEAN_RGB, STD_RGB

#: ImageNet normalisation of the crops (RGB, 0-255 scale), as :func:`expose_cli.models.crop_person`.
MEAN = torch.from_numpy(MEAN_RGB).view(1, 3, 1, 1)
STD = torch.from_numpy(STD_RGB).view(1, 3, 1, 1)


def natural_images(n: int, res: int, seed: int = 0) -> torch.Tensor:
    """``[n, 3, res, res]`` normalised crops with image-like statistics: smooth colour fields
    (bicubic from 8x8) plus fine texture, clipped to 0-255."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 8, 8, generator=gen) * 255.0
    img = F.interpolate(coarse, size=(res, res), mode="bicubic", align_corners=False)
    img = img + 12.0 * torch.randn(n, 3, res, res, generator=gen)
    return (img.clamp(0.0, 255.0) - MEAN) / STD


@torch.no_grad()
def calibrate_batchnorm(net: nn.Module, batches: int = 3, batch_size: int = 8, seed: int = 0) -> nn.Module:
    """Set the running statistics of every backbone BatchNorm of ``net`` (an ``ExPoseNet``) from
    ``batches`` batches of :func:`natural_images`; returns ``net`` in eval mode."""
    sides = net.cfg.crop_sides()
    sizes = {backbone: sides[part] for part, (backbone, _) in part_modules(net.kind).items()}
    for name, res in sizes.items():
        backbone = getattr(net, name)
        norms = [m for m in backbone.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration batches
        nn.Module.train(backbone, True)
        for i in range(batches):
            backbone(natural_images(batch_size, res, seed + 1000 * i))
        for m in norms:
            m.momentum = 0.1
    return net.eval()
