"""Synthetic fitting cases with known answers: SMPL-X parameters inside the joint-angle limits,
their exact 144 keypoints (3D, and projected to 2D), noise and dropped points, and a start
perturbed like a regression's error (~60 mm PA-MPJPE). For tests, docs/fit.md and benchmarks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from expose_cli.fitting.joint_limits import LIMITS_DEG, TO_JOINT_FRAME
from expose_cli.fitting.losses import project
from expose_cli.fitting.objective import Targets, expand_betas, model_keypoints
from expose_cli.geometry.procrustes import similarity_procrustes
from expose_cli.geometry.rotations import matrix_to_axis_angle

FOCAL, SIZE = 5000.0, 512


def _axis_rot(axis: int, t: torch.Tensor) -> torch.Tensor:
    c, s, o, z = t.cos(), t.sin(), torch.ones_like(t), torch.zeros_like(t)
    rows = {0: [o, z, z, z, c, -s, z, s, c], 1: [c, z, s, z, o, z, -s, z, c], 2: [c, -s, z, s, c, z, z, z, o]}[axis]
    return torch.stack(rows, -1).reshape(*t.shape, 3, 3)


def plausible_body_pose(rows: int, gen: torch.Generator, spread: float = 0.5) -> torch.Tensor:
    """``[rows, 63]`` axis-angles whose joint angles lie in the middle ``spread`` of each limit range
    (the Y angle within +-85 degrees: beyond 90 the same rotation reads as X, Z = 180 degrees, which
    the prior penalises, e.g. an elbow bent more than 90 degrees)."""
    lim = torch.tensor(LIMITS_DEG, dtype=torch.float64)
    lim[..., 1, :] = lim[..., 1, :].clamp(-85.0, 85.0)  # the middle (Y) angle of XYZ Euler angles is in [-90, 90]
    lim = lim * math.pi / 180
    mid, half = lim.mean(-1), (lim[..., 1] - lim[..., 0]) / 2
    ang = mid + spread * half * (2 * torch.rand(rows, 21, 3, generator=gen, dtype=torch.float64) - 1)
    t = torch.tensor(TO_JOINT_FRAME, dtype=torch.float64)
    rot = t.transpose(-1, -2) @ _axis_rot(0, ang[..., 0]) @ _axis_rot(1, ang[..., 1]) @ _axis_rot(2, ang[..., 2]) @ t
    return matrix_to_axis_angle(rot).reshape(rows, 63).float()


@dataclass
class FitCase:
    truth: dict[str, torch.Tensor]     # [B, n] per parameter
    start: dict[str, torch.Tensor]
    joints3d: torch.Tensor             # [B, 144, 3] exact, camera frame, metres
    keypoints2d: torch.Tensor          # [B, 144, 2] exact, pixels
    confidence: torch.Tensor           # [B, 144], 0 = dropped
    noisy2d: torch.Tensor
    noisy3d: torch.Tensor
    persons: int
    frames: int

    def targets(self, dims: int) -> Targets:
        rows = self.joints3d.shape[0]
        if dims == 3:
            return Targets(self.noisy3d, self.confidence, frames=self.frames)
        return Targets(self.noisy2d, self.confidence, torch.full((rows,), FOCAL), torch.full((rows, 2), SIZE / 2.0),
                       torch.full((rows, 2), float(SIZE)), frames=self.frames)


def make_case(model: nn.Module, persons: int = 2, frames: int = 1, seed: int = 0, noise_px: float = 2.0,
              noise_m: float = 0.002, drop: float = 0.1) -> FitCase:
    """Truth, exact and noisy keypoints, and a perturbed start (body pose +0.11 rad per component,
    betas +0.7, hands +0.15, orientation +0.05, translation +(3, 3, 1000) mm). Frames of a person
    share the shape and move smoothly."""
    gen = torch.Generator().manual_seed(seed)
    rows = persons * frames
    def per_person(x: torch.Tensor) -> torch.Tensor:  # noqa: E306
        return x.repeat_interleave(frames, dim=0)
    ramp = torch.linspace(0, 1, frames).repeat(persons)[:, None]
    pose_a, pose_b = plausible_body_pose(persons, gen), plausible_body_pose(persons, gen)
    truth = {
        "global_orient": per_person(torch.tensor([[math.pi, 0.0, 0.0]]) + 0.2 * torch.randn(persons, 3, generator=gen)),
        "body_pose": per_person(pose_a) * (1 - 0.3 * ramp) + per_person(pose_b) * 0.3 * ramp,
        "betas": per_person(torch.randn(persons, 10, generator=gen)),
        "left_hand_pose": per_person(0.2 * torch.randn(persons, 45, generator=gen)),
        "right_hand_pose": per_person(0.2 * torch.randn(persons, 45, generator=gen)),
        "jaw_pose": torch.zeros(rows, 3), "expression": torch.zeros(rows, 10),
        "transl": per_person(torch.tensor([[0.0, 0.2, 18.0]]) + torch.tensor([[0.6, 0.1, 0.0]]) *
                             (torch.arange(persons, dtype=torch.float32)[:, None] - (persons - 1) / 2)),
    }
    with torch.no_grad():
        joints = model_keypoints(model, truth)
    rowsf = torch.full((rows,), FOCAL)
    kp2 = project(joints, rowsf, torch.full((rows, 2), SIZE / 2.0))
    conf = (torch.rand(rows, 144, generator=gen) >= drop).float()
    start = {k: v.clone() for k, v in truth.items()}
    for name, scale in (("body_pose", 0.11), ("betas", 0.7), ("global_orient", 0.05), ("left_hand_pose", 0.15),
                        ("right_hand_pose", 0.15)):
        start[name] = start[name] + scale * torch.randn(start[name].shape, generator=gen)
    start["transl"] = start["transl"] + torch.tensor([0.003, 0.003, 1.0])
    return FitCase(truth, start, joints, kp2, conf, kp2 + noise_px * torch.randn(kp2.shape, generator=gen),
                   joints + noise_m * torch.randn(joints.shape, generator=gen), persons, frames)


def errors(model: nn.Module, case: FitCase, params: dict[str, torch.Tensor]) -> dict[str, float]:
    """``keypoints2d_px``: mean pixel distance to the exact keypoints (the seen ones); ``pa_mpjpe_mm``:
    after a similarity alignment, the 22 body joints; ``mpjpe_mm``: all 144 keypoints, no alignment."""
    rows = case.joints3d.shape[0]
    with torch.no_grad():
        joints = model_keypoints(model, {**params, "betas": expand_betas(params["betas"], rows)})
    seen = case.confidence > 0
    uv = project(joints, torch.full((rows,), FOCAL), torch.full((rows, 2), SIZE / 2.0))
    px = float((uv - case.keypoints2d).norm(dim=-1)[seen].mean())
    aligned = similarity_procrustes(joints[:, :22].double(), case.joints3d[:, :22].double())[0]
    pa = float((aligned - case.joints3d[:, :22].double()).norm(dim=-1).mean()) * 1000
    return {"keypoints2d_px": px, "pa_mpjpe_mm": pa, "mpjpe_mm": float((joints - case.joints3d).norm(dim=-1).mean()) * 1000}
