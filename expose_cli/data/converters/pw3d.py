"""3DPW: the body model's test set (and train / validation).

Raw folder: ``sequenceFiles/{train,validation,test}/*.pkl`` (``val/`` is accepted for
``validation``) (Python-2 pickles, read through the
restricted unpickler with latin-1) and ``imageFiles/<sequence>/image_%05d.jpg``. As MMHuman3D: for
every actor and every frame whose camera pose is valid for that actor, the box is the extent of the
2D joints with confidence > 0 scaled 1.2; the SMPL global orientation is rotated into the camera
(``R_cam @ R_world``); ``trans`` is not stored. Sequence files are visited in sorted order (MMHuman3D
uses ``os.listdir`` order). Frames without any detected 2D joint, and actor-frames whose camera pose
is invalid, are dropped and counted. A sequence file whose arrays have the wrong shape stops the run
(naming the file and the array), or with ``--skip-bad`` is skipped whole and counted.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from expose_cli.body_models.keypoints import convert_keypoints
from expose_cli.data.hdf5 import GENDER_CODES
from expose_cli.errors import ExposeError
from expose_cli.io.safe_pickle import safe_load_pickle, to_numpy

SPLITS = ("train", "val", "test")
VERSION = "1"
#: Sequence folders per split, first found wins (the official name, then MMHuman3D docs' ``val``).
FOLDERS = {"train": ("train",), "val": ("validation", "val"), "test": ("test",)}
REQUIRED = ("sequence", "genders", "betas", "poses", "poses2d", "cam_poses", "campose_valid", "cam_intrinsics")


def _folder(root: Path, split: str) -> Path:
    """``sequenceFiles/<folder>`` of the split: the first candidate holding ``.pkl`` files."""
    candidates = [root / "sequenceFiles" / name for name in FOLDERS[split]]
    for folder in candidates:
        if any(folder.glob("*.pkl")):
            return folder
    return candidates[0]


def split_present(root: Path, split: str) -> bool:
    return any(_folder(root, split).glob("*.pkl"))


def expected_input(split: str) -> str:
    return " or ".join(f"sequenceFiles/{name}/*.pkl" for name in FOLDERS[split])


def _check_sequence(seq: dict, path: Path) -> None:
    """Shapes of one sequence's arrays; ExposeError naming the file and the array otherwise."""
    missing = [k for k in REQUIRED if k not in seq]
    if missing:
        raise ExposeError(f"not a 3DPW sequence file: missing {', '.join(missing)}", path=path)
    cams = np.shape(seq["cam_poses"])
    if len(cams) != 3 or cams[1:] != (4, 4):
        raise ExposeError(f"cam_poses has shape {cams}, expected (N, 4, 4)", path=path)
    if np.shape(seq["cam_intrinsics"]) != (3, 3):
        raise ExposeError(f"cam_intrinsics has shape {np.shape(seq['cam_intrinsics'])}, expected (3, 3)", path=path)
    actors = len(seq["genders"])
    for key in ("betas", "poses", "poses2d", "campose_valid"):
        if len(seq[key]) != actors:
            raise ExposeError(f"{key} has {len(seq[key])} entries for {actors} actors", path=path)
    for actor in range(actors):
        for key, tail in (("poses", (72,)), ("poses2d", (3, 18)), ("campose_valid", ())):
            shape = np.shape(seq[key][actor])
            if len(shape) != 1 + len(tail) or shape[1:] != tail:
                want = ", ".join(("N", *map(str, tail)))
                raise ExposeError(f"actor {actor}: {key} has shape {shape}, expected ({want})", path=path)
        if np.size(seq["betas"][actor]) < 10:
            raise ExposeError(f"actor {actor}: betas has {np.size(seq['betas'][actor])} values, expected 10", path=path)


def _load_sequence(pkl: Path) -> dict:
    seq = to_numpy(safe_load_pickle(pkl))
    if not isinstance(seq, dict):
        raise ExposeError(f"not a 3DPW sequence file: a pickled {type(seq).__name__}, not a dict", path=pkl)
    _check_sequence(seq, pkl)
    return seq


