"""SPIN's fits in SMPL-X (``spin_in_smplx/{coco,lsp,lspet,mpii}.npz``); each file is one split.

Keys: ``imgname``, ``center`` (px), ``scale`` (box side / 200), ``part`` [N, 24, 3], ``pose``
[N, 165] or [N, 55, 3], ``betas``, ``has_smpl``. Rows with ``has_smpl == 0`` are dropped (counted);
in ``lsp``, rows 9 and 11 of the 27th kept sample's ``part`` are swapped (a known bad annotation,
fixed the same way by MMHuman3D and ExPose); box = ``center -/+ 100 scale``; confidences binarised
(head points >= 0.4, others >= 0.1). Images: ``coco/train2014/``, ``lsp/lsp_dataset_original/images/``,
``lsp/lspet/images/``, ``mpii/images/`` under ``data/datasets/`` (a folder part already in
``imgname`` is dropped; bytes names are decoded). Arrays are shape-checked first (e.g. an SMPL
``pose`` [N, 72] stops with the file and key; with ``--skip-bad`` the split is skipped).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from expose_cli.body_models.keypoints import convert_keypoints, get_convention
from expose_cli.data.converters._common import (
    check_min_columns,
    check_shape,
    load_npz,
    smplx_pose_fields,
    text,
)

SPLITS = ("coco", "lsp", "lspet", "mpii")
VERSION = "1"
KEYS = ("imgname", "center", "scale", "part", "pose", "betas", "has_smpl")
PREFIX = {"coco": "coco/train2014", "lsp": "lsp/lsp_dataset_original/images", "lspet": "lsp/lspet/images",
          "mpii": "mpii/images"}
HEAD = {"nose", "left_eye", "right_eye", "left_ear", "right_ear", "head_top"}


def image_root(root: Path) -> Path:
    return root.parent


def split_present(root: Path, split: str) -> bool:
    return (root / f"{split}.npz").is_file()


def expected_input(split: str) -> str:
    return f"{split}.npz"


def _check(path: Path, data: dict) -> None:
    """Shapes of the arrays, before anything is converted (BadInputFile naming the key)."""
    check_shape(path, "imgname", data["imgname"], ())
    check_shape(path, "center", data["center"], (2,))
    check_shape(path, "scale", data["scale"], (), (1,))
    check_shape(path, "part", data["part"], (24, 3))
    check_shape(path, "pose", data["pose"], (165,), (55, 3))
    check_min_columns(path, "betas", data["betas"], 10)


def iter_samples(root: Path, split: str, stats, options: dict) -> Iterator[dict]:
    path = root / f"{split}.npz"
    data = load_npz(path, KEYS)
    _check(path, data)
    keep = np.flatnonzero(np.asarray(data["has_smpl"]).reshape(-1) > 0)
    stats.dropped["has_smpl == 0"] += len(data["imgname"]) - len(keep)
    names = get_convention("spin_smplx").names
    thresholds = np.array([0.4 if n in HEAD else 0.1 for n in names], np.float32)
    for k, i in enumerate(keep):
        part = np.array(data["part"][i], np.float32)
        if split == "lsp" and k == 26:
            part[[9, 11]] = part[[11, 9]]
            stats.note("LSP bad annotation swapped (rows 9 and 11 of sample 27)")
        part[:, 2] = (part[:, 2] >= thresholds).astype(np.float32)
        c, s = np.asarray(data["center"][i], np.float64), float(np.asarray(data["scale"][i]).reshape(-1)[0]) * 200.0
        sample = {
            "image_path": f"{PREFIX[split]}/{Path(text(data['imgname'][i])).name}",
            "bbox_xywh": np.array([c[0] - s / 2, c[1] - s / 2, s, s], np.float32),
            "keypoints2d": convert_keypoints(part, "spin_smplx", "smplx")[0],
            "smplx/betas": np.asarray(data["betas"][i]).reshape(-1)[:10],
            **smplx_pose_fields(np.asarray(data["pose"][i]).reshape(55, 3)),
        }
        yield sample


def file_attrs(options: dict) -> dict:
    """Extra attributes of the written file: none."""
    return {}
