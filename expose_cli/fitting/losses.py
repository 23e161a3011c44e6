"""Pure loss terms of the fit. Each returns one value per row of the batch (``[B]``); the fit
minimises their weighted sum over the batch.

Two formulations (docs/fit.md, "Differences"): MMHuman3D's (``compat="mmhuman3d"``), reproduced
term by term from its ``KeypointMSELoss``, ``ShapePriorLoss``, ``JointPriorLoss`` and
``SmoothJointLoss``, and the corrected default.
"""

from __future__ import annotations

import torch

from expose_cli.geometry.rotations import axis_angle_to_matrix

#: Where the three spine joints' axis-angles sit in the flat ``[B, 63]`` body pose: spine1 is body
#: joint 2 (values 6..8), spine2 joint 5 (15..17), spine3 joint 8 (24..26).
SPINE_STARTS = (6, 15, 24)
#: MMHuman3D's offsets (``prior_loss.py``): those of the full pose (with the pelvis first), so on
#: ``body_pose`` they pick the left knee (9..11), left ankle (18..20) and left foot (27..29).
MMHUMAN3D_SPINE_STARTS = (9, 18, 27)


def gmof(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Geman-McClure: ``sigma^2 x^2 / (sigma^2 + x^2)``; ~``x^2`` for ``|x| << sigma``, -> ``sigma^2``."""
    x2 = x * x
    s2 = sigma * sigma
    return s2 * x2 / (s2 + x2)


def keypoints_mmhuman3d(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, sigma: float) -> torch.Tensor:
    """MMHuman3D's ``KeypointMSELoss``: Geman-McClure applied to the SQUARED residual of each
    coordinate, ``sum_k sum_d w_k gmof((pred - target)^2, sigma)``. ``pred``/``target`` ``[B, K, D]``,
    ``weight`` ``[B, K]`` (part weight x confidence). -> ``[B]``."""
    return (weight[..., None] * gmof((pred - target) ** 2, sigma)).sum(dim=(1, 2))


def keypoints_robust(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, sigma: float) -> torch.Tensor:
    """Geman-McClure on each keypoint's residual length: ``sum_k w_k gmof(|pred_k - target_k|, sigma)``
    (~ squared distance below ``sigma``, bounded by ``sigma^2`` above). -> ``[B]``."""
    dist = torch.sqrt(((pred - target) ** 2).sum(-1) + 1e-12)
    return (weight * gmof(dist, sigma)).sum(dim=1)


def shape_prior(betas: torch.Tensor) -> torch.Tensor:
    """``sum betas^2`` per row. -> ``[B]``."""
    return (betas ** 2).sum(dim=1)


def spine_smoothness(body_pose: torch.Tensor, starts: tuple[int, int, int] = SPINE_STARTS) -> torch.Tensor:
    """Neighbouring spine rotations should not bend against each other:
    ``sum_d (exp(relu(-s1_d s2_d)) - 1)^2 + (exp(relu(-s2_d s3_d)) - 1)^2`` over the axis-angle
    components ``d`` of the three joints at ``starts`` in the flat ``[B, 63]`` body pose. -> ``[B]``."""
    flat = body_pose.reshape(body_pose.shape[0], -1)
    s1, s2, s3 = (flat[:, i:i + 3] for i in starts)
    term = (torch.exp(torch.relu(-s1 * s2)) - 1.0) ** 2 + (torch.exp(torch.relu(-s2 * s3)) - 1.0) ** 2
    return term.sum(dim=1)


def rot6d_rows(axis_angle: torch.Tensor) -> torch.Tensor:
    """``[..., 3]`` axis-angle -> ``[..., 6]``: the first two ROWS of the rotation matrix."""
    return axis_angle_to_matrix(axis_angle)[..., :2, :].reshape(*axis_angle.shape[:-1], 6)


def temporal_smoothness(body_pose: torch.Tensor, frames: int | None) -> torch.Tensor:
    """L1 change of each body joint's 6D rotation from the previous row: ``sum_j |r6(t) - r6(t-1)|``.

    ``frames=None`` (MMHuman3D): consecutive rows of the whole batch, so the first frame of one
    person is compared with the last of the person before. ``frames=F``: rows are persons x F
    frames, person-major, and each person's first frame has no predecessor. -> ``[B]`` (0 on a
    first row)."""
    r6 = rot6d_rows(body_pose.reshape(body_pose.shape[0], -1, 3))
    diff = torch.zeros(r6.shape[0], dtype=r6.dtype, device=r6.device)
    if frames is None:
        return torch.cat([diff[:1], (r6[1:] - r6[:-1]).abs().sum(dim=(1, 2))])
    seq = r6.reshape(-1, frames, *r6.shape[1:])
    step = (seq[:, 1:] - seq[:, :-1]).abs().sum(dim=(2, 3))
    return torch.cat([torch.zeros_like(step[:, :1]), step], dim=1).reshape(-1)


def start_pull(params: dict[str, torch.Tensor], start: dict[str, torch.Tensor], names: tuple[str, ...]) -> torch.Tensor:
    """``sum (x - x_start)^2`` over the parameters ``names`` (axis-angles in radians, betas). -> ``[B]``."""
    total = None
    for name in names:
        d = ((params[name] - start[name]) ** 2).reshape(params[name].shape[0], -1).sum(dim=1)
        total = d if total is None else total + d
    return total


def project(points: torch.Tensor, focal: torch.Tensor, principal: torch.Tensor) -> torch.Tensor:
    """Pinhole (OpenCV axes): ``[B, K, 3]`` metres in the camera frame -> ``[B, K, 2]`` pixels,
    ``u = f x / z + cx``; ``focal`` ``[B]`` px, ``principal`` ``[B, 2]`` px."""
    z = points[..., 2:3].clamp(min=1e-6)
    return points[..., :2] / z * focal[:, None, None] + principal[:, None, :]
