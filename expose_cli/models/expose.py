"""The four ExPose models: body, hand, face, and the full model with body-driven attention.

:class:`ExPoseNet` holds the networks, with MMHuman3D's module names (``backbone``, ``head``,
``hand_backbone``, ``hand_head``, ``face_backbone``, ``face_head``), so published checkpoints load
one-to-one. :class:`Predictor` adds the body models and returns a typed :class:`Prediction`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from expose_cli.body_models.sparse_keypoints import SMPLXKeypoints
from expose_cli.geometry.cameras import ndc_to_crop_pixels, weak_perspective_project
from expose_cli.geometry.rotations import matrix_to_axis_angle
from expose_cli.models import attention
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
from expose_cli.models.inputs import ModelInput

#: MANO fingertip vertices (thumb, index, middle, ring, pinky), as FreiHAND's toolkit and
#: MMHuman3D's MANO layer (``kpId2vertices``) pick them; the ``smplx`` package's own table differs
#: by one for the ring and pinky tips (554, 671), which would bias FreiHAND's PA-MPJPE.
MANO_TIP_VERTICES = torch.tensor([744, 320, 443, 555, 672])
SMPLX_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 15, 15, 15]


class ExPoseNet(nn.Module):
    """The networks of one model kind (``body``, ``hand``, ``face`` or ``expose``).

    ``means``: 6D pose means by part name (``all_means.pkl``) and ``shape_mean`` for the body head's
    starting betas; without them the heads start at identity / zero (a checkpoint's ``mean_param``
    buffers replace these anyway).
    """

    def __init__(self, cfg: ModelConfig, means: dict | None = None, shape_mean=None) -> None:
        super().__init__()
        self.cfg = cfg
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
        BatchNorms stay in eval mode (``norm_eval=True`` of its HRNet and ResNet), and the frozen
        body of the full model keeps all its BatchNorms fixed. Dropout follows ``mode``."""
        super().train(mode)
        if mode:
            frozen = [getattr(self, n) for n in ("backbone", "hand_backbone", "face_backbone") if hasattr(self, n)]
            if self.frozen_body:
                frozen.append(self.head)
            for module in frozen:
                for m in module.modules():
                    if isinstance(m, nn.modules.batchnorm._BatchNorm):
                        m.eval()
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


@dataclass
class Prediction:
    """Everything a model predicts for a batch of B persons.

    Rotations are matrices (``[B, J, 3, 3]``); :meth:`axis_angle` gives radians. Lengths in metres
    (body model frame), 2D points in pixels. ``camera`` is the weak-perspective ``[s, tx, ty]``.
    """

    kind: str
    rotations: dict[str, torch.Tensor]
    betas: torch.Tensor
    expression: torch.Tensor | None
    camera: torch.Tensor
    vertices: torch.Tensor | None = None
    joints: torch.Tensor | None = None  # model keypoints: smplx 144 / mano 21 / flame 73
    joints_j14: torch.Tensor | None = None  # LSP-14 from vertices (body and full model)
    keypoints2d_crop: torch.Tensor | None = None  # joints projected into the input crop, px
    keypoints2d: torch.Tensor | None = None  # the same in the original image, px
    hand_boxes: dict[str, torch.Tensor] = field(default_factory=dict)  # centre/size per hand, px
    face_box: dict[str, torch.Tensor] = field(default_factory=dict)
    training: dict = field(default_factory=dict)  # stages and pre-merge predictions (train mode)

    def axis_angle(self) -> dict[str, torch.Tensor]:
        """Every rotation as axis-angle ``[B, J, 3]`` (radians)."""
        return {name: matrix_to_axis_angle(rot) for name, rot in self.rotations.items()}


