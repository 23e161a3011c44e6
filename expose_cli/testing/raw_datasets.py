"""Tiny raw datasets in their exact raw formats (file names, layout, keys, dtypes), for tests."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np


def string_array(values: list[str], strings: str = "str") -> np.ndarray:
    """Names as an npz stores them: ``str`` (``U``), ``bytes`` (``S``, Python-2 era files) or
    ``object`` (mixed str / bytes, saved with ``allow_pickle=True``)."""
    if strings == "bytes":
        return np.array([v.encode() for v in values])
    if strings == "object":
        return np.array([v.encode() if i % 2 else v for i, v in enumerate(values)], dtype=object)
    return np.array(values)


def write_binary_ply(path: Path, vertices: np.ndarray, faces: np.ndarray) -> None:
    """Binary little-endian PLY with float x, y, z and a uchar/int face list (EHF's layout)."""
    header = (f"ply\nformat binary_little_endian 1.0\nelement vertex {len(vertices)}\nproperty float x\n"
              f"property float y\nproperty float z\nelement face {len(faces)}\n"
              "property list uchar int vertex_indices\nend_header\n").encode()
    rec = np.zeros(len(faces), dtype=[("n", "u1"), ("i", "<i4", (3,))])
    rec["n"], rec["i"] = 3, faces
    path.write_bytes(header + np.asarray(vertices, "<f4").tobytes() + rec.tobytes())


def write_jpegs(paths: list[Path], height: int = 32, width: int = 32) -> None:
    """A small grey JPEG at each path (folders created): the image files a download holds."""
    ok, jpg = cv2.imencode(".jpg", np.full((height, width, 3), 128, np.uint8))
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(jpg.tobytes())


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


def write_pw3d(root: Path, split_folder: str = "test", seed: int = 0) -> dict:
    """One 3DPW sequence with two actors (``sequenceFiles/<split>/seq_a.pkl``) and its images.

    Actor 1 has an invalid camera pose on frame 1 and no detected 2D joint on frame 2.
    """
    import pickle

    rng = np.random.default_rng(seed)
    frames = 3
    (root / "sequenceFiles" / split_folder).mkdir(parents=True, exist_ok=True)
    (root / "imageFiles" / "seq_a").mkdir(parents=True, exist_ok=True)
    for f in range(frames):
        cv2.imwrite(str(root / "imageFiles" / "seq_a" / f"image_{f:05d}.jpg"), np.zeros((64, 48, 3), np.uint8))
    cam = np.tile(np.eye(4), (frames, 1, 1))
    for f in range(frames):
        angle = 0.3 * (f + 1)
        cam[f, :3, :3] = [[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]]
        cam[f, :3, 3] = [0.1 * f, 0.2, 3.0]
    poses2d = [np.concatenate([rng.uniform(100, 900, (frames, 2, 18)), rng.uniform(0.2, 1, (frames, 1, 18))], 1)
               for _ in range(2)]
    poses2d[0][0, 2, :3] = 0  # three undetected joints of actor 0, frame 0
    poses2d[1][2, 2, :] = 0  # actor 1, frame 2: nothing detected
    seq = {
        "sequence": "seq_a", "genders": ["m", "f"],
        "betas": [rng.normal(size=10), rng.normal(size=10)],
        "betas_clothed": [rng.normal(size=10)] * 2,
        "poses": [rng.normal(0, 0.3, (frames, 72)) for _ in range(2)],
        "trans": [rng.normal(size=(frames, 3)) for _ in range(2)],
        "poses2d": poses2d,
        "jointPositions": [rng.normal(size=(frames, 72)) for _ in range(2)],
        "cam_poses": cam, "campose_valid": [np.ones(frames), np.array([1, 0, 1])],
        "cam_intrinsics": np.array([[1961.0, 0, 540.0], [0, 1969.0, 960.0], [0, 0, 1]]),
        "img_frame_ids": np.arange(frames) * 2,
    }
    (root / "sequenceFiles" / split_folder / "seq_a.pkl").write_bytes(pickle.dumps(seq, protocol=2))
    return seq


def write_stirling(root: Path, seed: int = 0, quality: str = "HQ") -> dict:
    """Stirling/ESRC: 3 ``quality`` (HQ or LQ) images of subjects F1001 (scan named lower case), M1002 (upper case)
    and F1003 (no scan: dropped), with their ``.obj`` scans and ``.lnd`` landmarks."""
    rng = np.random.default_rng(seed)
    out = {}
    (root / "Subset_2D_FG2018" / quality).mkdir(parents=True, exist_ok=True)
    for subject, scan_name in (("F1001", "f1001_N"), ("M1002", "M1002_N"), ("F1003", None)):
        cv2.imwrite(str(root / "Subset_2D_FG2018" / quality / f"{subject}_001.jpg"), np.zeros((50, 40, 3), np.uint8))
        if scan_name is None:
            continue
        g = subject[0]
        (root / f"{g}_3D_N").mkdir(exist_ok=True, parents=True)
        (root / "annotations" / f"{g}_3D_N").mkdir(parents=True, exist_ok=True)
        verts = rng.normal(0, 50, (200 + 10 * len(out), 3))
        lines = ["mtllib scan.mtl"] + [f"v {x:.4f} {y:.4f} {z:.4f}" for x, y, z in verts] + ["vt 0.1 0.2", "f 1/1 2/1 3/1"]
        (root / f"{g}_3D_N" / f"{scan_name}.obj").write_text("\n".join(lines) + "\n")
        lm = rng.normal(0, 30, (7, 3))
        (root / "annotations" / f"{g}_3D_N" / f"{subject}_N.lnd").write_text(
            "".join(f"{i + 1} {x:.4f} {y:.4f} {z:.4f}\n" for i, (x, y, z) in enumerate(lm)))
        out[subject] = {"vertices": verts, "landmarks": lm}
    return out


def write_ffhq(root: Path, n: int = 5, seed: int = 0, nested: bool = False, strings: str = "str") -> dict:
    """``ffhq_annotations.npz`` and its images (flat, or NVIDIA's nested folders)."""
    rng = np.random.default_rng(seed)
    names = [f"{i:05d}.png" for i in range(n)]
    ann = {"img_fnames": string_array(names, strings), "global_pose": rng.normal(0, 0.2, (n, 3)), "jaw_pose": rng.normal(0, 0.1, (n, 3)),
           "betas": rng.normal(size=(n, 100)), "expression": rng.normal(size=(n, 50)),
           "keypoints2d": rng.uniform(0, 1024, (n, 73, 2))}
    root.mkdir(parents=True, exist_ok=True)
    np.savez(root / "ffhq_annotations.npz", **ann)
    for name in names:
        folder = root / ("images1024x1024/00000" if nested else "ffhq_global_images_1024")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"png")
    return ann


