"""The training loop: steps over epochs, with hooks around them (detectron2's ``TrainerBase``).

One step is MMHuman3D's: sum the weighted loss terms, zero every optimiser, one backward, step
every optimiser (§1), one Adam per module group with a per-epoch step decay. Fixed here (§5):
gradient clipping and AMP are honoured, non-finite losses are skipped (all processes together) and
counted. Everything else a run does (progress bar, JSONL/TensorBoard log, validation, checkpoints)
is a hook of :mod:`expose_cli.training.hooks` / :mod:`expose_cli.training.checkpointer`, called in
list order; :func:`expose_cli.training.run.build_hooks` writes the list out. DDP-ready.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from expose_cli.errors import ExposeError, option
from expose_cli.kinds import KINDS
from expose_cli.models.model import ExPoseModel
from expose_cli.models.network import ExPoseNet
from expose_cli.training import distributed as D
from expose_cli.training.config import RunConfig
from expose_cli.training.hooks import HookBase
from expose_cli.training.objective import compute_losses, model_input
from expose_cli.training.stop import StopRequested


@dataclass
class Progress:
    """Where a run stands (saved in every checkpoint)."""

    epoch: int = 0  # the epoch in progress (epochs before it are complete)
    step: int = 0  # batches run so far, skipped ones included
    epoch_step: int = 0  # batches of this epoch already run
    skipped: int = 0  # steps skipped for a non-finite loss
    bad_in_row: int = 0
    best: float | None = None
    best_epoch: int = -1


def build_optimizers(net, cfg: RunConfig) -> dict[str, torch.optim.Adam]:
    """One Adam (lr, coupled weight decay) per module group that has trainable parameters."""
    t = cfg.train
    out = {}
    for name in KINDS[cfg.kind].optimizer_groups:
        module = getattr(net, name, None)
        params = [p for p in module.parameters() if p.requires_grad] if module is not None else []
        if params:
            out[name] = torch.optim.Adam(params, lr=t.lr, weight_decay=t.weight_decay)
    return out


def autocast_context(precision: str, device: torch.device):
    """bf16/fp16 autocast on GPU (bf16 also on CPU); fp32: none."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dev = "cuda" if device.type == "cuda" else "cpu"
    if dev == "cpu" and precision == "fp16":
        raise ExposeError("fp16 needs a GPU", hint=f"use {option('precision')} bf16 or fp32 on the CPU")
    return torch.autocast(dev, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


class Trainer:
    """Runs ``cfg`` on ``model`` (an :class:`ExPoseModel`) with ``dataset`` / ``sampler``, calling
    ``hooks`` (:class:`~expose_cli.training.hooks.HookBase`) in order; ``out_dir`` is the run's
    directory (named in errors)."""

    def __init__(self, cfg: RunConfig, model: ExPoseModel, dataset, sampler, collate_fn, out_dir: Path,
                 info: D.DistInfo | None = None, hooks: Sequence[HookBase] = ()) -> None:
        self.cfg, self.info, self.out_dir, self.hooks = cfg, info or D.DistInfo(), Path(out_dir), list(hooks)
        model = model.to(self.info.device).train()
        self.dataset, self.sampler = dataset, sampler
        self.loader = DataLoader(dataset, batch_size=cfg.train.batch_size, sampler=sampler,
                                 num_workers=cfg.train.workers, collate_fn=collate_fn, drop_last=False,
                                 pin_memory=model.device.type == "cuda", generator=torch.Generator())
        self.optimizers = build_optimizers(model.net, cfg)
        if not self.optimizers:
            raise ExposeError(f"the {cfg.kind} model has no trainable parameters")
        self.schedulers = {k: torch.optim.lr_scheduler.MultiStepLR(o, list(cfg.train.milestones), cfg.train.gamma)
                           for k, o in self.optimizers.items()}
        fp16_cuda = cfg.train.precision == "fp16" and model.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=fp16_cuda)
        #: the model as the step calls it: DDP-wrapped under torchrun, else the model itself
        self.wrapped = self._wrap(model)
        self.progress = Progress()
        self.last_parts: dict[str, float] = {}  # the last finite step's loss terms (all processes)

    def _wrap(self, model: ExPoseModel) -> torch.nn.Module:
        if not self.info.sharded:
            return model
        ids = [self.info.local_rank] if model.device.type == "cuda" else None
        # Buffers (BatchNorm statistics under norm_eval, the body models) never change: no broadcast
        # (with train.norm_eval = false each process keeps its own statistics; rank 0's are saved).
        return DistributedDataParallel(model, device_ids=ids, broadcast_buffers=False,
                                       find_unused_parameters=self.cfg.train.find_unused_parameters)

    @property
    def model(self) -> ExPoseModel:
        """The bare model (validation, checkpoints; its device is read from its weights)."""
        return self.wrapped.module if isinstance(self.wrapped, DistributedDataParallel) else self.wrapped

    @property
    def net(self) -> ExPoseNet:
        """The networks whose weights a checkpoint holds."""
        return self.model.net

    def lr(self) -> float:
        return next(iter(self.optimizers.values())).param_groups[0]["lr"]

    # -- one step ------------------------------------------------------------------------------------
    def step(self, batch: dict) -> dict[str, float] | None:
        """One optimisation step; ``None`` when the loss was not finite (the step is skipped)."""
        t = self.cfg.train
        device = self.model.device  # where the weights are, whatever moved them
        batch = to_device(batch, device)
        with autocast_context(t.precision, device):
            pred = self.wrapped(model_input(batch))
            terms = compute_losses(pred, batch, self.cfg.loss)
        loss = sum(v.float() for v in terms.values())
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=True)
        if not D.all_true(bool(torch.isfinite(loss).item()), self.info, device):
            self._bad_step(terms)
            return None
        self.progress.bad_in_row = 0
        self.scaler.scale(loss).backward()
        if t.grad_clip > 0:
            params = []
            for opt in self.optimizers.values():
                self.scaler.unscale_(opt)
                params += [p for g in opt.param_groups for p in g["params"]]
            torch.nn.utils.clip_grad_norm_(params, t.grad_clip)
        for opt in self.optimizers.values():
            self.scaler.step(opt)
        self.scaler.update()
        parts = torch.stack([loss.detach(), *[v.detach().float() for v in terms.values()]])
        values = D.all_reduce_mean(parts, self.info).tolist()
        return {"loss": values[0], **dict(zip(terms, values[1:], strict=True))}

    def _bad_step(self, terms: dict) -> None:
        p = self.progress
        p.skipped += 1
        p.bad_in_row += 1
        if p.bad_in_row >= self.cfg.train.max_bad_steps:
            bad = ", ".join(k for k, v in terms.items() if not torch.isfinite(v).all()) or "the sum"
            raise ExposeError(f"{p.bad_in_row} non-finite losses in a row (at step {p.step}; non-finite: {bad})",
                              hint=f"lower {option('lr')}, add {option('grad-clip')}, or use {option('precision')} fp32; "
                                   f"resume from {self.out_dir / 'last.pth'}")

    # -- epochs --------------------------------------------------------------------------------------
    def fit(self) -> str:
        """Train until the last epoch, ``max_steps`` or a stop signal; returns ``done``, ``max_steps``
        or the signal's name. The hooks' ``after_train`` (``last.pth``) runs on every exit but an error."""
        t = self.cfg.train
        for hook in self.hooks:
            hook.before_train(self)
        status = "done"
        with StopRequested() as stop:
            while self.progress.epoch < t.epochs:
                status = self._run_epoch(stop)
                if status != "epoch":
                    break
                self._end_epoch()
            else:
                status = "done"
        for hook in self.hooks:
            hook.after_train(self, status)
        return status

    def _batches(self):
        """This epoch's loader iterator, continuing where ``progress.epoch_step`` says."""
        p, t = self.progress, self.cfg.train
        self.sampler.set_epoch(p.epoch)
        self.sampler.load_state_dict({"epoch": p.epoch, "position": p.epoch_step * t.batch_size})
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(p.epoch)
        # Worker seeds from a generator of their own: making the iterator never draws from the
        # global torch generator, so a resumed run's dropout masks continue the same sequence.
        self.loader.generator.manual_seed(t.seed * 100003 + p.epoch)
        return iter(self.loader)

    def _run_epoch(self, stop: StopRequested) -> str:
        """The rest of this epoch's steps: ``epoch`` when they all ran, else ``max_steps`` or the signal."""
        p, t = self.progress, self.cfg.train
        for hook in self.hooks:
            hook.before_epoch(self)
        tic, samples = time.perf_counter(), 0
        for batch in self._batches():
            parts = self.step(batch)
            p.step += 1
            p.epoch_step += 1
            samples += int(batch["img"].shape[0]) * self.info.world_size
            self.after_step(parts, samples / max(time.perf_counter() - tic, 1e-9))
            if t.max_steps and p.step >= t.max_steps:
                return "max_steps"
            if D.broadcast_object(stop.reason, self.info):
                return stop.reason or "stopped"
        return "epoch"

    def after_step(self, parts: dict[str, float] | None, rate: float) -> None:
        """The hooks after a step (``parts`` ``None``: skipped; ``rate``: samples/s this epoch)."""
        if parts is not None:
            self.last_parts = parts
        for hook in self.hooks:
            hook.after_step(self, parts, rate)

    def _end_epoch(self) -> None:
        """A complete epoch: the lr schedule steps, the epoch counts, then the hooks."""
        p = self.progress
        for sched in self.schedulers.values():
            sched.step()
        p.epoch += 1
        p.epoch_step = 0
        for hook in self.hooks:
            hook.after_epoch(self)
