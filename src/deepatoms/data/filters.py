"""Dataset filters of the crystal papers (Paper A and Paper B: noble gases, formation
energies above 5 eV/atom, duplicates).

Each filter gives a :class:`FilterMask`: a boolean keep-mask over the systems plus the reason
the others are removed. :func:`apply_filters` applies several *in order*, each to what the
previous ones kept (Paper B: noble gases, then ΔH_f > 5 eV/atom, then duplicates, so a removed
entry never takes part in a duplicate set), and reports the count removed per reason.

- :func:`noble_gas_mask`: drop every crystal containing He, Ne, Ar, Kr, Xe or Rn;
- :func:`formation_energy_mask`: drop ΔH_f > ``max_ev_per_atom`` (default 5 eV/atom);
- :func:`duplicate_mask`: entries with the same reduced composition and prototype label form a
  duplicate set; keep its first entry, unless the standard deviation of the set's ΔH_f exceeds
  ``std_tol`` (default 0.05 eV/atom), then drop the whole set.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deepatoms.data.packed import PackedSystems

__all__ = [
    "NOBLE_GASES",
    "FilterMask",
    "apply_filters",
    "crystal_filters",
    "duplicate_mask",
    "formation_energy_mask",
    "noble_gas_mask",
]

#: Atomic numbers of He, Ne, Ar, Kr, Xe, Rn.
NOBLE_GASES: tuple[int, ...] = (2, 10, 18, 36, 54, 86)

Filter = Callable[[PackedSystems], "FilterMask"]


@dataclass(frozen=True)
class FilterMask:
    """``keep[k]`` is True for systems that pass; ``reason`` says why the others are removed."""

    keep: np.ndarray  # [B] bool
    reason: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def n_removed(self) -> int:
        """Number of systems removed by this filter."""
        return int((~self.keep).sum())


def noble_gas_mask(data: PackedSystems) -> FilterMask:
    """Keep systems without any noble-gas atom (He, Ne, Ar, Kr, Xe, Rn)."""
    system_of_atom = np.repeat(np.arange(len(data)), data.n_atoms)
    hits = np.bincount(system_of_atom[np.isin(data.numbers, NOBLE_GASES)], minlength=len(data))
    keep = hits == 0
    return FilterMask(keep, "contains a noble gas (He, Ne, Ar, Kr, Xe, Rn)")


def formation_energy_mask(
    values: np.ndarray | Sequence[float], max_ev_per_atom: float = 5.0
) -> FilterMask:
    """Keep systems with formation energy ΔH_f ≤ ``max_ev_per_atom`` (eV/atom).

    NaN values are kept (they are not known to exceed the limit); filter missing labels
    separately.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1:
        raise ValueError(f"formation energies must be one value per system, got shape {v.shape}")
    keep = ~(v > max_ev_per_atom)
    return FilterMask(
        keep,
        f"formation energy above {max_ev_per_atom:g} eV/atom",
        {"max_ev_per_atom": float(max_ev_per_atom)},
    )


