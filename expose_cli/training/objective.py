"""The training objective of each model: which loss terms, on which keypoints, with which weights.

:func:`compute_losses` takes a :class:`~expose_cli.models.model.Prediction` (networks in train mode)
and a batch of training samples (the data contract of docs/train.md, "Data") and returns the
weighted terms by name; their sum is the loss (MMHuman3D sums every term, §1).
"""

from __future__ import annotations

from functools import cache

import numpy as np
import torch

from expose_cli.body_models.keypoints import get_convention
from expose_cli.geometry.cameras import weak_perspective_project
from expose_cli.kinds import KINDS
from expose_cli.models import attention
from expose_cli.models.model import Prediction
from expose_cli.training import losses as L
from expose_cli.training.config import LossConfig


@cache
def part_indices(convention: str) -> dict[str, np.ndarray]:
    """Keypoints of each part in ``convention``: ``head`` (the jaw/expression weight: 77 in smplx,
    72 in flame), ``left_hand``/``right_hand`` (the 20 finger keypoints, no wrist: the hand-pose
    weight), ``*_hand_crop`` (with the wrist: the crop terms)."""
    conv = get_convention(convention)
    smplx = get_convention("smplx")
    head = [smplx.names[i] for i in attention.head_keypoint_indices()]
    out = {"head": np.array([conv.index(n) for n in head if n in conv], dtype=np.int64)}
    for side in ("left", "right"):
        names = [smplx.names[i] for i in attention.hand_keypoint_indices(side)]
        crop = [conv.index(n) for n in names if n in conv]
        out[f"{side}_hand_crop"] = np.array(crop, dtype=np.int64)
        out[f"{side}_hand"] = np.array([conv.index(n) for n in names if n in conv and n != f"{side}_wrist"],
                                       dtype=np.int64)
    return out


def _has(batch: dict, name: str) -> torch.Tensor:
    return batch[f"has_{name}"].reshape(-1)


def _rotation_terms(pred: Prediction, batch: dict, cfg: LossConfig, parts: dict) -> dict[str, torch.Tensor]:
    kp2d, terms = batch["keypoints2d"], {}
    rot = pred.rotations
    if cfg.global_orient:
        terms["global_orient"] = cfg.global_orient * L.rotation_distance(
            rot["global_orient"], batch["global_orient"].reshape(-1, 1, 3), _has(batch, "global_orient"))
    if cfg.body_pose and "body_pose" in rot:
        terms["body_pose"] = cfg.body_pose * L.rotation_distance(rot["body_pose"], batch["body_pose"],
                                                                 _has(batch, "body_pose"))
    if cfg.jaw_pose and "jaw_pose" in rot:
        w = L.part_confidence(kp2d, parts["head"])
        terms["jaw_pose"] = cfg.jaw_pose * L.rotation_distance(rot["jaw_pose"], batch["jaw_pose"].reshape(-1, 1, 3),
                                                               _has(batch, "jaw_pose"), w)
    if cfg.hand_pose:
        for side in ("right", "left"):
            name = f"{side}_hand_pose"
            if name in rot and len(parts[f"{side}_hand"]):
                w = L.part_confidence(kp2d, parts[f"{side}_hand"])
                terms[name] = cfg.hand_pose * L.rotation_distance(rot[name], batch[name], _has(batch, name), w)
    return terms


def _crop_terms(pred: Prediction, batch: dict, cfg: LossConfig, parts: dict) -> dict[str, torch.Tensor]:
    terms = {}
    args = (pred.keypoints2d_crop, batch["keypoints2d"], _has(batch, "keypoints2d"), batch["crop_transform"])
    if cfg.hand_crop and pred.hand_boxes:
        terms["hand_crop"] = cfg.hand_crop * sum(
            L.crop_keypoints_loss(*args, pred.hand_boxes[s]["center"], pred.hand_boxes[s]["size"],
                                  parts[f"{s}_hand_crop"]) for s in ("left", "right"))
    if cfg.face_crop and pred.face_box:
        terms["face_crop"] = cfg.face_crop * L.crop_keypoints_loss(*args, pred.face_box["center"],
                                                                  pred.face_box["size"], parts["head"])
    return terms


def compute_losses(pred: Prediction, batch: dict, cfg: LossConfig) -> dict[str, torch.Tensor]:
    """The weighted loss terms (each a scalar) of ``pred`` against ``batch``; zero weights are left out."""
    parts = part_indices(KINDS[pred.kind].convention)
    img_res = batch["img"].shape[-1]
    terms: dict[str, torch.Tensor] = {}
    if cfg.keypoints2d:
        ndc = weak_perspective_project(pred.joints, pred.camera)
        terms["keypoints2d"] = cfg.keypoints2d * L.keypoints2d_loss(ndc, batch["keypoints2d"],
                                                                    _has(batch, "keypoints2d"), img_res)
    if cfg.keypoints3d:
        terms["keypoints3d"] = cfg.keypoints3d * L.keypoints3d_loss(pred.joints, batch["keypoints3d"],
                                                                    _has(batch, "keypoints3d"))
    terms.update(_rotation_terms(pred, batch, cfg, parts))
    if cfg.betas:
        terms["betas"] = L.betas_loss(pred.betas, batch["betas"], _has(batch, "betas"), scale=cfg.betas)
    if cfg.expression and pred.expression is not None:
        w = L.part_confidence(batch["keypoints2d"], parts["head"])
        terms["expression"] = cfg.expression * L.expression_loss(pred.expression, batch["expression"],
                                                                 _has(batch, "expression"), w)
    if cfg.shape_prior:
        terms["shape_prior"] = cfg.shape_prior * L.shape_threshold_prior(pred.betas, cfg.shape_prior_margin)
    terms.update(_crop_terms(pred, batch, cfg, parts))
    return terms


def model_input(batch: dict):
    """The network input of a training batch (crops, crop affines, box sides, full images)."""
    from expose_cli.models.inputs import ModelInput

    scale = batch["scale"]
    box = scale.max(dim=1).values if scale.ndim == 2 else scale.reshape(-1)
    return ModelInput(batch["img"], batch["crop_transform"], box, batch.get("ori_img"))
