"""One training run from a resolved :class:`RunConfig`: checks, run directory, model, data,
validation, the loop, and the summary.

Order: every input file is checked before any work (one line naming the first missing one and the
command that makes it); then the run directory (refused when not empty without ``--resume``);
then the model, its initialisation or the resume state; then the loop.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from expose_cli.errors import ExposeError, MissingFileError, option
from expose_cli.io.paths import DataTree
from expose_cli.kinds import KINDS
from expose_cli.training import distributed as D
from expose_cli.training.config import RunConfig
from expose_cli.utils.atomic import write_json_atomic, write_text_atomic
from expose_cli.utils.stale import remove_stale_temps

if TYPE_CHECKING:
    from expose_cli.training.checkpointing import ResumeState
    from expose_cli.training.hooks import HookBase


def data_files(cfg: RunConfig, data_dir: Path) -> list[tuple[Path, str, str]]:
    """(file, what, the command that makes it) for every training member."""
    from expose_cli.training.datasets import member_files

    out = []
    for name in cfg.data.members:
        files, command = member_files(str(name), data_dir)
        if str(name).endswith(".h5"):
            out += [(f, f"training file {name}", "check the path in data.members") for f in files]
        else:
            out += [(f, f"{name} training data", f"`{command}`") for f in files]
    return out


def body_model_files(kind: str, tree: DataTree) -> list[tuple[Path, str, str]]:
    from expose_cli.body_models.builders import model_candidates

    model = (KINDS[kind].body_model, KINDS[kind].model_variant)
    cands = model_candidates(tree, *model)
    hint = "`expose import-body-models FILE.zip` (see `expose doctor`)"
    found = next((p for p in cands if p.is_file()), cands[0])
    return [(found, f"{model[0].upper()} model", hint)]


def validation_files(cfg: RunConfig, tree: DataTree) -> list[tuple[Path, str, str]]:
    """The file validation reads every ``val_every`` epochs (none when validation is off)."""
    t = cfg.train
    if not t.val_set or t.val_set == "none" or not t.val_every:
        return []
    off = f"or train without validation: {option('val-every')} 0"
    if t.val_data:
        return [(Path(t.val_data), f"{t.val_set} validation data", f"check {option('set')} train.val_data, {off}")]
    if t.val_set == "heldout":
        return []  # build_validation says that heldout needs train.val_data
    from expose_cli.evaluation.benchmark import get_benchmark

    bench = get_benchmark(t.val_set)
    return [(tree.preprocessed_file(bench.dataset, bench.split), f"{t.val_set} validation data (every {t.val_every} epochs)",
             f"`expose preprocess {bench.dataset}`, {off}")]


def preflight(cfg: RunConfig, tree: DataTree, resume: Path | None) -> None:
    """Stop before any work when a needed file is missing: datasets, body model, init weights."""
    from expose_cli.training.pretrained import required_files

    needed = data_files(cfg, tree.root) + body_model_files(cfg.kind, tree)
    if resume is None:
        needed += required_files(cfg.kind, cfg.train.init, tree)
    needed += validation_files(cfg, tree)
    for path, what, command in needed:
        if not Path(path).is_file():
            raise MissingFileError(path, what, command)


def check_run_dir(out: Path, resume: bool) -> None:
    """``out`` must be new or empty unless resuming (then it must hold the run)."""
    if not resume and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExposeError("run directory is not empty", path=out, exit_code=2,
                          hint=f"choose a new {option('out')}, or add {option('resume')} to continue the run in it")


def prepare_run_dir(out: Path, resume: bool) -> None:
    check_run_dir(out, resume)
    out.mkdir(parents=True, exist_ok=True)


def write_run_files(out: Path, cfg: RunConfig, argv: list[str]) -> None:
    """The resolved config and a README line saying how to resume."""
    write_json_atomic(out / "config.json", cfg.to_dict())
    args = [a for a in argv if a != "--resume"]
    line = "expose " + " ".join(shlex.quote(a) for a in args) + " --resume"
    (out / "README.txt").write_text(f"expose train run ({cfg.kind}).\nResume it with:\n  {line}\n", encoding="utf-8")


def build_model(cfg: RunConfig, tree: DataTree):
    """A fresh :class:`ExPoseModel` of the config (heads starting from the seed's mean files)."""
    from expose_cli.models.checkpoint import build_model as attach_body_model
    from expose_cli.models.checkpoint import new_net

    net = new_net(cfg.model, tree)
    net.norm_eval = cfg.train.norm_eval
    return attach_body_model(net, tree)


def build_data(cfg: RunConfig, data_dir: Path, info: D.DistInfo):
    """The training dataset, its distributed mixing sampler and the collate function."""
    from expose_cli.training.datasets import build_train_dataset, collate
    from expose_cli.training.mixing import MixedSampler

    dataset = build_train_dataset(cfg.data, data_dir, cfg.kind, cfg.train.seed)
    sampler = MixedSampler(dataset, cfg.data.ratios, seed=cfg.train.seed, rank=info.rank, world_size=info.world_size)
    return dataset, sampler, collate


def seed_everything(seed: int, rank: int = 0) -> None:
    """Python, numpy and torch (CPU and CUDA) generators; each rank its own stream."""
    import random

    random.seed(seed + rank)
    np.random.seed((seed + rank) % 2**32)
    torch.manual_seed(seed + 1000003 * rank)


def trim_log(path: Path, step: int) -> None:
    """Drop the ``log.jsonl`` records of steps after ``step`` (the checkpoint resumed from): a run
    killed after its last checkpoint logged steps that the resumed run does again. A line cut
    short by the kill goes too."""
    if not path.is_file():
        return
    lines = path.read_text(encoding="utf-8").splitlines()
    keep = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if int(record.get("step", 0)) <= step:
            keep.append(line)
    if len(keep) != len(lines):
        write_text_atomic(path, "".join(line + "\n" for line in keep))


def summary_rows(trainer, status: str) -> list[tuple[str, str]]:
    """The final summary: what ran, where it stopped, losses, best validation, files."""
    p = trainer.progress
    # A stop on an epoch's last step (--max-steps at a boundary) has run the whole epoch; its end
    # (lr schedule, validation, epoch_K.pth) follows on --resume.
    done = p.epoch + int(p.epoch_step >= len(trainer.loader))
    rows = [("status", status), ("epochs", f"{done} complete, step {p.step}"), ("skipped steps", str(p.skipped))]
    for key, value in trainer.last_parts.items():
        rows.append((f"last {key}", f"{value:.4g}"))
    if p.best is not None:
        rows.append(("best validation", f"{p.best:.2f} (epoch {p.best_epoch})"))
    rows.append(("run directory", str(trainer.out_dir)))
    return rows


def check_device(cfg: RunConfig, device: torch.device) -> None:
    """Settings this process's device cannot run, refused before any work."""
    if cfg.train.precision == "fp16" and device.type != "cuda":
        raise ExposeError(f"{option('precision')} fp16 needs a CUDA GPU; this run is on {device}", exit_code=2,
                          hint=f"use {option('precision')} bf16 or fp32 on the CPU")


def discard_failed_run(out: Path, existed: bool) -> None:
    """After a failure before any checkpoint: remove what this run wrote into ``out`` (config.json,
    README.txt, logs), and ``out`` itself when the run made it, so the same command can run again."""
    import shutil

    if not out.is_dir() or any(out.glob("*.pth")):
        return  # a checkpoint: the run can --resume
    for child in out.iterdir():
        shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    if not existed:
        out.rmdir()


def run(cfg: RunConfig, tree: DataTree, out: Path, resume: ResumeState | None = None, argv: list[str] | None = None,
        info: D.DistInfo | None = None, log: Callable[[str], None] = print):
    """The whole run; returns ``(trainer, status)``. ``resume``: the run's ``last.pth``, read once
    (:meth:`ResumeState.load`; the config came from it too). Everything that can be checked (files,
    device, the ``--init`` checkpoint, the data) is, before the run directory is written."""
    from expose_cli.training.pretrained import initialise
    from expose_cli.training.validation import build_validation

    info = info or D.DistInfo()
    out = Path(out)
    check_device(cfg, info.device)
    if info.is_main:
        check_run_dir(out, resume is not None)
    preflight(cfg, tree, resume.path if resume is not None else None)
    validate = build_validation(cfg, tree) if info.is_main else None  # its files are checked here, before any write
    seed_everything(cfg.train.seed, info.rank)
    model = build_model(cfg, tree)
    line = initialise(model.net, cfg.kind, cfg.train.init, tree, log) if resume is None else None
    dataset, sampler, collate = build_data(cfg, tree.root, info)
    existed = out.exists()
    if info.is_main:
        remove_stale_temps(out)  # a killed run's half-written checkpoint; a running one's are kept
        prepare_run_dir(out, resume is not None)
        write_run_files(out, cfg, argv or ["train", cfg.kind, "--out", str(out)])
        if line:
            log(line)
    D.barrier(info)
    try:
        return _fit(cfg, model, (dataset, sampler, collate), out, info, validate, log, resume)
    except Exception:
        if info.is_main and resume is None:
            discard_failed_run(out, existed)
        raise


def build_hooks(cfg: RunConfig, out: Path, info: D.DistInfo, validate: Callable | None,
                log: Callable[[str], None] = print) -> list[HookBase]:
    """The run's hooks, in the order the loop calls them: the progress bar, ``log.jsonl`` (and
    TensorBoard), validation (``best.pth``), then the checkpoints (``last.pth``, ``epoch_K.pth``)."""
    from expose_cli.training.checkpointer import Checkpointer
    from expose_cli.training.hooks import MetricLog, ProgressBar, Validation

    metric_log = MetricLog(out, info, cfg.train.log_every)
    checkpointer = Checkpointer(out)
    return [ProgressBar(), metric_log, Validation(validate, cfg.train.val_every, metric_log, checkpointer, info, log),
            checkpointer]


def _fit(cfg, model, data, out: Path, info: D.DistInfo, validate, log, resume: ResumeState | None):
    from expose_cli.training.checkpointer import restore_training_state
    from expose_cli.training.hooks import LOG_FILE
    from expose_cli.training.loop import Trainer

    trainer = Trainer(cfg, model, *data, out, info, build_hooks(cfg, out, info, validate, log))
    if resume is not None:
        restore_training_state(trainer, resume)
        if info.is_main:
            trim_log(out / LOG_FILE, trainer.progress.step)
            log(f"resumed from {resume.path} at epoch {trainer.progress.epoch + 1}, step {trainer.progress.step}")
    return trainer, trainer.fit()
