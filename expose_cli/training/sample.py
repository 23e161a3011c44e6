"""One training sample: a record (annotations in original-image pixels) + its image -> the contract dict.

The seed's transforms (:mod:`.augment`) run in the seed's order. Geometry is composed into affines
so that the image is warped ONCE, from the image as stored (the full raw image, or the embedded crop
with its ``image_crop_affine``), straight into the ``img_res`` crop; the full model's ``ori_img``
is the full image after flip and rotation, and ``crop_transform`` maps that image's pixels to crop
pixels (as the seed's ``MeshAffine`` after ``Rotation``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from expose_cli.body_models.keypoints import flip_keypoints
from expose_cli.training import augment as A
from expose_cli.training.data_config import AugmentConfig


@dataclass
class Record:
    """Annotations of one row in the model kind's convention, original-image pixels / camera metres.

    ``params``: sample key -> axis-angle or coefficient array; ``has``: sample key -> 0/1.
    """

    center: np.ndarray  # [2] px
    scale: np.ndarray  # [2] px (box side)
    image_size: tuple[int, int]  # (height, width) of the original image
    keypoints2d: np.ndarray  # [K, 3] px, confidence
    keypoints3d: np.ndarray  # [K, 4] m, confidence
    params: dict[str, np.ndarray]
    has: dict[str, float]
    convention: str = "smplx"
    extra: dict = field(default_factory=dict)


@dataclass
class SourceImage:
    """The pixels we have: ``image`` (RGB uint8) and the affine from original px to its px."""

    image: np.ndarray
    to_source: np.ndarray  # 2x3, original px -> image px (identity for a raw image)


def _identity() -> np.ndarray:
    return np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def augment_geometry(rec: Record, aug: AugmentConfig, img_res: int, rng: np.random.Generator,
                     train: bool = True) -> tuple[Record, np.ndarray, np.ndarray, tuple[int, int], dict]:
    """Steps 1-5: jitter, flip, scale/rotation, (full-model) rotation, crop affine.

    Returns the updated record (keypoints in crop px, 3D and orientation rotated), ``T`` (augmented
    full image px -> crop px), ``G`` (original px -> augmented full image px), the augmented full
    image's ``(height, width)`` and the draws made (for tests and logs).
    """
    height, width = rec.image_size
    center, scale = rec.center, rec.scale
    kp2d, kp3d, params, has = rec.keypoints2d, rec.keypoints3d, dict(rec.params), dict(rec.has)
    g, full = _identity(), (height, width)
    if train:
        center = A.jitter_center(center, scale, aug.jitter_factor, aug.jitter_dist, (height, width), rng)
    flip = train and rng.random() < aug.flip_prob
    if flip:
        center = A.flip_center(center, width)
        kp2d = flip_keypoints(kp2d, rec.convention, width)
        kp3d = flip_keypoints(kp3d, rec.convention)
        flipped = A.flip_params({**params, **{f"has_{k}": np.float32(v) for k, v in has.items()}})
        has = {k: float(flipped.pop(f"has_{k}")) for k in has}
        params = flipped
        g = A.flip_affine(width)
    scale, rot = A.random_scale_rotation(scale, aug.scale_factor, aug.rot_factor, aug.rot_prob, rng) if train \
        else (np.asarray(scale, np.float64), 0.0)
    if aug.rotate_full_image and rot != 0.0:
        m, full = A.rotation_affine(full, rot)
        center = A.transform_keypoints2d(np.array([[*center, 1.0]]), m)[0, :2]
        kp2d = A.transform_keypoints2d(kp2d, m)
        kp3d = A.rotate_keypoints3d(kp3d, rot)
        params["global_orient"] = A.rotate_global_orient(params["global_orient"], rot)
        g, rot_applied, rot = A.compose_affine(m, g), rot, 0.0
    else:
        rot_applied = rot
    t = A.mesh_affine(center, scale, rot, img_res)
    kp2d = A.transform_keypoints2d(kp2d, t)
    if rot != 0.0:
        kp3d = A.rotate_keypoints3d(kp3d, rot)
        params["global_orient"] = A.rotate_global_orient(params["global_orient"], rot)
    out = Record(np.asarray(center), np.asarray(scale), rec.image_size, kp2d, kp3d, params, has, rec.convention)
    return out, t, g, full, {"flip": bool(flip), "rot": float(rot_applied), "scale": np.asarray(scale)}


def make_sample(rec: Record, src: SourceImage, aug: AugmentConfig, img_res: int, rng: np.random.Generator,
                with_full_image: bool = False, train: bool = True) -> dict[str, torch.Tensor]:
    """The whole pipeline for one record: the contract's sample dict (tensors)."""
    out, t, g, full, _ = augment_geometry(rec, aug, img_res, rng, train)
    from_source = A.invert_affine(src.to_source)
    img = A.warp(src.image, A.compose_affine(t, A.compose_affine(g, from_source)), (img_res, img_res))
    ori = None
    if with_full_image:
        p, full = _full_frame(src, g, full)
        ori = A.warp(src.image, A.compose_affine(p, A.compose_affine(g, from_source)), full)
        t = A.compose_affine(t, A.invert_affine(p))
        out.center = A.transform_keypoints2d(np.array([[*out.center, 1.0]]), p)[0, :2]
    factors = A.channel_noise_factors(aug.noise_factor, rng) if train else np.ones(3)
    img = A.channel_noise(img, factors)
    if train:
        img = A.simulate_low_res(img, A.low_res_factor(aug.low_res_factors, rng))
    sample = _tensors(out, t, A.normalize(img, aug.mean, aug.std))
    if ori is not None:
        sample["ori_img"] = torch.from_numpy(A.normalize(A.channel_noise(ori, factors), aug.mean, aug.std))
        sample["ori_size"] = torch.tensor(full, dtype=torch.int64)
    return sample


