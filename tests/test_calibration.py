"""BatchNorm calibration of stand-in weights (the benchmarks' "realistic weights")."""

from __future__ import annotations

import torch

from expose_cli.testing.calibration import calibrate_batchnorm, natural_images
from expose_cli.testing.checkpoints import random_net


def test_running_statistics_are_those_of_the_calibration_images():
    net = random_net("body", small=True)
    calibrate_batchnorm(net, batches=2, batch_size=2, seed=7)
    assert not net.training and not net.backbone.training
    bb = net.backbone
    with torch.no_grad():  # the first BatchNorm's input, batch by batch (seeds as calibrate_batchnorm uses them)
        ys = [bb.conv1(natural_images(2, 256, 7 + 1000 * i)) for i in range(2)]
    mean = torch.stack([y.mean(dim=(0, 2, 3)) for y in ys]).mean(0)  # cumulative average of batch means
    var = torch.stack([y.var(dim=(0, 2, 3), unbiased=True) for y in ys]).mean(0)
    torch.testing.assert_close(bb.bn1.running_mean, mean, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(bb.bn1.running_var, var, atol=1e-5, rtol=1e-4)
    assert bb.bn1.momentum == 0.1


def test_natural_images_are_normalised_crops():
    img = natural_images(4, 64, seed=0)
    assert img.shape == (4, 3, 64, 64)
    pixels = img * torch.tensor([58.395, 57.12, 57.375]).view(1, 3, 1, 1) + torch.tensor([123.675, 116.28, 103.53]).view(1, 3, 1, 1)
    assert pixels.min() >= -1e-3 and pixels.max() <= 255 + 1e-3
