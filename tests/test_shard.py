"""``Shard``: this process's share of a torchrun run, read from ``RANK`` / ``WORLD_SIZE`` (one type
for `expose infer` and `expose eval`)."""

from __future__ import annotations

import pytest

from expose_cli.errors import ExposeError
from expose_cli.inference.distributed import summary_name
from expose_cli.utils.shard import Shard


def test_a_plain_run_is_one_shard(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    shard = Shard.from_env()
    assert shard == Shard(0, 1) and not shard.sharded and shard.is_main
    assert summary_name(shard) == "summary.json"
    assert all(shard.takes(p) for p in range(5))


def test_torchrun_rank_takes_every_world_size_th_input(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "3")
    shard = Shard.from_env()
    assert shard == Shard(1, 3) and shard.sharded and not shard.is_main
    assert [p for p in range(8) if shard.takes(p)] == [1, 4, 7]  # infer's inputs, eval's samples
    assert list(shard.positions(8)) == [1, 4, 7] and list(shard.share("abcdefgh")) == ["b", "e", "h"]  # the same rule
    assert summary_name(shard) == "summary.rank1.json"


@pytest.mark.parametrize("rank, world, words", [("3", "3", "outside WORLD_SIZE"), ("one", "2", "must be integers"),
                                                ("0", "0", "outside WORLD_SIZE")])
def test_a_bad_environment_is_one_line(monkeypatch, rank, world, words):
    monkeypatch.setenv("RANK", rank)
    monkeypatch.setenv("WORLD_SIZE", world)
    with pytest.raises(ExposeError, match=words):
        Shard.from_env()


def test_a_training_process_is_a_shard_of_the_same_type():
    """Train, eval and infer carry one type: training's DistInfo is a Shard with a device."""
    import torch

    from expose_cli.training.distributed import DistInfo

    info = DistInfo(1, 2, local_rank=1, device=torch.device("cpu"))
    assert isinstance(info, Shard) and info.sharded and not info.is_main
    assert [p for p in range(6) if info.takes(p)] == [1, 3, 5]  # the inputs rank 1 of 2 takes
    assert not DistInfo().sharded and DistInfo().device == torch.device("cpu")
    with pytest.raises(ExposeError, match="RANK 2 is outside WORLD_SIZE 2"):
        DistInfo(2, 2)
