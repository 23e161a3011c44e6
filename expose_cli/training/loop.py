"""The training loop: one Adam per module group, per-epoch step decay, AMP, a NaN guard,
progress, JSONL logging, validation, atomic checkpoints and bit-exact resume, DDP-ready.

One step is MMHuman3D's: sum the weighted loss terms, zero every optimiser, one backward, step
every optimiser (§1). Fixed here (§5): gradient clipping and AMP are honoured, non-finite losses
are skipped (all processes together) and counted, checkpoints are atomic.
"""

from __future__ import annotations

import contextlib
import json
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from expose_cli.errors import ExposeError
from expose_cli.kinds import KINDS
from expose_cli.models.model import ExPoseModel
from expose_cli.training import distributed as D
from expose_cli.training.checkpointing import rng_state, save_training_checkpoint, set_rng_state
from expose_cli.training.config import RunConfig
from expose_cli.training.objective import compute_losses, model_input


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


def autocast_context(precision: str, device: str):
    """bf16/fp16 autocast on GPU (bf16 also on CPU); fp32: none."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dev = "cuda" if device.startswith("cuda") else "cpu"
    if dev == "cpu" and precision == "fp16":
        raise ExposeError("fp16 needs a GPU", hint="use --precision bf16 or fp32 on the CPU")
    return torch.autocast(dev, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def to_device(batch: dict, device: str) -> dict:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


class StopRequested:
    """Ctrl-C / SIGTERM set a flag that the loop checks after each step (a second Ctrl-C aborts)."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self._old: dict = {}

    def __enter__(self) -> StopRequested:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.reason is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.reason = signal.Signals(signum).name

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


