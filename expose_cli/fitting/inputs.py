"""What `expose fit` reads: keypoints per person and frame, and where each fit starts.

Keypoints (:class:`KeypointInput`): ``[P, F, 144, D]`` in the SMPL-X keypoint order (the
``smplx`` package's 144: joints, extra vertex joints, face landmarks), ``D = 2`` (pixels) or
``3`` (metres, camera frame), with a confidence per point (0 = missing) and a validity per person
and frame. Every file the keypoint-file readers know (``body_models/keypoint_files.py``,
docs/keypoints.md: `expose infer --save-keypoints` output, OpenPose, COCO-WholeBody, MMPose,
arrays in COCO-WholeBody / OpenPose / H3.6M / COCO / SMPL-X order; a folder of per-frame files as
a sequence), and a JSON of SMPL-X keypoints: ``{"keypoints": [..., K, 3|4]}`` (``K`` 144, or the
first 127 or 55 of that order; leading axes none, ``[P]`` or ``[P, F]``; confidence last;
optional ``image_size`` [height, width] and ``image``).

Starts (:class:`Start`): an `expose infer` output folder (``person_NN.npz`` or ``.json`` per
person; a sequence: ``frame_*/person_NN.*``), read as axis-angles, betas, expression and the camera
translation per person and frame, with the focal length and image size it used.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from expose_cli.errors import ExposeError, option

SMPLX_COUNTS = (144, 127, 55)
#: infer's field -> the fit's parameter.
START_FIELDS = {"global_orient_aa": "global_orient", "body_pose_aa": "body_pose", "left_hand_pose_aa": "left_hand_pose",
                "right_hand_pose_aa": "right_hand_pose", "jaw_pose_aa": "jaw_pose", "betas": "betas",
                "expression": "expression", "camera_translation": "transl"}


@dataclass
class KeypointInput:
    """Keypoints of one input (an image's persons, or persons x frames of a sequence)."""

    path: Path
    points: np.ndarray        # [P, F, 144, D] pixels (D=2) or metres (D=3)
    confidence: np.ndarray    # [P, F, 144]
    valid: np.ndarray         # [P, F] bool
    problems: list[str] = field(default_factory=list)
    image_size: tuple[int, int] | None = None  # height, width px
    image: str | None = None
    source: object | None = None  # the keypoint-file reader's ``KeypointFile``, when one read it

    @property
    def persons(self) -> int:
        return int(self.points.shape[0])

    @property
    def frames(self) -> int:
        return int(self.points.shape[1])

    @property
    def is_2d(self) -> bool:
        return self.points.shape[-1] == 2


def _bad(path: Path, message: str, hint: str) -> ExposeError:
    return ExposeError(message, hint=hint, path=path, exit_code=2)


def smplx_keypoints(path: Path, raw) -> np.ndarray:
    """``[..., K, C]`` -> ``[P, F, 144, C]`` (zeros where K < 144), checked: one line on a bad shape."""
    try:
        points = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError):
        raise _bad(path, "keypoints are not a numeric array", "give [..., K, 3] (x, y, confidence) or "
                   "[..., K, 4] (x, y, z, confidence)") from None
    if points.ndim < 2 or points.ndim > 4 or points.shape[-1] not in (3, 4):
        raise _bad(path, f"keypoints of shape {list(points.shape)}: expected [K, C], [P, K, C] or [P, F, K, C] "
                   "with C = 3 (x, y px, confidence) or 4 (x, y, z m, confidence)", "see docs/fit.md, Inputs")
    if points.shape[-2] not in SMPLX_COUNTS:
        raise _bad(path, f"{points.shape[-2]} keypoints per person: not the SMPL-X keypoint order "
                   "(144, 127 or 55 points)", "convert them to the SMPL-X order, or give a file of a "
                   "convention `expose fit` reads (docs/fit.md)")
    if points.ndim < 4:  # [K, C] one person; [P, K, C] persons of one image
        points = points.reshape((-1, 1) + points.shape[-2:])
    full = np.zeros((*points.shape[:2], 144, points.shape[-1]))
    full[:, :, :points.shape[2]] = points
    return full


