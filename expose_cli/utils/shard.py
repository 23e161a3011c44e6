"""This process's share of a run started by torchrun (``RANK`` / ``WORLD_SIZE``): one type for
`expose infer` (inputs by position) and `expose eval` (samples by index)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from expose_cli.errors import ExposeError

T = TypeVar("T")


@dataclass(frozen=True)
class Shard:
    """Process ``rank`` of ``world_size``: it takes the items ``rank, rank + world_size, ...``."""

    rank: int = 0
    world_size: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.rank < self.world_size:
            raise ExposeError(f"RANK {self.rank} is outside WORLD_SIZE {self.world_size}")

    @property
    def sharded(self) -> bool:
        """More than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def takes(self, position: int) -> bool:
        """Whether the item at ``position`` (0-based, in the whole run's order) is this process's."""
        return position % self.world_size == self.rank

    def positions(self, total: int) -> range:
        """The positions among ``total`` items that :meth:`takes`, in order."""
        return range(self.rank, total, self.world_size)

    def share(self, items: Sequence[T]) -> Sequence[T]:
        """The items of ``items`` that :meth:`takes`, in order."""
        return items[self.rank::self.world_size]

    @classmethod
    def from_env(cls) -> Shard:
        """The shard torchrun set (``RANK``, ``WORLD_SIZE``); ``Shard(0, 1)`` for a plain run."""
        try:
            rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
        except ValueError:
            raise ExposeError("RANK / WORLD_SIZE must be integers (set by torchrun)") from None
        return cls(rank, world)
