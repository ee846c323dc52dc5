"""Latent property regressor: an MLP from a grammar-VAE latent point to one property (§5).

Paper D: widths 512-512-256-1, tanh on the hidden layers, dropout
with rate dp after hidden layers 2 and 3, linear output:

    f(z) = W₄ · drop(tanh(W₃ · drop(tanh(W₂ · tanh(W₁ z + b₁) + b₂)) + b₃)) + b₄

The output is the z-scored property y' = (y − m)/s; :class:`LatentRegressors` holds one
regressor per property with m and s, and predicts y = f(z)·s + m in the property's unit (eV).
The L2 penalty λ Σ‖W‖² covers the weight matrices (not the biases).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["LatentRegressor", "LatentRegressors"]


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


class LatentRegressors(nn.Module):
    """One :class:`LatentRegressor` per property of a grammar-VAE latent space, with the mean m
    and standard deviation s of each property (buffers), so the module alone predicts in eV.

    ``config``: ``{"latent_dim", "hidden", "dropout", "dropout_after", "properties": [names]}``.
    ``stats`` (per property: validation and test MAE, epochs) and ``meta`` (the latent space the
    regressors belong to) travel with the model file.
    """

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__()
        props = [str(p) for p in config.get("properties") or []]
        if not props:
            raise ValueError("latent regressors need at least one property name")
        if len(set(props)) != len(props):
            raise ValueError(f"a property is listed twice: {props}")
        self.regressors = nn.ModuleDict(
            {
                p: LatentRegressor(
                    int(config["latent_dim"]),
                    config.get("hidden", (512, 512, 256)),
                    float(config.get("dropout", 0.1)),
                    config.get("dropout_after", (2, 3)),
                )
                for p in props
            }
        )
        self.register_buffer("mean", torch.zeros(len(props), dtype=torch.float64))
        self.register_buffer("std", torch.ones(len(props), dtype=torch.float64))
        self.config: dict[str, Any] = {
            "name": "latent-regressors",
            **next(iter(self.regressors.values())).config,
            "properties": props,
        }
        self.stats: dict[str, dict] = {p: {} for p in props}
        self.meta: dict[str, Any] = {}

    @property
    def properties(self) -> list[str]:
        """The property names, in training order."""
        return list(self.config["properties"])

    @property
    def latent_dim(self) -> int:
        """Dimension d of the latent points the regressors read."""
        return int(self.config["latent_dim"])

    def set_statistics(self, mean: Mapping[str, float], std: Mapping[str, float]) -> None:
        """Mean m and standard deviation s (eV) of each property's training values."""
        for i, p in enumerate(self.properties):
            self.mean[i] = float(mean[p])
            self.std[i] = float(std[p]) if float(std[p]) > 0 else 1.0

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Latent points ``[B, d]`` → z-scored predictions ``[B, K]`` (K properties)."""
        return torch.stack([m(z) for m in self.regressors.values()], dim=-1)

    @torch.no_grad()
    def predict(self, z: np.ndarray, batch_size: int = 8192) -> dict[str, np.ndarray]:
        """Predicted properties (eV) of latent points ``z [N, d]`` (eval mode: no dropout)."""
        z = np.asarray(z, dtype=np.float32)
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(
                f"latent points must have shape [N, {self.latent_dim}], got {list(z.shape)}"
            )
        was_training = self.training
        self.eval()
        dtype = next(self.parameters()).dtype
        parts = [
            self(torch.from_numpy(z[s : s + batch_size]).to(dtype)).double().numpy()
            for s in range(0, len(z), batch_size)
        ]
        self.train(was_training)
        y = np.concatenate(parts) if parts else np.zeros((0, len(self.properties)))
        y = y * self.std.numpy() + self.mean.numpy()
        return {p: y[:, i] for i, p in enumerate(self.properties)}

    def predict_strings(self, latent_space: Any, strings: Sequence[str]) -> dict[str, np.ndarray]:
        """Predicted properties (eV) of ``strings`` at their encoder means in ``latent_space``."""
        if latent_space.latent_dim != self.latent_dim:
            raise ValueError(
                f"these regressors take {self.latent_dim}-dimensional latent points but the "
                f"latent space has {latent_space.latent_dim}: use the VAE they were trained on"
            )
        return self.predict(latent_space.encode_mean(strings))