def iter_samples(root: Path, split: str, stats, options: dict) -> Iterator[dict]:
    folder = _folder(root, split)
    files = sorted(folder.glob("*.pkl"))
    if not files:
        raise ExposeError("no sequence .pkl files", path=folder, hint="unzip sequenceFiles.zip into the 3DPW folder")
    for pkl in files:
        try:
            seq = _load_sequence(pkl)
        except ExposeError:
            if options.get("skip_bad"):
                stats.drop("unreadable or malformed sequence file (whole sequence skipped)")
                continue
            raise
        yield from _sequence_samples(root, seq, stats)


def camera_global_orient(R: np.ndarray, global_orient: np.ndarray) -> np.ndarray:
    """SMPL global orientations ``[N, 3]`` (axis-angle, world frame) rotated into the camera
    ``R`` ``[N, 3, 3]``: ``log(R exp(go))``, all frames of an actor at once (per frame, torch's
    call overhead was 90% of the conversion)."""
    from expose_cli.geometry.rotations import (  # torch, when used
        axis_angle_to_matrix,
        matrix_to_axis_angle,
    )

    if len(R) == 0:
        return np.zeros((0, 3))
    return matrix_to_axis_angle(R @ axis_angle_to_matrix(global_orient).numpy()).numpy()


def _sequence_samples(root: Path, seq: dict, stats) -> Iterator[dict]:
    """Every actor's frames of one (checked) sequence."""
    import cv2  # imported when used: `expose preprocess` of other datasets starts faster

    name = str(seq["sequence"])
    K = np.asarray(seq["cam_intrinsics"], np.float32)
    first = root / "imageFiles" / name / "image_00000.jpg"
    img = cv2.imread(str(first), cv2.IMREAD_GRAYSCALE) if first.is_file() else None
    size = (img.shape[0], img.shape[1]) if img is not None else (1920, 1080)
    if img is None:
        stats.note("sequences whose image size was assumed 1920x1080 (first frame missing)")
    cam_poses = np.asarray(seq["cam_poses"], np.float64)
    for actor in range(len(seq["genders"])):
        poses = np.asarray(seq["poses"][actor], np.float64)
        poses2d = np.asarray(seq["poses2d"][actor], np.float64)
        valid = np.asarray(seq["campose_valid"][actor]).astype(bool)
        betas = np.asarray(seq["betas"][actor], np.float64).reshape(-1)[:10]
        gender = GENDER_CODES.get(str(seq["genders"][actor]).lower(), 0)
        invalid = int((~valid).sum())
        if invalid:
            stats.drop("invalid camera pose (campose_valid false)", invalid)
        frames = np.flatnonzero(valid)
        in_range = frames[frames < min(len(poses), len(poses2d), len(cam_poses))]
        if len(frames) > len(in_range):
            stats.drop("frame index beyond the arrays", len(frames) - len(in_range))
        usable = [f for f in in_range if (poses2d[f][2] > 0).any()]
        if len(in_range) > len(usable):
            stats.drop("no detected 2D joint", len(in_range) - len(usable))
        # every usable frame's orientation in one call (the same values as frame by frame)
        orients = camera_global_orient(cam_poses[usable, :3, :3], poses[usable, :3])
        for f, go in zip(usable, orients, strict=True):
            j2d = poses2d[f].T  # (18, 3): x, y, confidence
            seen = j2d[:, 2] > 0
            lo, hi = j2d[seen, :2].min(0), j2d[seen, :2].max(0)
            c, s = (lo + hi) / 2, (hi - lo) * 1.2
            R = cam_poses[f, :3, :3]
            yield {
                "image_path": f"imageFiles/{name}/image_{f:05d}.jpg", "image_size": size,
                "bbox_xywh": np.array([c[0] - s[0] / 2, c[1] - s[1] / 2, s[0], s[1]]),
                "keypoints2d": convert_keypoints(j2d.astype(np.float32), "pw3d", "smplx")[0],
                "smpl/global_orient": go, "smpl/body_pose": poses[f, 3:72].reshape(23, 3),
                "smpl/betas": betas, "has_smpl": True, "gender": gender,
                "camera/K": K, "camera/R": R, "camera/T": cam_poses[f, :3, 3], "has_camera": True,
            }


def image_root(root: Path) -> Path:
    """The folder the image paths are relative to: the raw folder itself."""
    return root


def file_attrs(options: dict) -> dict:
    """Extra attributes of the written file: none."""
    return {}
