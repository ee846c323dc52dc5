"""Activation functions shared by the models."""

from __future__ import annotations

import math

import torch
from torch import nn

_LN2 = math.log(2.0)


def shifted_softplus(x: torch.Tensor) -> torch.Tensor:
    """Shifted softplus ssp(x) = ln(0.5 eˣ + 0.5) = softplus(x) − ln 2.

    Schütt 2018 thesis Eq. 4.6; Jørgensen 2019 thesis writes g(x) = ln(eˣ + 1) − ln 2.
    ssp(0) = 0 and ssp'(x) = sigmoid(x). Computed through ``softplus`` so |x| = 100 does not overflow.
    """
    return nn.functional.softplus(x) - _LN2


class ShiftedSoftplus(nn.Module):
    """Module form of :func:`shifted_softplus`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return shifted_softplus(x)


def get_activation(name: str | None) -> nn.Module:
    """Return an activation module by name: ``ssp``, ``tanh``, ``relu``, ``silu`` or ``None``/``identity``."""
    table = {
        "ssp": ShiftedSoftplus,
        "shifted_softplus": ShiftedSoftplus,
        "tanh": nn.Tanh,
        "relu": nn.ReLU,
        "silu": nn.SiLU,
        "identity": nn.Identity,
    }
    if name is None:
        return nn.Identity()
    try:
        return table[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(table)}") from None