def _label_key(value: Any) -> str:
    """Group key of a label: text as is, integral floats as integers (139.0 → '139')."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def duplicate_mask(
    reduced_formula: np.ndarray | Sequence[str],
    prototype: np.ndarray | Sequence[Any] | None,
    values: np.ndarray | Sequence[float],
    std_tol: float = 0.05,
    ddof: int = 0,
) -> FilterMask:
    """Paper B duplicate rule on entries with the same reduced composition and prototype label.

    Args:
        reduced_formula: reduced composition of each system (e.g. ``"NaCl"``).
        prototype: prototype label of each system (any values, compared as text; numbers such as
            space-group numbers 225.0 and 225 match); ``None`` groups by composition only.
        values: formation energy ΔH_f of each system, eV/atom.
        std_tol: a set whose ΔH_f standard deviation exceeds this (eV/atom) is dropped entirely;
            otherwise its first entry (in data order) is kept and the others dropped.
        ddof: delta degrees of freedom of the standard deviation (0: population, as numpy).

    NaN energies are left out of the standard deviation. ``details`` counts the sets, the
    later duplicates dropped and the entries of inconsistent sets dropped.
    """
    formula = np.asarray(reduced_formula)
    v = np.asarray(values, dtype=np.float64)
    n = len(formula)
    if len(v) != n or (prototype is not None and len(prototype) != n):
        raise ValueError(
            f"duplicate_mask needs one formula, prototype and value per system; got {n} "
            f"formulas, {len(v)} values"
            + (f", {len(prototype)} prototypes" if prototype is not None else "")
        )
    protos = [""] * n if prototype is None else [_label_key(x) for x in prototype]
    groups: dict[tuple[str, str], list[int]] = {}
    for k in range(n):
        groups.setdefault((str(formula[k]), protos[k]), []).append(k)
    keep = np.ones(n, dtype=bool)
    n_sets = n_later = n_inconsistent_sets = n_inconsistent_entries = 0
    for members in groups.values():
        if len(members) < 2:
            continue
        n_sets += 1
        finite = v[members][np.isfinite(v[members])]
        spread = float(np.std(finite, ddof=ddof)) if len(finite) > ddof else 0.0
        if spread > std_tol:
            keep[members] = False
            n_inconsistent_sets += 1
            n_inconsistent_entries += len(members)
        else:
            keep[members[1:]] = False
            n_later += len(members) - 1
    return FilterMask(
        keep,
        "duplicate (same reduced composition and prototype)",
        {
            "std_tol_ev_per_atom": float(std_tol),
            "n_duplicate_sets": n_sets,
            "n_later_duplicates_dropped": n_later,
            "n_inconsistent_sets_dropped": n_inconsistent_sets,
            "n_entries_in_inconsistent_sets": n_inconsistent_entries,
        },
    )


def apply_filters(
    data: PackedSystems, filters: Sequence[Filter]
) -> tuple[PackedSystems, dict[str, Any]]:
    """Apply ``filters`` in order, each to the systems the previous ones kept.

    Returns the kept systems and a JSON-friendly report: ``n_in``, ``n_out``, ``removed``
    ({reason: count}, summing to ``n_in - n_out``), ``details`` ({reason: filter details}) and
    ``kept_index`` (indices of the kept systems in ``data``).
    """
    index = np.arange(len(data))
    current = data
    removed: dict[str, int] = {}
    details: dict[str, Any] = {}
    for fn in filters:
        mask = fn(current)
        keep = np.asarray(mask.keep, dtype=bool)
        if keep.shape != (len(current),):
            raise ValueError(
                f"filter {mask.reason!r} returned a mask of shape {keep.shape} for "
                f"{len(current)} systems"
            )
        removed[mask.reason] = removed.get(mask.reason, 0) + int((~keep).sum())
        if mask.details:
            details[mask.reason] = mask.details
        if not keep.all():
            current = current.subset(np.flatnonzero(keep))
            index = index[keep]
    report = {
        "n_in": len(data),
        "n_out": len(current),
        "removed": removed,
        "details": details,
        "kept_index": index.tolist(),
    }
    return current, report


def _column(data: PackedSystems, name: str) -> np.ndarray:
    if name not in data.system_props:
        raise KeyError(
            f"no per-system property {name!r} to filter on; available: {sorted(data.system_props)}"
        )
    return data.system_props[name]


def crystal_filters(
    *, drop_noble_gases: bool = True, energy_column: str | None = None,
    max_ev_per_atom: float = 5.0, dedupe: bool = False, prototype_column: str | None = None,
    formula_column: str = "reduced_formula", std_tol: float = 0.05,
) -> list[Filter]:  # fmt: skip
    """The Paper B filter chain for :func:`apply_filters`, built from column names.

    Noble gases (if ``drop_noble_gases``), then ΔH_f > ``max_ev_per_atom`` eV/atom (if
    ``energy_column`` is given; ``inf`` disables it), then duplicates (if ``dedupe``; needs
    ``energy_column``; ``prototype_column=None`` groups by composition only).
    """
    if dedupe and energy_column is None:
        raise ValueError("removing duplicates needs the formation-energy column (energy_column)")
    chain: list[Filter] = []
    if drop_noble_gases:
        chain.append(noble_gas_mask)
    if energy_column is not None and np.isfinite(max_ev_per_atom):
        chain.append(lambda d: formation_energy_mask(_column(d, energy_column), max_ev_per_atom))
    if dedupe:
        chain.append(
            lambda d: duplicate_mask(
                _column(d, formula_column),
                None if prototype_column is None else _column(d, prototype_column),
                _column(d, energy_column),  # type: ignore[arg-type]
                std_tol,
            )
        )
    return chain
