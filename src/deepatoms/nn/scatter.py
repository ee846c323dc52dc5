"""Scatter reductions over edges or atoms (vectorised, no Python loops)."""

from __future__ import annotations

import torch


def scatter_sum(src: torch.Tensor, index: torch.Tensor, dim_size: int) -> torch.Tensor:
    """Sum rows of ``src`` [M, ...] into ``dim_size`` bins given by ``index`` [M]."""
    out = src.new_zeros((dim_size, *src.shape[1:]))
    return out.index_add_(0, index, src)


def segment_counts(index: torch.Tensor, dim_size: int, dtype: torch.dtype) -> torch.Tensor:
    """Number of entries per bin, as ``dtype`` [dim_size]."""
    ones = torch.ones(index.shape[0], dtype=dtype, device=index.device)
    return torch.zeros(dim_size, dtype=dtype, device=index.device).index_add_(0, index, ones)


def scatter_mean(
    src: torch.Tensor, index: torch.Tensor, dim_size: int, counts: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean of rows of ``src`` per bin; empty bins give 0 (safe division, no NaN)."""
    total = scatter_sum(src, index, dim_size)
    if counts is None:
        counts = segment_counts(index, dim_size, src.dtype)
    denom = counts.clamp(min=1).to(src.dtype)
    return total / denom.view(-1, *([1] * (src.dim() - 1)))


AGGREGATIONS = ("sum", "mean")


def check_aggregation(name: str) -> str:
    """Return ``name`` if it is a supported aggregation (``sum`` or ``mean``), else raise."""
    if name not in AGGREGATIONS:
        raise ValueError(f"aggregation must be 'sum' or 'mean', got {name!r}")
    return name


def scatter_reduce(
    src: torch.Tensor,
    index: torch.Tensor,
    dim_size: int,
    reduce: str,
    counts: torch.Tensor | None = None,
) -> torch.Tensor:
    """Dispatch to :func:`scatter_sum` (``"sum"``) or :func:`scatter_mean` (``"mean"``)."""
    if reduce == "sum":
        return scatter_sum(src, index, dim_size)
    if reduce == "mean":
        return scatter_mean(src, index, dim_size, counts)
    raise ValueError(f"unknown aggregation {reduce!r}; choose 'sum' or 'mean'")