def _full_frame(src: SourceImage, g: np.ndarray, full: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int]]:
    """The frame of ``ori_img``: the augmented full image, or for an embedded crop only the part
    the stored pixels cover (a shift ``p`` of the augmented image's px, and its (H, W)), so that the
    full model's ``ori_img`` is not an original-size canvas that is black outside the crop."""
    if np.allclose(src.to_source, np.eye(3)[:2]):
        return np.eye(3)[:2], full
    h, w = src.image.shape[:2]
    corners = np.array([[0, 0, 1], [w - 1, 0, 1], [0, h - 1, 1], [w - 1, h - 1, 1]], np.float64)
    pts = A.transform_keypoints2d(A.transform_keypoints2d(corners, A.invert_affine(src.to_source)), g)[:, :2]
    lo, hi = np.floor(pts.min(0)), np.ceil(pts.max(0))
    return np.array([[1.0, 0.0, -lo[0]], [0.0, 1.0, -lo[1]]]), (int(hi[1] - lo[1]) + 1, int(hi[0] - lo[0]) + 1)


def _tensors(rec: Record, t: np.ndarray, img: np.ndarray) -> dict[str, torch.Tensor]:
    def f32(x) -> torch.Tensor:
        return torch.as_tensor(np.asarray(x, np.float32))

    sample = {"img": torch.from_numpy(img), "keypoints2d": f32(rec.keypoints2d), "keypoints3d": f32(rec.keypoints3d)}
    sample.update({k: f32(v) for k, v in rec.params.items()})
    sample.update({f"has_{k}": f32(v) for k, v in rec.has.items()})
    sample["has_keypoints2d"] = f32(float(np.any(rec.keypoints2d[:, 2] > 0)))
    sample["has_keypoints3d"] = f32(float(np.any(rec.keypoints3d[:, 3] > 0)))
    sample["center"], sample["scale"], sample["crop_transform"] = f32(rec.center), f32(rec.scale), f32(t)
    return sample
