"""Tiny raw datasets in their exact raw formats (file names, layout, keys, dtypes), for tests."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np


def write_binary_ply(path: Path, vertices: np.ndarray, faces: np.ndarray) -> None:
    """Binary little-endian PLY with float x, y, z and a uchar/int face list (EHF's layout)."""
    header = (f"ply\nformat binary_little_endian 1.0\nelement vertex {len(vertices)}\nproperty float x\n"
              f"property float y\nproperty float z\nelement face {len(faces)}\n"
              "property list uchar int vertex_indices\nend_header\n").encode()
    rec = np.zeros(len(faces), dtype=[("n", "u1"), ("i", "<i4", (3,))])
    rec["n"], rec["i"] = 3, faces
    path.write_bytes(header + np.asarray(vertices, "<f4").tobytes() + rec.tobytes())


def write_ehf(root: Path, frames: int = 3, seed: int = 0) -> dict:
    """``NN_img.jpg``, ``NN_img.png``, ``NN_2Djnt.json`` (OpenPose, some points undetected),
    ``NN_align.ply`` (10475 vertices), ``EHF_camera.txt``. Returns what was written."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    truth = {}
    for f in range(1, frames + 1):
        nn = f"{f:02d}"
        img = (rng.random((120, 160, 3)) * 255).astype(np.uint8)
        cv2.imwrite(str(root / f"{nn}_img.jpg"), img)
        cv2.imwrite(str(root / f"{nn}_img.png"), img)
        parts = {"pose_keypoints_2d": 25, "hand_left_keypoints_2d": 21, "hand_right_keypoints_2d": 21, "face_keypoints_2d": 70}
        person, all_pts = {"person_id": [-1]}, []
        for key, n in parts.items():
            pts = np.concatenate([rng.uniform(400, 1200, (n, 2)), rng.uniform(0.3, 1.0, (n, 1))], 1)
            if key == "hand_left_keypoints_2d":
                pts[:5] = 0.0  # undetected points: (0, 0, 0)
            pts = pts.round(3)
            person[key] = pts.reshape(-1).tolist()
            all_pts.append(pts)
        (root / f"{nn}_2Djnt.json").write_text(json.dumps({"version": 1.3, "people": [person]}))
        verts = rng.normal(size=(10475, 3)).astype(np.float32)
        write_binary_ply(root / f"{nn}_align.ply", verts, rng.integers(0, 10475, (20908, 3)))
        truth[nn] = {"keypoints": np.concatenate(all_pts), "vertices": verts}
    (root / "EHF_camera.txt").write_text("camera parameters (not parsed)\n")
    return truth


def write_freihand(root: Path, unique: int = 10, seed: int = 0, eval_samples: int = 4) -> dict:
    """``training_*.json`` / ``evaluation_*.json`` and ``training/rgb`` (4 versions) images."""
    rng = np.random.default_rng(seed)
    out = {}
    for prefix, n, versions in (("training", unique, 4), ("evaluation", eval_samples, 1)):
        K = [[[500.0 + i, 0, 112.0], [0, 500.0 + i, 112.0], [0, 0, 1]] for i in range(n)]
        xyz = (rng.normal(0, 0.03, (n, 21, 3)) + [0, 0, 0.6]).tolist()
        mano = [rng.normal(0, 0.2, (1, 61)).tolist() for _ in range(n)]
        verts = (rng.normal(0, 0.03, (n, 778, 3)) + [0, 0, 0.6]).tolist()
        scale = rng.uniform(0.02, 0.04, n).tolist()
        for name, value in (("K", K), ("xyz", xyz), ("mano", mano), ("verts", verts), ("scale", scale)):
            (root / f"{prefix}_{name}.json").parent.mkdir(parents=True, exist_ok=True)
            (root / f"{prefix}_{name}.json").write_text(json.dumps(value))
        (root / prefix / "rgb").mkdir(parents=True, exist_ok=True)
        img = np.zeros((224, 224, 3), np.uint8)
        ok, jpg = cv2.imencode(".jpg", img)
        for i in range(n * versions):
            (root / prefix / "rgb" / f"{i:08d}.jpg").write_bytes(jpg.tobytes())
        out[prefix] = {"K": np.array(K), "xyz": np.array(xyz), "mano": np.array(mano).reshape(n, 61),
                       "verts": np.array(verts), "scale": np.array(scale)}
    return out
