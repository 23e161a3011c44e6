"""The networks of one ExPose model, with MMHuman3D's module names.

:class:`ExPoseNet` holds ``backbone``, ``head`` and, for the full model, ``hand_backbone``,
``hand_head``, ``face_backbone``, ``face_head``, so published checkpoints load one-to-one.
"""

from __future__ import annotations

import torch
from torch import nn

from expose_cli.models.backbones.hrnet import HRNetExpose
from expose_cli.models.backbones.resnet import ResNet18
from expose_cli.models.config import ModelConfig
from expose_cli.models.heads import (
    BODY_PARTS,
    HAND_PARTS,
    HeadOutput,
    body_head,
    build_mean_param,
    face_head,
    hand_head,
)


class ExPoseNet(nn.Module):
    """The networks of one model kind (``body``, ``hand``, ``face`` or ``expose``).

    ``means``: 6D pose means by part name (``all_means.pkl``) and ``shape_mean`` for the body head's
    starting betas; without them the heads start at identity / zero (a checkpoint's ``mean_param``
    buffers replace these anyway).
    """

    def __init__(self, cfg: ModelConfig, means: dict | None = None, shape_mean=None) -> None:
        super().__init__()
        self.cfg = cfg
        self.norm_eval = True  # BatchNorm statistics fixed in train mode (see :meth:`train`)
        kind = cfg.kind
        if kind in ("body", "expose"):
            b = cfg.body
            self.backbone = HRNetExpose(b.hrnet_width, b.feature_dim)
            mean = build_mean_param(BODY_PARTS, b.num_betas, b.num_expression, b.camera_mean_scale, means, shape_mean)
            self.head = body_head(b, mean)
        if kind in ("hand", "expose"):
            h = cfg.hand
            backbone = ResNet18(h.resnet_width)
            mean = build_mean_param(HAND_PARTS, h.num_betas, 0, h.camera_mean_scale, means)
            head = hand_head(h, backbone.out_channels, mean)
            if kind == "hand":
                self.backbone, self.head = backbone, head
            else:
                self.hand_backbone, self.hand_head = backbone, head
        if kind in ("face", "expose"):
            f = cfg.face
            backbone = ResNet18(f.resnet_width)
            head = face_head(f, backbone.out_channels)
            if kind == "face":
                self.backbone, self.head = backbone, head
            else:
                self.face_backbone, self.face_head = backbone, head
        if self.frozen_body:
            for module in (self.backbone, self.head):
                module.requires_grad_(False)

    @property
    def frozen_body(self) -> bool:
        """The full model trains only its part networks (MMHuman3D's ``frozen_batchnorm=True``)."""
        return self.cfg.kind == "expose" and self.cfg.attention.freeze_body

    def train(self, mode: bool = True) -> ExPoseNet:
        """Train mode, keeping BatchNorm statistics fixed as MMHuman3D does: every backbone's
        BatchNorms stay in eval mode (``norm_eval=True`` of its HRNet and ResNet) unless
        :attr:`norm_eval` is False (training from scratch: the fixed statistics of a fresh network,
        mean 0 and variance 1, normalise nothing). Dropout follows ``mode``, except in the frozen
        body of the full model, which stays wholly in eval mode (MMHuman3D left its head's dropout
        on, making the crops and conditions random, §5.3)."""
        super().train(mode)
        if mode:
            backbones = [getattr(self, n) for n in ("backbone", "hand_backbone", "face_backbone") if hasattr(self, n)]
            for module in backbones if self.norm_eval else ():
                for m in module.modules():
                    if isinstance(m, nn.modules.batchnorm._BatchNorm):
                        m.eval()
            if self.frozen_body:
                self.backbone.eval()
                self.head.eval()
        return self

    @property
    def kind(self) -> str:
        return self.cfg.kind

    @property
    def img_res(self) -> int:
        """Side (px) of the square person crop the network takes (:attr:`ModelConfig.img_res`)."""
        return self.cfg.img_res

    def forward(self, img: torch.Tensor) -> HeadOutput:
        """The model's own network on its own crops (body 256, hand 224, face 256)."""
        return self.head(self.backbone(img))
