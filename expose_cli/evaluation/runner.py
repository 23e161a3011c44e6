"""The steps of a benchmark run: the model's predictions on a data file (or saved ones, checked
against it), the files each benchmark's scoring needs, and each benchmark's scoring.
:mod:`expose_cli.evaluation.benchmark` names the benchmarks and runs these steps in order."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from expose_cli.body_models.keypoints import convert_keypoints
from expose_cli.data.hdf5 import HDF5Reader
from expose_cli.errors import ExposeError, MissingFileError, option
from expose_cli.evaluation import protocols
from expose_cli.io.paths import DataTree
from expose_cli.kinds import KINDS
from expose_cli.utils.shard import Shard


@dataclass
class EvalResult:
    benchmark: str
    per_sample: dict[str, np.ndarray]
    image_paths: list[str]
    info: dict = field(default_factory=dict)

    @property
    def means(self) -> dict[str, float]:
        return {k: float(np.mean(v)) for k, v in self.per_sample.items()}


#: How many batches are decoded ahead of the one the model is running on.
READ_AHEAD_BATCHES = 2


def read_ahead_window(batch_size: int, workers: int) -> int:
    """The most samples decoded (or being decoded) but not yet given to the model."""
    return max(1, workers, READ_AHEAD_BATCHES * batch_size)


def predict(name: str, reader: HDF5Reader, predictor, batch_size: int, limit: int | None,
            on_batch: Callable[[int], None] | None = None, workers: int = 2,
            shard: Shard = Shard()) -> dict[str, np.ndarray]:
    """Run ``predictor`` on the file's samples (crops from the stored boxes); vertices and joints.

    ``shard``: only the samples ``rank, rank + world_size, ...`` (their indices in
    ``sample_index``), for a run split across processes (torchrun).

    ``workers`` threads decode and crop the next samples while the model runs, at most
    :func:`read_ahead_window` of them at a time (memory stays bounded whatever the file's size).
    """
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    from expose_cli.io.images import read_image
    from expose_cli.models import collate, crop_person

    raw_root = Path(str(reader.attrs["raw_root"]))
    total = len(reader) if limit is None else min(limit, len(reader))
    order = np.asarray(shard.positions(total), dtype=np.int64)
    n = len(order)
    paths = reader.column("image_path")[:total].astype(str)[order]
    boxes = reader.column("bbox_xywh")[:total][order]
    res = predictor.img_res  # the model's input crop (its config's img_res)
    keep_full = KINDS[predictor.kind].keeps_full_image

    def load(i: int):
        return crop_person(read_image(raw_root / paths[i]), boxes[i], img_res=res, scale_factor=1.0,
                           keep_full_image=keep_full)

    window = read_ahead_window(batch_size, workers)
    verts, joints, j14 = [], [], []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        pending: deque = deque()  # futures in sample order
        submitted = 0

        def fill() -> None:
            nonlocal submitted
            while submitted < n and len(pending) < window:
                pending.append(pool.submit(load, submitted))
                submitted += 1

        try:
            for start in range(0, n, batch_size):
                fill()
                crops = [pending.popleft().result() for _ in range(min(batch_size, n - start))]
                batch = collate(crops)
                del crops
                fill()  # the next batches decode while the model runs on this one
                pred = predictor(batch)
                verts.append(pred.vertices.cpu().numpy())
                joints.append(pred.joints.cpu().numpy())
                if pred.joints_j14 is not None:
                    j14.append(pred.joints_j14.cpu().numpy())
                if on_batch:
                    on_batch(len(pred.vertices))
        finally:
            for fut in pending:
                fut.cancel()
    return _predictions(verts, joints, j14, paths, order, shard.sharded)


def _predictions(verts: list, joints: list, j14: list, paths: np.ndarray, order: np.ndarray,
                 sharded: bool) -> dict[str, np.ndarray]:
    """The batches' outputs joined; ``sample_index`` for a sharded run (or a rank with no samples)."""
    if not verts:  # a rank with no samples (more processes than samples)
        return {"image_path": paths, "sample_index": order}
    out = {"vertices": np.concatenate(verts), "joints": np.concatenate(joints), "image_path": paths}
    if sharded:
        out["sample_index"] = order
    if j14:
        out["joints_j14"] = np.concatenate(j14)
    return out


def needed_for(name: str, call):
    """Run a loader; a missing file becomes one line naming it, the benchmark and the command
    (or website) that provides it."""
    try:
        return call()
    except MissingFileError as exc:
        raise ExposeError(f"{exc.reason} (needed to score {name}): {exc.hint}", path=exc.path,
                          exit_code=exc.exit_code) from exc


def ehf_assets(reader: HDF5Reader, tree: DataTree, n: int) -> dict:
    """EHF: the SMPL-X ``J_regressor``, the hand and face vertex ids and ``SMPLX_to_J14`` (H4W body joints)."""
    from expose_cli.body_models.auxiliary import Auxiliary
    from expose_cli.body_models.builders import smplx_file
    from expose_cli.body_models.loading import load_body_model_data

    aux, name = Auxiliary(tree), "ehf"
    hands = needed_for(name, aux.mano_smplx_vertex_ids)
    return {"left_hand": hands["left_hand"], "right_hand": hands["right_hand"],
            "face": needed_for(name, aux.smplx_flame_vertex_ids),
            "j14_regressor": needed_for(name, aux.smplx_to_j14),
            "j_regressor": np.asarray(load_body_model_data(needed_for(name, lambda: smplx_file(tree)))["J_regressor"])}


def pw3d_assets(reader: HDF5Reader, tree: DataTree, n: int) -> dict:
    """3DPW: ``J_regressor_h36m``, the neutral SMPL (MMHuman3D's rows) and the SMPL model of each
    gender among the first ``n`` rows (``G-`` rows)."""
    import torch

    from expose_cli.body_models import build_smpl
    from expose_cli.body_models.auxiliary import Auxiliary

    name = "3dpw"
    reg = needed_for(name, Auxiliary(tree).j_regressor_h36m)
    codes = sorted({int(c) for c in reader.column("gender")[:n]})
    models = {}
    for gender in ["neutral", *sorted({PW3D_GENDER.get(c, "female") for c in codes})]:
        models[gender] = needed_for(name, lambda g=gender: build_smpl(tree, g, dtype=torch.float64))
    return {"j_regressor_h36m": reg, "smpl": models}


def freihand_assets(reader: HDF5Reader, tree: DataTree, n: int) -> dict:
    """FreiHAND: the right MANO model (its mean hand pose kept unless the file's pose has a mean added)."""
    import torch

    from expose_cli.body_models import build_mano

    flat = bool(reader.attrs.get("mano_hand_mean_added", False))
    return {"mano": needed_for("freihand", lambda: build_mano(tree, "right", flat_hand_mean=flat, dtype=torch.float64))}


def stirling_assets(reader: HDF5Reader, tree: DataTree, n: int) -> dict:
    """Stirling: the FLAME faces."""
    from expose_cli.body_models.builders import flame_file
    from expose_cli.body_models.loading import load_body_model_data

    flame = needed_for("stirling", lambda: flame_file(tree))
    return {"faces": load_body_model_data(flame)["f"].astype(np.int64)}


#: 3DPW gender codes -> SMPL model of the ``G-`` rows: 'm' male, everything else female (as the
#: HMR / SPIN / VIBE evaluation code; MMHuman3D records the gender but its scorer ignores it).
PW3D_GENDER = {1: "male", 2: "female", 0: "female"}


def score_ehf(reader: HDF5Reader, preds: dict[str, np.ndarray], assets: dict) -> dict[str, np.ndarray]:
    n = len(preds["vertices"])
    gt = reader.column("vertices")[:n]
    return protocols.ehf_metrics(preds["vertices"], gt, assets["j_regressor"], assets["left_hand"],
                                 assets["right_hand"], assets["face"], assets["j14_regressor"])


def score_3dpw(reader: HDF5Reader, preds: dict[str, np.ndarray], assets: dict) -> dict[str, np.ndarray]:
    n = len(preds["vertices"])
    return protocols.pw3d_metrics(preds["joints_j14"], *pw3d_ground_truth(reader, n, assets))


def score_stirling(reader: HDF5Reader, preds: dict[str, np.ndarray], assets: dict) -> dict[str, np.ndarray]:
    n = len(preds["vertices"])
    landmarks = convert_keypoints(preds["joints"], "flame_73", "face3d")[0]
    scans = [reader.scan(i) for i in range(n)]
    return protocols.stirling_metrics(preds["vertices"], assets["faces"], landmarks, scans,
                                      reader.column("scan_landmarks")[:n])


def score_freihand(reader: HDF5Reader, preds: dict[str, np.ndarray], assets: dict) -> dict[str, np.ndarray]:
    n = len(preds["vertices"])
    gt_joints = convert_keypoints(reader.column("keypoints3d")[:n, :, :3], "smplx", "freihand")[0]
    pred_joints = convert_keypoints(preds["joints"], "mano", "freihand")[0]
    return protocols.freihand_metrics(pred_joints, gt_joints, preds["vertices"], reader.column("vertices")[:n],
                                      mano_param_vertices(reader, n, assets["mano"]))


def mano_param_vertices(reader: HDF5Reader, n: int, mano) -> np.ndarray:
    """The MANO mesh (m, no translation) of each row's ground-truth parameters, as MMHuman3D builds
    FreiHAND's ground-truth vertices. ``mano``'s ``pose_mean`` (MANO's mean hand pose when the file's
    pose is relative to it, zeros when the mean was added by the converter) is added to the axis-angle
    pose first. A row without MANO parameters stops with the file named."""
    import torch

    from expose_cli.geometry.rotations import axis_angle_to_matrix

    has = reader.column("has_mano")[:n].astype(bool)
    if not has.all():
        raise ExposeError(f"row {int(np.flatnonzero(~has)[0])} has no MANO parameters (FreiHAND's PA-PVE is "
                          "scored against their mesh)", path=reader.path, hint="run `expose preprocess freihand`")
    pose = np.concatenate([reader.column("mano/global_orient")[:n].reshape(n, 1, 3),
                           reader.column("mano/right_hand_pose")[:n].reshape(n, 15, 3)], axis=1)
    pose = torch.as_tensor(pose, dtype=torch.float64) + mano.pose_mean.to(torch.float64).reshape(1, 16, 3)
    rot = axis_angle_to_matrix(pose)
    with torch.no_grad():
        out = mano(global_orient=rot[:, :1], hand_pose=rot[:, 1:],
                   betas=torch.as_tensor(reader.column("mano/betas")[:n], dtype=torch.float64))
    return out.vertices.numpy()


def pw3d_ground_truth(reader: HDF5Reader, n: int, assets: dict) -> tuple[np.ndarray, np.ndarray]:
    """3DPW ground-truth LSP-14 joints (m) through ``J_regressor_h36m`` and ``H36M_TO_J14``, twice:
    from the neutral SMPL for every subject (MMHuman3D, whose ``SMPL`` ignores the gender it is
    given), and from each subject's own SMPL ('m' male, everything else female). The parameters are
    read and turned into rotation matrices once."""
    import torch

    from expose_cli.geometry.rotations import axis_angle_to_matrix

    go = axis_angle_to_matrix(torch.as_tensor(reader.column("smpl/global_orient")[:n], dtype=torch.float64))
    bp = axis_angle_to_matrix(torch.as_tensor(reader.column("smpl/body_pose")[:n], dtype=torch.float64))
    betas = torch.as_tensor(reader.column("smpl/betas")[:n], dtype=torch.float64)
    reg = torch.as_tensor(assets["j_regressor_h36m"], dtype=torch.float64)
    gendered = np.array([PW3D_GENDER.get(int(c), "female") for c in reader.column("gender")[:n]])
    return (_pw3d_joints(np.full(n, "neutral"), go, bp, betas, reg, assets["smpl"]),
            _pw3d_joints(gendered, go, bp, betas, reg, assets["smpl"]))


def _pw3d_joints(models: np.ndarray, go, bp, betas, reg, smpl_models: dict) -> np.ndarray:
    """LSP-14 joints of each row through the SMPL named in ``models`` (rows of one model batched)."""
    import torch

    from expose_cli.body_models.keypoints import H36M_TO_J14

    joints = np.zeros((len(models), 14, 3))
    for name, smpl in smpl_models.items():
        idx = np.flatnonzero(models == name)
        if len(idx) == 0:
            continue
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


#: Run details a predictions file carries into a re-scoring's report.
CARRIED_ATTRS = ("checkpoint", "checkpoint_sha256", "torch", "data_sha256", "samples_per_s")


def load_predictions(path: Path, name: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Predictions saved by :func:`save_predictions` and the run details stored with them."""
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("benchmark") != name:
                raise ExposeError(f"predictions of benchmark {f.attrs.get('benchmark')!r}, not {name!r}", path=path)
            out = {"vertices": f["vertices"][()], "joints": f["joints"][()],
                   "image_path": f["image_path"][()].astype(str)}
            if "joints_j14" in f:
                out["joints_j14"] = f["joints_j14"][()]
            attrs = {k: str(v) for k, v in f.attrs.items()}
            return out, attrs
    except OSError as exc:
        raise ExposeError(f"cannot read predictions: {exc}", path=path) from exc


def match_predictions(preds: dict[str, np.ndarray], attrs: dict[str, str], reader: HDF5Reader, data_sha256: str,
                      limit: int | None, path: Path) -> dict[str, np.ndarray]:
    """Check saved predictions belong to ``reader``'s file (same sha256 when recorded, and the same
    image of every row) and keep the first ``limit`` of them. Refuses otherwise."""
    hint = f"pass the {option('data')} file the predictions were made from, or run without {option('from-predictions')}"
    saved = attrs.get("data_sha256")
    if saved and saved != data_sha256:
        raise ExposeError(f"predictions were made from another data file (sha256 {saved[:12]}..., "
                          f"{attrs.get('data_file', '?')}); this one is {data_sha256[:12]}...", path=path, hint=hint)
    n = len(preds["vertices"])
    if limit is not None:
        n = min(n, limit)
    if n > len(reader):
        raise ExposeError(f"{n} predictions but the data file has {len(reader)} rows", path=path, hint=hint)
    preds = {k: v[:n] for k, v in preds.items()}
    images = reader.column("image_path")[:n].astype(str)
    bad = np.flatnonzero(np.asarray(preds["image_path"]) != images)
    if len(bad):
        i = int(bad[0])
        raise ExposeError(f"prediction {i} is of {str(preds['image_path'][i])!r}, but row {i} of the data file is "
                          f"{str(images[i])!r} ({len(bad)} rows differ)", path=path, hint=hint)
    return preds
