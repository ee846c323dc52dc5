"""Forces and stress of any energy model by automatic differentiation.

One wrapper serves every model that predicts a per-system energy (docs/architecture.md):

- Forces (Schütt 2018 thesis Eq. 5.2): F̂_i = −∂Ê/∂r_i. Edge vectors are
  r_ij = r_j − r_i + S_ij·cell, so the derivative reaches every periodic image through the cell.
- Stress (virial route): the positions and the cell of each system are deformed by a symmetric
  strain ε, r → r(1 + ε), cell → cell(1 + ε), and σ = (1/V) ∂Ê/∂ε at ε = 0, in eV/Å³. This is
  ASE's sign convention (positive stress: the cell wants to shrink, as in
  ``ase.calculators.calculator.Calculator.calculate_numerical_stress``).
- Training on forces (thesis Eq. 5.7) needs the force graph itself to be differentiable
  (``create_graph=True``: double back-propagation).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import partial

import numpy as np
import torch
from torch import nn

from deepatoms.data.graph import Batch
from deepatoms.models.schnet_potential import SchNetPotential

#: ASE Voigt order of the six independent stress components.
VOIGT = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))


def energy_key(model: nn.Module) -> str:
    """Name of the per-system output that a potential treats as its energy (``model.property``)."""
    key = getattr(model, "property", None)
    if not isinstance(key, str):
        raise TypeError(
            f"{type(model).__name__} has no string attribute 'property' naming its energy output; "
            "wrap an AtomisticModel (deepatoms.models.build_model)"
        )
    return key


def compute_potential(
    model: nn.Module,
    batch: Batch,
    *,
    forces: bool = True,
    stress: bool = False,
    create_graph: bool = False,
) -> dict[str, torch.Tensor]:
    """Energy [B] (eV), forces [N,3] (eV/Å) and stress [B,3,3] (eV/Å³) of a batch.

    ``model(batch)[model.property]`` must be the energy. ``stress`` needs periodic cells; systems
    without a full 3-D periodic cell get NaN stress. ``create_graph=True`` keeps the graph of the
    derivatives, for losses on forces. The returned dict also carries the model's own outputs
    (its property name and ``contributions``).
    """
    key = energy_key(model)
    if not (forces or stress):
        out = dict(model(batch))
        out["energy"] = out[key]
        return out
    with torch.enable_grad():
        pos = batch.positions.detach().requires_grad_(forces)
        inputs = [pos] if forces else []
        strained = replace(batch, positions=pos)
        if stress:
            n_sys = batch.num_systems
            eps = torch.zeros(n_sys, 3, 3, dtype=pos.dtype, device=pos.device, requires_grad=True)
            sym = 0.5 * (eps + eps.transpose(1, 2))
            deform = torch.eye(3, dtype=pos.dtype, device=pos.device) + sym
            strained = replace(
                batch,
                positions=torch.einsum("ni,nij->nj", pos, deform.index_select(0, batch.batch)),
                cell=torch.bmm(batch.cell.to(pos.dtype), deform),
            )
            inputs.append(eps)
        out = dict(model(strained))
        energy = out[key]
        grads = torch.autograd.grad(
            energy.sum(), inputs, create_graph=create_graph, allow_unused=True
        )
    out["energy"] = energy
    grads = [torch.zeros_like(x) if g is None else g for x, g in zip(inputs, grads, strict=True)]
    if forces:
        out["forces"] = -grads[0]
    if stress:
        volume = torch.linalg.det(batch.cell.to(pos.dtype)).abs()
        periodic = batch.pbc.all(dim=1) & (volume > 0)
        safe_v = torch.where(periodic, volume, torch.ones_like(volume))
        sigma = grads[-1] / safe_v[:, None, None]
        out["stress"] = torch.where(periodic[:, None, None], sigma, torch.full_like(sigma, np.nan))
    return out


def inference_potential(model: nn.Module) -> Callable[..., dict[str, torch.Tensor]]:
    """The fastest exact evaluator of ``model`` for inference (no gradients to the weights).

    Returns a callable ``f(batch, forces=True, stress=False)`` with the results of
    :func:`compute_potential`: the analytic :class:`SchNetPotential` for SchNet energy models
    (a snapshot of the current weights: call again after changing them), else autograd. For a
    :class:`~deepatoms.models.committee.Committee`: the member mean, with the member values
    under ``"members"``.
    """
    from deepatoms.models.committee import Committee, member_potential

    if isinstance(model, Committee):  # each member on its own fastest path; mean and members
        return member_potential(model, inference_potential)
    fast = SchNetPotential.from_model(model)
    return fast if fast is not None else partial(compute_potential, model)


def stress_to_voigt(stress: torch.Tensor | np.ndarray) -> np.ndarray:
    """[..., 3, 3] stress → ASE Voigt [..., 6] (xx, yy, zz, yz, xz, xy), same units."""
    s = stress.detach().cpu().numpy() if isinstance(stress, torch.Tensor) else np.asarray(stress)
    return np.stack([s[..., a, b] for a, b in VOIGT], axis=-1)


def voigt_to_stress(voigt: torch.Tensor) -> torch.Tensor:
    """ASE Voigt [..., 6] → symmetric [..., 3, 3] (torch, same units)."""
    xx, yy, zz, yz, xz, xy = voigt.unbind(-1)
    rows = [
        torch.stack([xx, xy, xz], -1),
        torch.stack([xy, yy, yz], -1),
        torch.stack([xz, yz, zz], -1),
    ]
    return torch.stack(rows, -2)


__all__ = [
    "VOIGT",
    "compute_potential",
    "energy_key",
    "inference_potential",
    "stress_to_voigt",
    "voigt_to_stress",
]
