"""`expose infer` across processes: ``torchrun --nproc-per-node N -m expose_cli infer ...``.

torchrun starts N copies with ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` set (:class:`Shard`). Rank ``r`` takes the
inputs ``r, r + N, r + 2N, ...`` (output folders are named from the whole list, so they are the
ones a single process would use), runs on ``cuda:LOCAL_RANK`` (or the CPU), writes its own files
and ``summary.rank<r>.json``; after a barrier rank 0 merges them into ``summary.json`` in input
order. Process group: NCCL on GPUs, gloo on CPUs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from expose_cli.errors import ExposeError
from expose_cli.utils.atomic import write_json_atomic
from expose_cli.utils.shard import Shard


def summary_name(shard: Shard) -> str:
    """``summary.json`` for one process, ``summary.rank<r>.json`` for rank ``r`` of several."""
    return f"summary.rank{shard.rank}.json" if shard.sharded else "summary.json"


def start(device):
    """Join the process group (gloo on CPU, NCCL on CUDA); returns this rank's device."""
    import torch
    import torch.distributed as dist

    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def barrier_and_stop() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def merge_summaries(out_dir: Path, world: int, inputs: list[str]) -> dict:
    """Every rank's summary -> ``summary.json`` (records in input order, then frame order)."""
    order = {path: i for i, path in reversed(list(enumerate(inputs)))}
    records, videos, failed, complete = [], [], 0, True
    for rank in range(world):
        path = out_dir / summary_name(Shard(rank, world))
        try:
            part = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ExposeError(f"cannot read rank {rank}'s summary ({type(exc).__name__})", path=path) from None
        records += part["inputs"]
        videos += part.get("videos", [])
        failed += int(part["failed"])
        complete = complete and bool(part["complete"])
    records.sort(key=lambda r: (order.get(r["input"], len(order)), r.get("frame") or 0))
    videos.sort(key=lambda v: order.get(v["input"], len(order)))
    merged = {"inputs": records, "failed": failed, "complete": complete, "ranks": world}
    if videos:
        merged["videos"] = videos
    write_json_atomic(out_dir / "summary.json", merged)
    return merged


def gather_predictions(preds: dict) -> dict | None:
    """Every rank's predictions (arrays over its samples, with ``sample_index``) -> rank 0 gets all
    of them in sample order, the other ranks ``None``. A collective call: every rank makes it."""
    import numpy as np
    import torch.distributed as dist

    parts: list = [None] * dist.get_world_size()
    dist.all_gather_object(parts, preds)
    if dist.get_rank() != 0:
        return None
    parts = [p for p in parts if len(p["sample_index"])]
    index = np.concatenate([p["sample_index"] for p in parts])
    order = np.argsort(index, kind="stable")
    keys = [k for k in parts[0] if k != "sample_index"]
    return {k: np.concatenate([np.asarray(p[k]) for p in parts])[order] for k in keys}
