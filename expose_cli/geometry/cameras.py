"""Camera models: ExPose's weak-perspective camera, and its full-perspective equivalent.

:func:`crop_camera_to_full_translation` turns a crop's camera into a translation in the original
image's pinhole camera; :func:`full_translation_to_crop_camera` is its inverse.

The network predicts ``[s, tx, ty]``: a 3D point X (metres) projects to normalised crop
coordinates ``s * (X[:2] + t)`` in [-1, 1]; :func:`ndc_to_crop_pixels` maps those to crop pixels.
"""

from __future__ import annotations

import numpy as np
import torch


def weak_perspective_project(points: torch.Tensor, camera: torch.Tensor) -> torch.Tensor:
    """``[B, N, 3]`` points, ``[B, 3]`` cameras ``[s, tx, ty]`` -> ``[B, N, 2]`` normalised coords."""
    scale = camera[..., :1].unsqueeze(-2)
    trans = camera[..., 1:3].unsqueeze(-2)
    return scale * (points[..., :2] + trans)


def ndc_to_crop_pixels(xy, res: int):
    """Normalised crop coordinates [-1, 1] -> crop pixels ``(xy * 0.5 + 0.5) * (res - 1)``."""
    return (xy * 0.5 + 0.5) * (res - 1)


def crop_pixels_to_ndc(xy, res: int):
    """Inverse of :func:`ndc_to_crop_pixels`."""
    return xy / (res - 1) * 2.0 - 1.0


def weak_perspective_to_translation(camera, focal_length: float, crop_res: int) -> torch.Tensor:
    """Camera translation (m) in the crop's own pinhole camera that reproduces the weak perspective.

    With focal length ``f`` (px) and crop size ``res`` (px): ``tz = 2 f / (res * s)``, ``(tx, ty)``
    unchanged, so that ``f * (X + t)[:2] / tz + res / 2`` matches :func:`ndc_to_crop_pixels` for a
    shallow object (up to the ``res - 1`` vs ``res`` pixel convention).
    """
    cam = torch.as_tensor(camera)
    s, tx, ty = cam[..., 0], cam[..., 1], cam[..., 2]
    tz = 2.0 * focal_length / (crop_res * s.clamp(min=1e-9))
    return torch.stack([tx, ty, tz], dim=-1)


def crop_camera_to_full_translation(
    camera, center, scale, image_size, focal_length: float
) -> torch.Tensor:
    """Translation (m) placing the mesh in the camera of the ORIGINAL image (SPIN/CLIFF formula).

    ``camera`` [B, 3] = ``[s, tx, ty]``; ``center`` [B, 2] and ``scale`` [B] or [B, 2] (box side, px)
    of the crop; ``image_size`` [B, 2] as ``(height, width)`` px; ``focal_length`` px, principal point
    at the image centre. ``tz = 2 f / (s * b)``, ``tx' = tx + 2 (cx - W/2) / (s b)``,
    ``ty' = ty + 2 (cy - H/2) / (s b)`` with ``b`` the box side.
    """
    cam = torch.as_tensor(camera, dtype=torch.float64)
    center = torch.as_tensor(np.asarray(center), dtype=cam.dtype)
    scale = torch.as_tensor(np.asarray(scale), dtype=cam.dtype)
    if scale.ndim == cam.ndim:  # [B, 2] -> box width
        scale = scale[..., 0]
    size = torch.as_tensor(np.asarray(image_size), dtype=cam.dtype)
    h, w = size[..., 0], size[..., 1]
    s = cam[..., 0].clamp(min=1e-9)
    bs = scale * s
    tz = 2.0 * focal_length / bs
    tx = cam[..., 1] + 2.0 * (center[..., 0] - 0.5 * w) / bs
    ty = cam[..., 2] + 2.0 * (center[..., 1] - 0.5 * h) / bs
    return torch.stack([tx, ty, tz], dim=-1)


def full_translation_to_crop_camera(
    translation, center, scale, image_size, focal_length: float
) -> torch.Tensor:
    """Inverse of :func:`crop_camera_to_full_translation`: a translation (m) in the camera of the
    ORIGINAL image -> the crop's weak-perspective camera ``[s, tx, ty]``.

    Same arguments as the forward function; with ``b`` the box side: ``s = 2 f / (tz b)``,
    ``tx = tx' - 2 (cx - W/2) / (s b)``, ``ty = ty' - 2 (cy - H/2) / (s b)``. ``tz`` must be > 0
    (in front of the camera).
    """
    trans = torch.as_tensor(translation, dtype=torch.float64)
    center = torch.as_tensor(np.asarray(center), dtype=trans.dtype)
    scale = torch.as_tensor(np.asarray(scale), dtype=trans.dtype)
    if scale.ndim == trans.ndim:  # [B, 2] -> box width
        scale = scale[..., 0]
    size = torch.as_tensor(np.asarray(image_size), dtype=trans.dtype)
    h, w = size[..., 0], size[..., 1]
    bs = 2.0 * focal_length / trans[..., 2].clamp(min=1e-9)  # = box side * s
    s = bs / scale
    tx = trans[..., 0] - 2.0 * (center[..., 0] - 0.5 * w) / bs
    ty = trans[..., 1] - 2.0 * (center[..., 1] - 0.5 * h) / bs
    return torch.stack([s, tx, ty], dim=-1)


def perspective_project(points: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """``[B, N, 3]`` camera-frame points (m) and ``[B, 3, 3]`` intrinsics -> ``[B, N, 2]`` pixels."""
    proj = points @ K.transpose(-1, -2)
    return proj[..., :2] / proj[..., 2:3]
