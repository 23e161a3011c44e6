"""Validation during training: the `expose eval` protocols on the config's benchmark, or
PA-MPJPE on a held-out set in the training format (``train.val_set = "heldout"``).

Each validator takes the :class:`ExPoseModel` (in eval mode) and returns ``(metrics, primary)``:
millimetres per metric (means over the samples) and the name of the lower-is-better metric that
picks ``best.pth``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from expose_cli.io.paths import DataTree
from expose_cli.kinds import KINDS
from expose_cli.training.config import RunConfig
from expose_cli.training.recipes import RECIPES

#: The metric that picks ``best.pth`` on each validation set: the kinds' benchmarks (from their
#: recipes) and a held-out file in the training format.
PRIMARY = {**{r.val_set: r.primary_metric for r in RECIPES.values()}, "heldout": "PA-MPJPE"}


def benchmark_validator(name: str, data: Path | None, tree: DataTree, limit: int | None) -> Callable:
    """The `expose eval` protocol ``name`` (3dpw, freihand, stirling, ehf) on its preprocessed file:
    the file and the scoring files are opened now (a missing one stops the run before training)."""
    from expose_cli.evaluation import benchmark as B
    from expose_cli.evaluation import runner
    from expose_cli.models.expose import Predictor

    bench = B.get_benchmark(name)
    reader = B.open_data(bench, data, tree)
    n = len(reader) if limit is None else min(limit, len(reader))
    assets = bench.load_assets(reader, tree, n)

    def validate(model):
        predictor = Predictor(model, fuse=False)
        with torch.inference_mode():
            preds = runner.predict(name, reader, predictor, batch_size=16, limit=limit, workers=2)
        rows = bench.score(reader, preds, assets)
        return {k: float(np.mean(v)) for k, v in rows.items()}, PRIMARY[name]

    return validate


def pa_mpjpe_per_sample(pred: torch.Tensor, gt: torch.Tensor) -> list[float]:
    """PA-MPJPE (mm) of each sample over its joints with confidence > 0 (``gt`` [B, K, 4], metres)."""
    from expose_cli.evaluation.metrics import pa_mpjpe

    out = []
    for p, g in zip(pred.detach().double(), gt.detach().double(), strict=True):
        keep = g[:, 3] > 0
        if int(keep.sum()) >= 3:
            out.append(float(pa_mpjpe(p[keep][None], g[keep, :3][None])[0]) * 1000.0)
    return out


def face_contour_indices(kind: str) -> np.ndarray:
    """Indices of the 17 face-contour keypoints in the keypoints of ``kind`` (none for hands):
    the points that the head's yaw picks from a look-up table, one row per degree."""
    from expose_cli.body_models.keypoints import FACE68, get_convention
    from expose_cli.kinds import KINDS

    names = get_convention(KINDS[kind].convention).names
    return np.array([names.index(n) for n in FACE68[:17] if n in names], dtype=np.int64)


def heldout_errors(model, loader, mean_pose: bool = False, exclude: np.ndarray | None = None) -> list[float]:
    """PA-MPJPE per held-out sample of ``model`` (or, with ``mean_pose``, of the heads' starting
    point: the mean pose and shape every prediction starts from); ``exclude``: keypoint indices
    left out of the score (e.g. :func:`face_contour_indices`)."""
    from expose_cli.training.objective import model_input

    errors: list[float] = []
    device = model.device  # where the weights are (derived from them)
    with torch.inference_mode():
        for batch in loader:
            batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
            inputs = model_input(batch)
            pred = mean_prediction(model, inputs) if mean_pose else model(inputs)
            gt = batch["keypoints3d"]
            if exclude is not None and len(exclude):
                gt = gt.clone()
                gt[:, torch.as_tensor(exclude, device=gt.device), 3] = 0.0
            errors += pa_mpjpe_per_sample(pred.joints, gt)
    return errors


def mean_prediction(model, inputs):
    """The prediction of the heads' mean parameters (no network), through the body model."""
    head = model.net.head
    out = head.decode(head.regressor.mean_param.expand(inputs.img.shape[0], -1))
    body_model = KINDS[model.kind].body_model
    if body_model == "mano":
        return model._hand(out)
    if body_model == "flame":
        return model._face(out)
    return model._body(inputs, out, model._plain_features)


def heldout_validator(cfg: RunConfig, data: Path, tree: DataTree, limit: int | None) -> Callable:
    """PA-MPJPE on a held-out file in the training format (no augmentation)."""
    from torch.utils.data import DataLoader, Subset

    from expose_cli.training.data_config import with_members
    from expose_cli.training.datasets import TrainDataset, collate

    dataset = TrainDataset(with_members(cfg.data, (str(data),)), tree.root, cfg.kind, cfg.train.seed, train=False)
    if limit:
        dataset = Subset(dataset, range(min(limit, len(dataset))))
    loader = DataLoader(dataset, batch_size=16, shuffle=False, collate_fn=collate)

    def validate(model):
        return {"PA-MPJPE": float(np.mean(heldout_errors(model, loader)))}, "PA-MPJPE"

    return validate


def build_validation(cfg: RunConfig, tree: DataTree) -> Callable | None:
    """The validator of ``cfg.train`` (``val_set``, ``val_data``, ``val_limit``), or None (``none``)."""
    t = cfg.train
    if not t.val_set or t.val_set == "none" or not t.val_every:
        return None
    limit = t.val_limit or None
    data = Path(t.val_data) if t.val_data else None
    if t.val_set == "heldout":
        if data is None:
            from expose_cli.errors import ExposeError

            raise ExposeError("train.val_set = heldout needs train.val_data (a held-out .h5 file)")
        return heldout_validator(cfg, data, tree, limit)
    return benchmark_validator(t.val_set, data, tree, limit)