def write_curated_fits(root: Path, n: int = 4, seed: int = 0, strings: str = "str", split: str = "train") -> dict:
    """``<split>.npz`` of ExPose's curated fits; sample 1 has every confidence below the thresholds."""
    rng = np.random.default_rng(seed)
    kp = np.concatenate([rng.uniform(0, 500, (n, 137, 2)), rng.uniform(-0.2, 1.0, (n, 137, 1))], axis=2)
    kp[1, :, 2] = 0.05  # below every threshold: dropped
    data = {"img_fns": string_array([f"lsp/lsp_dataset_original/images/im{i:04d}.jpg" for i in range(n)], strings),
            "betas": rng.normal(size=(n, 10)), "expression": rng.normal(size=(n, 10)),
            "keypoints2D": kp, "pose": rng.normal(0, 0.2, (n, 55, 3))}
    root.mkdir(parents=True, exist_ok=True)
    np.savez(root / f"{split}.npz", **data)
    write_jpegs([root.parent / f"lsp/lsp_dataset_original/images/im{i:04d}.jpg" for i in range(n)])  # data/datasets/lsp
    return data


#: Where SPIN's images are under ``data/datasets`` (datasets.md §9), and the file names of each set.
SPIN_IMAGES = {"coco": ("coco/train2014", "COCO_train2014_{:012d}.jpg"),
               "lsp": ("lsp/lsp_dataset_original/images", "im{:04d}.jpg"),
               "lspet": ("lsp/lspet/images", "im{:05d}.png"), "mpii": ("mpii/images", "{:09d}.jpg")}


