"""What the training loop calls around its steps: the progress bar, the JSONL / TensorBoard log and
validation (checkpoints: :mod:`expose_cli.training.checkpointer`).

detectron2's ``HookBase`` is the model: :class:`~expose_cli.training.loop.Trainer` runs the steps and
calls each hook, in list order, at fixed points. Here the trainer is an argument of every call (a
hook holds no handle to it), and :func:`expose_cli.training.run.build_hooks` writes the list out.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from expose_cli.training import distributed as D

#: the run's log, in its directory
LOG_FILE = "log.jsonl"

if TYPE_CHECKING:
    from expose_cli.training.checkpointer import Checkpointer
    from expose_cli.training.loop import Trainer


class HookBase:
    """The points of a run, in order: ``before_train``; per epoch ``before_epoch``, ``after_step``
    after each step (``parts``: the step's loss terms, ``None`` for a skipped step; ``rate``:
    samples/s of this epoch so far, all processes), and ``after_epoch`` once an epoch is complete
    (its lr schedule stepped and ``progress.epoch`` counting it); ``after_train`` on every exit but an
    error (``status``: ``done``, ``max_steps`` or the stop signal's name). Every process calls every
    point: a hook that writes checks ``trainer.info.is_main`` itself."""

    def before_train(self, trainer: Trainer) -> None:
        pass

    def before_epoch(self, trainer: Trainer) -> None:
        pass

    def after_step(self, trainer: Trainer, parts: dict[str, float] | None, rate: float) -> None:
        pass

    def after_epoch(self, trainer: Trainer) -> None:
        pass

    def after_train(self, trainer: Trainer, status: str) -> None:
        pass


class ProgressBar(HookBase):
    """A tqdm bar per epoch on rank 0: the step's loss terms, the lr and samples/s."""

    def __init__(self) -> None:
        self.bar = None

    def before_epoch(self, trainer: Trainer) -> None:
        if not trainer.info.is_main:
            return
        from tqdm import tqdm

        p = trainer.progress
        self.bar = tqdm(total=len(trainer.loader), initial=p.epoch_step, desc=f"epoch {p.epoch + 1}/{trainer.cfg.train.epochs}",
                        unit="step", dynamic_ncols=True, leave=False, mininterval=1.0)

    def after_step(self, trainer: Trainer, parts: dict[str, float] | None, rate: float) -> None:
        if self.bar is None:
            return
        self.bar.update(1)
        if parts is not None:
            shown = {k: f"{v:.3g}" for k, v in parts.items()}
            self.bar.set_postfix({**shown, "lr": f"{trainer.lr():.1e}", "samples/s": f"{rate:.1f}"}, refresh=False)

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def after_epoch(self, trainer: Trainer) -> None:
        self._close()

    def after_train(self, trainer: Trainer, status: str) -> None:
        self._close()


class MetricLog(HookBase):
    """``out_dir/log.jsonl`` (one JSON record a line: ``type`` ``train`` every ``log_every`` steps and
    at step 1, ``val`` from :class:`Validation`) and, with the ``tensorboard`` extra, the same scalars
    under ``out_dir/tensorboard/``; rank 0 writes."""

    def __init__(self, out_dir: Path, info: D.DistInfo, log_every: int) -> None:
        self.path, self.info, self.log_every = Path(out_dir) / LOG_FILE, info, log_every
        self.tb = None

    def before_train(self, trainer: Trainer) -> None:
        if not self.info.is_main:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # the optional extra: pip install "expose-cli[tensorboard]"
            return
        self.tb = SummaryWriter(str(self.path.parent / "tensorboard"))

    def write(self, record: dict) -> None:
        """One record (``type``, ``epoch``, ``step`` and numbers) on rank 0."""
        if not self.info.is_main:
            return
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        if self.tb is not None:
            for key, value in record.items():
                if isinstance(value, (int, float)) and key not in ("epoch", "step"):
                    self.tb.add_scalar(f"{record['type']}/{key}", value, record["step"])

    def after_step(self, trainer: Trainer, parts: dict[str, float] | None, rate: float) -> None:
        p = trainer.progress
        if parts is not None and (p.step % max(1, self.log_every) == 0 or p.step == 1):
            self.write({"type": "train", "epoch": p.epoch, "step": p.step, "lr": trainer.lr(),
                        "samples_per_s": round(rate, 2), "skipped": p.skipped, **parts})

    def after_train(self, trainer: Trainer, status: str) -> None:
        if self.tb is not None:
            self.tb.close()
            self.tb = None


class Validation(HookBase):
    """Every ``val_every`` epochs rank 0 runs ``validate(model) -> (metrics, primary)`` (the `expose
    eval` protocols; lower is better) and every rank receives the result: a ``val`` record, a line,
    and ``best.pth`` (all ranks join its save) on a new best primary metric."""

    def __init__(self, validate: Callable | None, val_every: int, metric_log: MetricLog, checkpointer: Checkpointer,
                 info: D.DistInfo, log: Callable[[str], None] = print) -> None:
        self.validate, self.val_every, self.info, self.log = validate, val_every, info, log
        self.metric_log, self.checkpointer = metric_log, checkpointer
        # Only rank 0 validates (it alone builds ``validate``), but every rank joins the broadcast.
        self.enabled = bool(D.broadcast_object(validate is not None, info))
        self.history: list[dict] = []

    def after_epoch(self, trainer: Trainer) -> None:
        p = trainer.progress
        if not (self.val_every and p.epoch % self.val_every == 0 and self.enabled):
            return
        result = None
        if self.info.is_main:
            trainer.model.eval()
            result = self.validate(trainer.model)
            trainer.model.train()
        metrics, primary = D.broadcast_object(result, self.info)
        value = float(metrics[primary])
        improved = p.best is None or value < p.best
        if improved:
            p.best, p.best_epoch = value, p.epoch
        self.metric_log.write({"type": "val", "epoch": p.epoch, "step": p.step, **metrics})
        self.history.append({"epoch": p.epoch, **metrics})
        if self.info.is_main:
            self.log(f"epoch {p.epoch}: " + ", ".join(f"{k} {v:.2f}" for k, v in metrics.items()))
        if improved:
            self.checkpointer.save(trainer, "best.pth")
