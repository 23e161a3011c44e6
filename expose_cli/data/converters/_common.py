"""Helpers several converters share: npz loading with clear errors, boxes from keypoints."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from expose_cli.errors import ExposeError


def load_npz(path: Path, required: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Arrays of an ``.npz`` (string arrays allowed, pickled objects refused), checking ``required``."""
    if not path.is_file():
        raise ExposeError("missing file", path=path)
    try:
        with np.load(path, allow_pickle=False) as data:
            out = {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise ExposeError(f"not a readable .npz without pickled objects: {exc}", path=path) from exc
    missing = [k for k in required if k not in out]
    if missing:
        raise ExposeError(f"missing keys {', '.join(missing)}", path=path)
    n = len(out[required[0]])
    bad = [k for k in required if len(out[k]) != n]
    if bad:
        raise ExposeError(f"keys {', '.join(bad)} do not have {n} rows like {required[0]!r}", path=path)
    return out


def box_from_points(points: np.ndarray, scale: float = 1.2) -> np.ndarray | None:
    """``[x, y, w, h]`` of the points with confidence > 0, scaled about the centre (None if none)."""
    seen = points[:, 2] > 0
    if not seen.any():
        return None
    lo, hi = points[seen, :2].min(0), points[seen, :2].max(0)
    c, s = (lo + hi) / 2, (hi - lo) * scale
    return np.array([c[0] - s[0] / 2, c[1] - s[1] / 2, s[0], s[1]], np.float32)


def smplx_pose_fields(pose: np.ndarray) -> dict[str, np.ndarray]:
    """SMPL-X axis-angle per joint ``[55, 3]`` (or ``[53, 3]`` without eyes) -> schema fields:
    0 global, 1..21 body, 22 jaw, (23, 24 eyes), then 15 left-hand and 15 right-hand joints."""
    pose = np.asarray(pose, np.float64).reshape(-1, 3)
    if len(pose) not in (53, 55):
        raise ValueError(f"expected 53 or 55 joints, found {len(pose)}")
    eyes = len(pose) == 55
    out = {"smplx/global_orient": pose[0], "smplx/body_pose": pose[1:22], "smplx/jaw_pose": pose[22],
           "smplx/left_hand_pose": pose[-30:-15], "smplx/right_hand_pose": pose[-15:], "has_smplx": True}
    if eyes:
        out["smplx/leye_pose"], out["smplx/reye_pose"] = pose[23], pose[24]
    return out
