"""DDP under torchrun: the process group from torchrun's environment, rank-0 helpers, reductions.

``torchrun --nproc-per-node N -m expose_cli train ...`` sets ``RANK``, ``LOCAL_RANK``,
``WORLD_SIZE``, ``MASTER_ADDR``/``MASTER_PORT``; :func:`init` joins the group (NCCL on GPU, gloo on
CPU). Multi-node runs use torchrun's own rendezvous flags (``--nnodes``, ``--node-rank``,
``--rdzv-endpoint``); nothing here changes for them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist

from expose_cli.utils.shard import Shard


@dataclass(frozen=True)
class DistInfo(Shard):
    """A training process's share (:class:`~expose_cli.utils.shard.Shard`, the type infer and eval
    use: ``rank`` of ``world_size``), its ``local_rank`` on its node, and the device it puts the model
    on (the trainer then reads the model's device from its weights)."""

    local_rank: int = 0
    device: torch.device = torch.device("cpu")


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ and "LOCAL_RANK" in os.environ


def init(device: torch.device | None = None) -> DistInfo:
    """Join torchrun's process group when launched by it (else a single process) and pick the
    device: ``cuda:LOCAL_RANK`` when CUDA is there, else the CPU (gloo)."""
    if device is None:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if not launched_by_torchrun() or int(os.environ["WORLD_SIZE"]) <= 1:
        cuda = device.type == "cuda" and device.index is None
        return DistInfo(device=torch.device("cuda", 0) if cuda else device)
    rank, world, local = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"])
    if device.type == "cuda":
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistInfo(rank, world, local, device)


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_mean(values: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """The mean of ``values`` over all processes (unchanged in a single process)."""
    if not info.sharded:
        return values
    out = values.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / info.world_size


def all_true(flag: bool, info: DistInfo, device: torch.device | str = "cpu") -> bool:
    """``flag`` on every process (so that all of them skip a step together, or none does)."""
    if not info.sharded:
        return flag
    t = torch.tensor([1 if flag else 0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())


def barrier(info: DistInfo) -> None:
    if info.sharded:
        dist.barrier()


def broadcast_object(obj, info: DistInfo):
    """Rank 0's ``obj`` on every process."""
    if not info.sharded:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def torchrun_command(nproc: int, argv: list[str]) -> list[str]:
    """The command that runs ``expose <argv>`` in ``nproc`` processes on this machine."""
    exe = shutil.which("torchrun")
    launcher = [exe] if exe else [sys.executable, "-m", "torch.distributed.run"]
    return [*launcher, "--standalone", f"--nproc-per-node={nproc}", "-m", "expose_cli", *argv]


def launch(nproc: int, argv: list[str]) -> int:
    """``expose train --nproc N``: run the same command under torchrun; returns its exit code."""
    return subprocess.call(torchrun_command(nproc, argv))
