"""COCO person keypoints (2014, 2017), with COCO-WholeBody when its json is present.

Splits ``train2014``, ``val2014`` (``annotations/person_keypoints_<split>.json``, images
``<split>/``) and ``train2017``, ``val2017`` (``train_2017/annotations/...``, images
``train_2017/<split>/``; ``coco_wholebody_<train|val>_v1.0.json`` in ``annotations/`` is used instead
when present). A split is present when its json is. As MMHuman3D: annotations in image-id order;
a person is kept only when all 12 limb joints (shoulders to ankles) are labelled, which drops crowd
and unlabelled persons (counted); visibility binarised (v > 0 -> 1); WholeBody hand and face scores kept, each part only when its
``*_valid`` flag is set. A malformed annotation (keypoints not 51 numbers, an unknown image, a bad
box) stops with its id and the json file, or with ``--skip-bad`` is dropped ("malformed annotation").
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from itertools import repeat
from operator import itemgetter
from pathlib import Path

import numpy as np

from expose_cli.body_models.keypoints import convert_keypoints
from expose_cli.data.hdf5 import SampleBlock
from expose_cli.errors import ExposeError
from expose_cli.io.json_cut import gc_paused, load_cut

SPLITS = ("train2014", "val2014", "train2017", "val2017")
VERSION = "1"


def _files(root: Path, split: str) -> tuple[Path, str, bool]:
    year = split[-4:]
    part = split[:-4]
    if year == "2014":
        return root / "annotations" / f"person_keypoints_{split}.json", split, False
    whole = root / "annotations" / f"coco_wholebody_{part}_v1.0.json"
    if whole.is_file():
        return whole, f"train_2017/{split}", True
    return root / "train_2017" / "annotations" / f"person_keypoints_{split}.json", f"train_2017/{split}", False


def split_present(root: Path, split: str) -> bool:
    return _files(root, split)[0].is_file()


def expected_input(split: str) -> str:
    if split.endswith("2014"):
        return f"annotations/person_keypoints_{split}.json"
    return (f"train_2017/annotations/person_keypoints_{split}.json or "
            f"annotations/coco_wholebody_{split[:-4]}_v1.0.json")


#: WholeBody's extra parts: (points key, valid key, rows in the 133-point layout).
PARTS = (("foot_kpts", "foot_valid", slice(17, 23)), ("face_kpts", "face_valid", slice(23, 91)),
         ("lefthand_kpts", "lefthand_valid", slice(91, 112)), ("righthand_kpts", "righthand_valid", slice(112, 133)))
#: Annotations handled per vectorised step (bounded memory; output order and counts unchanged).
CHUNK = 4096


class _Annotations:
    """A COCO json's images (by id) and annotations, with the point lists parsed into arrays.

    ``rows[key][i]`` is the row of annotation ``i``'s ``key`` points in ``values[key]`` (``[rows,
    count, 3]`` float32), or -1 where the annotation holds its own value (then read as before).
    """

    def __init__(self, images: dict, annotations: list, values: dict, rows: dict) -> None:
        self.images, self.annotations, self.values, self.rows = images, annotations, values, rows

    def points(self, i: int, key: str, count: int) -> np.ndarray:
        """Annotation ``i``'s ``key`` as ``[count, 3]`` float32; ValueError naming the problem."""
        row = self.rows[key][i] if key in self.rows else -1
        if row >= 0:
            return self.values[key][row].copy()
        return _keypoints(self.annotations[i], key, count)


def _point_keys(wholebody: bool) -> dict[str, int]:
    keys = {"keypoints": 17}
    if wholebody:
        keys.update({key: sl.stop - sl.start for key, _valid, sl in PARTS})
    return keys


def _fast_load(path: Path, wholebody: bool) -> _Annotations | None:
    """The json with polygons and point lists cut out before parsing (:mod:`json_cut`); None when
    the file is not of the plain form that allows it (then it is parsed in full)."""
    keys = _point_keys(wholebody)
    cut = load_cut(path, {key: 3 * count for key, count in keys.items()}, ("segmentation",))
    if cut is None or type(cut.document) is not dict:
        return None
    annotations = cut.document.get("annotations")
    if type(annotations) is not list or type(cut.document.get("images")) is not list:
        return None
    rows = {key: cut.rows_of(key, annotations) for key in [*keys, "segmentation"]}
    if any(r is None for r in rows.values()):
        return None
    images = {img["id"]: img for img in cut.document["images"]}
    values = {key: cut.values[key].reshape(-1, count, 3) for key, count in keys.items()}
    return _Annotations(images, annotations, values, rows)


