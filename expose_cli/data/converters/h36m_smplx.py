"""Human3.6M for the body model's training mix (MMHuman3D's ``H36mSMPLXConverter``).

Raw folder: ``S<k>/MyPoseFeatures/D3_Positions_mono/<Action>.<cam>.cdf`` (``Pose`` [1, N, 96]: 32
joints, mm, camera frame), ``D2_Positions/<Action>.<cam>.cdf`` ([1, N, 64], px),
``MySegmentsMat/ground_truth_bs/<Action>.<cam>.mat`` (MATLAB v7.3 masks) and extracted frames
``S<k>/images/S<k>_<Action_>.<cam>/S<k>_<Action_>.<cam>_%06d.jpg`` (from 1), the paths
``image_path`` holds (relative to the raw folder; version 1 left out the ``S<k>/`` folder, see
:mod:`expose_cli.data.validity`). As MMHuman3D, protocol 1:
every camera, every 5th frame; box from the mask's foreground ``[xmin, ymin, xmax + 1, ymax + 1]``
scaled 0.9 about its centre; the 17 joints root-centred, metres. Actions named ``_ALL...`` are
skipped. Frames without a mask or with an empty one are dropped and counted. A CDF of the wrong shape
(or a D2 file shorter than its D3 file) stops with the file named, or with ``--skip-bad`` that
action/camera is skipped and counted. Needs ``cdflib``.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from expose_cli.body_models.keypoints import convert_keypoints
from expose_cli.data.hdf5 import DropStats
from expose_cli.data.mat_masks import MaskFile
from expose_cli.errors import ExposeError

SPLITS = ("train", "val")
VERSION = "2"
SUBJECTS = {"train": ("S1", "S5", "S6", "S7", "S8"), "val": ("S9", "S11")}
H36M_IDX = [11, 6, 7, 8, 1, 2, 3, 12, 24, 14, 15, 17, 18, 19, 25, 26, 27]
EVERY = 5
MIN_JOBS_PER_PROCESS = 4  # fewer action/camera files per process than this: read in this process


def _require_cdflib() -> None:
    """A missing ``cdflib`` is an error even with ``--skip-bad`` (it is not a bad file)."""
    try:
        import cdflib  # noqa: F401
    except ImportError as exc:
        raise ExposeError("reading Human3.6M needs the cdflib package", hint="pip install cdflib") from exc


def _read_cdf(path: Path) -> np.ndarray:
    _require_cdflib()
    import cdflib

    try:
        pose = np.asarray(cdflib.CDF(str(path)).varget("Pose"))
    except Exception as exc:  # cdflib raises many types for damaged files
        raise ExposeError(f"cannot read the CDF variable 'Pose': {exc}", path=path) from exc
    return pose.reshape(pose.shape[-2], pose.shape[-1]) if pose.ndim == 3 else pose


def image_folder(subject: str, action: str, cam: str) -> str:
    """Folder of a sequence's extracted frames, relative to the raw folder (datasets.md §8):
    ``S1/images/S1_Directions_1.54138969`` (spaces in the action become ``_``)."""
    return f"{subject}/images/{subject}_{action.replace(' ', '_')}.{cam}"


def split_present(root: Path, split: str) -> bool:
    return any((root / s / "MyPoseFeatures" / "D3_Positions_mono").is_dir() for s in SUBJECTS[split])


def expected_input(split: str) -> str:
    return f"{{{','.join(SUBJECTS[split])}}}/MyPoseFeatures/D3_Positions_mono/*.cdf"


def _poses(cdf: Path, d2_path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """The 17 joints of one action/camera: 3D (m, camera frame) and 2D (px, None without a D2 file).
    ExposeError naming the file when a shape is wrong or D2 has fewer frames than D3."""
    raw3 = _read_cdf(cdf)
    if raw3.ndim != 2 or raw3.shape[-1] != 96:
        raise ExposeError(f"Pose has shape {raw3.shape}, expected (1, N, 96) (32 joints x 3)", path=cdf)
    d3 = raw3.reshape(-1, 32, 3)[:, H36M_IDX] / 1000.0
    if not d2_path.is_file():
        return d3, None
    raw2 = _read_cdf(d2_path)
    if raw2.ndim != 2 or raw2.shape[-1] != 64:
        raise ExposeError(f"Pose has shape {raw2.shape}, expected (1, N, 64) (32 joints x 2)", path=d2_path)
    if len(raw2) < len(d3):
        raise ExposeError(f"{len(raw2)} frames, but {cdf.name} in D3_Positions_mono has {len(d3)}", path=d2_path)
    return d3, raw2.reshape(-1, 32, 2)[:, H36M_IDX]


def _frame_sample(folder: str, f: int, box: tuple, size: tuple, d3: np.ndarray, d2: np.ndarray | None) -> dict:
    """Frame ``f``'s row: box from the mask extent ``(x0, y0, x1, y1)`` scaled 0.9, joints root-centred."""
    x0, y0, x1, y1 = box
    cx, cy, w, h = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) * 0.9, (y1 - y0) * 0.9
    kp3d = np.concatenate([d3[f] - d3[f, :1], np.ones((17, 1))], axis=1).astype(np.float32)
    sample = {
        "image_path": f"{folder}/{folder.rsplit('/', 1)[1]}_{f + 1:06d}.jpg",
        "image_size": size, "bbox_xywh": np.array([cx - w / 2, cy - h / 2, w, h], np.float32),
        "keypoints3d": convert_keypoints(kp3d, "h36m_smplx", "smplx")[0],
    }
    if d2 is not None:
        kp2d = np.concatenate([d2[f], np.ones((17, 1))], axis=1).astype(np.float32)
        sample["keypoints2d"] = convert_keypoints(kp2d, "h36m_smplx", "smplx")[0]
    return sample


