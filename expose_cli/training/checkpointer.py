"""The run's checkpoints: ``last.pth`` every ``last_every`` steps and on every exit but an error,
``epoch_K.pth`` every ``save_every`` epochs, ``best.pth`` when :class:`~expose_cli.training.hooks.Validation`
asks; and the loop state they carry, restored by ``--resume`` (the file format:
:mod:`expose_cli.training.checkpointing`).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from expose_cli.errors import ExposeError
from expose_cli.training import distributed as D
from expose_cli.training.checkpointing import rng_state, save_training_checkpoint, set_rng_state
from expose_cli.training.hooks import HookBase

if TYPE_CHECKING:
    from expose_cli.training.checkpointing import ResumeState
    from expose_cli.training.loop import Trainer


def training_state(trainer: Trainer) -> dict:
    """Everything but the weights that a resume restores (every rank's generators gathered)."""
    info = trainer.info
    rngs = [rng_state()]
    if info.sharded:
        rngs = [None] * info.world_size
        torch.distributed.all_gather_object(rngs, rng_state())
    return {"optimizers": {k: o.state_dict() for k, o in trainer.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in trainer.schedulers.items()},
            "scaler": trainer.scaler.state_dict(), "progress": asdict(trainer.progress), "rng": rngs,
            "world_size": info.world_size}


def restore_training_state(trainer: Trainer, resume: ResumeState) -> None:
    """Weights, optimisers, schedulers, grad scaler, progress and this rank's generators from ``resume``."""
    from expose_cli.models.checkpoint import load_state
    from expose_cli.training.loop import Progress

    state = resume.loop
    load_state(trainer.net, resume.state_dict, "expose-cli-checkpoint")
    if set(state["optimizers"]) != set(trainer.optimizers):
        raise ExposeError("the checkpoint's optimisers do not match this model's trainable groups", path=resume.path,
                          hint="resume with the configuration the run started with")
    for k, o in trainer.optimizers.items():
        o.load_state_dict(state["optimizers"][k])
        trainer.schedulers[k].load_state_dict(state["schedulers"][k])
    trainer.scaler.load_state_dict(state["scaler"])
    trainer.progress = Progress(**state["progress"])
    rngs, info = state["rng"], trainer.info
    set_rng_state(rngs[info.rank] if len(rngs) == info.world_size else rngs[0])


class Checkpointer(HookBase):
    """Writes checkpoints into ``out_dir``: every rank gathers the state, rank 0 writes (atomically)."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)

    def save(self, trainer: Trainer, name: str) -> Path:
        """``out_dir/name``: the weights, the run config and :func:`training_state`."""
        state = training_state(trainer)
        path = self.out_dir / name
        p = trainer.progress
        if trainer.info.is_main:
            save_training_checkpoint(path, trainer.net, trainer.cfg.to_dict(), p.step, p.epoch, state)
        D.barrier(trainer.info)
        return path

    def after_step(self, trainer: Trainer, parts: dict[str, float] | None, rate: float) -> None:
        every = trainer.cfg.train.last_every
        if every and trainer.progress.step % every == 0:
            self.save(trainer, "last.pth")

    def after_epoch(self, trainer: Trainer) -> None:
        every, epoch = trainer.cfg.train.save_every, trainer.progress.epoch
        if every and epoch % every == 0:
            self.save(trainer, f"epoch_{epoch}.pth")

    def after_train(self, trainer: Trainer, status: str) -> None:
        self.save(trainer, "last.pth")