def _load(path: Path, wholebody: bool) -> _Annotations:
    try:
        loaded = _fast_load(path, wholebody)
        if loaded is None:
            data = json.loads(path.read_text())
            # list(): iterated as before (sorted() of a non-list fails or not as it did)
            loaded = _Annotations({img["id"]: img for img in data["images"]}, list(data["annotations"]), {}, {})
    except FileNotFoundError as exc:
        raise ExposeError("missing annotation file", path=path) from exc
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ExposeError(f"not a COCO keypoints json ({type(exc).__name__}: {exc})", path=path) from exc
    return loaded


def _keypoints(ann: dict, key: str, count: int) -> np.ndarray:
    """``ann[key]`` as ``[count, 3]``; ValueError naming the problem otherwise."""
    values = ann.get(key)
    if not isinstance(values, list) or len(values) != 3 * count:
        size = len(values) if isinstance(values, list) else type(values).__name__
        raise ValueError(f"{key} is not {3 * count} numbers (found {size})")
    try:
        return np.asarray(values, np.float32).reshape(count, 3)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{key} holds a value that is not a number") from exc


def _bbox(ann: dict) -> np.ndarray:
    box = ann.get("bbox")
    try:
        out = np.asarray(box, np.float32)
    except (TypeError, ValueError) as exc:
        raise ValueError("bbox is not 4 numbers") from exc
    if out.shape != (4,):
        raise ValueError("bbox is not 4 numbers")
    return out


def _sample(data: _Annotations, i: int, image_dir: str, wholebody: bool) -> dict | str:
    """Annotation ``i`` -> sample, or the reason it is dropped by the limb filter; ValueError when
    malformed. One annotation at a time (the reference for :func:`_chunk_events`)."""
    ann = data.annotations[i]
    kp = data.points(i, "keypoints", 17)
    if ann.get("iscrowd", 0):
        return "crowd"
    if not np.all(kp[5:17, 2] > 0):
        return "limb joints not all labelled" if ann.get("num_keypoints", 0) else "no keypoints"
    img = data.images.get(ann.get("image_id"))
    if img is None:
        raise ValueError(f"refers to unknown image {ann.get('image_id')}")
    box = _bbox(ann)
    kp[:, 2] = (kp[:, 2] > 0).astype(np.float32)
    if wholebody:
        full = np.zeros((133, 3), np.float32)
        full[:17] = kp
        for key, valid, sl in PARTS:
            if ann.get(valid):
                full[sl] = data.points(i, key, sl.stop - sl.start)
        kp2d = convert_keypoints(full, "coco_wholebody", "smplx")[0]
    else:
        kp2d = convert_keypoints(kp, "coco", "smplx")[0]
    try:
        size = (int(img["height"]), int(img["width"]))
        image_path = f"{image_dir}/{img['file_name']}"
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"its image {ann.get('image_id')} has no file_name / height / width") from exc
    return {"image_path": image_path, "image_size": size, "bbox_xywh": box, "keypoints2d": kp2d}


def _exact_events(data: _Annotations, order: list[int], path: Path, image_dir: str, wholebody: bool,
                  skip_bad: bool) -> list:
    """Samples, drop reasons and (at most one, last) error of the annotations ``order``, one by one."""
    events: list = []
    for i in order:
        try:
            events.append(_sample(data, i, image_dir, wholebody))
        except ValueError as exc:
            if not skip_bad:
                error = ExposeError(f"annotation {data.annotations[i].get('id')}: {exc}", path=path)
                error.__cause__ = exc
                events.append(error)
                break
            events.append("malformed annotation")
    return events


def _chunk_events(data: _Annotations, order: list[int], image_dir: str,
                  wholebody: bool) -> tuple[list, SampleBlock] | None:
    """What :func:`_exact_events` gives for well-formed annotations, computed a chunk at a time:
    per annotation its drop reason or None (kept), and the kept rows as one block; None when an
    annotation needs the one-by-one path (a malformed one, or a value of an unusual form)."""
    try:
        anns = list(map(data.annotations.__getitem__, order))
        rows = data.rows["keypoints"][order] if data.rows else None
        if rows is None or (rows < 0).any():
            return None
        kp = data.values["keypoints"][rows]
        limbs = (kp[:, 5:17, 2] > 0).all(axis=1)
        crowd = np.fromiter(map(bool, map(dict.get, anns, repeat("iscrowd"), repeat(0))), bool, len(anns))
        kept = np.flatnonzero(limbs & ~crowd).tolist()
        kept_anns = list(map(anns.__getitem__, kept))
        images = list(map(data.images.get, map(dict.get, kept_anns, repeat("image_id"))))
        boxes = np.asarray(list(map(dict.get, kept_anns, repeat("bbox"))), np.float32).reshape(-1, 4)
        if any(img is None for img in images) or boxes.shape != (len(kept), 4):
            return None
        sizes = [(int(img["height"]), int(img["width"])) for img in images]
        paths = [f"{image_dir}/{img['file_name']}" for img in images]
        kp2d = _kept_keypoints(data, kp[kept], [order[j] for j in kept], wholebody)
    except (KeyError, TypeError, ValueError, IndexError):
        return None
    if kp2d is None:
        return None
    reasons = ["crowd" if crowd[j] else None if limbs[j] else
               "limb joints not all labelled" if a.get("num_keypoints", 0) else "no keypoints" for j, a in enumerate(anns)]
    return reasons, SampleBlock({"image_path": paths, "image_size": sizes, "bbox_xywh": boxes, "keypoints2d": kp2d})


