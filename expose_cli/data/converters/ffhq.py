"""FFHQ with MMHuman3D's ``ffhq_annotations.npz`` (FLAME fits): the face model's training set.

``ffhq_annotations.npz``: ``img_fnames``, ``global_pose``, ``jaw_pose``, ``betas`` [N, 100],
``expression`` [N, 50], ``keypoints2d`` [N, 73, 2] (px, 1024 images). Images are looked up flat in
``ffhq_global_images_1024/`` (MMHuman3D's layout), else in NVIDIA's ``images1024x1024/<thousands>/``.
Split as MMHuman3D and ExPose: train = the first ``int(0.8 N)`` rows, val = the rest. The box is
the whole 1024x1024 image; keypoint confidences are 1. ``img_fnames`` may be str or bytes (decoded).
Arrays of the wrong shape stop with the file and the key (with ``--skip-bad`` the split is skipped).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from expose_cli.body_models.keypoints import convert_keypoints
from expose_cli.data.converters._common import check_shape, load_npz, text
from expose_cli.errors import ExposeError

SPLITS = ("train", "val")
VERSION = "1"
KEYS = ("img_fnames", "global_pose", "jaw_pose", "betas", "expression", "keypoints2d")


def _image(root: Path, name: str) -> str | None:
    flat = f"ffhq_global_images_1024/{name}"
    if (root / flat).is_file():
        return flat
    stem = Path(name).stem
    if stem.isdigit():
        nested = f"images1024x1024/{int(stem) // 1000 * 1000:05d}/{name}"
        if (root / nested).is_file():
            return nested
    return None


def split_present(root: Path, split: str) -> bool:
    return (root / "ffhq_annotations.npz").is_file()


def expected_input(split: str) -> str:
    return "ffhq_annotations.npz"


def iter_samples(root: Path, split: str, stats, options: dict) -> Iterator[dict]:
    path = root / "ffhq_annotations.npz"
    ann = load_npz(path, KEYS)
    n = len(ann["img_fnames"])
    for key, shape in (("global_pose", (3,)), ("jaw_pose", (3,)), ("betas", (100,)), ("expression", (50,)),
                       ("keypoints2d", (73, 2))):
        check_shape(path, key, ann[key], shape)
    cut = int(0.8 * n)
    rows = range(cut) if split == "train" else range(cut, n)
    for i in rows:
        name = text(ann["img_fnames"][i])
        rel = _image(root, name)
        if rel is None:
            if options.get("skip_bad"):
                stats.drop("missing image")
                continue
            raise ExposeError(f"image {name} not found in ffhq_global_images_1024/ or images1024x1024/", path=root)
        kp = np.concatenate([ann["keypoints2d"][i], np.ones((73, 1))], axis=1).astype(np.float32)
        yield {
            "image_path": rel, "image_size": (1024, 1024), "bbox_xywh": np.array([0, 0, 1024, 1024], np.float32),
            "keypoints2d": convert_keypoints(kp, "flame_73", "smplx")[0],
            "flame/global_orient": ann["global_pose"][i], "flame/jaw_pose": ann["jaw_pose"][i],
            "flame/betas": ann["betas"][i], "flame/expression": ann["expression"][i], "has_flame": True,
        }


def image_root(root: Path) -> Path:
    """The folder the image paths are relative to: the raw folder itself."""
    return root


def file_attrs(options: dict) -> dict:
    """Extra attributes of the written file: none."""
    return {}
