"""Body-driven attention: hand and face crops where the body puts them, conditions, and merging.

All image coordinates are pixels; ``crop_transform`` maps original-image pixels to body-crop
pixels (2x3 affine, as :func:`expose_cli.geometry.crops.crop_affine` builds it).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from expose_cli.body_models.keypoints import get_convention
from expose_cli.geometry.rotations import matrix_to_rot6d

_SMPLX = get_convention("smplx")
_FINGERS = ("index", "middle", "pinky", "ring", "thumb")


def hand_keypoint_indices(side: str) -> np.ndarray:
    """SMPL-X keypoints that frame a hand: 15 finger joints, 5 fingertips, the wrist (21)."""
    names = [f"{side}_{f}{k}" for f in _FINGERS for k in (1, 2, 3)] + [f"{side}_{f}" for f in _FINGERS]
    return np.array(sorted([_SMPLX.index(n) for n in names] + [_SMPLX.index(f"{side}_wrist")]))


def head_keypoint_indices() -> np.ndarray:
    """SMPL-X keypoints that frame the face: head, jaw, eyeballs, nose, eyes, ears, 68 landmarks (77)."""
    names = ["head", "jaw", "left_eye_smplhf", "right_eye_smplhf", "nose", "right_eye", "left_eye", "right_ear", "left_ear"]
    idx = [_SMPLX.index(n) for n in names] + list(range(76, 144))
    return np.array(sorted(idx))


def kinematic_chain(joint: int, parents) -> list[int]:
    """Joint indices from ``joint`` up to the root (inclusive)."""
    chain = []
    parents = [int(p) for p in parents]
    while joint >= 0:
        chain.append(joint)
        joint = parents[joint]
    return chain


def global_rotation(chain: list[int], global_orient: torch.Tensor, body_pose: torch.Tensor) -> torch.Tensor:
    """Absolute rotation ``R_root ... R_chain[0]`` of the joint at ``chain[0]`` ([B, 3, 3])."""
    poses = torch.cat([global_orient, body_pose], dim=1)[:, chain]
    out = poses[:, 0]
    for i in range(1, poses.shape[1]):
        out = poses[:, i] @ out
    return out


def flip_rotmat(rot: torch.Tensor) -> torch.Tensor:
    """Mirror rotations through the plane x = 0: ``F R F`` with ``F = diag(-1, 1, 1)``."""
    flip = torch.tensor([-1.0, 1.0, 1.0], dtype=rot.dtype, device=rot.device)
    return rot * flip[:, None] * flip[None, :]


def points_to_box(points: torch.Tensor, scale_factor: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Centre ``[B, 2]`` and side ``[B]`` of the square box around ``points`` [B, N, 2], enlarged."""
    lo = points.min(dim=1).values
    hi = points.max(dim=1).values
    size = torch.maximum(hi[:, 0] - lo[:, 0], hi[:, 1] - lo[:, 1]) * scale_factor
    return (lo + hi) * 0.5, size


