"""EHF (100 frames with SMPL-X ground truth): the full model's test set.

Raw folder: ``NN_img.jpg``, ``NN_2Djnt.json`` (OpenPose, 137 points), ``NN_align.ply`` (SMPL-X fit,
metres), for NN in 01..100. The camera is fixed (ExPose's constants). As MMHuman3D: keypoints are
OpenPose-137 moved to SMPL-X names; the box is the extent of all 137 points scaled 1.2, undetected
(0, 0) points included (MMHuman3D's quirk, kept so evaluation crops match its published numbers;
the count of boxes it affects is recorded); ground-truth vertices are rotated into the camera
(rotation only).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from expose_cli.body_models.keypoints import convert_keypoints
from expose_cli.data.ply import read_ply_vertices
from expose_cli.errors import ExposeError, option

SPLITS = ("val",)
VERSION = "1"
FOCAL = 1498.22426237
CENTER = (790.263706, 578.90334)
ROTATION_AA = (-2.9874789618512025, 0.011724572107320893, -0.05704686818955933)
TRANSLATION = (-0.03609917, 0.43416458, 2.37101226)


def camera_rotation() -> np.ndarray:
    from expose_cli.geometry.rotations import axis_angle_to_matrix  # torch: imported only when used

    return axis_angle_to_matrix(np.array(ROTATION_AA)).numpy()


def _openpose137(path: Path) -> np.ndarray:
    try:
        person = json.loads(path.read_text())["people"][0]
        parts = [np.asarray(person[k], np.float64).reshape(-1, 3) for k in
                 ("pose_keypoints_2d", "hand_left_keypoints_2d", "hand_right_keypoints_2d", "face_keypoints_2d")]
    except (OSError, json.JSONDecodeError, KeyError, IndexError, ValueError) as exc:
        raise ExposeError(f"not an OpenPose JSON with one person and body/hand/face keypoints ({exc})", path=path) from exc
    kps = np.concatenate(parts)
    if kps.shape != (137, 3):
        raise ExposeError(f"expected 137 OpenPose keypoints (25+21+21+70), found {len(kps)}", path=path)
    return kps


def bbox_from_points(points: np.ndarray, scale: float = 1.2) -> np.ndarray:
    """``[x, y, w, h]`` of the points' extent, scaled about its centre."""
    lo, hi = points.min(0), points.max(0)
    c, size = (lo + hi) / 2, (hi - lo) * scale
    return np.array([c[0] - size[0] / 2, c[1] - size[1] / 2, size[0], size[1]], np.float32)


def split_present(root: Path, split: str) -> bool:
    return any(root.glob("*_img.jpg"))


def expected_input(split: str) -> str:
    return "NN_img.jpg, NN_2Djnt.json, NN_align.ply"


def iter_samples(root: Path, split: str, stats, options: dict) -> Iterator[dict]:
    images = sorted(root.glob("*_img.jpg"))
    if not images:
        raise ExposeError("no NN_img.jpg files", path=root, hint=f"point {option('root')} at the unzipped EHF folder")
    R = camera_rotation()
    K = np.array([[FOCAL, 0, CENTER[0]], [0, FOCAL, CENTER[1]], [0, 0, 1]], np.float32)
    for img_path in images:
        frame = img_path.name.split("_")[0]
        try:
            kps = _openpose137(root / f"{frame}_2Djnt.json")
            verts = read_ply_vertices(root / f"{frame}_align.ply")
            if verts.shape != (10475, 3):
                raise ExposeError(f"expected 10475 SMPL-X vertices, found {len(verts)}", path=root / f"{frame}_align.ply")
            h, w = _image_size(img_path)
        except (ExposeError, FileNotFoundError) as exc:
            if options.get("skip_bad"):
                stats.drop(f"unreadable file ({type(exc).__name__})")
                continue
            if isinstance(exc, FileNotFoundError):
                raise ExposeError("missing file", path=exc.filename) from exc
            raise
        undetected = kps[:, 2] <= 0
        if undetected.any():
            stats.note("boxes that include undetected (0, 0) points (MMHuman3D quirk)")
        bbox = bbox_from_points(kps[:, :2])
        kp2d, _ = convert_keypoints(kps.astype(np.float32), "openpose_137", "smplx")
        yield {
            "image_path": img_path.name, "image_size": (h, w), "bbox_xywh": bbox, "keypoints2d": kp2d,
            "vertices": (verts @ R.T).astype(np.float32),
            "camera/K": K, "camera/R": R, "camera/T": np.array(TRANSLATION, np.float32), "has_camera": True,
        }


def _image_size(path: Path) -> tuple[int, int]:
    import cv2  # imported when used: `expose preprocess` of other datasets starts faster

    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise ExposeError("cannot read image", path=path)
    return int(img.shape[0]), int(img.shape[1])


def image_root(root: Path) -> Path:
    """The folder the image paths are relative to: the raw folder itself."""
    return root


def file_attrs(options: dict) -> dict:
    """Extra attributes of the written file: none."""
    return {}
