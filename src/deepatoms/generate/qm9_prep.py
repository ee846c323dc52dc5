"""QM9 prepared for G-SchNet training and evaluation (docs/gschnet.md §6, §9, §10).

Steps (Gebauer et al. 2019, supplementary material "Data"; per the authors' public code):

1. Load QM9 from ``qm9pack`` (:func:`deepatoms.data.sources.qm9.load_qm9`): all 130,831
   molecules, a seeded random ``limit`` or the ``first`` N by QM9 index.
2. Optional property filters, applied before the (slower) bond perception: ``max_gap``
   (keep gap < max_gap eV) and ``where`` ("gap<4.5", conditions joined by "and" or ",").
3. Centre each molecule on its centre of mass, R_com = Σ_i m_i r_i / Σ_i m_i (atomic masses of
   ``ase.data``), and sort its atoms by |r_i − R_com| (stable, so ties keep QM9 order).
4. Perceive bonds and check validity with
   :func:`deepatoms.analysis.molecule_validity.check_molecule` (connected; Σ bond orders =
   valence H 1, C 4, N 3, O 2, F 1 at charge 0); invalid molecules are dropped and counted per
   reason in ``metadata["dropped"]``.
5. Optional ``no_small_rings``: drop molecules with a 3- or 4-membered ring (RDKit symmetrised
   SSSR of the canonical SMILES) — the no-R3/R4 control of §10 (about 52k molecules).
6. Store the Kekulé bond graph with the data (``PackedSystems.edges``, ``GraphSpec(kind=
   "bonds")``, attribute ``bond_type`` indexing ``metadata["bond_types"]`` = single, double,
   triple), the 3-D-perceived ``canonical_smiles`` and ``mirror_smiles`` (the evaluation
   matches generated molecules against them), ring counts ``rings`` [B, 4] (R3 … R6), and a
   seeded ``split`` column: 50,000 train / 5,000 val / rest test (whole QM9); 50,000 / 2,000 /
   rest (no-R3/R4; qm9pack has only 49,994 valid such molecules, so the default training set is
   all but the 2,000 validation molecules there); 500 val / rest train / no test (property-
   filtered subsets, e.g. gap < 4.5 eV: 3,778 molecules in ``qm9pack`` before the validity
   check, 3,504 after). Sizes are configurable.
"""

from __future__ import annotations

import operator
import re
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np

from deepatoms.data.packed import PackedSystems

__all__ = [
    "DEFAULT_SPLITS",
    "apply_filters",
    "centre_and_sort",
    "parse_where",
    "perceive_molecules",
    "prepare_molecules",
    "prepare_qm9_generative",
    "split_labels",
]

#: Default (n_train, n_val, n_test) per kind of data set; None = "the rest" (no-R3/R4: the
#: training set shrinks to the molecules left after validation when fewer than 52,000 remain).
DEFAULT_SPLITS: dict[str, tuple[int | None, int, int | None]] = {
    "qm9": (50_000, 5_000, None),
    "no_small_rings": (50_000, 2_000, None),
    "subset": (None, 500, 0),
}
_BOND_VOCABULARY = ("single", "double", "triple")
_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
}
_CONDITION = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|==|!=|<|>)\s*(\S+)\s*$")


# -- geometry -------------------------------------------------------------------------------------
def centre_and_sort(data: PackedSystems) -> PackedSystems:
    """A copy of ``data`` with every molecule centred on its centre of mass (atomic masses, Å)
    and its atoms (and per-atom properties) ordered by distance to it (stable sort)."""
    from ase.data import atomic_masses

    n = data.n_atoms
    system = np.repeat(np.arange(len(data)), n)
    m = atomic_masses[data.numbers]
    total = np.bincount(system, weights=m, minlength=len(data))
    com = (
        np.stack(
            [
                np.bincount(system, weights=m * data.positions[:, a], minlength=len(data))
                for a in range(3)
            ],
            axis=1,
        )
        / np.where(total > 0, total, 1.0)[:, None]
    )
    centred = data.positions - com[system]
    order = np.lexsort((np.arange(len(system)), np.linalg.norm(centred, axis=1), system))
    return PackedSystems(
        data.numbers[order],
        centred[order],
        data.offsets.copy(),
        data.cell.copy(),
        data.pbc.copy(),
        dict(data.system_props),
        {k: v[order] for k, v in data.atom_props.items()},
    )


