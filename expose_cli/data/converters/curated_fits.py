"""ExPose curated fits (``train.npz``, ``val.npz``): SMPL-X fits with OpenPose-137 keypoints.

Keys: ``img_fns`` (paths under ``data/datasets/``, used as they are, as MMHuman3D does), ``betas``,
``expression``, ``keypoints2D`` [N, 137, 3], ``pose`` [N, 55|53, 3]; val also ``vertices``.
Confidences: negative -> 0, then binarised by part (body >= 0.1, hands >= 0.2, face >= 0.4), as
MMHuman3D and ExPose. The box is the extent of every point left with confidence 1, scaled 1.2 —
eyebrows and pupils included (MMHuman3D loses them to a naming mismatch; deliberately not copied).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from expose_cli.body_models.keypoints import convert_keypoints
from expose_cli.data.converters._common import box_from_points, load_npz, smplx_pose_fields

SPLITS = ("train", "val")
VERSION = "1"
KEYS = ("img_fns", "betas", "expression", "keypoints2D", "pose")
PART_THRESHOLDS = ((slice(0, 25), 0.1), (slice(25, 67), 0.2), (slice(67, 137), 0.4))


def image_root(root: Path) -> Path:
    """``img_fns`` are relative to ``data/datasets`` (the parent of the curated-fits folder)."""
    return root.parent


def binarise(keypoints: np.ndarray) -> np.ndarray:
    kp = np.array(keypoints, np.float32)
    conf = np.maximum(kp[:, 2], 0.0)
    for part, threshold in PART_THRESHOLDS:
        conf[part] = (conf[part] >= threshold).astype(np.float32)
    kp[:, 2] = conf
    return kp


def iter_samples(root: Path, split: str, stats, options: dict) -> Iterator[dict]:
    path = root / f"{split}.npz"
    data = load_npz(path, KEYS)
    for i in range(len(data["img_fns"])):
        kp = binarise(data["keypoints2D"][i])
        box = box_from_points(kp)
        if box is None:
            stats.drop("no keypoint above the confidence thresholds")
            continue
        try:
            pose = smplx_pose_fields(data["pose"][i])
        except ValueError as exc:
            from expose_cli.errors import ExposeError

            raise ExposeError(f"row {i}: {exc}", path=path) from exc
        sample = {"image_path": str(data["img_fns"][i]), "bbox_xywh": box,
                  "keypoints2d": convert_keypoints(kp, "openpose_137", "smplx")[0],
                  "smplx/betas": data["betas"][i][:10], "smplx/expression": data["expression"][i][:10], **pose}
        if "vertices" in data:
            sample["vertices"] = data["vertices"][i]
        yield sample