class Trainer:
    """Runs ``cfg`` on ``model`` (an :class:`ExPoseModel`) with ``dataset`` / ``sampler``, writing
    into ``out_dir`` (rank 0). ``validate(model) -> (metrics, primary)`` (lower is better)."""

    def __init__(self, cfg: RunConfig, model: ExPoseModel, dataset, sampler, collate_fn, out_dir: Path,
                 info: D.DistInfo | None = None, validate: Callable | None = None,
                 log: Callable[[str], None] = print) -> None:
        self.cfg, self.info = cfg, info or D.DistInfo()
        self.model = model.to(self.info.device).train()
        self.net = model.net
        self.out_dir, self.validate, self.log = Path(out_dir), validate, log
        self.dataset, self.sampler = dataset, sampler
        self.loader = DataLoader(dataset, batch_size=cfg.train.batch_size, sampler=sampler,
                                 num_workers=cfg.train.workers, collate_fn=collate_fn, drop_last=False,
                                 pin_memory=self.info.device.startswith("cuda"), generator=torch.Generator())
        self.optimizers = build_optimizers(self.net, cfg)
        if not self.optimizers:
            raise ExposeError(f"the {cfg.kind} model has no trainable parameters")
        self.schedulers = {k: torch.optim.lr_scheduler.MultiStepLR(o, list(cfg.train.milestones), cfg.train.gamma)
                           for k, o in self.optimizers.items()}
        fp16_cuda = cfg.train.precision == "fp16" and self.info.device.startswith("cuda")
        self.scaler = torch.amp.GradScaler("cuda", enabled=fp16_cuda)
        self.ddp = self._wrap()
        # Only rank 0 validates, but every rank joins the broadcast and the best.pth save.
        self.validating = bool(D.broadcast_object(validate is not None, self.info))
        self.progress = Progress()
        self.history: list[dict] = []
        self.jsonl = self.out_dir / "log.jsonl"
        self.tb = None

    def _wrap(self):
        if not self.info.enabled:
            return self.model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.info.local_rank] if self.info.device.startswith("cuda") else None
        # Buffers (BatchNorm statistics under norm_eval, the body models) never change: no broadcast
        # (with train.norm_eval = false each process keeps its own statistics; rank 0's are saved).
        return DistributedDataParallel(self.model, device_ids=ids, broadcast_buffers=False,
                                       find_unused_parameters=self.cfg.train.find_unused_parameters)

    # -- checkpoints ---------------------------------------------------------------------------------
    def resume_state(self) -> dict:
        """Everything but the weights that a resume restores (gathered from every rank)."""
        rngs = [rng_state()]
        if self.info.enabled:
            rngs = [None] * self.info.world_size
            torch.distributed.all_gather_object(rngs, rng_state())
        return {"optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
                "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
                "scaler": self.scaler.state_dict(), "progress": asdict(self.progress), "rng": rngs,
                "world_size": self.info.world_size}

    def load_resume(self, obj: dict) -> None:
        """Restore a checkpoint of :func:`load_training_checkpoint` (weights and resume state)."""
        from expose_cli.models.checkpoint import load_state

        state = obj["resume"]
        load_state(self.net, obj["state_dict"], "expose-cli-checkpoint")
        if set(state["optimizers"]) != set(self.optimizers):
            raise ExposeError("the checkpoint's optimisers do not match this model's trainable groups",
                              hint="resume with the configuration the run started with")
        for k, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
            self.schedulers[k].load_state_dict(state["schedulers"][k])
        self.scaler.load_state_dict(state["scaler"])
        self.progress = Progress(**state["progress"])
        rngs = state["rng"]
        set_rng_state(rngs[self.info.rank] if len(rngs) == self.info.world_size else rngs[0])

    def save(self, name: str) -> Path:
        """``out_dir/name`` with the resume state (all ranks gather; rank 0 writes)."""
        resume = self.resume_state()
        path = self.out_dir / name
        if self.info.is_main:
            save_training_checkpoint(path, self.net, self.cfg.to_dict(), self.progress.step, self.progress.epoch,
                                     resume)
        D.barrier(self.info)
        return path

    # -- one step ------------------------------------------------------------------------------------
    def step(self, batch: dict) -> dict[str, float] | None:
        """One optimisation step; ``None`` when the loss was not finite (the step is skipped)."""
        t = self.cfg.train
        batch = to_device(batch, self.model.device)  # where the weights are, whatever moved them
        with autocast_context(t.precision, self.info.device):
            pred = self.ddp(model_input(batch))
            terms = compute_losses(pred, batch, self.cfg.loss)
        loss = sum(v.float() for v in terms.values())
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=True)
        if not D.all_true(bool(torch.isfinite(loss).item()), self.info, self.info.device):
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
                              hint="lower --lr, add --grad-clip, or use --precision fp32; "
                                   f"resume from {self.out_dir / 'last.pth'}")

    # -- epochs --------------------------------------------------------------------------------------
    def fit(self) -> str:
        """Train until the last epoch, ``max_steps`` or a stop signal; returns ``done``, ``max_steps``
        or the signal's name. ``last.pth`` is written on every exit but an error."""
        t = self.cfg.train
        self._open_logs()
        status = "done"
        with StopRequested() as stop:
            while self.progress.epoch < t.epochs:
                status = self._run_epoch(stop)
                if status != "epoch":
                    break
                self._end_epoch()
            else:
                status = "done"
        self.save("last.pth")
        if self.tb is not None:
            self.tb.close()
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
        p, t = self.progress, self.cfg.train
        per_epoch = len(self.loader)
        bar = self._bar(per_epoch)
        tic, samples = time.perf_counter(), 0
        for batch in self._batches():
            parts = self.step(batch)
            p.step += 1
            p.epoch_step += 1
            samples += int(batch["img"].shape[0]) * self.info.world_size
            rate = samples / max(time.perf_counter() - tic, 1e-9)
            self._after_step(parts, rate, bar)
            if t.last_every and p.step % t.last_every == 0:
                self.save("last.pth")
            if t.max_steps and p.step >= t.max_steps:
                return self._close_bar(bar, "max_steps")
            if D.broadcast_object(stop.reason, self.info):
                return self._close_bar(bar, stop.reason or "stopped")
        return self._close_bar(bar, "epoch")

    def _end_epoch(self) -> None:
        p, t = self.progress, self.cfg.train
        for sched in self.schedulers.values():
            sched.step()
        p.epoch += 1
        p.epoch_step = 0
        if t.val_every and p.epoch % t.val_every == 0 and self.validating:
            self._validate()
        if t.save_every and p.epoch % t.save_every == 0:
            self.save(f"epoch_{p.epoch}.pth")

    def _validate(self) -> None:
        """Rank 0 validates (the `expose eval` protocols); ``best.pth`` on a new best primary metric."""
        p = self.progress
        result = None
        if self.info.is_main:
            self.model.eval()
            metrics, primary = self.validate(self.model)
            self.model.train()
            result = (metrics, primary)
        metrics, primary = D.broadcast_object(result, self.info)
        value = float(metrics[primary])
        improved = p.best is None or value < p.best
        if improved:
            p.best, p.best_epoch = value, p.epoch
        self._write({"type": "val", "epoch": p.epoch, "step": p.step, **metrics})
        self.history.append({"epoch": p.epoch, **metrics})
        if self.info.is_main:
            self.log(f"epoch {p.epoch}: " + ", ".join(f"{k} {v:.2f}" for k, v in metrics.items()))
        if improved:
            self.save("best.pth")

    # -- logging -------------------------------------------------------------------------------------
    def _open_logs(self) -> None:
        if not self.info.is_main:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # the optional extra: pip install "expose-cli[tensorboard]"
            return
        self.tb = SummaryWriter(str(self.out_dir / "tensorboard"))

    def _write(self, record: dict) -> None:
        if not self.info.is_main:
            return
        with open(self.jsonl, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        if self.tb is not None:
            for key, value in record.items():
                if isinstance(value, (int, float)) and key not in ("epoch", "step"):
                    self.tb.add_scalar(f"{record['type']}/{key}", value, record["step"])

    def lr(self) -> float:
        return next(iter(self.optimizers.values())).param_groups[0]["lr"]

    def _after_step(self, parts: dict | None, rate: float, bar) -> None:
        p, t = self.progress, self.cfg.train
        if parts is not None:
            self.last_parts = parts
        if bar is not None:
            bar.update(1)
            if parts is not None:
                shown = {k: f"{v:.3g}" for k, v in parts.items()}
                bar.set_postfix({**shown, "lr": f"{self.lr():.1e}", "samples/s": f"{rate:.1f}"}, refresh=False)
        if parts is not None and (p.step % max(1, t.log_every) == 0 or p.step == 1):
            self._write({"type": "train", "epoch": p.epoch, "step": p.step, "lr": self.lr(),
                         "samples_per_s": round(rate, 2), "skipped": p.skipped, **parts})

    def _bar(self, per_epoch: int):
        if not self.info.is_main:
            return None
        from tqdm import tqdm

        p = self.progress
        return tqdm(total=per_epoch, initial=p.epoch_step, desc=f"epoch {p.epoch + 1}/{self.cfg.train.epochs}",
                    unit="step", dynamic_ncols=True, leave=False, mininterval=1.0)

    def _close_bar(self, bar, status: str) -> str:
        if bar is not None:
            bar.close()
        return status