def _kept_keypoints(data: _Annotations, kp: np.ndarray, kept: list[int], wholebody: bool) -> np.ndarray | None:
    """``[k, 144, 3]`` SMPL-X keypoints of the kept annotations (visibility binarised; WholeBody
    parts where valid); None when a valid part's points were not cut out (read one by one)."""
    kp[:, :, 2] = (kp[:, :, 2] > 0).astype(np.float32)
    if not wholebody:
        return convert_keypoints(kp, "coco", "smplx")[0]
    full = np.zeros((len(kp), 133, 3), np.float32)
    full[:, :17] = kp
    for key, valid, sl in PARTS:
        which = [j for j, i in enumerate(kept) if data.annotations[i].get(valid)]
        rows = data.rows[key][[kept[j] for j in which]]
        if (rows < 0).any():
            return None
        full[which, sl] = data.values[key][rows]
    return convert_keypoints(full, "coco_wholebody", "smplx")[0]


def iter_samples(root: Path, split: str, stats, options: dict) -> Iterator[dict]:
    # No cyclic garbage collection meanwhile: nothing here makes cycles, and each collection would
    # walk the millions of objects of the parsed json (0.3 s of a 2.5 s train2017 conversion).
    with gc_paused():
        yield from _samples(root, split, stats, options)


def _samples(root: Path, split: str, stats, options: dict) -> Iterator[dict]:
    path, image_dir, wholebody = _files(root, split)
    data = _load(path, wholebody)
    try:
        image_ids = list(map(itemgetter("image_id"), data.annotations))  # in C: ann["image_id"] for each
        order = sorted(range(len(image_ids)), key=image_ids.__getitem__)
    except (KeyError, TypeError) as exc:
        raise ExposeError(f"not a COCO keypoints json ({type(exc).__name__}: {exc})", path=path) from exc
    skip_bad = bool(options.get("skip_bad"))
    for lo in range(0, len(order), CHUNK):
        chunk = order[lo:lo + CHUNK]
        fast = _chunk_events(data, chunk, image_dir, wholebody)
        if fast is not None:
            yield from _replay_block(*fast, stats, bool(options.get("blocks")))
            continue
        events = _exact_events(data, chunk, path, image_dir, wholebody, skip_bad)
        if options.get("blocks"):
            yield from _as_block(events, stats)
            continue
        for event in events:  # in annotation order, so --limit stops where it did one by one
            if type(event) is dict:
                yield event
            elif type(event) is str:
                stats.drop(event)
            else:
                raise event


def _replay_block(reasons: list, block: SampleBlock, stats, blocks: bool) -> Iterator[dict | SampleBlock]:
    """A fast chunk: its drops counted and ``block`` yielded whole, or (``blocks`` off) drops and
    rows one by one in annotation order (so --limit stops where it did)."""
    if blocks:
        for reason in reasons:
            if reason is not None:
                stats.drop(reason)
        if block.rows:
            yield block
        return
    rows = iter(range(block.rows))
    for reason in reasons:
        if reason is None:
            k = next(rows)
            yield {key: column[k] for key, column in block.items()}
        else:
            stats.drop(reason)


def _as_block(events: list, stats) -> Iterator[SampleBlock]:
    """A chunk's samples as one block (its drops counted in order; an error raised)."""
    samples = []
    for event in events:
        if type(event) is dict:
            samples.append(event)
        elif type(event) is str:
            stats.drop(event)
        else:
            raise event
    if samples:
        yield SampleBlock({key: [s[key] for s in samples] for key in samples[0]})


def image_root(root: Path) -> Path:
    """The folder the image paths are relative to: the raw folder itself."""
    return root


def file_attrs(options: dict) -> dict:
    """Extra attributes of the written file: none."""
    return {}