def person_problems(path: Path, points: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Persons/frames that cannot be fitted (NaN or infinite values; every confidence 0): one line each."""
    finite = np.isfinite(points).all(axis=(-1, -2))
    seen = (np.nan_to_num(points[..., -1]) > 0).any(axis=-1)
    problems = []
    for p, f in zip(*np.nonzero(~(finite & seen)), strict=True):
        where = f"person {p}" + (f", frame {f}" if points.shape[1] > 1 else "")
        why = "NaN or infinite keypoints" if not finite[p, f] else "every confidence is zero"
        problems.append(f"{path}: {where}: {why}; not fitted")
    return finite & seen, problems


def from_smplx_points(path: Path, points: np.ndarray, image_size=None, image: str | None = None) -> KeypointInput:
    """A :class:`KeypointInput` from ``[P, F, 144, C]`` points with confidences last."""
    valid, problems = person_problems(path, points)
    clean = np.where(np.isfinite(points), points, 0.0)
    size = None if image_size is None else (int(image_size[0]), int(image_size[1]))
    return KeypointInput(path, clean[..., :-1], np.clip(clean[..., -1], 0.0, None), valid, problems, size, image)


def _smplx_json(path: Path) -> dict | None:
    """The file's content when it is a JSON object with a ``keypoints`` array (SMPL-X order)."""
    if path.suffix.lower() != ".json" or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise _bad(path, f"cannot read keypoints: {exc}", "give a JSON or NumPy keypoint file") from None
    return data if isinstance(data, dict) and isinstance(data.get("keypoints"), list) else None


def read_keypoint_input(path: str | Path, convention: str | None = None) -> KeypointInput:
    """Read a keypoint file, or a folder of per-frame files, onto SMPL-X keypoints (module docstring);
    ``convention`` names an array file's convention."""
    from expose_cli.body_models.keypoint_files import read_keypoint_sequence, read_keypoints

    path = Path(path)
    data = _smplx_json(path)
    if data is not None:
        size, image = data.get("image_size"), data.get("image")
        return from_smplx_points(path, smplx_keypoints(path, data["keypoints"]),
                                 None if size is None else np.asarray(size).reshape(-1)[:2],
                                 None if image is None else str(image))
    kf = read_keypoint_sequence(path, convention) if path.is_dir() else read_keypoints(path, convention)
    points, valid = kf.persons_frames()
    kin = from_smplx_points(path, points, kf.image_size, kf.image)
    own = [line for line, (p, f) in zip(kin.problems, zip(*np.nonzero(~kin.valid), strict=True), strict=True)
           if valid[p, f]]  # what the reader let through (e.g. no point of this convention seen)
    kin.valid &= valid
    kin.problems = list(kf.problems) + own
    kin.source = kf
    return kin


def check_image(kin: KeypointInput, image: str | Path) -> tuple[int, int]:
    """The image's size (height, width); raises one line when the keypoints look like a file for
    another image (another image named or sized in the file, most points outside it)."""
    from expose_cli.body_models.keypoint_files import check_image as file_check
    from expose_cli.io.images import read_image

    try:
        size = tuple(int(v) for v in read_image(image).shape[:2])
    except (OSError, ValueError, ExposeError) as exc:
        raise _bad(Path(image), f"cannot read the image: {exc}", f"give an image file for {option('image')}") from None
    if kin.source is not None:
        lines = file_check(kin.source, size, image)
    elif kin.image_size is not None and tuple(kin.image_size) != size:
        lines = [f"{kin.path}: keypoints of a {kin.image_size[1]} x {kin.image_size[0]} image, {Path(image).name} "
                 f"is {size[1]} x {size[0]}: a file for another image?"]
    else:
        lines = []
    if lines:
        raise ExposeError(lines[0], hint="give the keypoints of this image", exit_code=2)
    return size


@dataclass
class Start:
    """Starting parameters per person and frame (``[P * F, n]``, person-major) from `expose infer`."""

    params: dict[str, np.ndarray]
    present: np.ndarray                  # [P, F] bool
    problems: list[str] = field(default_factory=list)
    focal_length: float | None = None    # px
    image_size: tuple[int, int] | None = None


def _person_file(folder: Path, person: int) -> Path | None:
    for ext in ("npz", "json"):
        path = folder / f"person_{person:02d}.{ext}"
        if path.is_file():
            return path
    return None


def _read_person(path: Path) -> dict:
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            return {k: np.asarray(data[k]) for k in data.files if k not in ("vertices", "vertices_camera", "faces")}
    return {k: np.asarray(v) for k, v in json.loads(path.read_text()).items()}


def _frame_folders(root: Path) -> list[Path]:
    frames = sorted(p for p in root.iterdir() if p.is_dir() and re.fullmatch(r"frame_\d+", p.name))
    return frames or [root]


def read_start(path: str | Path, persons: int, frames: int) -> Start:
    """The start of ``persons`` x ``frames`` fits from an `expose infer` output (module docstring).
    A person (or frame) without a file is one line in ``problems`` and not ``present``."""
    root = Path(path)
    if not root.exists():
        raise _bad(root, "start not found", "give the `expose infer` output folder of this input, or leave "
                   f"{option('start')} out to start from the mean pose")
    folders = [root.parent] if root.is_file() else _frame_folders(root)
    if len(folders) != frames:
        raise _bad(root, f"{len(folders)} frame(s) of starts for {frames} frame(s) of keypoints",
                   "give the infer output of the same frames")
    params = {name: np.zeros((persons * frames, SIZES[name])) for name in SIZES}
    present = np.zeros((persons, frames), dtype=bool)
    problems, focal, size = [], None, None
    for f, folder in enumerate(folders):
        for p in range(persons):
            file = root if root.is_file() and p == 0 else _person_file(folder, p)
            if file is None:
                problems.append(f"{folder}: no person_{p:02d}.npz or .json to start person {p} from; not fitted")
                continue
            try:
                arrays = _read_person(file)
            except (OSError, ValueError) as exc:
                problems.append(f"{file}: cannot read the start ({exc}); person {p} not fitted")
                continue
            missing = [k for k in START_FIELDS if k not in arrays and k not in ("jaw_pose_aa", "expression",
                                                                                   "left_hand_pose_aa", "right_hand_pose_aa")]
            if missing:
                problems.append(f"{file}: not an `expose infer` person file (no {', '.join(missing)}); person {p} "
                                "not fitted")
                continue
            for key, name in START_FIELDS.items():
                if key in arrays:
                    params[name][p * frames + f] = np.asarray(arrays[key], dtype=np.float64).reshape(-1)[:SIZES[name]]
            present[p, f] = True
            focal = float(arrays["focal_length"]) if "focal_length" in arrays else focal
            size = tuple(int(v) for v in np.asarray(arrays["image_size"]).reshape(-1)[:2]) if "image_size" in arrays else size
    return Start(params, present, problems, focal, size)


#: Parameter sizes per row (axis-angles: 3 per joint), as the objective's.
SIZES = {"global_orient": 3, "transl": 3, "body_pose": 63, "betas": 10, "left_hand_pose": 45,
         "right_hand_pose": 45, "expression": 10, "jaw_pose": 3}