def _sequence(root: Path, subject: str, cdf: Path, stats, options: dict) -> Iterator[dict]:
    """The kept frames of one action/camera (every 5th; without a mask or with an empty one: dropped)."""
    action, cam = cdf.stem.rsplit(".", 1)
    d2_path = root / subject / "MyPoseFeatures" / "D2_Positions" / cdf.name
    try:
        d3, d2 = _poses(cdf, d2_path)
    except ExposeError:
        if options.get("skip_bad"):
            stats.drop("unreadable or malformed action/camera CDF file (whole file skipped)")
            return
        raise
    mask_path = root / subject / "MySegmentsMat" / "ground_truth_bs" / f"{action}.{cam}.mat"
    if not mask_path.is_file():
        if len(d3):
            stats.drop("no mask file", len(range(0, len(d3), EVERY)))
        return
    folder = image_folder(subject, action, cam)
    with MaskFile(mask_path) as masks:
        refs = masks.refs() if len(d3) else None  # once, not per frame
        for f in range(0, len(d3), EVERY):
            box, size = masks.box(refs[f, 0])
            if box is None:
                stats.drop("empty mask")
                continue
            yield _frame_sample(folder, f, box, size, d3, d2)


def _sequences(root: Path, split: str, stats) -> list[tuple[str, Path]]:
    """(subject, D3 CDF) of every action/camera of the split, in order (``_ALL`` ones noted, skipped)."""
    jobs, found = [], False
    for subject in SUBJECTS[split]:
        d3_dir = root / subject / "MyPoseFeatures" / "D3_Positions_mono"
        if not d3_dir.is_dir():
            stats.note(f"subject {subject} absent")
            continue
        found = True
        for cdf in sorted(d3_dir.glob("*.cdf")):
            if cdf.stem.rsplit(".", 1)[0].startswith("_ALL"):
                stats.note("_ALL pseudo-actions skipped")
                continue
            jobs.append((subject, cdf))
    if not found:
        raise ExposeError(f"none of the subjects {', '.join(SUBJECTS[split])} found", path=root,
                          hint="expected S<k>/MyPoseFeatures/D3_Positions_mono/*.cdf")
    return jobs


def _sequence_rows(job: tuple) -> tuple[list[dict], list[tuple[str, int]], tuple | None]:
    """Worker process: one action/camera's rows, its drops and its error (reason, hint, path,
    exit code; an ExposeError does not survive pickling whole) or None."""
    root, subject, cdf, skip_bad = job
    stats = DropStats()
    try:
        rows = list(_sequence(root, subject, cdf, stats, {"skip_bad": skip_bad}))
    except ExposeError as exc:
        return [], list(stats.dropped.items()), (exc.reason, exc.hint, exc.path, exc.exit_code)
    return rows, list(stats.dropped.items()), None


def _in_processes(root: Path, jobs: list, stats, options: dict, processes: int) -> Iterator[dict]:
    """The rows of ``jobs`` read by ``processes`` worker processes, in order; drops counted per
    action/camera before its rows (only with whole blocks, where no --limit stops in between)."""
    ctx = multiprocessing.get_context("spawn")  # no fork of a process holding an open output file
    work = [(root, subject, cdf, bool(options.get("skip_bad"))) for subject, cdf in jobs]
    with ctx.Pool(processes) as pool:
        for rows, drops, error in pool.imap(_sequence_rows, work):
            for reason, n in drops:
                stats.drop(reason, n)
            if error is not None:
                reason, hint, path, code = error
                raise ExposeError(reason, hint, path=path, exit_code=code)
            yield from rows


def iter_samples(root: Path, split: str, stats, options: dict) -> Iterator[dict]:
    """Rows of the split; with ``options["workers"]`` > 1 and whole blocks (no --limit), action/
    camera files are read by that many processes (at most the CPU count) when there are enough."""
    _require_cdflib()
    jobs = _sequences(root, split, stats)
    processes = min(int(options.get("workers") or 1), os.cpu_count() or 1, len(jobs) // MIN_JOBS_PER_PROCESS)
    if processes > 1 and options.get("blocks"):
        yield from _in_processes(root, jobs, stats, options, processes)
        return
    for subject, cdf in jobs:
        yield from _sequence(root, subject, cdf, stats, options)


def image_root(root: Path) -> Path:
    """The folder the image paths are relative to: the raw folder itself."""
    return root


def file_attrs(options: dict) -> dict:
    """Extra attributes of the written file: none."""
    return {}