# -- property filters -----------------------------------------------------------------------------
def parse_where(text: str) -> list[tuple[str, str, float]]:
    """Conditions ``NAME OP VALUE`` joined by "and" or "," (OP one of < <= > >= == !=),
    e.g. ``"gap<4.5 and mu>=1"`` → ``[("gap", "<", 4.5), ("mu", ">=", 1.0)]``."""
    parts = [p for p in re.split(r"\s+and\s+|,", text.strip()) if p.strip()]
    if not parts:
        raise ValueError(f"--where {text!r} holds no condition; write e.g. 'gap<4.5'")
    conditions = []
    for part in parts:
        match = _CONDITION.match(part)
        if match is None:
            raise ValueError(
                f"cannot read the condition {part.strip()!r} of --where {text!r}; write "
                "NAME OP VALUE with OP one of < <= > >= == != (e.g. 'gap<4.5'), joined by 'and'"
            )
        name, op, value = match.groups()
        try:
            conditions.append((name, op, float(value)))
        except ValueError:
            raise ValueError(
                f"the value {value!r} in condition {part.strip()!r} is not a number"
            ) from None
    return conditions


def apply_filters(
    data: PackedSystems, max_gap: float | None = None, where: str | None = None
) -> tuple[np.ndarray, list[str]]:
    """Keep-mask of the molecules with gap < ``max_gap`` (eV) that satisfy ``where``, and a
    description of each condition applied."""
    keep = np.ones(len(data), bool)
    applied: list[str] = []
    conditions = parse_where(where) if where else []
    if max_gap is not None:
        if not np.isfinite(max_gap):
            raise ValueError(f"--max-gap must be a finite energy in eV, got {max_gap}")
        conditions.insert(0, ("gap", "<", float(max_gap)))
    for name, op, value in conditions:
        column = data.system_props.get(name)
        if column is None or np.asarray(column).dtype.kind not in "iuf":
            numeric = sorted(
                k for k, v in data.system_props.items() if np.asarray(v).dtype.kind in "iuf"
            )
            raise ValueError(
                f"filter on {name!r}: QM9 has no numeric property of that name; choose one of "
                f"{numeric}"
            )
        keep &= np.asarray(_OPS[op](np.asarray(column), value), bool)
        applied.append(f"{name} {op} {value:g}")
    return keep, applied


