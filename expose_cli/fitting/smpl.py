"""Fitting SMPL instead of SMPL-X (``expose fit --body-model smpl``), as MMHuman3D's ``SMPLify``
registrant does: 24 joints, body pose 23 x 3 axis-angles (radians), 10 betas, no hands or face.

The staged fit, its losses and its config are SMPL-X's (:mod:`expose_cli.fitting.objective`);
only the parameters, the keypoints and their weights differ. SMPL's 24 joints are SMPL-X's first
22 (pelvis .. right wrist, the same names and kinematic tree) plus SMPL's own ``left_hand`` and
``right_hand``. Every keypoint is a body keypoint (weight ``body_weight``; stage 1: shoulders and
hips only, times ``body_weight`` as in SMPLify).
"""

from __future__ import annotations

import numpy as np
import torch
from smplx.lbs import batch_rigid_transform
from torch import nn

from expose_cli.geometry.rotations import axis_angle_to_matrix

#: SMPL's 24 joints: SMPL-X's first 22 names, then SMPL's two hand joints.
SMPL_JOINT_NAMES = ("pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle",
                    "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head",
                    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
                    "left_hand", "right_hand")
NUM_SMPL_JOINTS = 24
#: Parameter sizes per row of an SMPL fit.
SMPL_SIZES = {"global_orient": 3, "transl": 3, "body_pose": 69, "betas": 10}
SHOULDERS_HIPS = (16, 17, 1, 2)


class SMPLJoints(nn.Module):
    """``forward(rotations [B, 24, 3, 3], betas [B, 10]) -> [B, 24, 3]``: SMPL's joints (metres,
    body-model frame), equal to ``smplx.SMPLLayer(...).joints[:, :24]``, without the vertices
    (the joint regressor is folded into the shape blend shapes once)."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        j_reg = layer.J_regressor
        num_betas = layer.shapedirs.shape[-1]
        self.register_buffer("j_template", j_reg @ layer.v_template)
        self.register_buffer("j_shapedirs", torch.einsum("jv,vck->jck", j_reg, layer.shapedirs))
        self.register_buffer("parents", layer.parents.clone())
        self.num_betas = num_betas

    @property
    def device(self) -> torch.device:
        return self.j_template.device

    def forward(self, rotations: torch.Tensor, betas: torch.Tensor) -> torch.Tensor:
        rest = self.j_template + torch.einsum("bk,jck->bjc", betas[:, :self.num_betas], self.j_shapedirs)
        joints, _ = batch_rigid_transform(rotations, rest, self.parents, dtype=rotations.dtype)
        return joints


def smpl_keypoints(model: SMPLJoints, params: dict[str, torch.Tensor], betas: torch.Tensor) -> torch.Tensor:
    """``[B, 24, 3]`` joints in the camera frame (metres): ``params`` axis-angles -> matrices -> joints + ``transl``."""
    rows = params["global_orient"].shape[0]
    aa = torch.cat([params["global_orient"].reshape(rows, 1, 3), params["body_pose"].reshape(rows, 23, 3)], dim=1)
    return model(axis_angle_to_matrix(aa), betas) + params["transl"][:, None, :]


def smpl_part_weights(body: float, shoulder_hip_only: bool = False, device=None, dtype=torch.float32) -> torch.Tensor:
    """``[24]`` keypoint weights: ``body`` on every joint, or only on the shoulders and hips."""
    if shoulder_hip_only:
        w = torch.zeros(NUM_SMPL_JOINTS, dtype=dtype, device=device)
        w[list(SHOULDERS_HIPS)] = body
        return w
    return torch.full((NUM_SMPL_JOINTS,), float(body), dtype=dtype, device=device)


def smpl_points(kin) -> np.ndarray | None:
    """``[P, F, 24, C]`` (last channel the confidence) as read from an array in SMPL's own order
    (convention ``smpl``, hand joints included), or ``None`` for any other input."""
    source = getattr(kin, "source", None)
    if source is None or getattr(source, "convention", None) != "smpl":
        return None
    points = np.where(np.isfinite(source.points).all(axis=-1, keepdims=True), source.points, 0.0)
    return points[:, None] if points.ndim == 3 else points


def smplx_to_smpl_points(points: np.ndarray) -> np.ndarray:
    """``[..., 144, C]`` keypoints in SMPL-X order (the last channel the confidence) -> ``[..., 24, C]``
    in SMPL's: SMPL-X's first 22, and SMPL's hand joints missing (0), which no convention read
    into SMPL-X's order holds."""
    out = np.zeros(points.shape[:-2] + (NUM_SMPL_JOINTS, points.shape[-1]), dtype=points.dtype)
    out[..., :22, :] = points[..., :22, :]
    return out


def smplx_start_to_smpl(start: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An `expose infer` start (SMPL-X parameters per row) as SMPL's: the 21 body joints' axis-angles
    with SMPL's two hand joints at rest (0), orientation, translation and betas; hands, jaw and
    expression dropped."""
    out = {n: v for n, v in start.items() if n in SMPL_SIZES}
    if "body_pose" in out and out["body_pose"].reshape(out["body_pose"].shape[0], -1).shape[1] == 63:
        pose = out["body_pose"].reshape(out["body_pose"].shape[0], 63)
        out["body_pose"] = torch.cat([pose, pose.new_zeros(pose.shape[0], 6)], dim=1)
    return out
