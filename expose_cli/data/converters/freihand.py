"""FreiHAND v2 (+ evaluation annotations): the hand model's train / val / test sets.

Raw folder: ``training/rgb/%08d.jpg`` (4 versions x 32560 unique samples: id = i + 32560 k),
``evaluation/rgb/%08d.jpg`` and ``{training,evaluation}_{K,mano,xyz,verts,scale}.json`` (one entry
per unique sample). Split by UNIQUE sample, as ExPose does: train = unique ids < int(0.8 N) in all
four versions, val = the rest (MMHuman3D slices the 4N list, so its val images show samples also in
train). ``test`` reads the evaluation split. The MANO hand pose is relative to MANO's mean; when
``all_means.pkl`` is in the data tree the SMPL-X right-hand mean is added, as ExPose does; the file's
``mano_hand_mean_added`` and ``mano_right_hand_pose`` attributes say which.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from expose_cli.body_models.keypoints import convert_keypoints
from expose_cli.errors import ExposeError
from expose_cli.io.json_arrays import read_json_numbers

SPLITS = ("train", "val", "test")
VERSION = "1"
VERSIONS = 4
TRAIN_FRACTION = 0.8


def _prefix(split: str) -> str:
    return "evaluation" if split == "test" else "training"


def split_present(root: Path, split: str) -> bool:
    return (root / f"{_prefix(split)}_K.json").is_file()


def expected_input(split: str) -> str:
    return f"{_prefix(split)}_{{K,mano,xyz,verts,scale}}.json and {_prefix(split)}/rgb/"


def file_attrs(options: dict) -> dict:
    """What ``mano/right_hand_pose`` is relative to (readers must know whether to add a mean)."""
    added = options.get("right_hand_mean") is not None
    meaning = ("FreiHAND's MANO pose + the SMPL-X right-hand mean (all_means.pkl), as ExPose: a "
               "full pose (use with flat_hand_mean=True)" if added else
               "FreiHAND's MANO pose as stored: relative to MANO's mean hand pose "
               "(all_means.pkl was not found; use with flat_hand_mean=False)")
    return {"mano_hand_mean_added": added, "mano_right_hand_pose": meaning}


def _load(root: Path, prefix: str, name: str, tail: tuple[int, ...], dtype=np.float64) -> np.ndarray:
    path = root / f"{prefix}_{name}.json"
    if not path.is_file():
        raise ExposeError("missing annotation file", path=path,
                          hint="unzip FreiHAND_pub_v2 and FreiHAND_pub_v2_eval into the same folder")
    return read_json_numbers(path, tail, dtype)


def iter_samples(root: Path, split: str, stats, options: dict) -> Iterator[dict]:
    prefix = _prefix(split)
    # Parsed straight into arrays (the verts file is ~1.5 GB of text): memory stays at the arrays' size.
    K = _load(root, prefix, "K", (3, 3))
    mano = _load(root, prefix, "mano", (1, 61)).reshape(-1, 61)
    xyz = _load(root, prefix, "xyz", (21, 3))
    verts = _load(root, prefix, "verts", (778, 3), np.float32)
    scale = _load(root, prefix, "scale", ())
    n = len(K)
    for name, arr in (("mano", mano), ("xyz", xyz), ("verts", verts), ("scale", scale)):
        if len(arr) != n:
            raise ExposeError(f"{len(arr)} entries, but {prefix}_K.json has {n}", path=root / f"{prefix}_{name}.json")
    hand_mean = options.get("right_hand_mean")
    cut = int(TRAIN_FRACTION * n)
    if split == "test":
        ids = [(i, i) for i in range(n)]
    else:
        keep = range(cut) if split == "train" else range(cut, n)
        ids = [(i + n * k, i) for k in range(VERSIONS) for i in keep]
    stats.note("unique samples", cut if split == "train" else n - cut if split == "val" else n)
    for image_id, i in ids:
        rel = f"{prefix}/rgb/{image_id:08d}.jpg"
        if options.get("check_images", True) and not (root / rel).is_file():
            if options.get("skip_bad"):
                stats.drop("missing image")
                continue
            raise ExposeError("missing image", path=root / rel)
        pose = mano[i, :48].copy()
        if hand_mean is not None:
            pose[3:48] += np.asarray(hand_mean, np.float64).reshape(45)
        proj = xyz[i] @ K[i].T
        kp2d = np.concatenate([proj[:, :2] / proj[:, 2:], np.ones((21, 1))], axis=1)
        kp3d = np.concatenate([xyz[i], np.ones((21, 1))], axis=1)
        yield {
            "image_path": rel, "image_size": (224, 224), "bbox_xywh": np.array([0, 0, 224, 224], np.float32),
            "keypoints2d": convert_keypoints(kp2d.astype(np.float32), "freihand", "smplx")[0],
            "keypoints3d": convert_keypoints(kp3d.astype(np.float32), "freihand", "smplx")[0],
            "mano/global_orient": pose[:3], "mano/right_hand_pose": pose[3:48].reshape(15, 3),
            "mano/betas": mano[i, 48:58], "has_mano": True, "is_right": True,
            "camera/K": K[i], "has_camera": True,
            "vertices": verts[i], "mano_scale": scale[i],
        }