# -- bond perception ------------------------------------------------------------------------------
def perceive_molecules(
    data: PackedSystems, progress: Callable[[int, int], None] | None = None
) -> dict[str, Any]:
    """Run :func:`~deepatoms.analysis.molecule_validity.check_molecule` on every molecule.

    Returns ``valid`` [B] bool, ``reason`` [B] str ("" when valid), ``bonds`` (list of [P, 2]
    pairs), ``orders`` (list of [P] orders 1/2/3), ``smiles`` and ``mirror_smiles`` [B] str,
    ``rings`` [B, 4] int64 (R3 … R6; zeros for invalid molecules).
    """
    from deepatoms.analysis.molecule_validity import check_molecule, ring_counts

    n = len(data)
    out: dict[str, Any] = {
        "valid": np.zeros(n, bool),
        "reason": np.full(n, "", dtype=object),
        "bonds": [],
        "orders": [],
        "smiles": np.full(n, "", dtype=object),
        "mirror_smiles": np.full(n, "", dtype=object),
        "rings": np.zeros((n, 4), np.int64),
    }
    step = max(1, n // 200)
    for k in range(n):
        s, e = data.offsets[k], data.offsets[k + 1]
        check = check_molecule(data.numbers[s:e], data.positions[s:e])
        out["valid"][k] = check.valid
        out["reason"][k] = check.reason
        out["bonds"].append(check.bonds)
        out["orders"].append(check.orders)
        if check.valid:
            out["smiles"][k], out["mirror_smiles"][k] = check.smiles, check.mirror_smiles
            out["rings"][k] = ring_counts(check.smiles)
        if progress is not None and ((k + 1) % step == 0 or k + 1 == n):
            progress(k + 1, n)
    for key in ("reason", "smiles", "mirror_smiles"):
        out[key] = out[key].astype(str)
    return out


# -- split ----------------------------------------------------------------------------------------
def split_labels(
    n: int,
    n_train: int | float | None,
    n_val: int | float,
    n_test: int | float | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Seeded per-molecule labels "train" / "val" / "test" (``deepatoms.data.splits.
    random_split``); ``n_train=None`` gives training every molecule not in val and test."""
    from deepatoms.data.splits import random_split, resolve_size

    if n_train is None:
        va = resolve_size(n_val, n, "n_val") or 0
        te = resolve_size(n_test, n, "n_test") or 0
        if va + te > n:
            raise ValueError(
                f"split sizes val={va} + test={te} exceed the {n} molecules; reduce --n-val"
            )
        n_train, n_test = n - va - te, te
    try:
        split = random_split(n, n_train, n_val, n_test, seed=seed)
    except ValueError as err:
        raise ValueError(f"{err} (set --n-train / --n-val for this data set)") from None
    labels = np.full(n, "", dtype="<U5")
    for name, idx in split.items():
        labels[idx] = name
    if np.any(labels == ""):  # test size given and smaller than the rest: drop nothing silently
        raise ValueError(
            f"the split leaves {int(np.sum(labels == ''))} molecules unassigned; "
            "leave --n-test unset to make the test set the rest"
        )
    return labels


def _bond_graph(data: PackedSystems, bonds: list[np.ndarray], orders: list[np.ndarray]) -> Any:
    from ase import Atoms

    from deepatoms.data.bonds import Bonds, bond_graph

    names = np.array(("", *_BOND_VOCABULARY))
    lists = [
        Bonds(b[:, 0], b[:, 1], np.zeros((len(b), 3), np.int64), names[o])
        for b, o in zip(bonds, orders, strict=True)
    ]
    shells = [Atoms(numbers=np.ones(n, int)) for n in data.n_atoms.tolist()]  # sizes only
    edges, vocabulary = bond_graph(shells, lists, _BOND_VOCABULARY)
    return edges, vocabulary


def prepare_molecules(
    data: PackedSystems, no_small_rings: bool = False, n_train: int | float | None = None,
    n_val: int | float | None = None, n_test: int | float | None = None, split_seed: int = 0,
    kind: str = "qm9", progress: Callable[[int, int], None] | None = None,
) -> tuple[PackedSystems, dict[str, Any]]:  # fmt: skip
    """Steps 3–6 of the module docstring on any molecules: centre, sort, perceive, drop invalid
    (and, with ``no_small_rings``, R3/R4) molecules, store bonds, SMILES, rings and the split.

    Unset split sizes take :data:`DEFAULT_SPLITS` [``kind``] ("qm9", "no_small_rings" or
    "subset") when none is given, else ``n_train`` = the rest and ``n_test`` = the rest.
    Returns ``(data, info)`` with info keys ``bond_types``, ``dropped``, ``split``,
    ``n_removed_small_rings`` and ``timing`` (seconds).
    """
    if kind not in DEFAULT_SPLITS:
        raise ValueError(f"unknown data-set kind {kind!r}; choose one of {list(DEFAULT_SPLITS)}")
    timing: dict[str, float] = {}
    t0 = time.perf_counter()
    data = centre_and_sort(data)
    timing["centre_sort"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    perceived = perceive_molecules(data, progress)
    timing["perceive"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    valid = perceived["valid"]
    reasons = Counter(perceived["reason"][~valid].tolist())
    ids = data.system_props.get("index", np.arange(len(data)))
    dropped = {
        "n_checked": len(data),
        "n_valid": int(valid.sum()),
        "n_dropped": int((~valid).sum()),
        "reasons": dict(sorted(reasons.items())),
        "qm9_index": {r: np.asarray(ids)[perceived["reason"] == r].tolist() for r in reasons},
    }
    keep = valid.copy()
    n_small_rings = 0
    if no_small_rings:
        small = (perceived["rings"][:, 0] + perceived["rings"][:, 1]) > 0
        n_small_rings = int((small & valid).sum())
        keep &= ~small
    if not keep.any():
        raise ValueError(
            f"no molecule is left after the validity check ({dict(reasons)})"
            + (" and the removal of 3-/4-membered rings" if no_small_rings else "")
        )
    idx = np.flatnonzero(keep)
    data = data.subset(idx)
    data.edges, vocabulary = _bond_graph(
        data, [perceived["bonds"][k] for k in idx], [perceived["orders"][k] for k in idx]
    )
    data.system_props["canonical_smiles"] = perceived["smiles"][idx]
    data.system_props["mirror_smiles"] = perceived["mirror_smiles"][idx]
    data.system_props["rings"] = perceived["rings"][idx]

    d_train, d_val, d_test = DEFAULT_SPLITS[kind]
    explicit = n_train is not None or n_val is not None or n_test is not None
    if kind == "no_small_rings" and d_train is not None:
        # qm9pack keeps 49,994 valid molecules without R3/R4: train on all but validation
        d_train = min(d_train, max(len(data) - d_val, 0))
    sizes = (
        n_train if n_train is not None else (d_train if not explicit else None),
        n_val if n_val is not None else d_val,
        n_test if n_test is not None else (d_test if not explicit else None),
    )
    data.system_props["split"] = split_labels(len(data), *sizes, seed=split_seed)
    counts = {s: int(np.sum(data.system_props["split"] == s)) for s in ("train", "val", "test")}
    timing["store"] = time.perf_counter() - t0
    info = {
        "bond_types": list(vocabulary),
        "dropped": dropped,
        "split": {"kind": kind, "seed": split_seed, "sizes": counts, "column": "split"},
        "n_removed_small_rings": n_small_rings,
        "timing": timing,
    }
    return data, info


def prepare_qm9_generative(
    limit: int | None = None, first: int | None = None, max_gap: float | None = None,
    where: str | None = None, no_small_rings: bool = False, n_train: int | float | None = None,
    n_val: int | float | None = None, n_test: int | float | None = None, split_seed: int = 0,
    seed: int = 0, progress: Callable[[int, int], None] | None = None,
) -> tuple[PackedSystems, dict[str, Any]]:  # fmt: skip
    """QM9 prepared for G-SchNet (module docstring): ``(data, metadata)``.

    Args:
        limit: seeded random subset of QM9 (``seed``), or ``first``: the first N by QM9 index.
        max_gap: keep molecules with HOMO–LUMO gap < max_gap (eV).
        where: further conditions on QM9 properties, e.g. ``"gap<4.5"`` (units of
            ``metadata["units"]``: eV for energies).
        no_small_rings: drop molecules with 3- or 4-membered rings.
        n_train, n_val, n_test: split sizes (counts, or fractions below 1); unset ones take
            :data:`DEFAULT_SPLITS` for the kind of data set; ``n_test=None`` = the rest.
        split_seed: seed of the split permutation.
        progress: ``progress(done, total)`` callback of the bond perception.

    Returns:
        Positions in Å (centred, sorted), QM9 properties with their units, ``canonical_smiles``,
        ``mirror_smiles``, ``rings``, ``split``; the stored bond graph in ``data.edges``;
        metadata with ``bond_types``, ``dropped`` (counts per reason), ``filters``, ``split``
        and ``timing`` (seconds per stage).
    """
    from deepatoms.data.sources.qm9 import load_qm9

    if limit is not None and first is not None:
        raise ValueError("give --limit N (random subset) or --first N (by QM9 index), not both")
    if first is not None and (isinstance(first, bool) or first < 1):
        raise ValueError(f"--first must be a positive number of molecules, got {first!r}")
    t0 = time.perf_counter()
    data, meta = load_qm9(limit=limit, seed=seed, progress=False)
    if first is not None:
        if first > len(data):
            raise ValueError(f"--first {first} exceeds the {len(data)} molecules of QM9")
        data = data.subset(np.arange(first))
    n_loaded = len(data)
    t_load = time.perf_counter() - t0

    keep, applied = apply_filters(data, max_gap, where)
    data = data.subset(np.flatnonzero(keep))
    if len(data) == 0:
        raise ValueError(f"no QM9 molecule satisfies {' and '.join(applied)}; relax the filter")
    n_filtered = len(data)
    if max_gap is not None or where:
        kind = "subset"
    else:
        kind = "no_small_rings" if no_small_rings else "qm9"
    data, info = prepare_molecules(
        data, no_small_rings, n_train, n_val, n_test, split_seed, kind, progress
    )
    if no_small_rings:
        applied.append("no 3- or 4-membered ring")

    meta = dict(meta)
    meta["units"] = {**meta["units"], "rings": "count"}
    meta["source"] = f"{meta['source']} (G-SchNet preparation)"
    meta["bond_types"] = info["bond_types"]
    meta["dropped"] = info["dropped"]
    meta["filters"] = {
        "applied": applied,
        "n_loaded": n_loaded,
        "n_after_property_filters": n_filtered,
        "n_removed_small_rings": info["n_removed_small_rings"],
    }
    meta["split"] = info["split"]
    meta["timing"] = {k: round(v, 3) for k, v in {"load": t_load, **info["timing"]}.items()}
    meta["provenance"] = {
        **meta["provenance"],
        "gschnet_preparation": {
            "spec": "docs/gschnet.md §6, §10",
            "centring": "centre of mass (ase.data atomic masses)",
            "atom_order": "distance to the centre of mass, ascending",
            "bonds": "RDKit rdDetermineBonds (connect-the-dots 1.3, over-coordination pruned, "
            "bond orders at charge 0, kekulised)",
            "validity": "connected; sum of bond orders = valence H1 C4 N3 O2 F1; no charges",
            "smiles": "canonical isomeric SMILES, stereo from 3-D; mirror_smiles of x -> -x",
            "rings": "RDKit symmetrised SSSR of canonical_smiles, sizes 3, 4, 5, 6",
            "limit": limit,
            "first": first,
            "seed": seed,
        },
    }
    return data, meta
