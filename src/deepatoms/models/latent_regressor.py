"""Latent property regressor: an MLP from a grammar-VAE latent point to one property (§5).

Paper D (``specs/grammar-vae.md`` §5): widths 512-512-256-1, tanh on the hidden layers, dropout
with rate dp after hidden layers 2 and 3, linear output:

    f(z) = W₄ · drop(tanh(W₃ · drop(tanh(W₂ · tanh(W₁ z + b₁) + b₂)) + b₃)) + b₄

The output is the z-scored property; :mod:`deepatoms.design.regressors` de-normalises it to eV.
The L2 penalty λ Σ‖W‖² covers the weight matrices (not the biases).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

__all__ = ["LatentRegressor"]


class LatentRegressor(nn.Module):
    """MLP ``latent_dim → hidden… → 1`` with tanh; dropout after the layers in ``dropout_after``.

    ``dropout_after`` counts hidden layers from 1 (Paper D: after layers 2 and 3).
    """

    def __init__(
        self,
        latent_dim: int,
        hidden: Sequence[int] = (512, 512, 256),
        dropout: float = 0.1,
        dropout_after: Sequence[int] = (2, 3),
    ) -> None:
        super().__init__()
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"regressor dropout must lie in [0, 1), got {dropout}")
        self.config: dict[str, Any] = {
            "latent_dim": int(latent_dim),
            "hidden": [int(h) for h in hidden],
            "dropout": float(dropout),
            "dropout_after": [int(i) for i in dropout_after],
        }
        layers: list[nn.Module] = []
        width = int(latent_dim)
        for i, h in enumerate(self.config["hidden"], start=1):
            layers += [nn.Linear(width, h), nn.Tanh()]
            if i in self.config["dropout_after"] and dropout > 0:
                layers.append(nn.Dropout(float(dropout)))
            width = h
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Latent points ``[B, d]`` → z-scored predictions ``[B]``."""
        return self.net(z).squeeze(-1)

    def l2_penalty(self) -> torch.Tensor:
        """Σ over weight matrices of the squared entries (biases excluded)."""
        return sum(m.weight.pow(2).sum() for m in self.net if isinstance(m, nn.Linear))
