"""The seed's benchmarks, and one scoring run of a benchmark.

A :class:`Benchmark` is everything of one benchmark, in one entry of :data:`BENCHMARKS`: its data
file (dataset; the split is the dataset catalog's ``benchmark_split``), the model that runs it, its
protocol, the seed's published numbers, the fields scoring reads, and the two functions that differ
per benchmark: loading the files scoring needs, and scoring (its metrics). `expose eval` runs any
entry the same way (checks, provenance, predictions, the ranks' gather, score); docs/architecture.md,
"How to add", lists what a new one touches. A
:class:`BenchmarkRun` is everything checked and loaded before any network work (the data file, the
model or the saved predictions, the scoring files); :func:`provenance` hashes what the numbers
come from; :func:`predictions` runs the model or re-scores saved predictions; :func:`score` gives
the :class:`~expose_cli.evaluation.runner.EvalResult`.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from expose_cli import __version__
from expose_cli.data.hdf5 import HDF5Reader
from expose_cli.errors import ExposeError, MissingFileError, option
from expose_cli.evaluation import protocols, runner
from expose_cli.io import hashing
from expose_cli.io.catalog import DATASETS
from expose_cli.io.paths import DataTree
from expose_cli.utils.shard import Shard

if TYPE_CHECKING:
    from expose_cli.models import Predictor


@dataclass(frozen=True)
class Benchmark:
    """One benchmark of the seed."""

    name: str
    dataset: str  # the data file's dataset attribute (a dataset of io/catalog.py with a benchmark_split)
    default_ckpt: str  # checkpoint name run without a checkpoint given
    kinds: tuple[str, ...]  # model kinds that can run it
    protocol: str  # how it is scored, in words (printed and saved with the results)
    load_assets: Callable[[HDF5Reader, DataTree, int], dict]  # (reader, tree, samples) -> scoring files
    score: Callable[[HDF5Reader, dict, dict], dict[str, np.ndarray]]  # (reader, preds, assets) -> metrics
    #: The seed's published numbers as it prints them (its precision: ``14.6`` is not ``14.60``).
    published: dict[str, str] = field(default_factory=dict)
    #: Subsets (the data file's split attribute) the published numbers are of; None: the file's
    #: subset is not reported (only Stirling's file decides it: HQ or LQ, the seed publishes HQ).
    published_subsets: tuple[str, ...] | None = None
    needs: tuple[str, ...] = ()  # the file's ground-truth fields that scoring reads (checked before any work)

    @property
    def split(self) -> str:
        """The split `expose preprocess` writes for it: the dataset catalog's ``benchmark_split``."""
        return str(DATASETS[self.dataset].benchmark_split)

    @property
    def subset_from_file(self) -> bool:
        """Whether the data file's split attribute is the subset published numbers follow."""
        return self.published_subsets is not None

    def published_for(self, subset: str | None = None) -> dict[str, str]:
        """The seed's values (as printed) a run on ``subset`` compares with (none for a subset the
        seed does not publish)."""
        if self.published_subsets is not None and subset not in self.published_subsets:
            return {}
        return self.published


