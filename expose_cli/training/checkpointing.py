"""Training checkpoints: the model under MMHuman3D's key names plus everything a resume needs.

The file is our checkpoint format (:mod:`expose_cli.models.checkpoint`: ``format``, ``config``,
``state_dict`` with MMHuman3D's keys), so `expose infer` and `expose eval` load it unchanged and
MMHuman3D's ``load_checkpoint`` reads its ``state_dict``. A ``resume`` entry adds the optimisers,
schedulers, grad scaler, epoch/step, sampler position and every random generator (python, numpy,
torch, CUDA). Writing is atomic (temporary name, then rename): an interrupted or failed save
(disk full) leaves the previous file as it was.
"""

from __future__ import annotations

import errno
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from expose_cli.errors import ExposeError, option
from expose_cli.models.checkpoint import FORMAT, FORMAT_VERSION, _safe_torch_load
from expose_cli.utils.atomic import atomic_path

RESUME_VERSION = 1


def rng_state() -> dict:
    """Every generator's state, as plain tensors/lists (loadable with ``weights_only=True``)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    py = random.getstate()
    state = {"python": [py[0], list(py[1]), py[2]], "torch": torch.get_rng_state(),
             "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "gauss": float(gauss)}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_training_checkpoint(path: Path, net, run_config: dict, step: int, epoch: int, resume: dict | None) -> None:
    """Write ``path`` atomically; a full disk is one clear error and the previous file stays valid."""
    obj = {"format": FORMAT, "version": FORMAT_VERSION, "kind": net.kind, "config": net.cfg.to_dict(),
           "step": int(step), "epoch": int(epoch), "state_dict": net.state_dict(),
           "meta": {"epoch": int(epoch), "iter": int(step), "expose_run_config": run_config}}
    if resume is not None:
        obj["resume"] = {"version": RESUME_VERSION, **resume}
    try:
        with atomic_path(path) as tmp:
            torch.save(obj, tmp)
    except OSError as exc:
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
        raise ExposeError(f"cannot write checkpoint: {exc.strerror or exc}", path=path,
                          hint=("free disk space; " if full else "") + "the previous checkpoint is unchanged") from exc


def load_training_checkpoint(path: Path, kind: str) -> dict:
    """A checkpoint written by `expose train` for model ``kind``, with its resume state; anything else
    (damaged, foreign, another model, no resume state) is one clear error."""
    path = Path(path)
    if not path.is_file():
        raise ExposeError("resume checkpoint not found", path=path, hint=f"give the run's last.pth (or omit {option('resume')})")
    obj = _safe_torch_load(path)
    if obj.get("format") != FORMAT or "resume" not in obj:
        raise ExposeError("not a checkpoint of `expose train` with a resume state", path=path,
                          hint="resume from a run directory's last.pth or epoch_K.pth")
    if obj.get("kind") != kind:
        raise ExposeError(f"this checkpoint is of a {obj.get('kind')!r} model, not {kind!r}", path=path,
                          hint=f"run `expose train {obj.get('kind')} ...` to resume it")
    if int(obj["resume"].get("version", 0)) > RESUME_VERSION:
        raise ExposeError("checkpoint written by a newer expose", path=path, hint="pip install -U expose-cli")
    return obj


@dataclass(frozen=True)
class ResumeState:
    """What ``--resume`` continues from, read once from the run's checkpoint: the run config it was
    saved with, the weights (MMHuman3D's key names) and the loop's state (optimisers, schedulers,
    grad scaler, progress, every rank's generators; see :mod:`expose_cli.training.checkpointer`)."""

    path: Path
    run_config: dict
    state_dict: dict
    loop: dict

    @classmethod
    def load(cls, path: Path, kind: str) -> ResumeState:
        """``path`` checked by :func:`load_training_checkpoint` (one clear error for anything else)."""
        obj = load_training_checkpoint(path, kind)
        return cls(Path(path), obj["meta"]["expose_run_config"], obj["state_dict"], obj["resume"])
