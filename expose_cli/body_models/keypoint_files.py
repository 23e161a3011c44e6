"""Keypoint files in the conventions users have, read onto the SMPL-X keypoint order (docs/keypoints.md).

:func:`read_keypoints` reads

- ``expose infer --save-keypoints`` output (``keypoints.json``, format ``expose-keypoints``);
- OpenPose's ``*_keypoints.json`` (what ExPose's own demo reads): ``people[i].pose_keypoints_2d``
  (BODY_25), ``hand_left_keypoints_2d`` / ``hand_right_keypoints_2d`` (21 each) and
  ``face_keypoints_2d`` (70), flat ``x, y, confidence`` lists; an empty list is a part not run;
- COCO-WholeBody results (a list of ``{"keypoints", "foot_kpts", "face_kpts", "lefthand_kpts",
  "righthand_kpts"}``, 17 + 6 + 68 + 21 + 21 points) and MMPose's prediction files
  (``instance_info[i].keypoints`` + ``keypoint_scores``);
- arrays (``.npy``, or ``.npz`` with ``keypoints`` and optionally ``convention``, ``image`` and
  ``image_size`` (height, width)) shaped
  ``[K, C]``, ``[persons, K, C]`` or ``[persons, frames, K, C]`` with ``C = 3`` (x, y px,
  confidence) or ``4`` (x, y, z metres, confidence), in
  ``coco_wholebody`` (133), ``openpose_137`` (BODY_25, left hand, right hand, face 70),
  ``openpose_25``, ``h36m`` (17), ``coco`` (17) or ``smplx`` (144, or its first 127 or 55).

Every reader gives a :class:`KeypointFile`: the points as read, the same points in the SMPL-X
order of :mod:`expose_cli.body_models.keypoints` (144; confidence 0 where the convention has no
such point) and the mask of the SMPL-X points the convention provides. A file that cannot be used
at all raises one :class:`~expose_cli.errors.ExposeError` naming it; a bad person (NaN, all
confidences zero) is marked invalid with one line naming the file and the person, the others stay.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from expose_cli.body_models.keypoints import convert_keypoints, get_convention
from expose_cli.errors import ExposeError
from expose_cli.utils.atomic import write_json_atomic

FORMAT = "expose-keypoints"
FORMAT_VERSION = 1
#: Conventions an array file may be in, and the point counts they are recognised by.
ARRAY_CONVENTIONS = ("coco_wholebody", "openpose_137", "openpose_25", "h36m", "coco", "smplx", "smpl")
_BY_COUNT = {133: "coco_wholebody", 137: "openpose_137", 25: "openpose_25", 144: "smplx", 127: "smplx", 55: "smplx",
             24: "smpl"}
_SMPLX_COUNTS = (55, 127, 144)
_OPENPOSE_PARTS = (("pose_keypoints_2d", 25), ("hand_left_keypoints_2d", 21), ("hand_right_keypoints_2d", 21),
                   ("face_keypoints_2d", 70))
_WHOLEBODY_PARTS = (("keypoints", 17), ("foot_kpts", 6), ("face_kpts", 68), ("lefthand_kpts", 21),
                    ("righthand_kpts", 21))


@dataclass
class KeypointFile:
    """Keypoints of one file. ``points`` is ``[..., K, C]`` as read (leading axes: persons, or
    persons x frames), ``C = 3`` (x, y px; confidence) or ``4`` (x, y, z m; confidence);
    ``smplx`` is ``[..., 144, C]`` in the SMPL-X order, ``mask[144]`` the points ``convention``
    provides, ``valid[...]`` the persons without a problem, ``problems`` one line per bad person."""

    path: Path
    convention: str
    points: np.ndarray
    smplx: np.ndarray = field(init=False)
    mask: np.ndarray = field(init=False)
    valid: np.ndarray = field(init=False)
    problems: list[str] = field(default_factory=list)
    image: str | None = None
    image_size: tuple[int, int] | None = None  # height, width, when the file says
    boxes: np.ndarray | None = None  # [P, 4] x1, y1, x2, y2 px, when the file has them

    def __post_init__(self) -> None:
        self.valid, self.problems = _check_persons(self.path, self.points)
        finite = np.isfinite(self.points).all(axis=-1, keepdims=True)  # a point with a NaN: all zero, unseen
        self.smplx, self.mask = to_smplx(np.where(finite, self.points, 0.0), self.convention)

    @property
    def persons(self) -> int:
        return int(self.points.shape[0])

    def persons_frames(self) -> tuple[np.ndarray, np.ndarray]:
        """(``[P, F, 144, C]`` SMPL-X-order points, ``[P, F]`` validity): one frame for a file of
        an image, the frames of a sequence file."""
        if self.smplx.ndim == 3:
            return self.smplx[:, None], self.valid[:, None]
        return self.smplx, self.valid


def to_smplx(points: np.ndarray, convention: str) -> tuple[np.ndarray, np.ndarray]:
    """``[..., K, C]`` in ``convention`` -> (``[..., 144, C]`` in SMPL-X order, ``mask[144]``).

    SMPL-X's own joints come as 144 points, or as the first 127 (no face contour) or 55 (the
    skeleton) of that order. Missing points are 0 (confidence 0)."""
    if convention == "smplx":
        k = points.shape[-2]
        full = np.zeros((*points.shape[:-2], 144, points.shape[-1]), dtype=np.float64)
        full[..., :k, :] = points
        mask = np.zeros(144, dtype=bool)
        mask[:k] = True
        return full, mask
    out, mask = convert_keypoints(np.asarray(points, dtype=np.float64), convention, "smplx")
    return out, mask


def _check_persons(path: Path, points: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Per person: NaN / infinite values, or every confidence zero, make it invalid (one line each)."""
    lead = points.shape[:-2]
    finite = np.isfinite(points).all(axis=(-1, -2))
    seen = (np.nan_to_num(points[..., -1]) > 0).any(axis=-1)
    valid = finite & seen
    problems = []
    for idx in zip(*np.nonzero(~valid), strict=True):
        who = " ".join(f"{name} {i}" for name, i in zip(("person", "frame")[:len(lead)], idx, strict=True))
        why = "NaN or infinite values" if not finite[idx] else "all confidences are zero"
        problems.append(f"{path}: {who}: {why}")
    return valid, problems


