"""Training losses.

Energy-only (Schütt 2018 thesis Ch. 4): ℓ = (E − Ê)², averaged over the batch.

Energy and forces (thesis Eq. 5.7), per system, averaged over the batch:

    ℓ = ρ (E − Ê)² + w · (1/n_atoms) Σ_i ‖F_i − F̂_i‖²,

with w = 1 (thesis, default) or w = 1 − ρ (Jørgensen 2019 thesis Eq. 3.15, ``force_weight="1-rho"``).
ρ = 0 trains on forces only; the energy offset is then fitted after training.
"""

from __future__ import annotations

import torch

from deepatoms.nn.scatter import scatter_sum

FORCE_WEIGHTS = ("1", "1-rho")


def force_term_weight(rho: float, force_weight: str) -> float:
    """w in Eq. 5.7 for trade-off ``rho`` (≥ 0) and weighting scheme ``force_weight``."""
    if not rho >= 0:
        raise ValueError(f"train.rho must be >= 0, got {rho}")
    if force_weight == "1":
        return 1.0
    if force_weight == "1-rho":
        if rho > 1:
            raise ValueError(f"train.force_weight='1-rho' needs train.rho <= 1, got {rho}")
        return 1.0 - rho
    raise ValueError(f"train.force_weight must be one of {FORCE_WEIGHTS}, got {force_weight!r}")


def per_system_force_error(
    pred: torch.Tensor, ref: torch.Tensor, batch_index: torch.Tensor, n_atoms: torch.Tensor
) -> torch.Tensor:
    """(1/n_atoms) Σ_i ‖F_i − F̂_i‖² for every system, [B] ((eV/Å)²)."""
    sq = ((pred - ref.to(pred.dtype)) ** 2).sum(-1)
    return scatter_sum(sq, batch_index, int(n_atoms.shape[0])) / n_atoms.to(sq.dtype)


def energy_force_loss(
    energy: torch.Tensor, energy_ref: torch.Tensor, forces: torch.Tensor | None,
    forces_ref: torch.Tensor | None, batch_index: torch.Tensor, n_atoms: torch.Tensor,
    rho: float = 0.01, force_weight: str = "1",
) -> torch.Tensor:  # fmt: skip
    """Eq. 5.7 averaged over the batch; energy-only MSE when ``forces`` is None."""
    e_sq = (energy - energy_ref.to(energy.dtype)) ** 2
    if forces is None:
        return e_sq.mean()
    w = force_term_weight(rho, force_weight)
    f_sq = per_system_force_error(forces, forces_ref, batch_index, n_atoms)
    return (rho * e_sq + w * f_sq.to(e_sq.dtype)).mean()


__all__ = ["FORCE_WEIGHTS", "energy_force_loss", "force_term_weight", "per_system_force_error"]
