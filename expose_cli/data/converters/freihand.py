"""FreiHAND v2 (+ evaluation annotations): the hand model's train / val / test sets.

Raw folder: ``training/rgb/%08d.jpg`` (4 versions x 32560 unique samples: id = i + 32560 k),
``evaluation/rgb/%08d.jpg`` and ``{training,evaluation}_{K,mano,xyz,verts,scale}.json`` (one entry
per unique sample). Split by UNIQUE sample, as ExPose does: train = unique ids < int(0.8 N) in all
four versions, val = the rest (MMHuman3D slices the 4N list, so its val images show samples also in
train). ``test`` reads the evaluation split. The MANO hand pose is relative to MANO's mean; when
``all_means.pkl`` is in the data tree the SMPL-X right-hand mean is added, as ExPose does; the file's
``mano_hand_mean_added`` and ``mano_right_hand_pose`` attributes say which.

Ground-truth ``vertices`` are stored in ``test`` only, where the evaluation uses them:
``training_verts.json`` (~1.7 GB of text, each mesh otherwise stored four times, once per image
version) is not read, as no training loss or benchmark uses training meshes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from expose_cli.body_models.keypoints import convert_keypoints
from expose_cli.data.hdf5 import SampleBlock
from expose_cli.errors import ExposeError
from expose_cli.io.json_arrays import read_json_numbers

SPLITS = ("train", "val", "test")
VERSION = "2"  # 2: train/val without vertices (training_verts.json not read)
VERSIONS = 4
TRAIN_FRACTION = 0.8
CHUNK = 4096  # samples whose keypoints are converted at once


def _prefix(split: str) -> str:
    return "evaluation" if split == "test" else "training"


def _annotations(split: str) -> tuple[str, ...]:
    """The json files a split reads (vertices: the evaluation split only)."""
    return ("K", "mano", "xyz", "verts", "scale") if split == "test" else ("K", "mano", "xyz", "scale")


def split_present(root: Path, split: str) -> bool:
    return (root / f"{_prefix(split)}_K.json").is_file()


def expected_input(split: str) -> str:
    return f"{_prefix(split)}_{{{','.join(_annotations(split))}}}.json and {_prefix(split)}/rgb/"


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
    arrays = {"mano": _load(root, prefix, "mano", (1, 61)).reshape(-1, 61), "xyz": _load(root, prefix, "xyz", (21, 3)),
              "scale": _load(root, prefix, "scale", ())}
    if "verts" in _annotations(split):
        arrays["verts"] = _load(root, prefix, "verts", (778, 3), np.float32)
    mano, xyz, scale, verts = arrays["mano"], arrays["xyz"], arrays["scale"], arrays.get("verts")
    n = len(K)
    for name, arr in arrays.items():
        if len(arr) != n:
            raise ExposeError(f"{len(arr)} entries, but {prefix}_K.json has {n}", path=root / f"{prefix}_{name}.json")
    cut = int(TRAIN_FRACTION * n)
    unique = range(n) if split == "test" else range(cut) if split == "train" else range(cut, n)
    versions = 1 if split == "test" else VERSIONS
    stats.note("unique samples", len(unique))
    points = _points(K, xyz, unique)
    pose = mano[:, :48].copy()
    if options.get("right_hand_mean") is not None:
        pose[:, 3:48] += np.asarray(options["right_hand_mean"], np.float64).reshape(45)
    ids = [(i + n * k, i) for k in range(versions) for i in unique]
    for lo in range(0, len(ids), CHUNK):
        chunk = ids[lo:lo + CHUNK]
        rows = np.array([points.index[i] for _image_id, i in chunk], np.int64)
        kp2d = convert_keypoints(points.kp2d[rows], "freihand", "smplx")[0]
        kp3d = convert_keypoints(points.kp3d[rows], "freihand", "smplx")[0]
        if options.get("blocks"):  # the chunk's rows at once (no --limit: drops may be counted first)
            ok = np.flatnonzero([_image_ok(root, prefix, image_id, stats, options) for image_id, _i in chunk])
            if len(ok):
                pick = np.array([chunk[j][1] for j in ok], np.int64)
                yield _block([chunk[j][0] for j in ok], prefix, kp2d[ok], kp3d[ok], pose[pick], mano[pick], K[pick],
                             scale[pick], None if verts is None else verts[pick])
            continue
        for j, (image_id, i) in enumerate(chunk):
            if not _image_ok(root, prefix, image_id, stats, options):
                continue
            sample = {
                "image_path": f"{prefix}/rgb/{image_id:08d}.jpg", "image_size": (224, 224),
                "bbox_xywh": np.array([0, 0, 224, 224], np.float32), "keypoints2d": kp2d[j], "keypoints3d": kp3d[j],
                "mano/global_orient": pose[i, :3], "mano/right_hand_pose": pose[i, 3:48].reshape(15, 3),
                "mano/betas": mano[i, 48:58], "has_mano": True, "is_right": True,
                "camera/K": K[i], "has_camera": True, "mano_scale": scale[i],
            }
            if verts is not None:
                sample["vertices"] = verts[i]
            yield sample


def _block(image_ids: list[int], prefix: str, kp2d, kp3d, pose, mano, K, scale, verts) -> SampleBlock:
    """Rows of the given images (arrays already picked per row): the per-row dicts' values."""
    k = len(image_ids)
    block = SampleBlock({
        "image_path": [f"{prefix}/rgb/{image_id:08d}.jpg" for image_id in image_ids],
        "image_size": np.full((k, 2), 224), "bbox_xywh": np.tile(np.float32([0, 0, 224, 224]), (k, 1)),
        "keypoints2d": kp2d, "keypoints3d": kp3d, "mano/global_orient": pose[:, :3],
        "mano/right_hand_pose": pose[:, 3:48].reshape(k, 15, 3), "mano/betas": mano[:, 48:58],
        "has_mano": np.ones(k, bool), "is_right": np.ones(k, bool), "camera/K": K, "has_camera": np.ones(k, bool),
        "mano_scale": scale,
    })
    if verts is not None:
        block["vertices"] = verts
    return block