def write_spin_smplx(root: Path, split: str = "lsp", n: int = 30, seed: int = 0, strings: str = "str") -> dict:
    """``<split>.npz`` of SPIN's SMPL-X fits (``imgname`` in SPIN's prefixed form, e.g.
    ``images/im0001.jpg``) and the images in the dataset's own folder under ``root.parent``
    (:data:`SPIN_IMAGES`); row 0 has no fit."""
    rng = np.random.default_rng(seed)
    part = np.concatenate([rng.uniform(0, 300, (n, 24, 2)), rng.integers(0, 2, (n, 24, 1)).astype(float)], axis=2)
    folder, pattern = SPIN_IMAGES[split]
    names = [pattern.format(i + 1) for i in range(n)]
    write_jpegs([root.parent / folder / name for name in names])
    prefix = "train2014/" if split == "coco" else "images/"
    data = {"imgname": string_array([prefix + name for name in names], strings), "center": rng.uniform(100, 200, (n, 2)),
            "scale": rng.uniform(0.5, 1.5, n), "part": part, "pose": rng.normal(0, 0.2, (n, 165)),
            "betas": rng.normal(size=(n, 10)), "has_smpl": np.array([0, 1] + [1] * (n - 2))}
    root.mkdir(parents=True, exist_ok=True)
    np.savez(root / f"{split}.npz", **data)
    return data


def _wholebody_parts(rng: np.random.Generator, valid: bool) -> dict:
    """COCO-WholeBody's extra fields of one person (hands and face valid, feet not, when ``valid``)."""
    out = {}
    for part, n in (("foot", 6), ("face", 68), ("lefthand", 21), ("righthand", 21)):
        ok = valid and part != "foot"
        pts = np.concatenate([rng.uniform(0, 600, (n, 2)).round(2), np.full((n, 1), 0.5 if "hand" in part else 1.0)], 1)
        out[f"{part}_kpts"] = (pts if ok else np.zeros((n, 3))).reshape(-1).tolist()
        out[f"{part}_valid"] = ok
        if part != "foot":
            out[f"{part}_box"] = [1.0, 2.0, 30.0, 40.0] if ok else [0.0, 0.0, 0.0, 0.0]
    return out


def coco_json_path(root: Path, split: str, wholebody: bool = False) -> Path:
    """Where :func:`write_coco` puts a split's json (the raw layout of each year)."""
    if wholebody:
        return root / "annotations" / f"coco_wholebody_{split[:-4]}_v1.0.json"
    if split.endswith("2017"):
        return root / "train_2017" / "annotations" / f"person_keypoints_{split}.json"
    return root / "annotations" / f"person_keypoints_{split}.json"


