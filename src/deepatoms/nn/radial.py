"""Gaussian radial basis expansions of interatomic distances.

Two parameterisations (the γ form of Schütt 2018 thesis Eq. 3.4 and the σ form of the Jørgensen 2019 thesis Eq. 3.10):

* γ form: ê_k(d) = exp(−γ (d − μ_k)²)             (Schütt 2018 thesis, Eq. 3.4)
* σ form: ê_k(d) = exp(−(d − μ_k)² / (2σ²)),  i.e. γ = 1/(2σ²)   (Jørgensen 2019 thesis, Eq. 3.10)

Centres μ_k = μ_min + kΔ for k = 0 … K−1. Distances in Å, γ in Å⁻², σ in Å.
"""

from __future__ import annotations

import torch
from torch import nn


class GaussianRBF(nn.Module):
    """Expand distances d [E] (Å) into K Gaussians [E, K].

    Give either ``gamma`` (Å⁻²) or ``sigma`` (Å); ``sigma=None and gamma=None`` uses σ = Δ (the spacing).
    """

    def __init__(
        self,
        n_rbf: int,
        start: float = 0.0,
        spacing: float | None = None,
        stop: float | None = None,
        gamma: float | None = None,
        sigma: float | None = None,
    ) -> None:
        super().__init__()
        if n_rbf < 1:
            raise ValueError(f"n_rbf must be >= 1, got {n_rbf}")
        if spacing is None:
            if stop is None:
                raise ValueError("GaussianRBF needs `spacing` or `stop` to place the centres")
            spacing = (stop - start) / max(n_rbf - 1, 1)
        if gamma is not None and sigma is not None:
            raise ValueError("give either gamma (γ form) or sigma (σ form), not both")
        if gamma is None:
            sigma = spacing if sigma is None else sigma
            if sigma <= 0:
                raise ValueError(f"Gaussian width sigma must be > 0, got {sigma}")
            gamma = 1.0 / (2.0 * sigma * sigma)
        if gamma <= 0:
            raise ValueError(f"Gaussian gamma must be > 0, got {gamma}")
        centers = start + spacing * torch.arange(n_rbf, dtype=torch.get_default_dtype())
        self.register_buffer("centers", centers)
        self.gamma = float(gamma)
        self.n_rbf = n_rbf

    def forward(self, d: torch.Tensor) -> torch.Tensor:
        diff = d.unsqueeze(-1) - self.centers.to(d.dtype)
        return torch.exp(-self.gamma * diff * diff)

    def extra_repr(self) -> str:
        c = self.centers
        return f"n_rbf={self.n_rbf}, centers={float(c[0]):.3g}..{float(c[-1]):.3g} Å, gamma={self.gamma:.4g} Å⁻²"
