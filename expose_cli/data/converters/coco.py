"""COCO person keypoints (2014, 2017), with COCO-WholeBody when its json is present.

Splits ``train2014``, ``val2014`` (``annotations/person_keypoints_<split>.json``, images
``<split>/``) and ``train2017``, ``val2017`` (``train_2017/annotations/...``, images
``train_2017/<split>/``; ``coco_wholebody_<train|val>_v1.0.json`` in ``annotations/`` is used instead
when present). As MMHuman3D: annotations in image-id order; a person is kept only when all 12 limb
joints (shoulders to ankles) are labelled, which drops crowd and unlabelled persons (counted);
visibility binarised (v > 0 -> 1); WholeBody hand and face scores kept, each part only when its
``*_valid`` flag is set.
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
        kp = np.asarray(ann.get("keypoints", []), np.float32).reshape(-1, 3)
        if kp.shape != (17, 3):
            raise ExposeError(f"annotation {ann.get('id')}: expected 17 keypoints", path=path)
        if ann.get("iscrowd", 0):
            stats.drop("crowd")
            continue
        if not np.all(kp[5:17, 2] > 0):
            stats.drop("limb joints not all labelled" if ann.get("num_keypoints", 0) else "no keypoints")
            continue
        img = images.get(ann["image_id"])
        if img is None:
            raise ExposeError(f"annotation {ann.get('id')} refers to unknown image {ann['image_id']}", path=path)
        kp[:, 2] = (kp[:, 2] > 0).astype(np.float32)
        if wholebody:
            full = np.zeros((133, 3), np.float32)
            full[:17] = kp
            for key, valid, sl in (("foot_kpts", "foot_valid", slice(17, 23)), ("face_kpts", "face_valid", slice(23, 91)),
                                   ("lefthand_kpts", "lefthand_valid", slice(91, 112)),
                                   ("righthand_kpts", "righthand_valid", slice(112, 133))):
                if ann.get(valid):
                    full[sl] = np.asarray(ann[key], np.float32).reshape(-1, 3)
            kp2d = convert_keypoints(full, "coco_wholebody", "smplx")[0]
        else:
            kp2d = convert_keypoints(kp, "coco", "smplx")[0]
        yield {"image_path": f"{image_dir}/{img['file_name']}", "image_size": (img["height"], img["width"]),
               "bbox_xywh": np.asarray(ann["bbox"], np.float32), "keypoints2d": kp2d}
