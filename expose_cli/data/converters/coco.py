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
from pathlib import Path

import numpy as np

from expose_cli.body_models.keypoints import convert_keypoints
from expose_cli.errors import ExposeError

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


def _sample(ann: dict, images: dict, image_dir: str, wholebody: bool, stats) -> dict | None:
    """One annotation -> sample, None when dropped by the limb filter; ValueError when malformed."""
    kp = _keypoints(ann, "keypoints", 17)
    if ann.get("iscrowd", 0):
        stats.drop("crowd")
        return None
    if not np.all(kp[5:17, 2] > 0):
        stats.drop("limb joints not all labelled" if ann.get("num_keypoints", 0) else "no keypoints")
        return None
    img = images.get(ann.get("image_id"))
    if img is None:
        raise ValueError(f"refers to unknown image {ann.get('image_id')}")
    box = _bbox(ann)
    kp[:, 2] = (kp[:, 2] > 0).astype(np.float32)
    if wholebody:
        full = np.zeros((133, 3), np.float32)
        full[:17] = kp
        for key, valid, sl in (("foot_kpts", "foot_valid", slice(17, 23)), ("face_kpts", "face_valid", slice(23, 91)),
                               ("lefthand_kpts", "lefthand_valid", slice(91, 112)),
                               ("righthand_kpts", "righthand_valid", slice(112, 133))):
            if ann.get(valid):
                full[sl] = _keypoints(ann, key, sl.stop - sl.start)
        kp2d = convert_keypoints(full, "coco_wholebody", "smplx")[0]
    else:
        kp2d = convert_keypoints(kp, "coco", "smplx")[0]
    try:
        size = (int(img["height"]), int(img["width"]))
        image_path = f"{image_dir}/{img['file_name']}"
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"its image {ann.get('image_id')} has no file_name / height / width") from exc
    return {"image_path": image_path, "image_size": size, "bbox_xywh": box, "keypoints2d": kp2d}


def iter_samples(root: Path, split: str, stats, options: dict) -> Iterator[dict]:
    path, image_dir, wholebody = _files(root, split)
    try:
        data = json.loads(path.read_text())
        images = {img["id"]: img for img in data["images"]}
        annotations = sorted(data["annotations"], key=lambda a: a["image_id"])
    except FileNotFoundError as exc:
        raise ExposeError("missing annotation file", path=path) from exc
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ExposeError(f"not a COCO keypoints json ({type(exc).__name__}: {exc})", path=path) from exc
    del data
    for ann in annotations:
        try:
            sample = _sample(ann, images, image_dir, wholebody, stats)
        except ValueError as exc:
            if options.get("skip_bad"):
                stats.drop("malformed annotation")
                continue
            raise ExposeError(f"annotation {ann.get('id')}: {exc}", path=path) from exc
        if sample is not None:
            yield sample
