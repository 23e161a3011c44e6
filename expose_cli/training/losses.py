"""ExPose's training losses as pure functions (MMHuman3D v0.11.0's formulas, training-reference §3).

Every term selects the samples whose ``has`` flag is 1 (B' of them) and returns a scalar; with
B' = 0 it returns a zero that is still connected to the prediction (so DDP sees every parameter
take part). ``c`` is the ground-truth confidence. Units: 2D keypoints in crop pixels
(``0 .. R-1``), 3D keypoints in metres, rotations as matrices ``[..., 3, 3]`` (axis-angle ground
truth is converted here), angles in radians.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from expose_cli.geometry.rotations import axis_angle_to_matrix

#: The clamp of the cosine in the rotation distance (keeps arccos' gradient finite).
COS_EPS = 1e-7


def _select(has: torch.Tensor) -> torch.Tensor:
    return has.reshape(-1) > 0.5


def _zero(like: torch.Tensor) -> torch.Tensor:
    """A zero that keeps ``like`` in the graph."""
    return like.sum() * 0.0


def keypoints2d_loss(pred_ndc: torch.Tensor, gt_px: torch.Tensor, has: torch.Tensor, img_res: int) -> torch.Tensor:
    """Confidence-weighted L1 of 2D keypoints in normalised crop coordinates, summed, over B'.

    ``pred_ndc`` [B, K, 2]: weak-perspective projections ``s (X_xy + t)`` in [-1, 1];
    ``gt_px`` [B, K, 3]: x, y in crop pixels and confidence; the ground truth is normalised as
    ``2 x / (R - 1) - 1``. No division by the number of visible joints (the seed's normalisation).
    """
    keep = _select(has)
    if not bool(keep.any()):
        return _zero(pred_ndc)
    gt = gt_px[keep]
    target = 2.0 * gt[..., :2] / (img_res - 1) - 1.0
    return (gt[..., 2:3] * (pred_ndc[keep] - target).abs()).sum() / gt.shape[0]


def keypoints3d_loss(pred: torch.Tensor, gt: torch.Tensor, has: torch.Tensor,
                     root: Sequence[int] = (1, 2)) -> torch.Tensor:
    """Confidence-weighted L1 of 3D keypoints (metres), both sets centred on the mean of ``root``
    (SMPL-X joints 1 and 2: the hips), summed, over B'. ``gt`` [B, K, 4]: x, y, z, confidence."""
    keep = _select(has)
    if not bool(keep.any()):
        return _zero(pred)
    p, g = pred[keep], gt[keep]
    idx = list(root)
    p = p - p[:, idx].mean(dim=1, keepdim=True)
    xyz = g[..., :3] - g[:, idx, :3].mean(dim=1, keepdim=True)
    return (g[..., 3:4] * (p - xyz).abs()).sum() / g.shape[0]


def rotation_angle(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Geodesic angle (radians) between rotation matrices: ``arccos((tr(R̂ᵀR) - 1) / 2)`` with the
    cosine clamped to ``±(1 - 1e-7)``."""
    trace = (pred * gt).sum(dim=(-2, -1))  # tr(AᵀB) = sum of the elementwise product
    cos = ((trace - 1.0) * 0.5).clamp(-1.0 + COS_EPS, 1.0 - COS_EPS)
    return torch.acos(cos)


def as_matrix(rotation: torch.Tensor) -> torch.Tensor:
    """Axis-angle ``[..., 3]`` (radians) -> matrices; matrices pass through."""
    if rotation.shape[-2:] == (3, 3):
        return rotation
    return axis_angle_to_matrix(rotation)


def rotation_distance(pred: torch.Tensor, gt: torch.Tensor, has: torch.Tensor,
                      weight: torch.Tensor | None = None) -> torch.Tensor:
    """MMHuman3D's RotationDistance of one part, ``pred`` [B, J, 3, 3], ``gt`` [B, J, 3] or matrices.

    Unweighted: ``Σ θ / B'`` (a sum over the part's J joints, a mean over samples). With a
    per-sample ``weight`` [B] (the jaw's / a hand's mean keypoint confidence), repeated over the J
    joints: ``Σ w θ / (#{w > 0} + 1e-7)``, counted over samples x joints (a per-joint mean).
    """
    keep = _select(has)
    if not bool(keep.any()):
        return _zero(pred)
    theta = rotation_angle(pred[keep], as_matrix(gt[keep]).to(pred.dtype))  # [B', J]
    if weight is None:
        return theta.sum() / theta.shape[0]
    w = weight.reshape(-1)[keep].to(theta.dtype)[:, None].expand_as(theta)
    return (w * theta).sum() / ((w > 0).sum() + 1e-7)


def part_confidence(keypoints2d: torch.Tensor, indices: Sequence[int] | torch.Tensor) -> torch.Tensor:
    """Mean ground-truth confidence ``[B]`` of the keypoints ``indices`` (the jaw/expression and hand
    pose weights)."""
    idx = torch.as_tensor(indices, device=keypoints2d.device, dtype=torch.long)
    return keypoints2d[:, idx, 2].mean(dim=1)


def betas_loss(pred: torch.Tensor, gt: torch.Tensor, has: torch.Tensor, scale: float = 0.001) -> torch.Tensor:
    """``scale · Σ (β̂ - β)² / B'`` (the seed's weight 0.001 is part of the term)."""
    keep = _select(has)
    if not bool(keep.any()):
        return _zero(pred)
    n = min(pred.shape[1], gt.shape[1])
    return scale * ((pred[keep, :n] - gt[keep, :n]) ** 2).sum() / int(keep.sum())


def expression_loss(pred: torch.Tensor, gt: torch.Tensor, has: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``Σ_b w_b Σ_k (ê - e)² / B'`` with ``w_b`` the mean confidence of the head keypoints."""
    keep = _select(has)
    if not bool(keep.any()):
        return _zero(pred)
    n = min(pred.shape[1], gt.shape[1])
    sq = ((pred[keep, :n] - gt[keep, :n]) ** 2).sum(dim=1)
    return (weight.reshape(-1)[keep].to(sq.dtype) * sq).sum() / int(keep.sum())


def shape_threshold_prior(betas: torch.Tensor, margin: float = 3.0) -> torch.Tensor:
    """``Σ_M β̂² / (|M| + 1e-7)`` over the entries with ``|β̂| > margin`` (no ``has`` mask)."""
    outside = (betas.abs() > margin).to(betas.dtype)
    return (outside * betas**2).sum() / (outside.sum() + 1e-7)


def crop_unit_coordinates(points_px: torch.Tensor, crop_transform: torch.Tensor, box_center: torch.Tensor,
                          box_size: torch.Tensor) -> torch.Tensor:
    """Body-crop pixels ``[B, N, 2]`` -> original-image pixels (inverse ``crop_transform``) -> the
    part crop's unit coordinates ``(x - x0) / size`` with ``x0 = centre - size / 2`` (all px)."""
    batch = crop_transform.shape[0]
    bottom = torch.tensor([0.0, 0.0, 1.0], dtype=crop_transform.dtype, device=crop_transform.device)
    inv = torch.inverse(torch.cat([crop_transform, bottom.expand(batch, 1, 3)], dim=1))
    image = points_px @ inv[:, :2, :2].transpose(1, 2).to(points_px.dtype) + inv[:, None, :2, 2].to(points_px.dtype)
    size = box_size.reshape(batch, 1, 1)
    corner = box_center[:, None, :] - 0.5 * size
    return (image - corner) / size


def crop_keypoints_loss(pred_px: torch.Tensor, gt_px: torch.Tensor, has: torch.Tensor, crop_transform: torch.Tensor,
                        box_center: torch.Tensor, box_size: torch.Tensor,
                        indices: Sequence[int] | torch.Tensor) -> torch.Tensor:
    """The full model's hand/face crop loss for one crop: the part's predicted and ground-truth 2D
    keypoints (body-crop px) in the part crop's unit coordinates, confidence-weighted L1, summed,
    over B'. Samples, crop transforms and boxes are selected together (MMHuman3D selected only the
    keypoints, a latent crash)."""
    keep = _select(has)
    if not bool(keep.any()):
        return _zero(pred_px)
    idx = torch.as_tensor(indices, device=pred_px.device, dtype=torch.long)
    args = (crop_transform[keep], box_center[keep], box_size.reshape(-1)[keep])
    gt = gt_px[keep][:, idx]
    pred_u = crop_unit_coordinates(pred_px[keep][:, idx], *args)
    gt_u = crop_unit_coordinates(gt[..., :2], *args)
    return (gt[..., 2:3] * (pred_u - gt_u).abs()).sum() / gt.shape[0]
