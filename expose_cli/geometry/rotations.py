"""Rotation conversions: axis-angle, rotation matrix, quaternion (w, x, y, z), and 6D.

All functions take torch tensors (numpy arrays are converted) batched over leading dimensions,
and return tensors of the same dtype and device. Angles are in radians.

The 6D representation is the one of Zhou et al. as ExPose/MMHuman3D use it: the 6 numbers are a
row-major 3x2 matrix ``[[a, b], [c, d], [e, f]]``; Gram-Schmidt on its two columns gives b1, b2,
``b3 = b1 x b2`` and ``R = [b1 b2 b3]`` (as columns).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def _as_tensor(x) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    return torch.as_tensor(np.asarray(x))


def axis_angle_to_matrix(axis_angle) -> torch.Tensor:
    """Rodrigues' formula: ``[..., 3]`` axis-angle (radians) -> ``[..., 3, 3]`` rotation matrices."""
    aa = _as_tensor(axis_angle)
    angle = torch.linalg.norm(aa, dim=-1, keepdim=True)  # [..., 1]
    small = angle < 1e-6
    safe_angle = torch.where(small, torch.ones_like(angle), angle)
    sin = torch.sin(angle)
    cos = torch.cos(angle)
    # For tiny angles use the series sin(t)/t ~ 1, (1-cos t)/t^2 ~ 1/2 on the raw vector.
    k_sin = torch.where(small, 1.0 - angle**2 / 6.0, sin / safe_angle)
    k_cos = torch.where(small, 0.5 - angle**2 / 24.0, (1.0 - cos) / safe_angle**2)
    x, y, z = aa.unbind(-1)
    zero = torch.zeros_like(x)
    skew = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(*aa.shape[:-1], 3, 3)
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device).expand(skew.shape)
    return eye + k_sin[..., None] * skew + k_cos[..., None] * (skew @ skew)


def matrix_to_quaternion(matrix) -> torch.Tensor:
    """``[..., 3, 3]`` rotation matrices -> ``[..., 4]`` unit quaternions (w, x, y, z), w >= 0.

    Picks the numerically best of the four candidate formulas per matrix (Shepperd's method), so it
    is stable for every angle, including pi.
    """
    m = _as_tensor(matrix)
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    trace = m00 + m11 + m22
    candidates = torch.stack(
        [
            torch.stack([1.0 + trace, m21 - m12, m02 - m20, m10 - m01], -1),
            torch.stack([m21 - m12, 1.0 + m00 - m11 - m22, m01 + m10, m02 + m20], -1),
            torch.stack([m02 - m20, m01 + m10, 1.0 - m00 + m11 - m22, m12 + m21], -1),
            torch.stack([m10 - m01, m02 + m20, m12 + m21, 1.0 - m00 - m11 + m22], -1),
        ],
        dim=-2,
    )  # [..., 4 candidates, 4]
    diag = torch.stack([trace, m00, m11, m22], -1)
    best = diag.argmax(-1)
    q = torch.gather(candidates, -2, best[..., None, None].expand(*best.shape, 1, 4)).squeeze(-2)
    q = F.normalize(q, dim=-1)
    return torch.where(q[..., :1] < 0, -q, q)


def quaternion_to_matrix(quaternion) -> torch.Tensor:
    """``[..., 4]`` quaternions (w, x, y, z; normalised here) -> ``[..., 3, 3]`` rotation matrices."""
    q = F.normalize(_as_tensor(quaternion), dim=-1)
    w, x, y, z = q.unbind(-1)
    rows = [
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ]
    return torch.stack(rows, -1).reshape(*q.shape[:-1], 3, 3)


def axis_angle_to_quaternion(axis_angle) -> torch.Tensor:
    """``[..., 3]`` axis-angle (radians) -> ``[..., 4]`` quaternions (w, x, y, z)."""
    aa = _as_tensor(axis_angle)
    angle = torch.linalg.norm(aa, dim=-1, keepdim=True)
    half = 0.5 * angle
    small = angle < 1e-6
    k = torch.where(small, 0.5 - angle**2 / 48.0, torch.sin(half) / torch.where(small, torch.ones_like(angle), angle))
    return torch.cat([torch.cos(half), aa * k], dim=-1)


def quaternion_to_axis_angle(quaternion) -> torch.Tensor:
    """``[..., 4]`` quaternions (w, x, y, z) -> ``[..., 3]`` axis-angle with angle in [0, pi]."""
    q = F.normalize(_as_tensor(quaternion), dim=-1)
    q = torch.where(q[..., :1] < 0, -q, q)
    xyz = q[..., 1:]
    sin_half = torch.linalg.norm(xyz, dim=-1, keepdim=True)
    angle = 2.0 * torch.atan2(sin_half, q[..., :1])
    small = sin_half < 1e-6
    k = torch.where(small, 2.0 + angle**2 / 12.0, angle / torch.where(small, torch.ones_like(sin_half), sin_half))
    return xyz * k


def matrix_to_axis_angle(matrix) -> torch.Tensor:
    """``[..., 3, 3]`` rotation matrices -> ``[..., 3]`` axis-angle (via quaternions: stable at pi)."""
    return quaternion_to_axis_angle(matrix_to_quaternion(matrix))


def rot6d_to_matrix(x) -> torch.Tensor:
    """``[..., 6]`` 6D rotations (row-major 3x2) -> ``[..., 3, 3]`` matrices by Gram-Schmidt."""
    x = _as_tensor(x)
    m = x.reshape(*x.shape[:-1], 3, 2)
    a1, a2 = m[..., 0], m[..., 1]
    b1 = F.normalize(a1, dim=-1)
    b2 = F.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def matrix_to_rot6d(matrix) -> torch.Tensor:
    """``[..., 3, 3]`` rotation matrices -> ``[..., 6]``: the first two columns, row-major."""
    m = _as_tensor(matrix)
    return m[..., :, :2].reshape(*m.shape[:-2], 6)
