"""Batches for training: a seeded, epoch-aware batch sampler and a vectorised collate.

The whole dataset lives in memory as :class:`PackedSystems`; a batch is a gather of index ranges
plus one neighbour-list call, so loading never waits on per-sample Python work.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from deepatoms.data.graph import Batch, collate
from deepatoms.data.neighbors import GraphSpec
from deepatoms.data.packed import PackedSystems


class EpochBatchSampler(Sampler[np.ndarray]):
    """Yields index arrays of ``batch_size`` systems.

    With ``shuffle`` the order of epoch e is a permutation drawn from ``(seed, e)``: a run resumed
    at epoch e sees exactly the batches an uninterrupted run would. Lightning calls
    :meth:`set_epoch` before every epoch. Under multi-process training (DDP) the batches are
    shared out among the processes (``num_replicas``/``rank``, or read from ``torch.distributed``).
    """

    def __init__(
        self,
        indices: Sequence[int],
        batch_size: int,
        shuffle: bool,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.indices = np.asarray(indices, dtype=np.int64)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        self._replicas, self._rank = num_replicas, rank

    def _world(self) -> tuple[int, int]:
        """(number of processes, this process's rank): explicit, or from torch.distributed."""
        if self._replicas is not None:
            return self._replicas, self._rank or 0
        dist = torch.distributed
        if dist.is_available() and dist.is_initialized():
            return dist.get_world_size(), dist.get_rank()
        return 1, 0

    def set_epoch(self, epoch: int) -> None:
        """Select the permutation of epoch ``epoch``."""
        self.epoch = int(epoch)

    def _n_batches(self) -> int:
        return (len(self.indices) + self.batch_size - 1) // self.batch_size

    def __len__(self) -> int:
        world, rank = self._world()
        if world > 1 and not self.shuffle:
            mine = len(range(rank, len(self.indices), world))
            return (mine + self.batch_size - 1) // self.batch_size
        return (self._n_batches() + world - 1) // world

    def __iter__(self) -> Iterator[np.ndarray]:
        idx = self.indices
        world, rank = self._world()
        if world > 1 and not self.shuffle:
            # Evaluation: every system exactly once over the processes, each process a share
            # of the systems (no wrap-around, which would count some systems twice in the
            # summed errors; at least one batch each whenever there are enough systems).
            idx = idx[rank::world]
            for s in range(0, len(idx), self.batch_size):
                yield idx[s : s + self.batch_size]
            return
        if self.shuffle:
            rng = np.random.default_rng([self.seed, self.epoch])
            idx = idx[rng.permutation(len(idx))]
        starts = list(range(0, len(idx), self.batch_size))
        if world > 1:
            # Under DDP each process takes every world-th batch of the same permutation; the
            # list wraps around so that all processes run the same number of steps.
            per_rank = len(self)
            starts = (starts * world)[: per_rank * world][rank::world]
        for s in starts:
            yield idx[s : s + self.batch_size]


class _Collate:
    """Picklable collate function (DataLoader workers may need it)."""

    def __init__(
        self, data: PackedSystems, graph: GraphSpec, targets: Sequence[str], dtype: torch.dtype
    ):
        self.data, self.graph, self.targets, self.dtype = data, graph, list(targets), dtype

    def __call__(self, systems: np.ndarray) -> Batch:
        return collate(self.data, systems, self.graph, dtype=self.dtype, targets=self.targets)


class _IndexArrays(torch.utils.data.Dataset):
    """Identity dataset: item k of a batch sampler's output is the index array itself."""

    def __getitem__(self, systems: np.ndarray) -> np.ndarray:
        return systems

    def __len__(self) -> int:  # pragma: no cover - not used with batch samplers
        raise TypeError("use with a batch sampler")


def make_loader(
    data: PackedSystems, indices: Sequence[int], graph: GraphSpec, targets: Sequence[str],
    batch_size: int, shuffle: bool, seed: int = 0, dtype: torch.dtype = torch.float32,
    num_workers: int = 0,
) -> DataLoader:  # fmt: skip
    """DataLoader of :class:`Batch` objects over ``indices`` of ``data``."""
    sampler = EpochBatchSampler(indices, batch_size, shuffle, seed)
    # Each "sample" the DataLoader fetches is a whole index array (sampler=batch sampler,
    # batch_size=None disables automatic batching), collated in one vectorised call.
    return DataLoader(
        _IndexArrays(),
        sampler=sampler,
        batch_size=None,
        collate_fn=_Collate(data, graph, targets, dtype),
        num_workers=num_workers,
    )
