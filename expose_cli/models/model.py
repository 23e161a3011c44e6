"""One ExPose model as one ``nn.Module``: networks + body model, image batch in, :class:`Prediction` out.

For the full model the forward runs body -> body-driven attention -> hand and face crops -> part
networks -> merge -> SMPL-X, so one module (which DDP can wrap) trains or predicts. The inference
:class:`expose_cli.models.expose.Predictor` wraps it with fused backbones and ``inference_mode``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from expose_cli.body_models.sparse_keypoints import SMPLXKeypoints
from expose_cli.geometry.cameras import ndc_to_crop_pixels, weak_perspective_project
from expose_cli.geometry.rotations import matrix_to_axis_angle
from expose_cli.models import attention
from expose_cli.models.heads import HeadOutput
from expose_cli.models.inputs import ModelInput
from expose_cli.models.network import ExPoseNet

#: MANO fingertip vertices (thumb, index, middle, ring, pinky), as FreiHAND's toolkit and
#: MMHuman3D's MANO layer (``kpId2vertices``) pick them; the ``smplx`` package's own table differs
#: by one for the ring and pinky tips (554, 671), which would bias FreiHAND's PA-MPJPE.
MANO_TIP_VERTICES = torch.tensor([744, 320, 443, 555, 672])
SMPLX_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 15, 15, 15]

#: ``features(name, img)``: the backbone ``name`` (``backbone``, ``hand_backbone``, ``face_backbone``)
#: applied to ``img``; the Predictor substitutes fused copies.
FeatureFn = Callable[[str, torch.Tensor], torch.Tensor]


def module_device(module: nn.Module) -> torch.device:
    """Where ``module`` runs: the device of its first parameter (else buffer; the CPU when it holds
    neither). Derived each time, never stored, so it follows every ``.to()`` / ``.cuda()``."""
    for tensor in module.parameters():
        return tensor.device
    for tensor in module.buffers():
        return tensor.device
    return torch.device("cpu")


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


def image_from_crop(points_crop: torch.Tensor, crop_transform: torch.Tensor) -> torch.Tensor:
    """Crop pixels -> original-image pixels through the inverse of each crop affine ``[B, 2, 3]``."""
    batch = crop_transform.shape[0]
    bottom = torch.tensor([0.0, 0.0, 1.0], dtype=crop_transform.dtype, device=crop_transform.device)
    inv = torch.inverse(torch.cat([crop_transform, bottom.expand(batch, 1, 3)], dim=1))
    return points_crop @ inv[:, :2, :2].transpose(1, 2) + inv[:, None, :2, 2]


class ExPoseModel(nn.Module):
    """``net`` (an :class:`ExPoseNet`) + its body model: ``model(batch) -> Prediction``.

    ``body_model``: smplx SMPL-X layer (body, expose), MANO layer (hand) or FLAME layer (face); its
    parameters never train. ``j14_regressor``: ``[14, V]`` SMPLX_to_J14 (LSP joints, body/expose).
    ``state_dict()`` of the networks alone is ``self.net.state_dict()`` (MMHuman3D's key names).
    """

    def __init__(self, net: ExPoseNet, body_model: nn.Module, j14_regressor: torch.Tensor | None = None) -> None:
        super().__init__()
        self.net = net
        self.body_model = body_model.requires_grad_(False).eval()
        j14 = None if j14_regressor is None else torch.as_tensor(j14_regressor, dtype=torch.float32)
        self.register_buffer("j14", j14, persistent=False)
        parents = getattr(body_model, "parents", None)
        self.parents = parents.tolist() if parents is not None and net.kind in ("body", "expose") else SMPLX_PARENTS
        for side in ("left", "right"):
            self.register_buffer(f"{side}_hand_idx", torch.as_tensor(attention.hand_keypoint_indices(side)), persistent=False)
        self.register_buffer("head_idx", torch.as_tensor(attention.head_keypoint_indices()), persistent=False)
        self.register_buffer("mano_tips", MANO_TIP_VERTICES.clone(), persistent=False)
        # The attention step needs the body's keypoints, not its mesh: skin only their vertices.
        sparse_ok = net.kind == "expose" and hasattr(body_model, "lmk_faces_idx")
        self.keypoint_model = SMPLXKeypoints(body_model) if sparse_ok else None

    @property
    def kind(self) -> str:
        return self.net.kind

    @property
    def device(self) -> torch.device:
        """The device of the networks' weights (derived: it follows ``.to()``)."""
        return module_device(self.net)

    def train(self, mode: bool = True) -> ExPoseModel:
        """Networks per :meth:`ExPoseNet.train`; the body models stay in eval mode."""
        self.training = mode
        self.net.train(mode)
        return self

    def _plain_features(self, name: str, img: torch.Tensor) -> torch.Tensor:
        return getattr(self.net, name)(img)

    def forward(self, batch: ModelInput, features: FeatureFn | None = None) -> Prediction:
        """Predict for ``batch``; ``features`` replaces the backbone calls (the Predictor's fused copies)."""
        features = features or self._plain_features
        out = self.net.head(features("backbone", batch.img))
        kind = self.kind
        if kind in ("body", "expose"):
            pred = self._body(batch, out, features)
        elif kind == "hand":
            pred = self._hand(out)
        else:
            pred = self._face(out)
        res = batch.img.shape[-1]
        pred.keypoints2d_crop = ndc_to_crop_pixels(weak_perspective_project(pred.joints, out.camera), res)
        pred.keypoints2d = image_from_crop(pred.keypoints2d_crop, batch.crop_transform)
        return pred

    # -- body-model passes -----------------------------------------------------------------------
    def smplx(self, rotations: dict, betas: torch.Tensor, expression: torch.Tensor, keypoints_only: bool = False):
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

    def _body(self, batch: ModelInput, out: HeadOutput, features: FeatureFn) -> Prediction:
        rotations, expression = dict(out.rotations), out.expression
        training = {"body_stages": out.stages} if self.net.training else {}
        hand_boxes, face_box = {}, {}
        if self.kind == "expose":
            rotations, expression, hand_boxes, face_box, extra = self._attend(batch, out, features)
            training.update(extra if self.net.training else {})
        body = self.smplx(rotations, out.betas, expression)
        j14 = torch.einsum("jv,bvc->bjc", self.j14, body.vertices) if self.j14 is not None else None
        return Prediction(self.kind, rotations, out.betas, expression, out.camera, body.vertices, body.joints, j14,
                          hand_boxes=hand_boxes, face_box=face_box, training=training)

    def _hand(self, out: HeadOutput) -> Prediction:
        rotations = dict(out.rotations)
        body = self.body_model(global_orient=rotations["global_orient"], hand_pose=rotations["right_hand_pose"],
                               betas=out.betas)
        joints = torch.cat([body.joints[:, :16], body.vertices[:, self.mano_tips]], dim=1)  # MANO-21 ('mano')
        training = {"hand_stages": out.stages} if self.net.training else {}
        return Prediction("hand", rotations, out.betas, None, out.camera, body.vertices, joints, training=training)

    def _face(self, out: HeadOutput) -> Prediction:
        rotations = dict(out.rotations)
        eye = torch.eye(3, dtype=out.betas.dtype, device=out.betas.device).expand(out.betas.shape[0], 1, 3, 3)
        body = self.body_model(global_orient=rotations["global_orient"], neck_pose=eye, jaw_pose=rotations["jaw_pose"],
                               leye_pose=eye, reye_pose=eye, betas=out.betas, expression=out.expression)
        training = {"face_stages": out.stages} if self.net.training else {}
        return Prediction("face", rotations, out.betas, out.expression, out.camera, body.vertices, body.joints,
                          training=training)

    def _hand_crops(self, batch: ModelInput, kp_crop: torch.Tensor) -> tuple[dict, torch.Tensor]:
        """Boxes (original px) and crops ``[2B, 3, 224, 224]`` = [right; left mirrored] of the hands."""
        att, res = self.net.cfg.attention, batch.img.shape[-1]
        boxes, crops = {}, []
        for side in ("right", "left"):
            idx = getattr(self, f"{side}_hand_idx")
            center, size = attention.part_box_in_image(kp_crop[:, idx], batch.crop_transform, batch.box_size,
                                                       att.hand_scale_factor, res)
            boxes[side] = {"center": center, "size": size}
            crop = attention.sample_crop(batch.full_images, center, size, att.hand_crop_size)
            crops.append(crop if side == "right" else torch.flip(crop, dims=(-1,)))
        return boxes, torch.cat(crops, dim=0)

    def _attend(self, batch: ModelInput, body: HeadOutput, features: FeatureFn):
        """Hand and face crops from the body's keypoints, the part networks, and the merge."""
        if batch.full_images is None:
            raise ValueError("the full model needs the full-resolution images (ModelInput.full_images)")
        net, att, res = self.net, self.net.cfg.attention, batch.img.shape[-1]
        rot = body.rotations
        keypoints = self.smplx(rot, body.betas, body.expression, keypoints_only=True)
        boxes, hand_crops = self._hand_crops(batch, ndc_to_crop_pixels(weak_perspective_project(keypoints, body.camera), res))
        hand_cond = attention.hand_condition(net.hand_head, rot["global_orient"], rot["body_pose"], rot["left_hand_pose"],
                                             body.raw["right_hand_pose"], self.parents,
                                             att.condition_hand_wrist_pose, att.condition_hand_finger_pose)
        hands = net.hand_head(features("hand_backbone", hand_crops), hand_cond)
        merged = attention.merge_hands(rot["global_orient"], rot["body_pose"], hands.rotations, self.parents)
        # As MMHuman3D: the face is located after the hand merge. The face keypoints barely move with the
        # hands (only through pose blend shapes), but exactly equal crops need the merged parameters.
        face_kp = self.smplx({**rot, **merged}, body.betas, body.expression, keypoints_only=True)
        face_kp = ndc_to_crop_pixels(weak_perspective_project(face_kp[:, self.head_idx], body.camera), res)
        center, size = attention.part_box_in_image(face_kp, batch.crop_transform, batch.box_size,
                                                   att.face_scale_factor, res)
        face_box = {"center": center, "size": size}
        face_crops = attention.sample_crop(batch.full_images, center, size, att.face_crop_size)
        face_cond = attention.face_condition(net.face_head, body.raw["jaw_pose"], body.expression,
                                             att.condition_face_jaw_pose, att.condition_face_expression)
        face = net.face_head(features("face_backbone", face_crops), face_cond)
        rotations = {**rot, **merged, "jaw_pose": face.rotations["jaw_pose"]}
        expression = face.expression[:, : body.expression.shape[1]]
        extra = {"hands": hands, "face": face, "body": body, "hand_crops": hand_crops, "face_crops": face_crops}
        return rotations, expression, boxes, face_box, extra
