"""The seed's dataset mixing as a (DDP-safe, resumable) sampler.

MMHuman3D's ``MixedDataset`` draws each sample from member i with probability ``p_i / sum(p)`` and a
uniformly chosen row of it, with replacement; an epoch is as long as the largest member.
:class:`MixedSampler` yields the same draws as keys ``(index, epoch, draw)`` for
:class:`~.datasets.TrainDataset`: the whole epoch's stream comes from one generator seeded with
``(seed, epoch)``, and rank r of w takes draws ``r, r + w, r + 2w, ...``: disjoint, reproducible, and
the same union for any number of ranks.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler


def mixed_draws(sizes: Sequence[int], ratios: Sequence[float], seed: int, epoch: int,
                length: int | None = None) -> np.ndarray:
    """The epoch's ``length`` (default: the largest member) global row indices, in order."""
    sizes = np.asarray(sizes, np.int64)
    p = np.asarray(ratios, np.float64)
    if len(p) != len(sizes) or p.min() < 0 or p.sum() <= 0:
        raise ValueError(f"need one non-negative ratio per member, with a positive sum (got {list(ratios)})")
    p = np.where(sizes > 0, p, 0.0)
    if p.sum() <= 0:
        raise ValueError("every member with a positive ratio is empty")
    n = int(sizes.max()) if length is None else int(length)
    rng = np.random.default_rng([int(seed), int(epoch), 0x6D6978])
    member = rng.choice(len(sizes), size=n, p=p / p.sum())
    row = np.floor(rng.random(n) * sizes[member]).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    return offsets[member] + row


class MixedSampler(Sampler):
    """Keys ``(index, epoch, draw)`` of one rank's share of the epoch's mixed stream.

    ``dataset`` needs ``member_sizes`` (:class:`~.datasets.TrainDataset`); ``ratios`` one weight per
    member. ``len`` is this rank's share, ``ceil(L / world_size)`` with ``L`` the largest member (the
    last draws of short ranks wrap around to keep equal lengths under DDP). ``state_dict()`` records
    the epoch and how many keys were consumed; ``load_state_dict`` resumes from there.
    """

    def __init__(self, dataset, ratios: Sequence[float], seed: int = 0, rank: int = 0, world_size: int = 1,
                 length: int | None = None) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        self.sizes = list(dataset.member_sizes)
        self.ratios = [float(r) for r in ratios]
        self.seed, self.rank, self.world_size = int(seed), int(rank), int(world_size)
        self.total = int(max(self.sizes)) if length is None else int(length)
        self.epoch = 0
        self.position = 0  # keys of this epoch already consumed on this rank
        mixed_draws(self.sizes, self.ratios, self.seed, 0, 1)  # validate now, not in a worker

    def __len__(self) -> int:
        return -(-self.total // self.world_size)

    def set_epoch(self, epoch: int) -> None:
        """Start epoch ``epoch`` (from its beginning unless it is the epoch a loaded state is in).
        Call it before every epoch, as with ``DistributedSampler``."""
        if int(epoch) != self.epoch:
            self.position = 0
        self.epoch = int(epoch)

    def keys(self) -> list[tuple[int, int, int]]:
        """This rank's whole epoch, from the first key."""
        draws = mixed_draws(self.sizes, self.ratios, self.seed, self.epoch, self.total)
        positions = [(self.rank + k * self.world_size) % self.total for k in range(len(self))]
        return [(int(draws[d]), self.epoch, int(d)) for d in positions]

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        keys = self.keys()
        start = self.position
        for k in range(start, len(keys)):
            self.position = k + 1
            yield keys[k]

    def state_dict(self, consumed: int | None = None) -> dict:
        """``{"epoch", "position"}``; pass ``consumed`` (keys the loop has really used) when a
        DataLoader prefetches ahead of the loop."""
        return {"epoch": self.epoch, "position": self.position if consumed is None else int(consumed),
                "seed": self.seed}

    def load_state_dict(self, state: dict) -> None:
        """Resume: the next ``iter`` continues epoch ``state["epoch"]`` at ``state["position"]``."""
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