def _bad(path: Path, message: str, hint: str | None = None) -> ExposeError:
    return ExposeError(message, hint=hint or "see docs/keypoints.md for the formats read", path=path, exit_code=2)


def read_keypoints(path: str | Path, convention: str | None = None) -> KeypointFile:
    """Read a keypoint file (see the module docstring). ``convention`` names the convention of an
    array file (else its ``convention`` entry or its point count decides)."""
    path = Path(path)
    if not path.is_file():
        raise _bad(path, "keypoint file not found", "check the path")
    suffix = path.suffix.lower()
    if suffix in (".npy", ".npz"):
        return _read_array(path, convention)
    if suffix != ".json":
        raise _bad(path, f"unknown keypoint file type {suffix!r}", "give a .json, .npy or .npz file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise _bad(path, f"cannot read JSON: {exc}") from exc
    if isinstance(data, dict) and data.get("format") == FORMAT:
        return _read_ours(path, data)
    if isinstance(data, dict) and "people" in data:
        return _read_openpose(path, data)
    if isinstance(data, dict) and "instance_info" in data:
        return _read_mmpose(path, data)
    if isinstance(data, list) and all(isinstance(d, dict) and "keypoints" in d for d in data):
        return _read_wholebody_results(path, data)
    raise _bad(path, "not a keypoint file this reader knows (expose-keypoints, OpenPose *_keypoints.json, "
                     "COCO-WholeBody results, MMPose predictions)")


def read_keypoint_sequence(paths, convention: str | None = None) -> KeypointFile:
    """Per-frame keypoint files (e.g. OpenPose's ``*_keypoints.json`` of a video, sorted by name
    when given as a folder; or a video's `expose infer --save-keypoints` folder, its
    ``frame_*/keypoints.json``) as one ``[P, F, K, C]`` sequence. Persons are matched by their index in
    each file (OpenPose does not track them); a person absent from a frame has confidence 0 there
    and is not valid, without a line of its own. All files must share one convention."""
    paths = _sequence_paths(paths)
    files = [read_keypoints(p, convention) for p in paths]
    conventions = {f.convention for f in files}
    if len(conventions) != 1:
        raise _bad(paths[0].parent, f"frames in several conventions ({', '.join(sorted(conventions))})")
    if any(f.points.ndim != 3 for f in files):
        raise _bad(paths[0].parent, "a frame file holds a sequence itself", "give one file per frame")
    k, c = files[0].points.shape[-2:]
    if any(f.points.shape[-1] != c for f in files):
        raise _bad(paths[0].parent, "frames with 2D and 3D points mixed")
    points = np.zeros((max(f.persons for f in files), len(files), k, c))
    for t, f in enumerate(files):
        points[:f.persons, t] = f.points
    seq = KeypointFile(paths[0].parent, conventions.pop(), points)
    # invalid: the frames' bad persons and the absent ones; lines: only the frames' own, naming each file
    seq.problems = [line for f in files for line in f.problems]
    seq.image_size = files[0].image_size
    return seq


def _sequence_paths(paths) -> list[Path]:
    if isinstance(paths, (str, Path)) and Path(paths).is_dir():
        folder = Path(paths)
        found = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".json", ".npy", ".npz"))
        found = [p for p in found if p.name not in ("result.json", "summary.json", "tracks.json")]
        found = found or sorted(folder.glob("frame_*/keypoints.json"))  # a video's `expose infer` output
        if not found:
            raise _bad(folder, "no keypoint files (.json, .npy, .npz) in the folder")
        return found
    found = [Path(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
    if not found:
        raise ValueError("no keypoint files given")
    return found


def _array(path: Path, values, count: int, what: str, dims: int = 3) -> np.ndarray:
    """A flat or nested list of ``count`` points of ``dims`` numbers -> ``[count, dims]``; an empty
    list is a part that was not run (zeros)."""
    if values is None or (isinstance(values, list) and len(values) == 0):
        return np.zeros((count, dims))
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise _bad(path, f"{what} is not a list of numbers") from exc
    if arr.size != count * dims:
        raise _bad(path, f"{what} has {arr.size} numbers; expected {count} points x {dims} = {count * dims}",
                   _other_convention_hint(what, arr.size // dims))
    return arr.reshape(count, dims)


def _other_convention_hint(what: str, points: int) -> str:
    if what.endswith("pose_keypoints_2d") and points == 18:
        return "this is OpenPose's COCO-18 body model; run OpenPose with --model_pose BODY_25"
    if points in _BY_COUNT:
        return f"{points} points look like {_BY_COUNT[points]}: give the file in its own format"
    return "see docs/keypoints.md for the conventions read"


def _read_openpose(path: Path, data: dict) -> KeypointFile:
    people = data.get("people")
    if not isinstance(people, list):
        raise _bad(path, "'people' is not a list")
    persons = []
    for i, person in enumerate(people):
        if not isinstance(person, dict):
            raise _bad(path, f"people[{i}] is not an object")
        persons.append(np.concatenate([_array(path, person.get(key), n, f"people[{i}].{key}")
                                       for key, n in _OPENPOSE_PARTS]))
    points = np.stack(persons) if persons else np.zeros((0, 137, 3))
    return KeypointFile(path, "openpose_137", points)


def _read_wholebody_results(path: Path, data: list) -> KeypointFile:
    persons = [np.concatenate([_array(path, d.get(key), n, f"[{i}].{key}") for key, n in _WHOLEBODY_PARTS])
               for i, d in enumerate(data)]
    points = np.stack(persons) if persons else np.zeros((0, 133, 3))
    boxes = [d.get("bbox") for d in data]
    kf = KeypointFile(path, "coco_wholebody", points)
    if persons and all(isinstance(b, list) and len(b) == 4 for b in boxes):  # COCO boxes: x, y, w, h
        xywh = np.asarray(boxes, dtype=np.float64)
        kf.boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
    return kf


def _read_mmpose(path: Path, data: dict) -> KeypointFile:
    persons = []
    for i, inst in enumerate(data["instance_info"] or []):
        xy = np.asarray(inst.get("keypoints", []), dtype=np.float64)
        scores = np.asarray(inst.get("keypoint_scores", []), dtype=np.float64)
        if xy.ndim != 2 or xy.shape[1] != 2 or scores.shape != xy.shape[:1]:
            raise _bad(path, f"instance_info[{i}]: keypoints {list(xy.shape)} and keypoint_scores "
                             f"{list(scores.shape)} are not [K, 2] and [K]")
        persons.append(np.concatenate([xy, scores[:, None]], axis=1))
    counts = {p.shape[0] for p in persons}
    if len(counts) > 1 or (counts and counts != {133} and counts != {17}):
        raise _bad(path, f"{sorted(counts)} keypoints per instance; expected COCO-WholeBody's 133 or COCO's 17")
    k = counts.pop() if counts else 133
    points = np.stack(persons) if persons else np.zeros((0, k, 3))
    return KeypointFile(path, "coco_wholebody" if k == 133 else "coco", points)


def _read_ours(path: Path, data: dict) -> KeypointFile:
    if data.get("version") != FORMAT_VERSION:
        raise _bad(path, f"{FORMAT} version {data.get('version')!r}; this reader knows {FORMAT_VERSION}",
                   "write the file again with this version of `expose infer --save-keypoints`")
    convention = data.get("convention")
    if convention not in ARRAY_CONVENTIONS:
        raise _bad(path, f"convention {convention!r}; expected one of {', '.join(ARRAY_CONVENTIONS)}")
    k = len(get_convention(convention))
    persons = data.get("persons")
    if not isinstance(persons, list):
        raise _bad(path, "'persons' is not a list")
    points = np.stack([_array(path, p.get("keypoints"), k, f"persons[{i}].keypoints")
                       for i, p in enumerate(persons)]) if persons else np.zeros((0, k, 3))
    size = data.get("image_size")
    kf = KeypointFile(path, convention, points, image=data.get("image"),
                      image_size=tuple(int(v) for v in size) if size else None)
    if persons and all("bbox_xyxy" in p for p in persons):
        kf.boxes = np.asarray([p["bbox_xyxy"] for p in persons], dtype=np.float64)
    return kf


def _read_array(path: Path, convention: str | None) -> KeypointFile:
    if convention is not None and convention not in ARRAY_CONVENTIONS:
        raise _bad(path, f"unknown keypoint convention {convention!r}", f"use one of {', '.join(ARRAY_CONVENTIONS)}")
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            points, extra = loaded, {}
        else:
            with loaded:
                if "keypoints" not in loaded.files:
                    raise _bad(path, f"no 'keypoints' array in the .npz (it has {', '.join(loaded.files) or 'nothing'})")
                points = loaded["keypoints"]
                extra = {k: loaded[k] for k in ("convention", "image", "image_size") if k in loaded.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise _bad(path, f"cannot read the array file: {exc}") from exc
    if points.ndim < 2 or points.ndim > 4 or not np.issubdtype(points.dtype, np.number):
        raise _bad(path, f"keypoints of shape {list(points.shape)} ({points.dtype}); expected [persons, K, 3] "
                         "(x, y, confidence) or [..., K, 4] (x, y, z, confidence)")
    convention = convention or (str(extra["convention"]) if "convention" in extra else _BY_COUNT.get(points.shape[-2]))
    if convention is None:
        raise _bad(path, f"{points.shape[-2]} points per person could be several conventions (coco, h36m)",
                   "name it (convention coco or h36m), or store 'convention' in the .npz")
    size = extra.get("image_size")
    return KeypointFile(path, convention, _check_shape(path, points.astype(np.float64), convention),
                        image=str(extra["image"]) if "image" in extra else None,
                        image_size=tuple(int(v) for v in np.asarray(size).reshape(-1)[:2]) if size is not None else None)


def _check_shape(path: Path, points: np.ndarray, convention: str) -> np.ndarray:
    """``points`` as ``[..., K, C]`` with a person axis; K must be the convention's, C 3 or 4."""
    if convention not in ARRAY_CONVENTIONS:
        raise _bad(path, f"unknown keypoint convention {convention!r}", f"use one of {', '.join(ARRAY_CONVENTIONS)}")
    k, c = points.shape[-2:]
    counts = _SMPLX_COUNTS if convention == "smplx" else (len(get_convention(convention)),)
    if k not in counts:
        raise _bad(path, f"{k} points per person, but {convention} has {' or '.join(map(str, counts))}",
                   _other_convention_hint("", k))
    if c not in (3, 4):
        raise _bad(path, f"{c} numbers per point; expected 3 (x, y, confidence) or 4 (x, y, z, confidence)")
    return points[None] if points.ndim == 2 else points


def write_keypoints_json(path: str | Path, points: np.ndarray, *, image: str, image_size: tuple[int, int],
                         frame: int | None = None, boxes=None, model: str = "",
                         convention: str = "coco_wholebody") -> Path:
    """Write ``points`` (``[P, K, 3]``: x, y px, confidence) as an ``expose-keypoints`` file
    (docs/keypoints.md), atomically; ``boxes`` ``[P, >=4]`` (x1, y1, x2, y2 px, optional score)."""
    persons = []
    for p, kps in enumerate(np.asarray(points, dtype=np.float64)):
        person = {"person": p, "keypoints": [[round(float(v), 3) for v in row] for row in kps]}
        if boxes is not None:
            person["bbox_xyxy"] = [round(float(v), 3) for v in boxes[p][:4]]
            if len(boxes[p]) > 4:
                person["bbox_score"] = round(float(boxes[p][4]), 5)
        persons.append(person)
    data = {"format": FORMAT, "version": FORMAT_VERSION, "convention": convention, "image": image, "frame": frame,
            "image_size": [int(image_size[0]), int(image_size[1])], "model": model, "persons": persons}
    write_json_atomic(path, data)
    return Path(path)


def _named_image(kf: KeypointFile) -> str | None:
    """The stem of the image ``kf`` says it belongs to, if it says."""
    if kf.image:
        return Path(kf.image).stem
    if kf.convention == "openpose_137" and kf.path.name.endswith("_keypoints.json"):
        return kf.path.name[:-len("_keypoints.json")]
    return None


def check_image(kf: KeypointFile, image_size: tuple[int, int], image_path: str | Path | None = None,
                margin: float = 0.25) -> list[str]:
    """Lines saying why ``kf`` looks like a file for another image than ``image_path`` of
    ``image_size`` (height, width): another image named in the file (its ``image`` entry, or
    OpenPose's ``<image stem>_keypoints.json`` file name), another size in the file, or confident 2D
    points far outside the image (more than ``margin`` of its size). Empty when it fits."""
    named = _named_image(kf)
    if image_path is not None and named is not None and named != Path(image_path).stem:
        return [f"{kf.path}: keypoints of image {named!r}, not of {Path(image_path).name}: a file for another image?"]
    h, w = image_size
    if kf.image_size is not None and tuple(kf.image_size) != (h, w):
        return [f"{kf.path}: keypoints of a {kf.image_size[1]} x {kf.image_size[0]} image, this image is "
                f"{w} x {h}: a file for another image?"]
    if kf.points.shape[-1] != 3:
        return []
    pts = np.nan_to_num(kf.points)
    seen = pts[..., 2] > 0
    x, y = pts[..., 0][seen], pts[..., 1][seen]
    outside = (x < -margin * w) | (x > (1 + margin) * w) | (y < -margin * h) | (y > (1 + margin) * h)
    if outside.size and outside.mean() > 0.5:
        return [f"{kf.path}: most keypoints lie outside the {w} x {h} image: a file for another image?"]
    return []
