"""The seed's training augmentations as pure functions (MMHuman3D v0.11.0 ``pipelines/transforms.py``).

Order (training-reference §2): :func:`jitter_center` -> :func:`flip_*` -> :func:`random_scale_rotation`
-> (full model) :func:`rotation_affine` -> :func:`mesh_affine` -> :func:`channel_noise` ->
:func:`simulate_low_res` -> :func:`normalize`. Every function takes its random draws from an
explicit ``numpy.random.Generator`` and returns new arrays (inputs are never modified).

Units: image pixels (x right, y down, origin at the top-left pixel's centre), metres for 3D
keypoints (camera frame: x right, y down, z forward), radians for axis-angle poses, degrees for the
crop rotation ``rot`` (counter-clockwise on screen, as ``cv2.getRotationMatrix2D``).

Where MMHuman3D has a bug we do what its authors meant (docs/train.md lists them): the flip swaps
the hands' ``has_*`` flags with the hands; ``Rotation`` maps 2D keypoints exactly (no +1 px, no
integer truncation); ``SimulateLowRes`` uses the interpolations it names (nearest down, exact
bilinear up).
"""

from __future__ import annotations

from functools import cache

import cv2
import numpy as np
from smplx.joint_names import JOINT_NAMES

from expose_cli.body_models.keypoints import get_convention
from expose_cli.geometry.crops import crop_affine

#: Axis-angle mirror through the plane x = 0: R -> F R F with F = diag(-1, 1, 1).
AXIS_ANGLE_MIRROR = np.array([1.0, -1.0, -1.0])


@cache
def body_pose_flip_permutation() -> np.ndarray:
    """For SMPL-X ``body_pose`` (joints 1..21): the index of each joint's left/right partner, by name."""
    names = list(JOINT_NAMES[1:22])
    conv = get_convention("smplx")
    partner = [conv.names[i] for i in conv.flip_permutation[1:22]]
    return np.array([names.index(p) for p in partner], dtype=np.int64)


# --- 1. BBoxCenterJitter ---------------------------------------------------------------------

def jitter_center(center: np.ndarray, scale: np.ndarray, factor: float, dist: str,
                  image_size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Move the box centre by U(-j, j) (``dist="uniform"``) or j N(0, 1) (``"normal"``) per axis,
    with ``j = factor * scale[0]`` px, then clip it to ``[0, W] x [0, H]`` (``image_size = (H, W)``).
    A no-op (no random draw) for ``factor <= 1e-3``."""
    center = np.asarray(center, np.float64).copy()
    if factor <= 1e-3:
        return center
    j = factor * float(np.asarray(scale).reshape(-1)[0])
    if dist == "uniform":
        center += rng.uniform(-j, j, 2)
    elif dist == "normal":
        center += j * rng.standard_normal(2)
    else:
        raise ValueError(f"unknown jitter distribution {dist!r} (uniform, normal)")
    height, width = image_size
    return np.clip(center, [0.0, 0.0], [float(width), float(height)])


# --- 2. RandomHorizontalFlip ------------------------------------------------------------------

def flip_center(center: np.ndarray, width: int) -> np.ndarray:
    """Box centre in the mirrored image: ``x -> W - 1 - x``."""
    out = np.asarray(center, np.float64).copy()
    out[0] = width - 1 - out[0]
    return out


def flip_params(params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Mirror SMPL-X / MANO / FLAME parameters (any subset of the keys below) through x = 0.

    ``global_orient``, ``jaw_pose`` (and FLAME ``neck_pose``): axis-angle times (1, -1, -1).
    ``body_pose`` [21, 3]: left/right joints swapped by name, then mirrored. Hands: new right =
    mirrored old left and vice versa, and ``has_left_hand_pose``/``has_right_hand_pose`` swap with
    them. ``expression`` is zeroed and ``has_expression`` set to 0 (expression bases are not
    mirror-symmetric; as the seed). ``betas`` and every other key are kept.
    """
    out = {k: np.array(v, copy=True) for k, v in params.items()}
    for key in ("global_orient", "jaw_pose", "neck_pose"):
        if key in out:
            out[key] = out[key] * AXIS_ANGLE_MIRROR
    if "body_pose" in out:
        out["body_pose"] = out["body_pose"][body_pose_flip_permutation()] * AXIS_ANGLE_MIRROR
    if "left_hand_pose" in params or "right_hand_pose" in params:
        left, right = params.get("left_hand_pose"), params.get("right_hand_pose")
        out.pop("left_hand_pose", None)
        out.pop("right_hand_pose", None)
        if left is not None:
            out["right_hand_pose"] = np.asarray(left) * AXIS_ANGLE_MIRROR
        if right is not None:
            out["left_hand_pose"] = np.asarray(right) * AXIS_ANGLE_MIRROR
    if "has_left_hand_pose" in params and "has_right_hand_pose" in params:
        out["has_left_hand_pose"] = np.array(params["has_right_hand_pose"], copy=True)
        out["has_right_hand_pose"] = np.array(params["has_left_hand_pose"], copy=True)
    if "expression" in out:
        out["expression"] = np.zeros_like(out["expression"])
        out["has_expression"] = np.zeros_like(np.asarray(params.get("has_expression", 0.0), np.float32))
    return out


def flip_affine(width: int) -> np.ndarray:
    """The 2x3 affine of the mirror ``x -> W - 1 - x`` (px)."""
    return np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0]])


