"""Person boxes, square crops and their inverses (pixels of the original image).

Conventions follow MMHuman3D's top-down pipeline: a box ``[x, y, w, h]`` becomes a centre and a
scale ``[w', h']`` in pixels (aspect ratio fixed, then enlarged by ``scale_factor``); the crop
affine maps the centre to the middle of the output and ``scale[0]`` pixels to the output width.
"""

from __future__ import annotations

import cv2
import numpy as np


def bbox_xywh_to_center_scale(
    bbox, aspect_ratio: float = 1.0, scale_factor: float = 1.25
) -> tuple[np.ndarray, np.ndarray]:
    """``[..., 4]`` boxes ``(x, y, w, h)`` (px) -> centres ``[..., 2]`` and scales ``[..., 2]`` (px).

    The shorter side is grown to reach ``aspect_ratio = w / h``, then both are multiplied by
    ``scale_factor`` (1.25 for ExPose's body crop).
    """
    box = np.asarray(bbox, dtype=np.float64)[..., :4]
    x, y, w, h = (box[..., i] for i in range(4))
    center = np.stack([x + 0.5 * w, y + 0.5 * h], axis=-1)
    w_adj = np.where(w > aspect_ratio * h, w, h * aspect_ratio)
    h_adj = np.where(w > aspect_ratio * h, w / aspect_ratio, h)
    scale = np.stack([w_adj, h_adj], axis=-1) * scale_factor
    return center.astype(np.float32), scale.astype(np.float32)


def center_scale_to_bbox_xywh(center, scale) -> np.ndarray:
    """Inverse of the box part of :func:`bbox_xywh_to_center_scale` (with factor already applied)."""
    center = np.asarray(center, dtype=np.float64)
    scale = np.asarray(scale, dtype=np.float64)
    return np.concatenate([center - 0.5 * scale, scale], axis=-1).astype(np.float32)


def crop_affine(
    center, scale, out_size, rot: float = 0.0, inverse: bool = False
) -> np.ndarray:
    """The 2x3 affine from original-image pixels to crop pixels (or back with ``inverse=True``).

    ``center`` (2,) and ``scale`` (2,) in px; ``out_size`` an int or ``(width, height)``; ``rot`` in
    degrees (counter-clockwise, as in MMHuman3D/mmpose). ``scale[0]`` px of the image span the
    output width; the centre lands at ``(out_w / 2, out_h / 2)``.
    """
    if np.isscalar(out_size):
        out_w = out_h = float(out_size)
    else:
        out_w, out_h = (float(v) for v in out_size)
    center = np.asarray(center, dtype=np.float64)
    src_w = float(np.asarray(scale, dtype=np.float64).reshape(-1)[0])
    theta = np.deg2rad(rot)
    sn, cs = np.sin(theta), np.cos(theta)

    def rotate(p: np.ndarray) -> np.ndarray:
        return np.array([p[0] * cs - p[1] * sn, p[0] * sn + p[1] * cs])

    src_dir = rotate(np.array([0.0, -0.5 * src_w]))
    dst_dir = np.array([0.0, -0.5 * out_w])
    src = np.stack([center, center + src_dir, np.zeros(2)])
    dst = np.stack([np.array([0.5 * out_w, 0.5 * out_h]), np.array([0.5 * out_w, 0.5 * out_h]) + dst_dir, np.zeros(2)])
    # Third point: perpendicular to the first direction (mmpose's construction).
    src[2] = src[1] + np.array([-(src[0] - src[1])[1], (src[0] - src[1])[0]])
    dst[2] = dst[1] + np.array([-(dst[0] - dst[1])[1], (dst[0] - dst[1])[0]])
    if inverse:
        return cv2.getAffineTransform(dst.astype(np.float32), src.astype(np.float32)).astype(np.float64)
    return cv2.getAffineTransform(src.astype(np.float32), dst.astype(np.float32)).astype(np.float64)


def transform_points(points, affine) -> np.ndarray:
    """Apply ``[..., 2, 3]`` affines to ``[..., N, 2]`` points (px)."""
    pts = np.asarray(points, dtype=np.float64)
    a = np.asarray(affine, dtype=np.float64)
    return pts @ np.swapaxes(a[..., :, :2], -1, -2) + a[..., None, :, 2]


def crop_image(
    image: np.ndarray, center, scale, out_size: int, rot: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Warp a square ``out_size`` crop around ``center`` (bilinear, black border).

    Returns the crop and the 2x3 affine (image px -> crop px) used.
    """
    affine = crop_affine(center, scale, out_size, rot)
    crop = cv2.warpAffine(
        image,
        affine,
        (int(out_size), int(out_size)),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    return crop, affine


def uncrop_image(
    crop: np.ndarray,
    center,
    scale,
    image_size,
    rot: float = 0.0,
    background: np.ndarray | None = None,
    interpolation: int = cv2.INTER_LINEAR,
) -> tuple[np.ndarray, np.ndarray]:
    """Warp a square crop of :func:`crop_image` back into the original image frame (its inverse).

    ``crop`` [S, S] or [S, S, C]; ``center``, ``scale``, ``rot`` as given to :func:`crop_image`;
    ``image_size`` = ``(height, width)`` of the original image. Returns the image-sized warp and a
    boolean ``[H, W]`` mask of the pixels the crop covers. With ``background`` (an image of that
    size) the crop is pasted onto a copy of it; otherwise the rest is 0.
    """
    crop = np.asarray(crop)
    out_size = crop.shape[1], crop.shape[0]
    height, width = (int(v) for v in image_size)
    inverse = crop_affine(center, scale, out_size, rot, inverse=True)
    warped = cv2.warpAffine(crop, inverse, (width, height), flags=interpolation,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    # Coverage: warp a mask of ones with the same sampling; pixels that read the border are partial.
    ones = np.ones(crop.shape[:2], dtype=np.float32)
    cover = cv2.warpAffine(ones, inverse, (width, height), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    mask = cover > 0.999
    if background is None:
        return warped, mask
    out = np.array(background, copy=True)
    if out.shape[:2] != (height, width):
        raise ValueError(f"background has shape {out.shape[:2]}, expected {(height, width)}")
    out[mask] = warped[mask]
    return out, mask
