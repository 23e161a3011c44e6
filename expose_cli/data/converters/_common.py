"""Helpers several converters share: npz loading with clear errors, shape checks, text values,
boxes from keypoints."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from expose_cli.errors import ExposeError
from expose_cli.io.safe_pickle import safe_loads, to_numpy


class BadInputFile(ExposeError):
    """A split's one input file is malformed (wrong keys or shapes). With ``--skip-bad`` the whole
    split is skipped (no output file, reported) instead of stopping the run."""


def _read_member(archive: zipfile.ZipFile, member: str, source: str) -> np.ndarray:
    """One ``.npy`` member of an ``.npz``; object arrays go through the restricted unpickler."""
    fmt = np.lib.format
    with archive.open(member) as fh:
        version = fmt.read_magic(fh)
        reader = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        _shape, _fortran, dtype = reader(fh)
        if dtype.hasobject:
            try:
                value = to_numpy(safe_loads(fh.read(), f"{source}:{member}"))
            except ExposeError as exc:
                raise BadInputFile(f"{member}: {exc.reason}", path=source,
                                   hint="only arrays, numbers and strings are read from an .npz") from exc
            return value if isinstance(value, np.ndarray) else np.asarray(value, dtype=object)
    with archive.open(member) as fh:
        return fmt.read_array(fh, allow_pickle=False)


def load_npz(path: Path, required: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Arrays of an ``.npz``, checking ``required`` and their row counts.

    String arrays (``U`` or bytes ``S``) load as they are; object arrays (ExPose saves some with
    ``allow_pickle=True``) are read through the restricted unpickler of
    :mod:`expose_cli.io.safe_pickle`, never ``np.load(allow_pickle=True)``: plain values and
    arrays only, anything else is refused with an error naming the file.
    """
    if not path.is_file():
        raise ExposeError("missing file", path=path)
    try:
        with zipfile.ZipFile(path) as archive:
            out = {name[:-4]: _read_member(archive, name, str(path))
                   for name in archive.namelist() if name.endswith(".npy")}
    except ExposeError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise BadInputFile(f"not a readable .npz: {exc}", path=path) from exc
    missing = [k for k in required if k not in out]
    if missing:
        raise BadInputFile(f"missing keys {', '.join(missing)}", path=path)
    n = len(out[required[0]])
    bad = [k for k in required if len(out[k]) != n]
    if bad:
        raise BadInputFile(f"keys {', '.join(bad)} do not have {n} rows like {required[0]!r}", path=path)
    return out


def check_shape(path: Path, key: str, array: np.ndarray, *shapes: tuple[int | None, ...]) -> None:
    """Raise :class:`BadInputFile` unless ``array``'s shape after the row axis is one of ``shapes``
    (``None``: any size)."""
    tail = np.shape(array)[1:]
    for shape in shapes:
        if len(tail) == len(shape) and all(s is None or s == t for s, t in zip(shape, tail, strict=True)):
            return
    expected = " or ".join("(N, " + ", ".join("*" if s is None else str(s) for s in shape) + ")" for shape in shapes)
    raise BadInputFile(f"{key} has shape {tuple(np.shape(array))}, expected {expected}", path=path)


def check_min_columns(path: Path, key: str, array: np.ndarray, at_least: int) -> None:
    """Raise :class:`BadInputFile` unless ``array`` is ``(N, M)`` with ``M >= at_least``."""
    check_shape(path, key, array, (None,))
    if np.shape(array)[1] < at_least:
        raise BadInputFile(f"{key} has shape {tuple(np.shape(array))}, expected (N, >= {at_least})", path=path)


def text(value: Any) -> str:
    """A string element of an npz array as ``str``: bytes (``S`` dtype, or in an object array) are
    decoded as UTF-8 (latin-1 when not valid UTF-8) instead of becoming ``"b'...'"``."""
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value.item()
    if isinstance(value, (bytes, bytearray, np.bytes_)):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.decode("latin-1")
    return str(value)


def box_from_points(points: np.ndarray, scale: float = 1.2) -> np.ndarray | None:
    """``[x, y, w, h]`` of the points with confidence > 0, scaled about the centre (None if none)."""
    seen = points[:, 2] > 0
    if not seen.any():
        return None
    lo, hi = points[seen, :2].min(0), points[seen, :2].max(0)
    c, s = (lo + hi) / 2, (hi - lo) * scale
    return np.array([c[0] - s[0] / 2, c[1] - s[1] / 2, s[0], s[1]], np.float32)


def boxes_from_points(points: np.ndarray, scale: float = 1.2) -> tuple[np.ndarray, np.ndarray]:
    """:func:`box_from_points` of ``[k, J, 3]`` points at once: boxes ``[k, 4]`` float32 and
    whether each has a point with confidence > 0 (the same float32 arithmetic, row by row)."""
    seen = points[:, :, 2] > 0
    xy = points[:, :, :2]
    lo = np.where(seen[:, :, None], xy, np.inf).min(axis=1)
    hi = np.where(seen[:, :, None], xy, -np.inf).max(axis=1)
    with np.errstate(invalid="ignore"):  # rows with no point seen: inf - inf (not returned as boxes)
        c, s = (lo + hi) / 2, (hi - lo) * scale
    boxes = np.stack([c[:, 0] - s[:, 0] / 2, c[:, 1] - s[:, 1] / 2, s[:, 0], s[:, 1]], axis=1).astype(np.float32)
    return boxes, seen.any(axis=1)


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
