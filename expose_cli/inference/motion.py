"""Animation export of one SMPL-X person track: an AMASS-style ``.npz`` and a ``.bvh`` skeleton.

Frames: the predictions are in the camera frame (x right, y down, z forward). Both files use the
frame turned 180 degrees about x (x right, y up, z toward the camera), as glTF and Blender's BVH
importer expect a y-up world: ``R' = F R`` for the global orientation and
``trans' = F (J0 + T) - J0`` with ``F = diag(1, -1, -1)``, ``J0`` the track's rest pelvis and ``T``
the camera translation. With AMASS's convention a posed vertex is then
``v = R'(v_rest - J0) + J0 + trans'``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from expose_cli.geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle
from expose_cli.utils.atomic import atomic_path

#: SMPL-X's 55 joints: pelvis, 21 body joints, jaw, left eye, right eye, 15 + 15 finger joints.
POSE_PARTS = (("global_orient", 1), ("body_pose", 21), ("jaw_pose", 1), ("leye_pose", 1),
              ("reye_pose", 1), ("left_hand_pose", 15), ("right_hand_pose", 15))
FLIP_YZ = np.diag([1.0, -1.0, -1.0])
BVH_SCALE = 100.0  # BVH offsets and positions in centimetres


def full_pose(params: dict[str, np.ndarray], frames: int) -> np.ndarray:
    """``[T, 55, 3]`` axis-angle in SMPL-X joint order; absent parts (e.g. the eyes) are zero."""
    parts = []
    for name, joints in POSE_PARTS:
        value = params.get(name)
        value = np.zeros((frames, joints, 3)) if value is None else np.asarray(value, np.float64)
        parts.append(value.reshape(frames, joints, 3))
    return np.concatenate(parts, axis=1)


def to_y_up(global_orient: np.ndarray, camera_translation: np.ndarray, pelvis_rest: np.ndarray):
    """Global orientation (axis-angle ``[T, 3]``) and AMASS ``trans`` ``[T, 3]`` in the y-up frame."""
    global_orient = np.asarray(global_orient, np.float64).reshape(-1, 3)
    rot = axis_angle_to_matrix(torch.as_tensor(global_orient)).numpy()
    rot = np.einsum("ij,tjk->tik", FLIP_YZ, rot)
    trans = (np.asarray(camera_translation, np.float64).reshape(-1, 3) + pelvis_rest) @ FLIP_YZ.T - pelvis_rest
    return matrix_to_axis_angle(torch.as_tensor(rot)).numpy(), trans


def write_amass_npz(path: str | Path, poses: np.ndarray, trans: np.ndarray, betas: np.ndarray, fps: float,
                    expression: np.ndarray | None = None, gender: str = "neutral") -> None:
    """AMASS-style SMPL-X motion: ``poses`` [T, 165] (55 joints x axis-angle, radians), ``trans``
    [T, 3] (m), ``betas``, ``gender``, ``mocap_framerate`` (and AMASS-X's ``mocap_frame_rate``),
    ``surface_model_type='smplx'``, plus AMASS-X's split keys (``root_orient``, ``pose_body``, ...)."""
    poses = np.asarray(poses, np.float64).reshape(len(poses), -1)
    arrays = dict(poses=poses, trans=np.asarray(trans, np.float64), betas=np.asarray(betas, np.float64),
                  num_betas=np.int32(len(betas)), gender=np.array(gender), mocap_framerate=np.float64(fps),
                  mocap_frame_rate=np.float64(fps), surface_model_type=np.array("smplx"),
                  root_orient=poses[:, :3], pose_body=poses[:, 3:66], pose_jaw=poses[:, 66:69],
                  pose_eye=poses[:, 69:75], pose_hand=poses[:, 75:165])
    if expression is not None:
        arrays["expression"] = np.asarray(expression, np.float64)
    with atomic_path(Path(path)) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)


def euler_zyx(rot: np.ndarray) -> np.ndarray:
    """Angles ``(z, y, x)`` in degrees with ``R = Rz(z) Ry(y) Rx(x)`` for rotation matrices [..., 3, 3]."""
    sy = np.sqrt(rot[..., 0, 0] ** 2 + rot[..., 1, 0] ** 2)
    regular = sy > 1e-9
    x = np.where(regular, np.arctan2(rot[..., 2, 1], rot[..., 2, 2]), np.arctan2(-rot[..., 1, 2], rot[..., 1, 1]))
    y = np.arctan2(-rot[..., 2, 0], sy)
    z = np.where(regular, np.arctan2(rot[..., 1, 0], rot[..., 0, 0]), 0.0)
    return np.degrees(np.stack([z, y, x], axis=-1))


def _hierarchy(names: list[str], parents: np.ndarray, offsets: np.ndarray) -> list[str]:
    children = {i: [j for j in range(len(names)) if parents[j] == i] for i in range(len(names))}
    lines: list[str] = []

    def emit(j: int, depth: int) -> None:
        pad = "  " * depth
        head = "ROOT" if depth == 0 else "JOINT"
        channels = ("CHANNELS 6 Xposition Yposition Zposition Zrotation Yrotation Xrotation" if depth == 0
                    else "CHANNELS 3 Zrotation Yrotation Xrotation")
        lines.extend([f"{pad}{head} {names[j]}", f"{pad}{{",
                      f"{pad}  OFFSET {offsets[j, 0]:.6f} {offsets[j, 1]:.6f} {offsets[j, 2]:.6f}", f"{pad}  {channels}"])
        for c in children[j]:
            emit(c, depth + 1)
        if not children[j]:
            lines.extend([f"{pad}  End Site", f"{pad}  {{", f"{pad}    OFFSET 0.000000 0.000000 0.000000", f"{pad}  }}"])
        lines.append(f"{pad}}}")

    emit(0, 0)
    return lines


def write_bvh(path: str | Path, pose: np.ndarray, root_position: np.ndarray, rest_joints: np.ndarray,
              parents: np.ndarray, names: list[str], fps: float) -> None:
    """A BVH of the skeleton: ``pose`` [T, J, 3] local axis-angle (radians; joint 0 global),
    ``root_position`` [T, 3] (m), ``rest_joints`` [J, 3] (m, rest pose), ``parents`` [J] (-1 root).

    Joint order in the file is depth-first from the root; lengths in centimetres; each joint's
    channels are ``Zrotation Yrotation Xrotation`` (``R = Rz Ry Rx``, degrees).
    """
    parents = np.asarray(parents).astype(int)
    offsets = rest_joints - np.where(parents[:, None] >= 0, rest_joints[np.maximum(parents, 0)], 0.0)
    offsets[0] = 0.0
    lines = ["HIERARCHY", *_hierarchy(names, parents, offsets * BVH_SCALE)]
    dfs = _depth_first(parents)
    rot = axis_angle_to_matrix(torch.as_tensor(pose, dtype=torch.float64)).numpy()
    angles = euler_zyx(rot)[:, dfs]  # [T, J, 3]
    frames = np.concatenate([root_position * BVH_SCALE, angles.reshape(len(pose), -1)], axis=1)
    lines += ["MOTION", f"Frames: {len(pose)}", f"Frame Time: {1.0 / fps:.8f}"]
    lines += [" ".join(f"{v:.6f}" for v in row) for row in frames]
    with atomic_path(Path(path)) as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n")


def _depth_first(parents: np.ndarray) -> list[int]:
    order, stack = [], [0]
    while stack:
        j = stack.pop()
        order.append(j)
        stack += [c for c in range(len(parents) - 1, -1, -1) if parents[c] == j]
    return order
