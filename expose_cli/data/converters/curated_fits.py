"""ExPose curated fits (``train.npz``, ``val.npz``): SMPL-X fits with OpenPose-137 keypoints.

Keys: ``img_fns`` (paths under ``data/datasets/``, used as they are, as MMHuman3D does), ``betas``,
``expression``, ``keypoints2D`` [N, 137, 3], ``pose`` [N, 55|53, 3]; val also ``vertices``.
Confidences: negative -> 0, then binarised by part (body >= 0.1, hands >= 0.2, face >= 0.4), as
MMHuman3D and ExPose. The box is the extent of every point left with confidence 1, scaled 1.2 —
eyebrows and pupils included (MMHuman3D loses them to a naming mismatch; deliberately not copied).
``img_fns`` may be str or bytes (decoded); arrays are shape-checked before anything is converted
(the file and key are named; with ``--skip-bad`` the split is skipped).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from expose_cli.body_models.keypoints import convert_keypoints
from expose_cli.data.converters._common import (
    boxes_from_points,
    check_min_columns,
    check_shape,
    load_npz,
    smplx_pose_fields,
    text,
)

SPLITS = ("train", "val")
VERSION = "1"
KEYS = ("img_fns", "betas", "expression", "keypoints2D", "pose")
PART_THRESHOLDS = ((slice(0, 25), 0.1), (slice(25, 67), 0.2), (slice(67, 137), 0.4))
CHUNK = 4096  # rows converted at once


def image_root(root: Path) -> Path:
    """``img_fns`` are relative to ``data/datasets`` (the parent of the curated-fits folder)."""
    return root.parent


def binarise(keypoints: np.ndarray) -> np.ndarray:
    """``[..., 137, 3]`` OpenPose points with confidences clipped at 0 and binarised per part."""
    kp = np.array(keypoints, np.float32)
    conf = np.maximum(kp[..., 2], 0.0)
    for part, threshold in PART_THRESHOLDS:
        conf[..., part] = (conf[..., part] >= threshold).astype(np.float32)
    kp[..., 2] = conf
    return kp


def split_present(root: Path, split: str) -> bool:
    return (root / f"{split}.npz").is_file()


def expected_input(split: str) -> str:
    return f"{split}.npz"


def _check(path: Path, data: dict) -> None:
    """Shapes of the arrays, before anything is converted (BadInputFile naming the key)."""
    check_shape(path, "img_fns", data["img_fns"], ())
    check_shape(path, "keypoints2D", data["keypoints2D"], (137, 3))
    check_shape(path, "pose", data["pose"], (55, 3), (53, 3), (165,), (159,))
    for key in ("betas", "expression"):
        check_min_columns(path, key, data[key], 10)
    if "vertices" in data:
        check_shape(path, "vertices", data["vertices"], (None, 3))


def iter_samples(root: Path, split: str, stats, options: dict) -> Iterator[dict]:
    path = root / f"{split}.npz"
    data = load_npz(path, KEYS)
    _check(path, data)
    for lo in range(0, len(data["img_fns"]), CHUNK):  # a chunk of rows at once: the same numbers
        kp = binarise(data["keypoints2D"][lo:lo + CHUNK])
        boxes, ok = boxes_from_points(kp)
        kp2d = convert_keypoints(kp, "openpose_137", "smplx")[0]
        for j in range(len(kp)):
            i = lo + j
            if not ok[j]:
                stats.drop("no keypoint above the confidence thresholds")
                continue
            sample = {"image_path": text(data["img_fns"][i]), "bbox_xywh": boxes[j], "keypoints2d": kp2d[j],
                      "smplx/betas": data["betas"][i][:10], "smplx/expression": data["expression"][i][:10],
                      **smplx_pose_fields(data["pose"][i])}
            if "vertices" in data:
                sample["vertices"] = data["vertices"][i]
            yield sample


def file_attrs(options: dict) -> dict:
    """Extra attributes of the written file: none."""
    return {}