def part_box_in_image(points_crop_px: torch.Tensor, crop_transform: torch.Tensor, body_box_size: torch.Tensor,
                      scale_factor: float, img_res: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A part's box (centre px, side px) in the ORIGINAL image, from its keypoints in the body crop.

    The centre goes through the inverse crop transform; the side scales by ``box side / img_res``.
    """
    batch = points_crop_px.shape[0]
    full = torch.cat([crop_transform, torch.tensor([0.0, 0.0, 1.0], dtype=crop_transform.dtype,
                                                   device=crop_transform.device).expand(batch, 1, 3)], dim=1)
    inv = torch.inverse(full)
    center_crop, size_crop = points_to_box(points_crop_px, scale_factor)
    center = torch.einsum("bij,bj->bi", inv[:, :2, :2], center_crop) + inv[:, :2, 2]
    return center, size_crop / img_res * body_box_size


def sample_crop(images: torch.Tensor, center: torch.Tensor, size: torch.Tensor, crop_size: int) -> torch.Tensor:
    """Square crops ``[B, C, crop, crop]`` of side ``size`` px centred at ``center`` (bilinear,
    ``align_corners=True``, zeros outside). Crop pixel ``k`` sits at ``c - s/2 + s k / (crop - 1)``."""
    _, _, H, W = images.shape
    t = torch.arange(crop_size, dtype=images.dtype, device=images.device) / (crop_size - 1)
    # Grid coordinate = a * t + b with a = k * size, b = k * (corner) - 1, k = 2 / (side - 1):
    # the same products and sums, in the same order, as MMHuman3D's CropSampler, so float rounding
    # agrees too.
    kx = torch.tensor(2.0 / (W - 1), dtype=images.dtype, device=images.device)
    ky = torch.tensor(2.0 / (H - 1), dtype=images.dtype, device=images.device)
    x0 = center[:, 0] - size * 0.5
    y0 = center[:, 1] - size * 0.5
    gx = (kx * size)[:, None] * t[None] + (kx * x0 - 1.0)[:, None]  # [B, crop]
    gy = (ky * size)[:, None] * t[None] + (ky * y0 - 1.0)[:, None]
    grid = torch.stack([gx[:, None, :].expand(-1, crop_size, -1), gy[:, :, None].expand(-1, -1, crop_size)], dim=-1)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def hand_condition(hand_head, global_orient, body_pose, left_hand_pose, raw_right_hand_pose, parents,
                   wrist_pose: bool = True, finger_pose: bool = True) -> torch.Tensor:
    """Starting vectors ``[2B, 109]`` of the hand regressor: [right hands; left hands mirrored].

    Wrist: the absolute wrist rotation through the kinematic chain (left one mirrored), as 6D.
    Fingers: the body's right-hand 6D as regressed, the left hand's rotations mirrored.
    Shape and camera: the hand head's means.
    """
    batch = global_orient.shape[0]
    if wrist_pose:
        right_wrist = matrix_to_rot6d(global_rotation(kinematic_chain(21, parents), global_orient, body_pose))
        left_wrist = matrix_to_rot6d(flip_rotmat(global_rotation(kinematic_chain(20, parents), global_orient, body_pose)))
    else:
        right_wrist = left_wrist = hand_head.get_mean("global_orient", batch)
    if finger_pose:
        right_fingers = raw_right_hand_pose.reshape(batch, -1)
        left_fingers = matrix_to_rot6d(flip_rotmat(left_hand_pose)).reshape(batch, -1)
    else:
        right_fingers = left_fingers = hand_head.get_mean("right_hand_pose", batch)
    shape = hand_head.get_mean("shape", batch)
    camera = hand_head.get_mean("camera", batch)
    right = torch.cat([right_wrist, right_fingers, shape, camera], dim=1)
    left = torch.cat([left_wrist, left_fingers, shape, camera], dim=1)
    return torch.cat([right, left], dim=0)


def merge_hands(global_orient, body_pose, hand_rotations: dict, parents) -> dict:
    """Body params with the hand network's fingers and wrists (hand batch = [right; left mirrored]).

    Each wrist's local rotation is ``parent_globalᵀ · hand_global_orient`` (left side mirrored back)
    and replaces ``body_pose`` joint 20 (right wrist) / 19 (left wrist).
    """
    batch = global_orient.shape[0]
    right_parent = global_rotation(kinematic_chain(21, parents)[1:], global_orient, body_pose)
    left_parent = flip_rotmat(global_rotation(kinematic_chain(20, parents)[1:], global_orient, body_pose))
    parents_rot = torch.cat([right_parent, left_parent], dim=0)
    wrists = parents_rot.transpose(1, 2) @ hand_rotations["global_orient"].reshape(-1, 3, 3)
    fingers = hand_rotations["right_hand_pose"]
    body_pose = body_pose.clone()
    body_pose[:, 20] = wrists[:batch]
    body_pose[:, 19] = flip_rotmat(wrists[batch:])
    return {"body_pose": body_pose, "right_hand_pose": fingers[:batch], "left_hand_pose": flip_rotmat(fingers[batch:])}


def face_condition(face_head, raw_jaw_pose, expression, jaw: bool = True, use_expression: bool = True) -> torch.Tensor:
    """Starting vectors ``[B, 165]`` of the face regressor: the face head's mean head orientation,
    the body's jaw 6D, mean betas, the body's expression padded to 50, mean camera."""
    batch = raw_jaw_pose.shape[0]
    head = face_head.get_mean("global_orient", batch)
    jaw_c = raw_jaw_pose.reshape(batch, -1) if jaw else face_head.get_mean("jaw_pose", batch)
    betas = face_head.get_mean("shape", batch)
    n_expr = face_head.expression_idxs.numel()
    expr = F.pad(expression, (0, n_expr - expression.shape[1])) if use_expression else face_head.get_mean("expression", batch)
    return torch.cat([head, jaw_c, betas, expr, face_head.get_mean("camera", batch)], dim=1)
