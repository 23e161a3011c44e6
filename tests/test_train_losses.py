"""Training losses against hand-computed values (training-reference §3)."""

from __future__ import annotations

import math

import pytest
import torch

from expose_cli.training import losses as L


def _rotz(angle: float) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def test_keypoints2d_normalises_ground_truth_and_divides_by_samples():
    # R = 5: x_hat = 2x/4 - 1. Sample 0: (2, 4) -> (0, 1), conf 1; (0, 0) -> (-1, -1), conf 0.5.
    gt = torch.tensor([[[2.0, 4.0, 1.0], [0.0, 0.0, 0.5]], [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]])
    pred = torch.tensor([[[0.5, 1.0], [-1.0, -0.5]], [[9.0, 9.0], [9.0, 9.0]]])
    # 1 * (0.5 + 0) + 0.5 * (0 + 0.5) = 0.75; sample 1 has no 2D keypoints.
    assert L.keypoints2d_loss(pred, gt, torch.tensor([1.0, 0.0]), 5).item() == pytest.approx(0.75)
    # Both samples: sample 1's target is (-0.5, -0.5): 2 * (9.5 + 9.5) = 38 -> (0.75 + 38) / 2.
    assert L.keypoints2d_loss(pred, gt, torch.tensor([1.0, 1.0]), 5).item() == pytest.approx(38.75 / 2)


def test_keypoints3d_centres_on_the_hips():
    pred = torch.tensor([[[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [2.0, 0.0, 0.0]]]).repeat(2, 1, 1)
    # Same shape moved by (5, 4, 4), except joint 0 one metre higher in y (confidence 0.5).
    gt0 = torch.tensor([[5.0, 6.0, 5.0, 0.5], [4.0, 4.0, 4.0, 1.0], [6.0, 4.0, 4.0, 1.0]])
    gt1 = torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 1.0], [2.0, 0.0, 0.0, 1.0]])
    gt = torch.stack([gt0, gt1])
    assert L.keypoints3d_loss(pred, gt, torch.ones(2)).item() == pytest.approx(0.5 / 2)
    assert L.keypoints3d_loss(pred, gt, torch.tensor([0.0, 1.0])).item() == pytest.approx(0.0, abs=1e-7)


def test_rotation_distance_sums_joints_and_weights_per_joint():
    eye = torch.eye(3).expand(3, 2, 3, 3)
    # Ground truth as axis-angle about z: sample 0 (0.3, 0.5), sample 1 (0.1, 0.2), sample 2 unused.
    gt = torch.zeros(3, 2, 3)
    gt[0, :, 2] = torch.tensor([0.3, 0.5])
    gt[1, :, 2] = torch.tensor([0.1, 0.2])
    gt[2, :, 2] = torch.tensor([2.0, 2.0])
    has = torch.tensor([1.0, 1.0, 0.0])
    assert L.rotation_distance(eye, gt, has).item() == pytest.approx((0.3 + 0.5 + 0.1 + 0.2) / 2, abs=1e-5)
    # Weights 0.5 / 0 (/ 9 on the dropped sample): 0.5 * (0.3 + 0.5) / (2 joints with w > 0).
    w = torch.tensor([0.5, 0.0, 9.0])
    assert L.rotation_distance(eye, gt, has, w).item() == pytest.approx(0.2, abs=1e-5)
    # Matrices in, the angle between two rotations about z.
    assert L.rotation_angle(_rotz(0.7), _rotz(-0.4)).item() == pytest.approx(1.1, abs=1e-5)


def test_betas_expression_and_shape_prior():
    pred, gt = torch.tensor([[1.0, 2.0], [3.0, 3.0]]), torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    assert L.betas_loss(pred, gt, torch.ones(2)).item() == pytest.approx(0.001 * 6 / 2)
    epred, egt = torch.tensor([[1.0, 1.0], [2.0, 0.0]]), torch.zeros(2, 2)
    assert L.expression_loss(epred, egt, torch.ones(2), torch.tensor([0.5, 1.0])).item() == pytest.approx(2.5)
    assert L.expression_loss(epred, egt, torch.tensor([0.0, 1.0]), torch.tensor([0.5, 1.0])).item() == pytest.approx(4.0)
    betas = torch.tensor([[4.0, -1.0], [-5.0, 2.0]])
    assert L.shape_threshold_prior(betas).item() == pytest.approx(41.0 / 2, rel=1e-6)
    assert L.shape_threshold_prior(torch.tensor([[2.9, -3.0]])).item() == 0.0


def test_part_confidence_is_the_mean_over_the_parts_keypoints():
    kp = torch.tensor([[[0.0, 0.0, 1.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.5]]])
    assert L.part_confidence(kp, [0, 2]).item() == pytest.approx(0.75)


def test_crop_loss_in_the_part_crops_unit_coordinates():
    # Image -> body crop: x' = 2x - 10, y' = 2y - 20. Hand box centre (10, 20), side 4: corner (8, 18).
    T = torch.tensor([[[2.0, 0.0, -10.0], [0.0, 2.0, -20.0]]])
    pred = torch.tensor([[[10.0, 22.0], [0.0, 0.0]]])  # -> image (10, 21) -> unit (0.5, 0.75)
    gt = torch.tensor([[[12.0, 22.0, 1.0], [50.0, 50.0, 1.0]]])  # -> image (11, 21) -> unit (0.75, 0.75)
    loss = L.crop_keypoints_loss(pred, gt, torch.ones(1), T, torch.tensor([[10.0, 20.0]]), torch.tensor([4.0]), [0])
    assert loss.item() == pytest.approx(0.25)


def test_no_supervised_sample_gives_a_connected_zero():
    pred = torch.randn(2, 3, 2, requires_grad=True)
    loss = L.keypoints2d_loss(pred, torch.ones(2, 3, 3), torch.zeros(2), 8)
    assert loss.item() == 0.0
    loss.backward()
    assert pred.grad is not None and float(pred.grad.abs().sum()) == 0.0
