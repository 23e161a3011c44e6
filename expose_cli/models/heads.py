"""Parameter heads: the body head, hand head and face head of ExPose.

Each head regresses one flat vector with an :class:`IterativeRegressor`; the layout (which slice
is which parameter) is held in ``<name>_idxs`` buffers, as in MMHuman3D's checkpoints. Rotations
are 6D (see :mod:`expose_cli.geometry.rotations`); the camera is ``[softplus(s), tx, ty]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from expose_cli.geometry.rotations import rot6d_to_matrix
from expose_cli.models.regressor import MLP, IterativeRegressor

IDENTITY_6D = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)


@dataclass(frozen=True)
class RotationPart:
    """A block of 6D rotations in the parameter vector."""

    name: str
    num_joints: int
    use_mean: bool  # start from all_means.pkl's mean (else identity)
    rotate_axis_x: bool = False  # start rotated by 180 degrees about x (camera looks at the person)


BODY_PARTS = (
    RotationPart("global_orient", 1, False, True),
    RotationPart("body_pose", 21, True),
    RotationPart("left_hand_pose", 15, True),
    RotationPart("right_hand_pose", 15, True),
    RotationPart("jaw_pose", 1, False),
)
HAND_PARTS = (RotationPart("global_orient", 1, False), RotationPart("right_hand_pose", 15, True))
FACE_PARTS = (RotationPart("global_orient", 1, False, True), RotationPart("jaw_pose", 1, False))


def softplus_inverse(y: float) -> float:
    return math.log(math.exp(y) - 1.0)


def build_mean_param(
    parts: tuple[RotationPart, ...],
    num_betas: int,
    num_expression: int,
    camera_mean_scale: float,
    means_6d: dict[str, torch.Tensor] | None = None,
    shape_mean: torch.Tensor | None = None,
) -> torch.Tensor:
    """The starting vector: rotation means (6D), betas, expression, camera ``[softplus^-1(s), 0, 0]``.

    ``means_6d[name]``: ``[num_joints, 6]`` means from ``all_means.pkl`` for parts with ``use_mean``;
    ``rotate_axis_x`` sets the 4th number to -1: the 6D of ``diag(1, -1, -1)``, 180 degrees about x.
    """
    chunks = []
    for part in parts:
        if part.use_mean and means_6d is not None and part.name in means_6d:
            mean = torch.as_tensor(means_6d[part.name], dtype=torch.float32).reshape(-1).clone()
        else:
            mean = torch.tensor(IDENTITY_6D).repeat(part.num_joints)
        if part.rotate_axis_x:
            mean[3] = -1.0
        chunks.append(mean)
    betas = torch.zeros(num_betas)
    if shape_mean is not None:
        betas = torch.as_tensor(shape_mean, dtype=torch.float32).reshape(-1)[:num_betas].clone()
    chunks += [betas, torch.zeros(num_expression), torch.tensor([softplus_inverse(camera_mean_scale), 0.0, 0.0])]
    return torch.cat(chunks)


@dataclass
class HeadOutput:
    """What a head predicts, decoded. Rotations are matrices ``[B, J, 3, 3]``; ``raw`` keeps the 6D."""

    rotations: dict[str, torch.Tensor]
    raw: dict[str, torch.Tensor]
    betas: torch.Tensor
    expression: torch.Tensor | None
    camera: torch.Tensor  # [B, 3] = [s, tx, ty], s > 0
    stages: list[torch.Tensor] = field(default_factory=list)  # flat vector after each stage


class ParameterHead(nn.Module):
    """Iterative regression of one model's parameter vector from image features."""

    def __init__(self, parts: tuple[RotationPart, ...], feature_dim: int, num_betas: int, num_expression: int,
                 camera_mean_scale: float, hidden: tuple[int, ...], activation: str, dropout: float,
                 num_stages: int = 3, mean_param: torch.Tensor | None = None) -> None:
        super().__init__()
        self.parts = parts
        start = 0
        for part in parts:
            self.register_buffer(f"{part.name}_idxs", torch.arange(start, start + 6 * part.num_joints))
            start += 6 * part.num_joints
        self.register_buffer("shape_idxs", torch.arange(start, start + num_betas))
        start += num_betas
        self.has_expression = num_expression > 0
        if self.has_expression:
            self.register_buffer("expression_idxs", torch.arange(start, start + num_expression))
            start += num_expression
        self.register_buffer("camera_idxs", torch.arange(start, start + 3))
        start += 3
        if mean_param is None:
            mean_param = build_mean_param(parts, num_betas, num_expression, camera_mean_scale)
        if mean_param.numel() != start:
            raise ValueError(f"mean_param has {mean_param.numel()} values, the layout needs {start}")
        mlp = MLP(feature_dim + start, start, hidden, activation, dropout)
        self.regressor = IterativeRegressor(mlp, mean_param, num_stages)
        self.num_params = start

    def get_mean(self, name: str, batch_size: int) -> torch.Tensor:
        """The slice ``name`` (``camera``, ``shape``, ``expression`` or a rotation part) of the mean."""
        idxs = getattr(self, f"{name}_idxs")
        return self.regressor.mean_param[0, idxs].expand(batch_size, -1)

    def decode(self, params: torch.Tensor) -> HeadOutput:
        rotations, raw = {}, {}
        batch = params.shape[0]
        for part in self.parts:
            six = params[:, getattr(self, f"{part.name}_idxs")]
            raw[part.name] = six
            rotations[part.name] = rot6d_to_matrix(six.reshape(batch, -1, 6))
        camera = params[:, self.camera_idxs]
        camera = torch.cat([F.softplus(camera[:, :1]), camera[:, 1:]], dim=1)
        expression = params[:, self.expression_idxs] if self.has_expression else None
        return HeadOutput(rotations, raw, params[:, self.shape_idxs], expression, camera)

    def forward(self, features: torch.Tensor, cond: torch.Tensor | None = None) -> HeadOutput:
        stages = self.regressor(features, cond)
        out = self.decode(stages[-1])
        out.stages = stages
        return out


def body_head(cfg, mean_param: torch.Tensor | None = None) -> ParameterHead:
    return ParameterHead(BODY_PARTS, cfg.feature_dim, cfg.num_betas, cfg.num_expression, cfg.camera_mean_scale,
                         cfg.hidden, cfg.activation, cfg.dropout, cfg.num_stages, mean_param)


def hand_head(cfg, feature_dim: int, mean_param: torch.Tensor | None = None) -> ParameterHead:
    return ParameterHead(HAND_PARTS, feature_dim, cfg.num_betas, 0, cfg.camera_mean_scale,
                         cfg.hidden, cfg.activation, cfg.dropout, cfg.num_stages, mean_param)


def face_head(cfg, feature_dim: int, mean_param: torch.Tensor | None = None) -> ParameterHead:
    return ParameterHead(FACE_PARTS, feature_dim, cfg.num_betas, cfg.num_expression, cfg.camera_mean_scale,
                         cfg.hidden, cfg.activation, cfg.dropout, cfg.num_stages, mean_param)
