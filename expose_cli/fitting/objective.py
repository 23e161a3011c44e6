"""The fit's objective: body-model parameters -> the 144 SMPL-X keypoints -> weighted loss terms.

Rows of the batch are persons x frames (person-major). Parameters are axis-angles (radians),
``betas``, ``expression`` and ``transl`` (metres: the camera translation, keypoints in the
camera frame are ``model keypoints + transl``), as MMHuman3D's registrant optimises them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from expose_cli.fitting import losses
from expose_cli.fitting.config import FitConfig, Stage
from expose_cli.fitting.joint_limits import joint_limit_penalty
from expose_cli.fitting.parts import part_weights
from expose_cli.fitting.smpl import SMPL_SIZES, SMPLJoints, smpl_keypoints, smpl_part_weights
from expose_cli.geometry.rotations import axis_angle_to_matrix

#: Parameter sizes per row (axis-angles: 3 per joint).
SIZES = {"global_orient": 3, "transl": 3, "body_pose": 63, "betas": 10, "left_hand_pose": 45,
         "right_hand_pose": 45, "expression": 10, "jaw_pose": 3}
PULLED = ("body_pose", "left_hand_pose", "right_hand_pose", "jaw_pose", "betas")


@dataclass
class Targets:
    """What the fit matches, per row: ``keypoints`` ``[B, 144, 2]`` pixels (with a camera) or
    ``[B, 144, 3]`` metres (camera frame), ``confidence`` ``[B, 144]`` (0 = missing);
    ``focal`` ``[B]`` px, ``principal`` ``[B, 2]`` px and ``image_size`` ``[B, 2]`` (height,
    width px) for 2D; ``frames``: frames per person (rows = persons x frames)."""

    keypoints: torch.Tensor
    confidence: torch.Tensor
    focal: torch.Tensor | None = None
    principal: torch.Tensor | None = None
    image_size: torch.Tensor | None = None
    frames: int = 1

    @property
    def is_2d(self) -> bool:
        return self.keypoints.shape[-1] == 2

    def to(self, device) -> Targets:
        """A copy on ``device``."""
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return Targets(move(self.keypoints), move(self.confidence), move(self.focal), move(self.principal),
                       move(self.image_size), self.frames)


def expand_betas(betas: torch.Tensor, rows: int) -> torch.Tensor:
    """Betas per row from one per batch (``[1, 10]``), one per person (``[P, 10]``, rows person-major)
    or one per row."""
    if betas.shape[0] == rows:
        return betas
    return betas.repeat_interleave(rows // betas.shape[0], dim=0)


def sizes_for(model: nn.Module) -> dict[str, int]:
    """The parameters (and sizes per row) a fit of ``model`` optimises: SMPL-X's or SMPL's."""
    return SMPL_SIZES if isinstance(model, SMPLJoints) else SIZES


def model_keypoints(model: nn.Module, params: dict[str, torch.Tensor]) -> torch.Tensor:
    """``[B, 144, 3]`` keypoints in the camera frame (metres) from a ``SMPLXKeypoints`` model (all
    axis-angles turned into matrices in one call); ``[B, 24, 3]`` from an ``SMPLJoints`` model."""
    rows = params["global_orient"].shape[0]
    if isinstance(model, SMPLJoints):
        return smpl_keypoints(model, params, expand_betas(params["betas"], rows))
    names = ("global_orient", "body_pose", "left_hand_pose", "right_hand_pose", "jaw_pose")
    aa = torch.cat([params[n].reshape(rows, -1, 3) for n in names], dim=1)
    rot = axis_angle_to_matrix(aa)  # [B, 53, 3, 3]: 1 + 21 + 15 + 15 + 1
    go, body, left, right, jaw = torch.split(rot, [1, 21, 15, 15, 1], dim=1)
    eye = torch.eye(3, dtype=rot.dtype, device=rot.device).expand(rows, 1, 3, 3)
    kp = model(go, body, left, right, jaw, eye, eye, expand_betas(params["betas"], rows), params["expression"])
    return kp + params["transl"][:, None, :]


def _keypoint_term(cfg: FitConfig, joints: torch.Tensor, targets: Targets, weight: torch.Tensor) -> torch.Tensor:
    """The weighted keypoint term per row. 2D: MMHuman3D normalises pixels to [-1, 1] by ``img_res``
    whatever the image; the default measures residuals in units of half the image's long side,
    with ``sigma2d`` pixels converted to the same units."""
    if targets.is_2d:
        pred = losses.project(joints, targets.focal, targets.principal)
        if cfg.mmhuman3d:
            res = cfg.img_res
            pred_n, target_n = 2.0 * pred / (res - 1.0) - 1.0, 2.0 * targets.keypoints / (res - 1.0) - 1.0
            return cfg.keypoints2d_weight * losses.keypoints_mmhuman3d(pred_n, target_n, weight, cfg.sigma2d)
        half = targets.image_size.max(dim=1).values.to(pred.dtype)[:, None, None] / 2.0
        sigma = cfg.sigma2d / half[:, :, 0]  # [B, 1]
        return cfg.keypoints2d_weight * losses.keypoints_robust(pred / half, targets.keypoints / half, weight, sigma)
    if cfg.mmhuman3d:
        return cfg.keypoints3d_weight * losses.keypoints_mmhuman3d(joints, targets.keypoints, weight, cfg.sigma3d)
    return cfg.keypoints3d_weight * losses.keypoints_robust(joints, targets.keypoints, weight, cfg.sigma3d)


def evaluate(model: nn.Module, cfg: FitConfig, stage: Stage, params: dict[str, torch.Tensor], targets: Targets,
             start: dict[str, torch.Tensor] | None = None, prior: nn.Module | None = None) -> dict[str, torch.Tensor]:
    """Every weighted term per row (``[B]``), and ``total``, their sum. Terms with weight 0 are left out,
    as MMHuman3D skips them; ``pose_prior`` only with a ``prior`` (``fit.pose_prior=gmm``)."""
    rows = params["global_orient"].shape[0]
    joints = model_keypoints(model, params)
    if isinstance(model, SMPLJoints):  # SMPLify applies body_weight to the torso in both presets
        weight = smpl_part_weights(stage.body_weight, stage.use_shoulder_hip_only, joints.device, joints.dtype)
    else:
        weight = part_weights(stage.body_weight, stage.hand_weight, stage.face_weight, stage.use_shoulder_hip_only,
                              apply_body_to_torso=not cfg.mmhuman3d, device=joints.device, dtype=joints.dtype)
    terms = {"keypoints2d" if targets.is_2d else "keypoints3d": _keypoint_term(cfg, joints, targets,
                                                                              weight * targets.confidence)}
    if cfg.shape_prior_weight:
        terms["shape_prior"] = cfg.shape_prior_weight * losses.shape_prior(expand_betas(params["betas"], rows))
    if cfg.joint_prior_weight:
        starts = losses.MMHUMAN3D_SPINE_STARTS if cfg.mmhuman3d else losses.SPINE_STARTS
        limits = joint_limit_penalty(params["body_pose"]).reshape(rows, -1).sum(dim=1)
        spine = cfg.smooth_spine_weight * losses.spine_smoothness(params["body_pose"], starts)
        terms["joint_prior"] = cfg.joint_prior_weight * (limits + spine)
    if prior is not None and cfg.pose_prior_weight:
        terms["pose_prior"] = cfg.pose_prior_weight * prior(params["body_pose"])
    if cfg.temporal_weight:
        frames = None if cfg.mmhuman3d else targets.frames
        terms["temporal"] = cfg.temporal_weight * losses.temporal_smoothness(params["body_pose"], frames)
    if cfg.start_pull_weight and start is not None:
        current = {**params, "betas": expand_betas(params["betas"], rows)}
        pulled = tuple(n for n in PULLED if n in params)
        terms["start_pull"] = cfg.start_pull_weight * losses.start_pull(current, start, pulled)
    terms["total"] = sum(terms.values())
    return terms
