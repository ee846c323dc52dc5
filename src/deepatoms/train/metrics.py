"""Error metrics accumulated over batches (exact over the whole split, not batch averages)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch


class ErrorAccumulator:
    """Running sums for MAE and RMSE of predictions vs targets (any shape, all components)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget everything."""
        self.abs_sum = 0.0
        self.sq_sum = 0.0
        self.count = 0

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add the errors of one batch."""
        err = (pred.detach() - target.detach()).double()
        self.abs_sum += float(err.abs().sum())
        self.sq_sum += float((err * err).sum())
        self.count += err.numel()

    def all_reduce(self, reduce: Callable[[torch.Tensor], torch.Tensor]) -> None:
        """Sum the running sums over the processes of a multi-process run (``reduce`` sums a
        tensor over them, e.g. ``trainer.strategy.reduce(t, reduce_op="sum")``)."""
        t = reduce(
            torch.tensor([self.abs_sum, self.sq_sum, float(self.count)], dtype=torch.float64)
        )
        self.abs_sum, self.sq_sum, self.count = float(t[0]), float(t[1]), round(float(t[2]))

    @property
    def mae(self) -> float:
        """Mean absolute error (target units)."""
        return self.abs_sum / self.count if self.count else math.nan

    @property
    def rmse(self) -> float:
        """Root-mean-square error (target units)."""
        return math.sqrt(self.sq_sum / self.count) if self.count else math.nan