class Predictor:
    """Networks + body models: ``predictor(batch) -> Prediction``.

    ``body_model``: smplx SMPL-X layer (body, expose), MANO layer (hand) or FLAME layer (face).
    ``j14_regressor``: ``[14, 10475]`` SMPLX_to_J14 for LSP joints (body, expose).
    """

    def __init__(self, net: ExPoseNet, body_model: nn.Module, j14_regressor: torch.Tensor | None = None,
                 fuse: bool = True) -> None:
        self.net = net.eval()
        self.fuse = fuse
        self._fused: dict[str, tuple[list, list, nn.Module]] = {}  # name -> (weights, their versions, fused copy)
        self.body_model = body_model.eval()
        self.j14 = None if j14_regressor is None else torch.as_tensor(j14_regressor, dtype=torch.float32)
        self.device = torch.device("cpu")
        parents = getattr(body_model, "parents", None)
        self.parents = parents.tolist() if parents is not None and net.kind in ("body", "expose") else SMPLX_PARENTS
        self._hand_idx = {s: torch.as_tensor(attention.hand_keypoint_indices(s)) for s in ("left", "right")}
        self._head_idx = torch.as_tensor(attention.head_keypoint_indices())
        # The attention step needs the body's keypoints, not its mesh: skin only their vertices.
        sparse_ok = net.kind == "expose" and hasattr(body_model, "lmk_faces_idx")
        self.keypoint_model = SMPLXKeypoints(body_model) if sparse_ok else None

    def backbone(self, name: str) -> nn.Module:
        """The backbone ``name`` for inference: in eval mode, a copy with every BatchNorm folded into
        its convolution and channels-last memory (same outputs to float precision, ~1.6x faster on
        CPU). In train mode, the network's own module."""
        module = getattr(self.net, name)
        if self.net.training or not self.fuse:
            return module
        # An optimiser step, load_state_dict or an in-place edit bumps a weight's version counter:
        # the copy is then made again. Comparing the counters of the tensors listed when the copy
        # was made costs ~0.2 ms a call; listing them anew (module.parameters()) would cost ~3 ms.
        cached = self._fused.get(name)
        if cached is None or any(t._version != v for t, v in zip(cached[0], cached[1], strict=True)):
            import copy

            from torch.fx.experimental.optimization import fuse

            tensors = [*module.parameters(), *module.buffers()]
            versions = [t._version for t in tensors]
            fused = fuse(copy.deepcopy(module).eval())
            self._fused[name] = (tensors, versions, fused.to(self.device, memory_format=torch.channels_last))
        return self._fused[name][2]

    def _features(self, name: str, img: torch.Tensor) -> torch.Tensor:
        if self.net.training or not self.fuse:
            return getattr(self.net, name)(img)
        return self.backbone(name)(img.contiguous(memory_format=torch.channels_last))

    def to(self, device) -> Predictor:
        self.device = torch.device(device)
        self._fused = {}
        self.net.to(self.device)
        self.body_model.to(self.device)
        if self.keypoint_model is not None:
            self.keypoint_model.to(self.device)
        if self.j14 is not None:
            self.j14 = self.j14.to(self.device)
        return self

    @property
    def kind(self) -> str:
        return self.net.kind

    @property
    def img_res(self) -> int:
        """Side (px) of the square person crop the model takes (``img_res`` of its config)."""
        return self.net.img_res

    def __call__(self, batch: ModelInput) -> Prediction:
        with torch.inference_mode():
            return self.predict(batch.to(self.device))

    # -- body-model passes -----------------------------------------------------------------------
    def _smplx(self, rotations: dict, betas: torch.Tensor, expression: torch.Tensor, keypoints_only: bool = False):
        """The full SMPL-X pass (an ``SMPLXOutput``) or, with ``keypoints_only``, just its ``[B, 144, 3]`` joints."""
        eye = torch.eye(3, dtype=betas.dtype, device=betas.device).expand(betas.shape[0], 1, 3, 3)
        kwargs = dict(global_orient=rotations["global_orient"], body_pose=rotations["body_pose"],
                      left_hand_pose=rotations["left_hand_pose"], right_hand_pose=rotations["right_hand_pose"],
                      jaw_pose=rotations["jaw_pose"], leye_pose=eye, reye_pose=eye, betas=betas, expression=expression)
        if not keypoints_only:
            return self.body_model(**kwargs)
        if self.keypoint_model is not None:
            return self.keypoint_model(**kwargs)
        return self.body_model(**kwargs).joints

    def predict(self, batch: ModelInput) -> Prediction:
        kind = self.kind
        out = self.net.head(self._features("backbone", batch.img))
        res = batch.img.shape[-1]
        if kind in ("body", "expose"):
            rotations = dict(out.rotations)
            expression = out.expression
            training = {"body_stages": out.stages} if self.net.training else {}
            hand_boxes, face_box = {}, {}
            if kind == "expose":
                rotations, expression, hand_boxes, face_box, extra = self._attend(batch, out)
                training.update(extra if self.net.training else {})
            body = self._smplx(rotations, out.betas, expression)
            vertices, joints = body.vertices, body.joints
            j14 = torch.einsum("jv,bvc->bjc", self.j14, vertices) if self.j14 is not None else None
        elif kind == "hand":
            rotations, expression = dict(out.rotations), None
            body = self.body_model(global_orient=rotations["global_orient"], hand_pose=rotations["right_hand_pose"],
                                   betas=out.betas)
            tips = body.vertices[:, MANO_TIP_VERTICES.to(body.vertices.device)]
            joints = torch.cat([body.joints[:, :16], tips], dim=1)  # MANO-21 ('mano' convention)
            vertices, j14, hand_boxes, face_box = body.vertices, None, {}, {}
            training = {"hand_stages": out.stages} if self.net.training else {}
        else:  # face
            rotations, expression = dict(out.rotations), out.expression
            eye = torch.eye(3, dtype=out.betas.dtype, device=out.betas.device).expand(out.betas.shape[0], 1, 3, 3)
            body = self.body_model(global_orient=rotations["global_orient"], neck_pose=eye, jaw_pose=rotations["jaw_pose"],
                                   leye_pose=eye, reye_pose=eye, betas=out.betas, expression=out.expression)
            vertices, joints, j14, hand_boxes, face_box = body.vertices, body.joints, None, {}, {}
            training = {"face_stages": out.stages} if self.net.training else {}
        kp_crop = ndc_to_crop_pixels(weak_perspective_project(joints, out.camera), res)
        kp_img = self._to_image(kp_crop, batch.crop_transform)
        return Prediction(kind, rotations, out.betas, expression, out.camera, vertices, joints, j14, kp_crop, kp_img,
                          hand_boxes, face_box, training)

    @staticmethod
    def _to_image(points_crop: torch.Tensor, crop_transform: torch.Tensor) -> torch.Tensor:
        """Crop pixels -> original-image pixels through the inverse of each crop affine."""
        batch = crop_transform.shape[0]
        bottom = torch.tensor([0.0, 0.0, 1.0], dtype=crop_transform.dtype, device=crop_transform.device)
        inv = torch.inverse(torch.cat([crop_transform, bottom.expand(batch, 1, 3)], dim=1))
        return points_crop @ inv[:, :2, :2].transpose(1, 2) + inv[:, None, :2, 2]

    def _attend(self, batch: ModelInput, body: HeadOutput):
        """Hand and face crops from the body's keypoints, the part networks, and the merge."""
        if batch.full_images is None:
            raise ValueError("the full model needs the full-resolution images (ModelInput.full_images)")
        net, att, res = self.net, self.net.cfg.attention, batch.img.shape[-1]
        rot = body.rotations
        keypoints = self._smplx(rot, body.betas, body.expression, keypoints_only=True)
        kp_crop = ndc_to_crop_pixels(weak_perspective_project(keypoints, body.camera), res)
        boxes = {}
        crops = []
        for side in ("right", "left"):
            center, size = attention.part_box_in_image(kp_crop[:, self._hand_idx[side].to(kp_crop.device)],
                                                       batch.crop_transform, batch.box_size, att.hand_scale_factor, res)
            boxes[side] = {"center": center, "size": size}
            crop = attention.sample_crop(batch.full_images, center, size, att.hand_crop_size)
            crops.append(crop if side == "right" else torch.flip(crop, dims=(-1,)))
        hand_cond = attention.hand_condition(net.hand_head, rot["global_orient"], rot["body_pose"], rot["left_hand_pose"],
                                             body.raw["right_hand_pose"], self.parents,
                                             att.condition_hand_wrist_pose, att.condition_hand_finger_pose)
        hands = net.hand_head(self._features("hand_backbone", torch.cat(crops, dim=0)), hand_cond)
        merged = attention.merge_hands(rot["global_orient"], rot["body_pose"], hands.rotations, self.parents)
        # As MMHuman3D: the face is located after the hand merge. The face keypoints barely move with the
        # hands (only through pose blend shapes), but exactly equal crops need the merged parameters.
        face_kp = self._smplx({**rot, **merged}, body.betas, body.expression, keypoints_only=True)
        face_kp = ndc_to_crop_pixels(weak_perspective_project(face_kp[:, self._head_idx.to(face_kp.device)], body.camera), res)
        center, size = attention.part_box_in_image(face_kp, batch.crop_transform,
                                                   batch.box_size, att.face_scale_factor, res)
        face_box = {"center": center, "size": size}
        face_crops = attention.sample_crop(batch.full_images, center, size, att.face_crop_size)
        face_cond = attention.face_condition(net.face_head, body.raw["jaw_pose"], body.expression,
                                             att.condition_face_jaw_pose, att.condition_face_expression)
        face = net.face_head(self._features("face_backbone", face_crops), face_cond)
        rotations = {**rot, **merged, "jaw_pose": face.rotations["jaw_pose"]}
        expression = face.expression[:, : body.expression.shape[1]]
        extra = {"hands": hands, "face": face, "body": body, "hand_crops": torch.cat(crops), "face_crops": face_crops}
        return rotations, expression, boxes, face_box, extra