# --- 3. GetRandomScaleRotation ----------------------------------------------------------------

def random_scale_rotation(scale: np.ndarray, scale_factor: float, rot_factor: float, rot_prob: float,
                          rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """``scale * clip(1 + sf N(0,1), 1 - sf, 1 + sf)`` and a rotation (degrees) of
    ``clip(rf N(0,1), -2 rf, 2 rf)`` with probability ``rot_prob``, else 0. Three draws, always."""
    s = float(np.clip(1.0 + scale_factor * rng.standard_normal(), 1.0 - scale_factor, 1.0 + scale_factor))
    r = float(np.clip(rot_factor * rng.standard_normal(), -2.0 * rot_factor, 2.0 * rot_factor))
    rotate = rng.random() < rot_prob
    return np.asarray(scale, np.float64) * s, (r if rotate else 0.0)


# --- 4. Rotation (full model) and 5. MeshAffine -------------------------------------------------

def rotation_affine(image_size: tuple[int, int], rot: float) -> tuple[np.ndarray, tuple[int, int]]:
    """Rotate a whole ``(height, width)`` image by ``rot`` degrees about its centre ``(W/2, H/2)``
    on an enlarged canvas that holds all of it. Returns the 2x3 affine (px -> px) and the new
    ``(height, width)``."""
    height, width = image_size
    m = cv2.getRotationMatrix2D((width / 2.0, height / 2.0), rot, 1.0)
    cos, sin = abs(m[0, 0]), abs(m[0, 1])
    new_w = int(round(height * sin + width * cos))
    new_h = int(round(height * cos + width * sin))
    m[0, 2] += new_w / 2.0 - width / 2.0
    m[1, 2] += new_h / 2.0 - height / 2.0
    return m, (new_h, new_w)


def mesh_affine(center: np.ndarray, scale: np.ndarray, rot: float, img_res: int) -> np.ndarray:
    """The crop affine ``x' = (R / s) Rot(-rot) (x - c) + R / 2`` (px -> crop px), ``s = scale[0]``."""
    return crop_affine(center, scale, img_res, rot)


def rotation_z(rot: float) -> np.ndarray:
    """``R_z(-rot)``: the camera-frame rotation (3x3) that matches rotating the image by ``rot`` degrees."""
    a = -np.deg2rad(rot)
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rotate_keypoints3d(kps: np.ndarray, rot: float) -> np.ndarray:
    """``[K, 3 | 4]`` camera-frame keypoints rotated by ``R_z(-rot)`` (confidence kept)."""
    out = np.array(kps, dtype=np.float64, copy=True)
    out[:, :3] = out[:, :3] @ rotation_z(rot).T
    return out


def rotate_global_orient(aa: np.ndarray, rot: float) -> np.ndarray:
    """Axis-angle ``[3]`` global orientation left-multiplied by ``R_z(-rot)``: ``R' = R_z(-rot) R``."""
    matrix = rotation_z(rot) @ cv2.Rodrigues(np.asarray(aa, np.float64).reshape(3, 1))[0]
    return cv2.Rodrigues(matrix)[0].reshape(3)


def transform_keypoints2d(kps: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine to ``[K, 3]`` keypoints with confidence > 0; the others become (0, 0, 0)."""
    kps = np.asarray(kps, np.float64)
    out = np.zeros_like(kps)
    vis = kps[:, 2] > 0
    out[vis, :2] = kps[vis, :2] @ np.asarray(affine)[:, :2].T + np.asarray(affine)[:, 2]
    out[vis, 2] = kps[vis, 2]
    return out


def compose_affine(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The 2x3 affine of ``outer(inner(x))``."""
    a = np.vstack([np.asarray(outer, np.float64), [0.0, 0.0, 1.0]])
    b = np.vstack([np.asarray(inner, np.float64), [0.0, 0.0, 1.0]])
    return (a @ b)[:2]


def invert_affine(affine: np.ndarray) -> np.ndarray:
    """The inverse of a 2x3 affine."""
    return cv2.invertAffineTransform(np.asarray(affine, np.float64))


def warp(image: np.ndarray, affine: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` warped by ``affine`` into ``size = (height, width)`` (bilinear, black border)."""
    return cv2.warpAffine(image, np.asarray(affine, np.float64), (int(size[1]), int(size[0])),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


# --- 6. RandomChannelNoise, 7. SimulateLowRes, 8. Normalize --------------------------------------

def channel_noise_factors(noise_factor: float, rng: np.random.Generator, channels: int = 3) -> np.ndarray:
    """One multiplier per channel, U(1 - f, 1 + f)."""
    return rng.uniform(1.0 - noise_factor, 1.0 + noise_factor, channels)


def channel_noise(image: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """``uint8`` ``[H, W, C]`` image with channel c multiplied by ``factors[c]``, saturated to 0..255
    (and truncated to an integer, as a ``uint8`` cast). One table look-up per pixel."""
    levels = np.arange(256, dtype=np.float64)[:, None] * np.asarray(factors, np.float64)[None, :]
    lut = np.clip(levels, 0, 255).astype(np.uint8)
    return cv2.LUT(np.ascontiguousarray(image, np.uint8), lut.reshape(1, 256, -1))


def low_res_factor(factors: tuple[float, ...], rng: np.random.Generator) -> float:
    """A factor drawn uniformly from ``factors``; 1.0 without a draw when there are fewer than 2."""
    if len(factors) < 2:
        return 1.0
    return float(factors[int(rng.integers(len(factors)))])


def simulate_low_res(image: np.ndarray, factor: float) -> np.ndarray:
    """Downsample ``[H, W, C]`` to ``(floor(W / f), floor(H / f))`` with nearest neighbour and back
    with exact bilinear interpolation (the flags the seed names; it passes them where cv2 ignores them)."""
    if factor <= 1.0:
        return image
    height, width = image.shape[:2]
    small = cv2.resize(image, (max(1, int(width // factor)), max(1, int(height // factor))),
                       interpolation=cv2.INTER_NEAREST)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR_EXACT)


def normalize(image: np.ndarray, mean, std) -> np.ndarray:
    """``uint8`` ``[H, W, 3]`` RGB -> ``float32`` ``[3, H, W]``, ``(x - mean) / std`` per channel."""
    lut = (np.arange(256, dtype=np.float32)[:, None] - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    img = cv2.LUT(np.ascontiguousarray(image, np.uint8), lut.reshape(1, 256, 3))
    return np.ascontiguousarray(img.transpose(2, 0, 1))
