"""Running a benchmark: predictions from a checkpoint (or a saved file), then the protocol."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from expose_cli.assets.paths import DataTree
from expose_cli.body_models.keypoints import convert_keypoints
from expose_cli.data.hdf5 import HDF5Reader
from expose_cli.errors import ExposeError, MissingFileError
from expose_cli.evaluation import protocols

#: benchmark -> (dataset attribute, split, default checkpoint, model kinds that can run it, protocol text)
BENCHMARKS = {
    "ehf": ("ehf", "val", "expose", ("expose",),
            "MMHuman3D: 55 J_regressor joints + 21 vertices; body/hand joints and all/hand/face vertices "
            "PA-aligned per part; box = dataset box, square, no extra scaling"),
    "freihand": ("freihand", "test", "hand", ("hand",),
                 "MMHuman3D: 21 joints root-relative PA-MPJPE, 778 vertices PA-PVE; FreiHAND F@5/15 mm on aligned vertices"),
    "3dpw": ("3dpw", "test", "body", ("body", "expose"),
             "MMHuman3D: prediction SMPLX_to_J14; ground truth gendered SMPL -> J_regressor_h36m -> H36M_TO_J14; "
             "both centred on the mean of the hips; MPJPE and PA-MPJPE"),
    "stirling": ("stirling", "HQ", "face", ("face",),
                 "MMHuman3D/FG2018: predicted mesh similarity-aligned to the scan by 7 landmarks, scan cropped to "
                 "the face region, mean scan-to-mesh distance ('3DRMSE'); data file decides the subset (HQ/LQ)"),
}


@dataclass
class EvalResult:
    benchmark: str
    per_sample: dict[str, np.ndarray]
    image_paths: list[str]
    info: dict = field(default_factory=dict)

    @property
    def means(self) -> dict[str, float]:
        return {k: float(np.mean(v)) for k, v in self.per_sample.items()}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_benchmark(name: str) -> tuple:
    if name not in BENCHMARKS:
        raise ExposeError(f"unknown benchmark {name!r}", hint="available: " + ", ".join(BENCHMARKS))
    return BENCHMARKS[name]


def open_data(name: str, data: Path | None, tree: DataTree) -> HDF5Reader:
    dataset, split, *_ = check_benchmark(name)
    path = Path(data) if data is not None else tree.preprocessed_file(dataset, split)
    if not path.is_file():
        raise MissingFileError(path, f"{dataset} {split} data file", f"run `expose preprocess {dataset}`")
    reader = HDF5Reader(path)
    if reader.dataset != dataset:
        reader.close()
        raise ExposeError(f"this is a {reader.dataset!r} file; benchmark {name!r} needs {dataset!r}", path=path,
                          hint=f"run `expose preprocess {dataset}` and pass its file")
    return reader


def predict(name: str, reader: HDF5Reader, predictor, batch_size: int, limit: int | None,
            on_batch: Callable[[int], None] | None = None, workers: int = 2) -> dict[str, np.ndarray]:
    """Run ``predictor`` on the file's samples (crops from the stored boxes); vertices and joints.

    ``workers`` threads decode and crop the next batches while the model runs.
    """
    from concurrent.futures import ThreadPoolExecutor

    from expose_cli.inference.inputs import read_image
    from expose_cli.models import collate, crop_person

    raw_root = Path(str(reader.attrs["raw_root"]))
    n = len(reader) if limit is None else min(limit, len(reader))
    paths = reader.column("image_path")[:n].astype(str)
    boxes = reader.column("bbox_xywh")[:n]
    res = 224 if predictor.kind == "hand" else 256
    keep_full = predictor.kind == "expose"

    def load(i: int):
        return crop_person(read_image(raw_root / paths[i]), boxes[i], img_res=res, scale_factor=1.0,
                           keep_full_image=keep_full)

    verts, joints, j14 = [], [], []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        crops_iter = pool.map(load, range(n))  # decoded ahead, in order
        for start in range(0, n, batch_size):
            crops = [next(crops_iter) for _ in range(min(batch_size, n - start))]
            pred = predictor(collate(crops))
            verts.append(pred.vertices.cpu().numpy())
            joints.append(pred.joints.cpu().numpy())
            if pred.joints_j14 is not None:
                j14.append(pred.joints_j14.cpu().numpy())
            if on_batch:
                on_batch(len(crops))
    out = {"vertices": np.concatenate(verts), "joints": np.concatenate(joints), "image_path": paths}
    if j14:
        out["joints_j14"] = np.concatenate(j14)
    return out


def score(name: str, reader: HDF5Reader, preds: dict[str, np.ndarray], tree: DataTree) -> dict[str, np.ndarray]:
    """The benchmark's metrics from predictions (vertices, joints) and the file's ground truth."""
    n = len(preds["vertices"])
    if name == "ehf":
        from expose_cli.body_models.auxiliary import Auxiliary
        from expose_cli.body_models.builders import smplx_file
        from expose_cli.body_models.loading import load_body_model_data

        aux = Auxiliary(tree)
        hands = aux.mano_smplx_vertex_ids()
        j_reg = load_body_model_data(smplx_file(tree))["J_regressor"]
        gt = reader.column("vertices")[:n]
        return protocols.ehf_metrics(preds["vertices"], gt, j_reg, hands["left_hand"], hands["right_hand"],
                                     aux.smplx_flame_vertex_ids())
    if name == "3dpw":
        return protocols.pw3d_metrics(preds["joints_j14"], pw3d_ground_truth(reader, n, tree))
    if name == "stirling":
        from expose_cli.body_models.builders import FLAME_SITE
        from expose_cli.body_models.loading import load_body_model_data
        from expose_cli.errors import MissingFileError as _Missing

        flame = next((p for p in (tree.flame_model("neutral", "npz"), tree.flame_model("neutral", "pkl")) if p.is_file()), None)
        if flame is None:
            raise _Missing(tree.flame_model("neutral", "pkl"), "FLAME model", f"download it from {FLAME_SITE}")
        faces = load_body_model_data(flame)["f"].astype(np.int64)
        landmarks = convert_keypoints(preds["joints"], "flame_73", "face3d")[0]
        scans = [reader.scan(i) for i in range(n)]
        return protocols.stirling_metrics(preds["vertices"], faces, landmarks, scans, reader.column("scan_landmarks")[:n])
    gt_joints = convert_keypoints(reader.column("keypoints3d")[:n, :, :3], "smplx", "freihand")[0]
    pred_joints = convert_keypoints(preds["joints"], "mano", "freihand")[0]
    return protocols.freihand_metrics(pred_joints, gt_joints, preds["vertices"], reader.column("vertices")[:n])


def pw3d_ground_truth(reader: HDF5Reader, n: int, tree: DataTree) -> np.ndarray:
    """3DPW ground-truth LSP-14 joints (m): gendered SMPL ('m' male, else female, as MMHuman3D)
    through ``J_regressor_h36m`` and ``H36M_TO_J14``."""
    import torch

    from expose_cli.body_models import build_smpl
    from expose_cli.body_models.auxiliary import Auxiliary
    from expose_cli.body_models.keypoints import H36M_TO_J14
    from expose_cli.geometry.rotations import axis_angle_to_matrix

    reg = torch.as_tensor(Auxiliary(tree).j_regressor_h36m(), dtype=torch.float64)
    gender = reader.column("gender")[:n]
    go = axis_angle_to_matrix(torch.as_tensor(reader.column("smpl/global_orient")[:n], dtype=torch.float64))
    bp = axis_angle_to_matrix(torch.as_tensor(reader.column("smpl/body_pose")[:n], dtype=torch.float64))
    betas = torch.as_tensor(reader.column("smpl/betas")[:n], dtype=torch.float64)
    joints = np.zeros((n, 14, 3))
    for code, name in ((1, "male"), (2, "female"), (0, "female")):
        idx = np.flatnonzero(gender == code)
        if len(idx) == 0:
            continue
        smpl = build_smpl(tree, name, dtype=torch.float64)
        with torch.no_grad():
            verts = smpl(global_orient=go[idx, None], body_pose=bp[idx], betas=betas[idx]).vertices
        joints[idx] = torch.einsum("jv,bvc->bjc", reg, verts)[:, H36M_TO_J14].numpy()
    return joints


def save_predictions(path: Path, name: str, preds: dict, info: dict) -> None:
    from expose_cli.utils.atomic import atomic_path

    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["benchmark"] = name
            for k, v in info.items():
                f.attrs[k] = str(v)
            f["vertices"] = preds["vertices"]
            f["joints"] = preds["joints"]
            if "joints_j14" in preds:
                f["joints_j14"] = preds["joints_j14"]
            f["image_path"] = np.asarray(preds["image_path"], dtype=object).astype(h5py.string_dtype())


def load_predictions(path: Path, name: str) -> dict[str, np.ndarray]:
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("benchmark") != name:
                raise ExposeError(f"predictions of benchmark {f.attrs.get('benchmark')!r}, not {name!r}", path=path)
            out = {"vertices": f["vertices"][()], "joints": f["joints"][()],
                   "image_path": f["image_path"][()].astype(str)}
            if "joints_j14" in f:
                out["joints_j14"] = f["joints_j14"][()]
            return out
    except OSError as exc:
        raise ExposeError(f"cannot read predictions: {exc}", path=path) from exc
