"""Gated readout of the MPNN/VIMPNN family and VIMPNN's auxiliary heads (docs/vimpnn.md §4).

Gated readout (Gilmer et al.; per the nmp_qc MPNN code), on the node input x_v = [h_vᵀ ‖ h_v⁰]:

    c_v = σ(i([h_vᵀ ‖ h_v⁰])) ⊙ j(h_vᵀ)          node contribution, i: 2·d_h → 128 → 256 → 128 → out,
                                               j: d_h → 128 → 256 → 128 → out, ReLU hidden layers
    ŷ   = Σ_v c_v

The energy head is a :class:`GatedReadout` inside the shared ``AtomwiseHead`` (out = 1), so the
per-atom scale, shift and atom references apply to c_v as for every other family.

Auxiliary heads (per the authors' later public code): parallel gated readouts of the same form,
summed over the nodes of each system, predicting per-system targets t (vocabulary of K elements):

    atoms     t_k = n_k                               atoms of element k          (K outputs)
    orbitals  t_k = n_k · n_orb(Z_k)                  n_orb per ``orbitals``:       (K outputs)
              "subshell": spatial orbitals of the occupied subshells of the ground-state atom
                          (H 1, C 5, N 5, O 5, F 5, Al 9, Cu 15; aufbau order, Pd [Kr]4d¹⁰)
              "valence":  valence electrons (H 1, C 4, N 5, O 6, F 7, Al 3, Cu 11): ns + np in
                          the p block, ns + (n−1)d otherwise
    scaling   t = p(s) = exp(−(s − 1)² / (2 σ_s²))     closeness to the stable structure (1 output),
                                                     s = scaling factor, σ_s = 0.1 by default

Targets are z-scored with the training-set mean μ and std σ of every output (σ = 1 for constant
outputs): the pooled head output is the z-scored prediction ẑ, reported in target units as
μ + σ·ẑ. The auxiliary loss is Σ_heads MSE(ẑ, (t − μ)/σ) (mean over systems and outputs); the
caller weights it by α (``aux_weight``): L = MSE(E) + α Σ_k MSE(aux_k).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from ase.data import chemical_symbols
from torch import nn

from deepatoms.data.graph import Batch
from deepatoms.data.packed import PackedSystems
from deepatoms.nn.mlp import mlp
from deepatoms.nn.scatter import scatter_sum

#: Auxiliary heads in their canonical order.
AUX_HEADS = ("atoms", "orbitals", "scaling")
ORBITAL_KINDS = ("subshell", "valence")

# Subshells (n, l) in aufbau (Madelung) order up to 6s, i.e. elements Z = 1 … 56 (H … Ba).
_AUFBAU = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (4, 0), (3, 2), (4, 1), (5, 0), (4, 2),
           (5, 1), (6, 0))  # fmt: skip
MAX_ORBITAL_Z = 56


class GatedReadout(nn.Module):
    """c_v = σ(i(x_v)) ⊙ j(x_v[:d_h]) for x_v = [h_vᵀ ‖ h_v⁰] [N, 2·d_h] → [N, n_out] (§4).

    ``n_state`` is d_h, ``hidden`` the widths of i and j (ReLU), ``n_out`` the outputs.
    """

    def __init__(self, n_state: int, hidden: Sequence[int], n_out: int) -> None:
        super().__init__()
        self.n_state = n_state
        self.i = mlp([2 * n_state, *hidden, n_out], activation="relu")
        self.j = mlp([n_state, *hidden, n_out], activation="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.i(x)) * self.j(x[:, : self.n_state])


def _aufbau_occupation(z: int) -> list[tuple[int, int, int]]:
    """(n, l, electrons) of the occupied subshells of element z in aufbau order (z ≤ 56)."""
    left, occ = z, []
    for n, ell in _AUFBAU:
        if left == 0:
            break
        k = min(left, 2 * (2 * ell + 1))
        occ.append((n, ell, k))
        left -= k
    return occ


def orbital_count(z: int, kind: str = "subshell") -> int:
    """n_orb(Z) for the orbitals auxiliary target (§4): see the module docstring for ``kind``."""
    if kind not in ORBITAL_KINDS:
        raise ValueError(f"orbitals must be one of {ORBITAL_KINDS}, got {kind!r}")
    if not 1 <= z <= MAX_ORBITAL_Z:
        name = chemical_symbols[z] if 0 <= z < len(chemical_symbols) else str(z)
        raise ValueError(
            f"no orbital count for element {name} (Z = {z}): the orbitals auxiliary target is "
            f"tabulated for Z = 1 … {MAX_ORBITAL_Z} (H … Ba); remove {name} from the model's "
            "'elements' or drop 'orbitals' from 'aux'"
        )
    occ = _aufbau_occupation(z)
    if kind == "subshell":
        n_orb = sum(2 * ell + 1 for _, ell, _ in occ)
        return n_orb - 1 if z == 46 else n_orb  # Pd is [Kr]4d¹⁰: 5s empty
    n_max = max(n for n, _, _ in occ)
    if any(n == n_max and ell == 1 for n, ell, _ in occ):  # p block: ns + np
        return sum(k for n, _, k in occ if n == n_max)
    return sum(k for n, ell, k in occ if n == n_max or (n == n_max - 1 and ell == 2))


def scaling_probability(scale: torch.Tensor, sigma: float = 0.1) -> torch.Tensor:
    """p(s) = exp(−(s − 1)²/(2σ²)) for scaling factors s (dimensionless, §4)."""
    return torch.exp(-((scale - 1.0) ** 2) / (2.0 * sigma * sigma))


def auxiliary_targets(
    numbers: torch.Tensor, batch: torch.Tensor, n_systems: int, scale: torch.Tensor | None = None,
    *, elements: Sequence[int] = (1, 6, 7, 8, 9, 13, 29), heads: Sequence[str] = AUX_HEADS,
    orbitals: str = "subshell", scaling_sigma: float = 0.1,
) -> dict[str, torch.Tensor]:  # fmt: skip
    """Per-system auxiliary targets {head: [B, k] float64} (§4).

    ``numbers`` [N] atomic numbers, ``batch`` [N] system index of each atom, ``scale`` [B] the
    scaling factor s of every system (needed for the ``scaling`` head only). Atoms outside
    ``elements`` are not counted (the model rejects them earlier).
    """
    out: dict[str, torch.Tensor] = {}
    z = torch.as_tensor(list(elements), dtype=torch.long, device=numbers.device)
    if "atoms" in heads or "orbitals" in heads:
        onehot = (numbers.unsqueeze(-1) == z).to(torch.float64)
        counts = scatter_sum(onehot, batch, n_systems)
        if "atoms" in heads:
            out["atoms"] = counts
        if "orbitals" in heads:
            n_orb = [orbital_count(int(e), orbitals) for e in elements]
            out["orbitals"] = counts * torch.tensor(n_orb, dtype=torch.float64, device=z.device)
    if "scaling" in heads:
        if scale is None:
            raise ValueError(
                "the 'scaling' auxiliary head needs the scaling factor s of every system "
                "(system property 'scale'); use data made by `deepatoms datagen` or drop "
                "'scaling' from 'aux'"
            )
        s = torch.as_tensor(scale, dtype=torch.float64, device=numbers.device).reshape(-1)
        out["scaling"] = scaling_probability(s, scaling_sigma).unsqueeze(-1)
    return {h: out[h] for h in heads}


class AuxiliaryHead(nn.Module):
    """One auxiliary gated readout with the z-score statistics (buffers) of its targets."""

    def __init__(self, n_state: int, hidden: Sequence[int], n_out: int) -> None:
        super().__init__()
        self.net = GatedReadout(n_state, hidden, n_out)
        self.register_buffer("mean", torch.zeros(n_out))
        self.register_buffer("std", torch.ones(n_out))

    def forward(self, x: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Prediction in target units μ + σ·ẑ [B, n_out] (float64)."""
        z = scatter_sum(self.net(x), batch.batch, batch.num_systems).double()
        return self.mean.double() + self.std.double() * z

    def zscore(self, t: torch.Tensor) -> torch.Tensor:
        """(t − μ)/σ in float64."""
        return (t.double() - self.mean.double()) / self.std.double()