def write_coco(root: Path, split: str = "train2014", seed: int = 0, wholebody: bool = False) -> dict:
    """A COCO keypoints json with a kept person, a crowd, an unlabelled and a partial person.

    2014 splits go to ``annotations/``, 2017 to ``train_2017/annotations/`` (file names ``%012d.jpg``);
    ``wholebody`` (2017) writes ``annotations/coco_wholebody_<train|val>_v1.0.json`` with foot, face and
    hand points instead (annotation 4's hands and face valid, annotation 1's not).
    """
    rng = np.random.default_rng(seed)

    def kps(all_visible: bool):
        k = np.concatenate([rng.uniform(0, 600, (17, 2)).round(), np.full((17, 1), 2.0)], axis=1)
        if not all_visible:
            k[15] = 0  # left ankle unlabelled
        return k.reshape(-1).astype(int).tolist()

    def file_name(image_id: int) -> str:
        return f"COCO_{split}_{image_id:012d}.jpg" if split.endswith("2014") else f"{image_id:012d}.jpg"

    images = [{"id": 9, "file_name": file_name(9), "height": 480, "width": 640},
              {"id": 3, "file_name": file_name(3), "height": 360, "width": 500}]
    anns = [
        {"id": 1, "image_id": 9, "iscrowd": 0, "num_keypoints": 17, "keypoints": kps(True), "bbox": [10.5, 20.0, 100.0, 200.0], "category_id": 1},
        {"id": 2, "image_id": 9, "iscrowd": 1, "num_keypoints": 0, "keypoints": [0] * 51, "bbox": [0, 0, 50, 50], "category_id": 1},
        {"id": 3, "image_id": 3, "iscrowd": 0, "num_keypoints": 16, "keypoints": kps(False), "bbox": [1, 2, 3, 4], "category_id": 1},
        {"id": 4, "image_id": 3, "iscrowd": 0, "num_keypoints": 17, "keypoints": kps(True), "bbox": [5.0, 6.0, 70.0, 80.0], "category_id": 1},
        {"id": 5, "image_id": 3, "iscrowd": 0, "num_keypoints": 0, "keypoints": [0] * 51, "bbox": [0, 0, 9, 9], "category_id": 1},
    ]
    if wholebody:
        for ann in anns:
            ann.update(_wholebody_parts(rng, ann["id"] == 4))
    data = {"info": {}, "licenses": [], "images": images, "annotations": anns,
            "categories": [{"id": 1, "name": "person", "supercategory": "person"}]}
    path = coco_json_path(root, split, wholebody)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    folder = root / (split if split.endswith("2014") else f"train_2017/{split}")  # datasets.md §1
    write_jpegs([folder / img["file_name"] for img in images])
    return data


def write_h36m(root: Path, seed: int = 0, frames: int = 11, d2_frames: int | None = None) -> dict:
    """S1 with actions ``Directions 1`` (camera 54138969) and ``_ALL`` (skipped): D3/D2 CDF files
    and a MATLAB v7.3 mask file whose frame 5 mask is empty. ``d2_frames``: a D2 file of another
    length (malformed when shorter)."""
    import cdflib
    from cdflib.cdfwrite import CDF

    rng = np.random.default_rng(seed)
    out = {}
    for action in ("Directions 1", "_ALL"):
        name = f"{action}.54138969"
        for kind, dims in (("D3_Positions_mono", 96), ("D2_Positions", 64)):
            folder = root / "S1" / "MyPoseFeatures" / kind
            folder.mkdir(parents=True, exist_ok=True)
            n = frames if kind.startswith("D3") or d2_frames is None else d2_frames
            data = rng.uniform(-1000, 1000, (n, dims))
            writer = CDF(str(folder / f"{name}.cdf"), cdf_spec={"Majority": "row_major"}, delete=True)
            writer.write_var({"Variable": "Pose", "Data_Type": CDF.CDF_DOUBLE, "Num_Elements": 1, "Rec_Vary": True,
                              "Dim_Sizes": [n, dims]}, var_data=data)
            writer.close()
            out[(action, kind)] = data
        masks_dir = root / "S1" / "MySegmentsMat" / "ground_truth_bs"
        masks_dir.mkdir(parents=True, exist_ok=True)
        import h5py

        with h5py.File(masks_dir / f"{name}.mat", "w") as f:
            refs = f.create_dataset("Masks", (frames, 1), dtype=h5py.ref_dtype)
            grp = f.create_group("#refs#")
            for i in range(frames):
                m = np.zeros((40, 30), np.uint8)  # stored transposed: (W, H)
                if i != 5:
                    m[5 + i % 3: 25, 10: 30 - i % 4] = 1
                ds = grp.create_dataset(f"m{i}", data=m)
                refs[i, 0] = ds.ref
        out[(action, "masks")] = True
        seq = f"S1_{action.replace(' ', '_')}.54138969"  # extracted frames, from 1 (datasets.md §8)
        write_jpegs([root / "S1" / "images" / seq / f"{seq}_{f + 1:06d}.jpg" for f in range(frames)], 30, 40)
    del cdflib
    return out