BENCHMARKS = {
    "ehf": Benchmark(
        "ehf", "ehf", "expose", ("expose",),
        "MMHuman3D: 55 J_regressor joints + 21 vertices; body/hand joints and all/hand/face vertices "
        "PA-aligned per part; box = dataset box, square, no extra scaling. "
        "H4W rows (Hand4Whole EHF.evaluate): PVE all/hands/face translated to pelvis/wrists/neck "
        "(J_regressor 0/20,21/12), PA-PVE all/hands/face, body PA-MPJPE on SMPLX_to_J14, hands PA-MPJPE "
        "(wrist, 15 finger joints, 5 tips); hands = mean of left and right",
        runner.ehf_assets, runner.score_ehf, needs=("vertices",),
        published=dict(zip(protocols.EHF_ROWS, ("55.70", "14.6", "14.4", "56.65", "14.6", "14.5", "6.90"), strict=True))),
    "freihand": Benchmark(
        "freihand", "freihand", "hand", ("hand",),
        "MMHuman3D: 21 joints root-relative PA-MPJPE; PA-PVE against the MANO mesh of the ground-truth "
        "parameters. FH- rows (FreiHAND challenge): PA-PVE and F@5/15 mm against the official "
        "evaluation_verts.json",
        runner.freihand_assets, runner.score_freihand, published={"PA-MPJPE": "10.03", "PA-PVE": "9.61"},
        needs=("keypoints3d", "vertices", "has_mano", "mano/global_orient", "mano/right_hand_pose", "mano/betas")),
    "3dpw": Benchmark(
        "3dpw", "3dpw", "body", ("body", "expose"),
        "MMHuman3D: prediction SMPLX_to_J14; ground truth NEUTRAL SMPL for every subject -> J_regressor_h36m "
        "-> H36M_TO_J14; both centred on the mean of the hips; MPJPE and PA-MPJPE. G- rows (HMR/SPIN/VIBE): "
        "ground truth from the gendered SMPL ('m' male, else female)",
        runner.pw3d_assets, runner.score_3dpw, published={"MPJPE": "92.59", "PA-MPJPE": "60.43"},
        needs=("gender", "smpl/global_orient", "smpl/body_pose", "smpl/betas")),
    "stirling": Benchmark(
        "stirling", "stirling", "face", ("face",),
        "MMHuman3D/FG2018: predicted mesh similarity-aligned to the scan by 7 landmarks, scan cropped to "
        "the face region, mean scan-to-mesh distance ('3DRMSE'); the data file decides the subset (HQ/LQ); "
        "the seed publishes HQ only",
        runner.stirling_assets, runner.score_stirling, published={"3DRMSE": "2.40"}, published_subsets=("HQ",),  # stirling_ESRC3D_HQ.npz
        needs=("scan_landmarks", "scan/vertices", "scan/offsets")),
}


def get_benchmark(name: str) -> Benchmark:
    if name not in BENCHMARKS:
        raise ExposeError(f"unknown benchmark {name!r}", hint="available: " + ", ".join(BENCHMARKS))
    return BENCHMARKS[name]


def open_data(bench: Benchmark, data: Path | None, tree: DataTree) -> HDF5Reader:
    """The benchmark's data file (``data``, or the tree's preprocessed file); refuses another dataset's."""
    path = Path(data) if data is not None else tree.preprocessed_file(bench.dataset, bench.split)
    if not path.is_file():
        raise MissingFileError(path, f"{bench.dataset} {bench.split} data file",
                               f"run `expose preprocess {bench.dataset}`")
    reader = HDF5Reader(path)
    if reader.dataset != bench.dataset:
        reader.close()
        raise ExposeError(f"this is a {reader.dataset!r} file; benchmark {bench.name!r} needs {bench.dataset!r}",
                          path=path, hint=f"run `expose preprocess {bench.dataset}` and pass its file")
    missing = [name for name in bench.needs if name not in reader.file]
    if missing:
        split = reader.attrs.get("split", "?")
        reader.close()
        raise ExposeError(f"no {', '.join(missing)} in this {bench.dataset} {split} file: {bench.name} scores "
                          "against them", path=path, exit_code=2,
                          hint=f"pass the {bench.split} split: `expose preprocess {bench.dataset} --split {bench.split}`")
    return reader


@dataclass
class BenchmarkRun:
    """One scoring of ``benchmark`` on ``reader``'s file: by ``predictor`` (loaded from ``checkpoint``)
    or from ``saved`` predictions (read from ``predictions_file``)."""

    benchmark: Benchmark
    reader: HDF5Reader
    assets: dict
    limit: int | None = None
    checkpoint: Path | None = None
    predictor: Predictor | None = None
    predictions_file: Path | None = None
    saved: dict[str, np.ndarray] | None = None
    saved_attrs: dict[str, str] = field(default_factory=dict)

    @property
    def num_samples(self) -> int:
        return len(self.reader) if self.limit is None else min(self.limit, len(self.reader))

    @property
    def subset(self) -> str | None:
        """The subset the data file holds (Stirling HQ / LQ), for benchmarks whose file decides it."""
        return str(self.reader.attrs.get("split", "")) if self.benchmark.subset_from_file else None