@dataclass
class _Points:
    """The 21 FreiHAND points of the unique samples: ``kp2d`` ``[u, 21, 3]`` (px, confidence 1),
    ``kp3d`` ``[u, 21, 4]`` (m, confidence 1), float32; ``index[i]`` is sample ``i``'s row."""

    kp2d: np.ndarray
    kp3d: np.ndarray
    index: dict[int, int]


def _points(K: np.ndarray, xyz: np.ndarray, unique: range) -> _Points:
    """2D keypoints ``K @ xyz`` projected, and the 3D keypoints, once per unique sample (the four
    image versions share them)."""
    kp2d = np.empty((len(unique), 21, 3), np.float32)
    kp3d = np.empty((len(unique), 21, 4), np.float32)
    for row, i in enumerate(unique):
        proj = xyz[i] @ K[i].T
        kp2d[row] = np.concatenate([proj[:, :2] / proj[:, 2:], np.ones((21, 1))], axis=1)
        kp3d[row] = np.concatenate([xyz[i], np.ones((21, 1))], axis=1)
    return _Points(kp2d, kp3d, {i: row for row, i in enumerate(unique)})


def _image_ok(root: Path, prefix: str, image_id: int, stats, options: dict) -> bool:
    """Whether the image is there (always, without ``check_images``); a missing one is an error,
    or with ``--skip-bad`` dropped ("missing image")."""
    rel = f"{prefix}/rgb/{image_id:08d}.jpg"
    if not options.get("check_images", True) or (root / rel).is_file():
        return True
    if options.get("skip_bad"):
        stats.drop("missing image")
        return False
    raise ExposeError("missing image", path=root / rel)


def image_root(root: Path) -> Path:
    """The folder the image paths are relative to: the raw folder itself."""
    return root
