"""Smooth and hard cutoff functions f_c(r), r in Å."""

from __future__ import annotations

import math

import torch
from torch import nn


class _Cutoff(nn.Module):
    """A function of r that vanishes beyond the radius ``cutoff`` (Å)."""

    def __init__(self, cutoff: float) -> None:
        super().__init__()
        if cutoff <= 0:
            raise ValueError(f"cutoff radius must be > 0 Å, got {cutoff}")
        self.cutoff = float(cutoff)

    def extra_repr(self) -> str:
        return f"cutoff={self.cutoff} Å"


class CosineCutoff(_Cutoff):
    """Cosine cutoff f_c(r) = ½(cos(π r / r_c) + 1) for r ≤ r_c, else 0 (Behler 2011)."""

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        fc = 0.5 * (torch.cos(r * (math.pi / self.cutoff)) + 1.0)
        return fc * (r <= self.cutoff).to(r.dtype)


class HardCutoff(_Cutoff):
    """Step cutoff f_c(r) = 1 for r ≤ r_c, else 0."""

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        return (r <= self.cutoff).to(r.dtype)


def build_cutoff(kind: str | None, cutoff: float | None) -> nn.Module | None:
    """Build a cutoff module: ``kind`` is ``"cosine"``, ``"hard"`` or ``None`` (no cutoff function)."""
    if kind is None or kind == "none":
        return None
    if cutoff is None:
        raise ValueError(f"cutoff_fn={kind!r} needs a cutoff radius (Å)")
    if kind == "cosine":
        return CosineCutoff(cutoff)
    if kind == "hard":
        return HardCutoff(cutoff)
    raise ValueError(f"unknown cutoff function {kind!r}; choose 'cosine', 'hard' or None")