def prepare(bench: Benchmark, reader: HDF5Reader, tree: DataTree, *, ckpt: str | None = None,
            from_predictions: Path | None = None, limit: int | None = None,
            load_model: Callable[[Path], Predictor] | None = None) -> BenchmarkRun:
    """Check and load everything before any network work or hashing, cheapest first: the checkpoint
    (exists) or the saved predictions (right benchmark), the files scoring needs, then the model
    (``load_model(checkpoint)``, which must be of one of the benchmark's kinds)."""
    from expose_cli.models.checkpoint import resolve_checkpoint

    run = BenchmarkRun(bench, reader, {}, limit)
    if from_predictions is not None:
        run.predictions_file = from_predictions
        run.saved, run.saved_attrs = runner.load_predictions(from_predictions, bench.name)
    else:
        run.checkpoint = runner.needed_for(bench.name, lambda: resolve_checkpoint(ckpt or bench.default_ckpt, tree))
    run.assets = bench.load_assets(reader, tree, run.num_samples)
    if run.checkpoint is not None and load_model is not None:
        run.predictor = load_model(run.checkpoint)
        if run.predictor.kind not in bench.kinds:
            raise ExposeError(f"{run.checkpoint} is a {run.predictor.kind!r} model; {bench.name} needs "
                              f"{' or '.join(bench.kinds)}", hint=f"use {option('ckpt')} {bench.default_ckpt}")
    return run


def provenance(run: BenchmarkRun, model_config: dict | None = None) -> dict:
    """What the numbers come from: benchmark, protocol, the data file and its sha256, versions, the
    config overrides (``model_config``) and the checkpoint's sha256, or the saved predictions' details."""
    import torch

    info = {"benchmark": run.benchmark.name, "protocol": run.benchmark.protocol, "data_file": str(run.reader.path)}
    if run.subset is not None:
        info["subset"] = run.subset
    info.update({"data_sha256": hashing.sha256_file(run.reader.path), "expose_version": __version__,
                 "python": platform.python_version()})
    if model_config:  # results under a changed config
        info["model_config_overrides"] = model_config
    if run.saved is not None:
        info.update({k: run.saved_attrs[k] for k in ("checkpoint", "checkpoint_sha256", "torch", "samples_per_s")
                     if k in run.saved_attrs})
        info.update({"predictions": str(run.predictions_file), "scored_with_torch": torch.__version__})
    else:
        info.update({"checkpoint": str(run.checkpoint), "checkpoint_sha256": hashing.sha256_file(run.checkpoint),
                     "torch": torch.__version__})
    return info


def predictions(run: BenchmarkRun, info: dict, batch_size: int = 8, workers: int = 2,
                on_batch: Callable[[int], None] | None = None, shard: Shard = Shard()) -> dict[str, np.ndarray]:
    """The saved predictions, checked to belong to the data file, or the model's on the file's
    samples (``info`` gets the speed, ``samples_per_s``; ``on_batch`` the count of each batch)."""
    if run.saved is not None:
        return runner.match_predictions(run.saved, run.saved_attrs, run.reader, info["data_sha256"], run.limit,
                                        run.predictions_file)
    start = time.perf_counter()
    preds = runner.predict(run.benchmark.name, run.reader, run.predictor, batch_size, run.limit, on_batch, workers,
                           shard)
    info["samples_per_s"] = round(len(preds["image_path"]) / (time.perf_counter() - start), 3)
    return preds


def score(run: BenchmarkRun, preds: dict[str, np.ndarray], info: dict) -> runner.EvalResult:
    """The benchmark's per-sample metrics of ``preds``."""
    metrics = run.benchmark.score(run.reader, preds, run.assets)
    return runner.EvalResult(run.benchmark.name, metrics, list(preds["image_path"]), info)
