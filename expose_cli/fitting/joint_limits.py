"""The joint-angle prior of MMHuman3D's ``JointPriorLoss(use_full_body=True)``: each of the 21 SMPL-X
body joints' rotation, turned into a per-joint "standard joint angle" frame, as XYZ Euler angles,
penalised outside anatomical limits with ``(exp(relu(excess)) - 1)^2``.

The tables are MMHuman3D's (``core/conventions/joints_mapping/standard_joint_angles.py``): per
joint a change of basis ``T`` (the angles are those of ``T R T^-1``) and [lower, upper] limits in
degrees for the three Euler angles.
"""

from __future__ import annotations

import math

import torch

from expose_cli.geometry.rotations import axis_angle_to_matrix

_X = ((1, 0, 0), (0, 0, 1), (0, -1, 0))    # hips, knees
_S = ((1, 0, 0), (0, 0, -1), (0, 1, 0))    # spine, neck, head
_I = ((1, 0, 0), (0, 1, 0), (0, 0, 1))     # ankles, feet
_L = ((0, 0, -1), (0, 1, 0), (1, 0, 0))    # left arm chain
_R = ((0, 0, 1), (0, 1, 0), (-1, 0, 0))    # right arm chain

#: Body joints 1..21 of SMPL-X (``body_pose`` order): the change of basis into each joint's frame.
TO_JOINT_FRAME = (_X, _X, _S, _X, _X, _S, _I, _I, _S, _I, _I, _S, _L, _R, _S, _L, _R, _L, _R, _L, _R)

#: Limits in degrees, per body joint, per Euler angle (X, Y, Z): (lower, upper).
LIMITS_DEG = (
    ((-45, 155), (-88, 17), (-105, 85)),    # left_hip
    ((-45, 155), (-17, 88), (-85, 105)),    # right_hip
    ((-25, 15), (-20, 20), (-30, 30)),      # spine1
    ((0, 150), (0, 0), (0, 0)),             # left_knee
    ((0, 150), (0, 0), (0, 0)),             # right_knee
    ((-25, 15), (-15, 15), (-25, 25)),      # spine2
    ((-31, 63), (-26, 26), (-74, 15)),      # left_ankle
    ((-31, 63), (-26, 26), (-15, 74)),      # right_ankle
    ((-25, 15), (-15, 15), (-25, 25)),      # spine3
    ((-60, 45), (0, 0), (-45, 45)),         # left_foot
    ((-60, 45), (0, 0), (-45, 45)),         # right_foot
    ((-37, 22), (-30, 30), (-45, 45)),      # neck
    ((-30, 30), (-30, 10), (0, 0)),         # left_collar
    ((-30, 30), (-10, 30), (0, 0)),         # right_collar
    ((-37, 22), (-30, 30), (-45, 45)),      # head
    ((-90, 135), (-97, 91), (-90, 135)),    # left_shoulder
    ((-135, 90), (-91, 97), (-135, 90)),    # right_shoulder
    ((0, 0), (-150, 0), (0, 0)),            # left_elbow
    ((0, 0), (0, 150), (0, 0)),             # right_elbow
    ((-90, 90), (-45, 45), (-180, 60)),     # left_wrist
    ((-90, 90), (-45, 45), (-60, 180)),     # right_wrist
)


def matrix_to_euler_xyz(matrix: torch.Tensor) -> torch.Tensor:
    """``[..., 3, 3]`` -> ``[..., 3]`` angles (a, b, c), radians, with ``R = Rx(a) Ry(b) Rz(c)``:
    ``a = atan2(-R12, R22)``, ``b = asin(R02)``, ``c = atan2(-R01, R00)``."""
    a = torch.atan2(-matrix[..., 1, 2], matrix[..., 2, 2])
    b = torch.asin(matrix[..., 0, 2].clamp(-1.0 + 1e-6, 1.0 - 1e-6))  # finite gradient at +-90 degrees
    c = torch.atan2(-matrix[..., 0, 1], matrix[..., 0, 0])
    return torch.stack([a, b, c], dim=-1)


def standard_joint_angles(body_pose: torch.Tensor) -> torch.Tensor:
    """``[B, 21*3]`` (or ``[B, 21, 3]``) axis-angle body pose, radians -> ``[B, 21, 3]`` Euler angles
    of ``T R T^-1`` per joint (radians)."""
    aa = body_pose.reshape(body_pose.shape[0], -1, 3)[:, :21]
    t = torch.tensor(TO_JOINT_FRAME, dtype=aa.dtype, device=aa.device)
    rot = t @ axis_angle_to_matrix(aa) @ t.transpose(-1, -2)  # T^-1 = T^T (signed permutations)
    return matrix_to_euler_xyz(rot)


def joint_limit_penalty(body_pose: torch.Tensor) -> torch.Tensor:
    """``[B, 21, 3]``: ``(exp(relu(lo - a)) - 1)^2 + (exp(relu(a - hi)) - 1)^2`` per Euler angle
    ``a`` (radians) of each body joint, unweighted."""
    angles = standard_joint_angles(body_pose)
    limits = torch.tensor(LIMITS_DEG, dtype=angles.dtype, device=angles.device) * (math.pi / 180.0)
    lower = (torch.exp(torch.relu(limits[..., 0] - angles)) - 1.0) ** 2
    upper = (torch.exp(torch.relu(angles - limits[..., 1])) - 1.0) ** 2
    return lower + upper