class AuxiliaryHeads(nn.Module):
    """The auxiliary heads of §4 (any subset of :data:`AUX_HEADS`), their targets and loss.

    ``n_state`` d_h, ``hidden`` widths of i and j, ``elements`` the vocabulary (atomic
    numbers), ``orbitals`` "subshell" | "valence", ``scaling_sigma`` σ_s.
    """

    def __init__(
        self,
        n_state: int,
        hidden: Sequence[int],
        heads: Sequence[str],
        elements: Sequence[int],
        orbitals: str = "subshell",
        scaling_sigma: float = 0.1,
    ) -> None:
        super().__init__()
        heads = list(heads)
        bad = [h for h in heads if h not in AUX_HEADS]
        if bad or len(set(heads)) != len(heads):
            raise ValueError(
                f"aux must list distinct heads from {AUX_HEADS}, got {heads}"
                + (f" (unknown: {bad})" if bad else "")
            )
        if orbitals not in ORBITAL_KINDS:
            raise ValueError(f"orbitals must be one of {ORBITAL_KINDS}, got {orbitals!r}")
        if not (isinstance(scaling_sigma, (int, float)) and scaling_sigma > 0):
            raise ValueError(f"scaling_sigma must be a number > 0, got {scaling_sigma!r}")
        if "orbitals" in heads:  # every vocabulary element needs a tabulated n_orb
            for z in elements:
                orbital_count(int(z), orbitals)
        self.names = [h for h in AUX_HEADS if h in heads]
        self.elements = [int(z) for z in elements]
        self.orbitals = orbitals
        self.scaling_sigma = float(scaling_sigma)
        n_out = {"atoms": len(elements), "orbitals": len(elements), "scaling": 1}
        self.heads = nn.ModuleDict({h: AuxiliaryHead(n_state, hidden, n_out[h]) for h in heads})

    @property
    def labels(self) -> list[str]:
        """Per-system data labels the targets need (``"scale"`` for the scaling head)."""
        return ["scale"] if "scaling" in self.names else []

    def forward(self, x: torch.Tensor, batch: Batch) -> dict[str, torch.Tensor]:
        """{head: [B, k]} predictions in target units (float64)."""
        return {h: self.heads[h](x, batch) for h in self.names}

    def targets(
        self, numbers: torch.Tensor, batch: torch.Tensor, n_systems: int, scale: torch.Tensor | None
    ) -> dict[str, torch.Tensor]:
        """:func:`auxiliary_targets` with this model's vocabulary and options."""
        return auxiliary_targets(
            numbers,
            batch,
            n_systems,
            scale,
            elements=self.elements,
            heads=self.names,
            orbitals=self.orbitals,
            scaling_sigma=self.scaling_sigma,
        )

    @torch.no_grad()
    def set_statistics(self, data: PackedSystems) -> None:
        """Mean and std (population) of every target over the pack ``data``; std 0 → 1."""
        if not self.names:
            return
        if len(data) == 0:
            raise ValueError("cannot compute auxiliary target statistics of an empty pack")
        scale = None
        if "scaling" in self.names:
            if "scale" not in data.system_props:
                raise ValueError(
                    "the 'scaling' auxiliary head needs the system property 'scale' in the "
                    f"training data; available: {sorted(data.system_props)}"
                )
            scale = torch.from_numpy(np.asarray(data.system_props["scale"], dtype=np.float64))
        numbers = torch.from_numpy(data.numbers)
        index = torch.repeat_interleave(torch.arange(len(data)), torch.from_numpy(data.n_atoms))
        for name, t in self.targets(numbers, index, len(data), scale).items():
            mean = t.mean(dim=0)
            std = t.std(dim=0, unbiased=False)
            tiny = std <= 1e-12 * mean.abs().clamp(min=1.0)
            head = self.heads[name]
            head.mean.copy_(mean)
            head.std.copy_(torch.where(tiny, torch.ones_like(std), std))

    def loss(self, aux: dict[str, torch.Tensor], batch: Batch) -> torch.Tensor:
        """Σ_heads MSE(z-scored prediction, z-scored target), float64 scalar (α not applied)."""
        if not self.names:
            return batch.positions.new_zeros((), dtype=torch.float64)
        scale = None
        if "scaling" in self.names:
            scale = batch.targets.get("scale")
            if scale is None:
                raise ValueError(
                    "auxiliary_loss needs batch.targets['scale'] for the 'scaling' head: collate "
                    "the batch with the model's aux_labels among the targets"
                )
        tgt = self.targets(batch.numbers, batch.batch, batch.num_systems, scale)
        total = torch.zeros((), dtype=torch.float64, device=batch.positions.device)
        for name, t in tgt.items():
            head = self.heads[name]
            total = total + torch.mean((head.zscore(aux[name]) - head.zscore(t)) ** 2)
        return total


__all__ = [
    "AUX_HEADS",
    "AuxiliaryHead",
    "AuxiliaryHeads",
    "GatedReadout",
    "auxiliary_targets",
    "orbital_count",
    "scaling_probability",
]
