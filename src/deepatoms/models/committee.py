"""Committees of independently trained models and their spread (docs/uncertainty.md).

A committee (ensemble) is N models of one architecture trained from different seeds, optionally
on bootstrap resamples of the training set (Lakshminarayanan et al. 2017; for interatomic
potentials Imbalzano et al. 2021, Schran et al. 2020). Its prediction is the member mean and its
uncertainty the spread over members:

    ȳ = (1/N) Σ_m y_m,    σ² = s · (1/(N−1)) Σ_m (y_m − ȳ)²

with the unbiased member variance and a variance scale s (1 unless fitted on a validation set,
:func:`fit_variance_scale`). Forces are the mean of the member forces (the force of the mean
energy); for potentials the per-atom force deviation

    d_i = sqrt( (1/N) Σ_m |F_i^m − F̄_i|² ),   d_max = max_i d_i

is the trust measure of DP-GEN (Zhang et al. 2020, Eq. 4) used to pick configurations for
labelling. A committee is stored as one model file of the members' kind: its weights hold the
members (``members.k.…``) and ``extras["committee"]`` the member count, seeds, bootstrap flag and
variance scale; :func:`deepatoms.models.loading.load_model` rebuilds it as :class:`Committee`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = [
    "Committee",
    "committee_info",
    "fit_variance_scale",
    "force_deviation",
    "is_committee",
    "member_potential",
    "member_std",
]


class Committee(nn.Module):
    """N models of one architecture; ``forward`` returns the member mean of every per-system or
    per-atom output and the stacked member predictions of the property as
    ``"<property>_members"`` [N, B].

    Args:
        members: the trained models (same config apart from their weights).
        variance_scale: s in σ² = s · var (module docstring).
    """

    def __init__(self, members: Sequence[nn.Module], variance_scale: float = 1.0) -> None:
        super().__init__()
        if len(members) < 2:
            raise ValueError(f"a committee needs at least 2 members, got {len(members)}")
        configs = [getattr(m, "config", None) for m in members]
        if any(c != configs[0] for c in configs):
            raise ValueError("committee members must share one model config")
        self.members = nn.ModuleList(members)
        self.variance_scale = float(variance_scale)

    @property
    def config(self) -> dict:
        """The members' model config."""
        return self.members[0].config

    @property
    def head(self) -> nn.Module:
        """The first member's output head (readout and statistics are the same for all)."""
        return self.members[0].head

    def __len__(self) -> int:
        return len(self.members)

    # last: from here on in the class body ``property`` is this attribute, not the builtin
    @property
    def property(self) -> str:
        """The predicted property (that of the members)."""
        return self.members[0].property

    def forward(self, batch: Any, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        outs = [m(batch, *args, **kwargs) for m in self.members]
        res = {
            k: torch.stack([o[k] for o in outs]).mean(0)
            for k, v in outs[0].items()
            if isinstance(v, torch.Tensor)
        }
        res[f"{self.property}_members"] = torch.stack([o[self.property] for o in outs])
        return res


def is_committee(model: Any) -> bool:
    """Whether ``model`` (an ``nn.Module`` or a loaded model) is a committee."""
    return isinstance(getattr(model, "model", model), Committee)


def committee_info(model: Any) -> dict[str, Any] | None:
    """``n_members`` and ``variance_scale`` of a committee, else None."""
    net = getattr(model, "model", model)
    if not isinstance(net, Committee):
        return None
    return {"n_members": len(net), "variance_scale": net.variance_scale}


def member_std(members: np.ndarray, variance_scale: float = 1.0) -> np.ndarray:
    """σ over axis 0 of ``members`` [N, …]: sqrt(s · unbiased variance) (module docstring)."""
    members = np.asarray(members, dtype=np.float64)
    return np.sqrt(variance_scale * members.var(axis=0, ddof=1))


def force_deviation(forces: np.ndarray) -> np.ndarray:
    """d_i = sqrt((1/N) Σ_m |F_i^m − F̄_i|²) of member forces [N, n_atoms, 3] (eV/Å), per atom
    (DP-GEN's force deviation, Zhang et al. 2020 Eq. 4)."""
    forces = np.asarray(forces, dtype=np.float64)
    return np.sqrt(((forces - forces.mean(0)) ** 2).sum(-1).mean(0))


def fit_variance_scale(errors: np.ndarray, std: np.ndarray) -> float:
    """The s that maximises the Gaussian likelihood of ``errors`` with variance s · std²:
    s = mean(error² / std²) over points with std > 0 (Musil et al. 2019, Eq. 12); 1.0 when
    there are none."""
    e, s = np.asarray(errors, np.float64), np.asarray(std, np.float64)
    ok = np.isfinite(e) & np.isfinite(s) & (s > 0)
    return float(np.mean(e[ok] ** 2 / s[ok] ** 2)) if ok.any() else 1.0


def member_potential(
    committee: Committee, make: Callable[[nn.Module], Callable[..., dict]]
) -> Callable[..., dict[str, torch.Tensor]]:
    """An evaluator ``f(batch, forces=True, stress=False)`` of a committee potential: each
    member through ``make(member)`` (e.g. its fastest exact evaluator), the mean of energy,
    forces, stress and per-atom contributions, and the stacked member values under
    ``"members"`` (``energy`` [N, B], ``forces`` [N, n, 3], ``stress`` [N, B, 3, 3])."""
    evaluators = [make(m) for m in committee.members]

    def evaluate(batch: Any, forces: bool = True, stress: bool = False) -> dict:
        outs = [f(batch, forces=forces, stress=stress) for f in evaluators]
        stacked = {
            k: torch.stack([o[k].detach() for o in outs])
            for k in ("energy", "forces", "stress", "contributions")
            if k in outs[0]
        }
        res: dict[str, Any] = {k: v.mean(0) for k, v in stacked.items()}
        res[committee.property] = res["energy"]
        res["members"] = stacked
        return res

    return evaluate
