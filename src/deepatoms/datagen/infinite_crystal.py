"""Infinite Crystal: isotropically scaled fcc metals with EMT labels (docs/vimpnn.md §8).

For each element (Default Al, Cu) the stable lattice constant a₀ is the one minimising the EMT
energy per atom of the fcc crystal (Default; found once by a bounded Brent minimisation of
E(a) on [0.9, 1.1] × ASE's reference lattice constant to 1e-6 Å, recorded in the provenance)
or a fixed value (4.05 Å Al, 3.61 Å Cu; ASE's reference for other metals). The cell is the
4-atom conventional cube (Default) or the 1-atom primitive cell; sample k of an element has
lattice constant s_k·a₀ with s_k = linspace(0.9, 1.5, points)[k], labelled with the EMT energy
per cell (eV) and forces (eV/Å, zero by symmetry).

Recommended split, per element: training = the grid points nearest linspace(0.9, 1.5,
train_points) (8 in the paper); the rest is shuffled (seeded) and split evenly into validation
(⌊rest/2⌋) and test. Bonds: the metallic nearest-neighbour shell of the s = 1 cell with periodic
shifts (12 edges per atom; :func:`deepatoms.data.bonds.perceive_bonds`), fixed for every s.

Samples: ``energy`` (eV per cell), ``scale``, ``lattice_constant`` (Å), ``group`` (one id per
element, its position in ``elements``), ``element``, ``split``; atom prop ``forces``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from deepatoms.core.progress import Progress, reporting
from deepatoms.data.bonds import is_metal, perceive_bonds
from deepatoms.data.packed import PackedSystems
from deepatoms.data.scaling import scale_atoms
from deepatoms.datagen.resumable import (
    DatagenResult,
    GeneratedDataset,
    check_count,
    labelled_pack,
    versions,
)
from deepatoms.distribute.cluster import on_cluster

__all__ = [
    "FIXED_LATTICE",
    "SCALE_RANGE",
    "SOURCE",
    "UNITS",
    "check_metals",
    "emt_label",
    "emt_lattice_constant",
    "fcc_cell",
    "generate_infinite_crystal",
    "lattice_constants",
    "training_indices",
]

SOURCE = "deepatoms datagen crystal"
#: Range of the scaling factor s.
SCALE_RANGE = (0.9, 1.5)
#: Lattice constants (Å) of the ``fixed`` option.
FIXED_LATTICE = {"Al": 4.05, "Cu": 3.61}
UNITS = {"energy": "eV", "forces": "eV/Å", "scale": "", "lattice_constant": "Å"}
CELLS = ("conventional", "primitive")
LATTICE_MODES = ("minimize", "fixed")


def fcc_cell(element: str, a: float, cell: str = "conventional") -> Atoms:
    """Periodic fcc ``element`` with lattice constant ``a`` (Å): the 4-atom cube or the
    1-atom primitive cell."""
    from ase.build import bulk

    if cell not in CELLS:
        raise ValueError(f"unknown cell {cell!r}; choose one of {list(CELLS)}")
    return bulk(element, "fcc", a=float(a), cubic=cell == "conventional")


def _emt_energy_per_atom(element: str, a: float) -> float:
    from ase.calculators.emt import EMT

    atoms = fcc_cell(element, a, "primitive")
    atoms.calc = EMT()
    return float(atoms.get_potential_energy()) / len(atoms)


def emt_lattice_constant(element: str, xatol: float = 1e-6) -> dict[str, Any]:
    """The fcc lattice constant minimising the EMT energy of ``element`` (bounded Brent search
    on [0.9, 1.1] × ASE's reference a). Returns ``a`` (Å), ``energy_per_atom`` (eV), the
    ``bounds`` and the number of evaluations ``nfev``."""
    from ase.data import atomic_numbers, reference_states
    from scipy.optimize import minimize_scalar

    ref = reference_states[atomic_numbers[element]]
    a_ref = float(ref["a"]) if ref and "a" in ref else 4.0
    bounds = (0.9 * a_ref, 1.1 * a_ref)
    res = minimize_scalar(
        lambda a: _emt_energy_per_atom(element, a),
        bounds=bounds,
        method="bounded",
        options={"xatol": xatol},
    )
    a0 = float(res.x)
    if not res.success or min(a0 - bounds[0], bounds[1] - a0) < 10 * xatol:
        raise RuntimeError(
            f"the EMT lattice constant of fcc {element} was not found inside {bounds} Å"
        )
    return {
        "a": a0,
        "energy_per_atom": float(res.fun),
        "bounds": list(bounds),
        "nfev": int(res.nfev),
        "method": "scipy.optimize.minimize_scalar bounded, "
        f"xatol {xatol} Å, 1-atom fcc cell, ase EMT",
    }


def emt_label(atoms: Atoms, calc: Any) -> tuple[float, np.ndarray] | str:
    """EMT ``(energy eV, forces eV/Å)`` of ``atoms`` with ``calc``, or the error message."""
    atoms.calc = calc
    try:
        energy = float(atoms.get_potential_energy())
        forces = np.asarray(atoms.get_forces(), dtype=np.float64)
    except Exception as exc:  # recorded as a failure by the caller
        return f"EMT failed: {type(exc).__name__}: {exc}"
    finally:
        atoms.calc = None
    if not (np.isfinite(energy) and np.all(np.isfinite(forces))):
        return "EMT gave a non-finite energy or forces"
    return energy, forces


def check_metals(elements: Sequence[str]) -> list[str]:
    """``elements`` as a list of distinct fcc metals EMT can label, else a clear error."""
    from deepatoms.simulate.reference import check_elements

    els = [e.strip() for e in elements if e.strip()]
    if not els:
        raise ValueError("--elements: give at least one metal, e.g. Al,Cu")
    if len(set(els)) != len(els):
        raise ValueError(f"--elements {','.join(els)} repeats an element")
    check_elements("emt", els)
    bad = [e for e in els if not is_metal(e)]
    if bad:
        raise ValueError(
            f"--elements: {', '.join(bad)} are not metals; use Al, Ni, Cu, Pd, Ag, Pt or Au"
        )
    return els


def lattice_constants(elements: Sequence[str], mode: str = "minimize") -> dict[str, dict[str, Any]]:
    """s = 1 lattice constant per element: EMT minimum (``minimize``) or :data:`FIXED_LATTICE`
    / ASE's reference (``fixed``)."""
    from ase.data import atomic_numbers, reference_states

    if mode not in LATTICE_MODES:
        raise ValueError(f"unknown --lattice {mode!r}; choose one of {list(LATTICE_MODES)}")
    out = {}
    for el in elements:
        if mode == "minimize":
            out[el] = emt_lattice_constant(el)
        else:
            a = FIXED_LATTICE.get(el, reference_states[atomic_numbers[el]]["a"])
            out[el] = {"a": float(a), "method": "fixed"}
    return out


def training_indices(points: int, train_points: int) -> np.ndarray:
    """Indices of the grid linspace(0.9, 1.5, points) nearest linspace(0.9, 1.5, train_points)."""
    if train_points == 1:
        return np.array([0], dtype=np.int64)
    idx = np.rint(np.arange(train_points) * (points - 1) / (train_points - 1)).astype(np.int64)
    if len(np.unique(idx)) != train_points:
        raise ValueError(f"{train_points} training points do not fit a grid of {points} points")
    return idx


def _check(points: int, train_points: int) -> None:
    check_count(points, "--points", minimum=3)
    check_count(train_points, "--train-points")
    if points < train_points + 2:
        raise ValueError(
            f"--points {points} leaves no validation and test points after {train_points} "
            "training points; use at least --train-points + 2"
        )


def generate_infinite_crystal(
    out: str | Path, *, elements: Sequence[str] = ("Al", "Cu"), points: int = 20000,
    train_points: int = 8, cell: str = "conventional", lattice: str = "minimize", seed: int = 0,
    overwrite: bool = False, progress: bool | Progress = True, workers: int = 1, scheduler: str | None = None,
    chunk: int = 1000,
) -> DatagenResult:  # fmt: skip
    """Write the Infinite-Crystal dataset (module docstring) to ``out``; an interrupted run
    continues from its finished chunks of cells when given the same settings.

    Args:
        out: output dataset (.h5).
        elements: fcc metals with EMT parameters.
        points: scalings per element, uniformly spaced in [0.9, 1.5].
        train_points: training points per element (nearest linspace(0.9, 1.5, train_points)).
        cell: ``"conventional"`` (4 atoms) or ``"primitive"`` (1 atom).
        lattice: s = 1 from the EMT minimum (``"minimize"``) or ``"fixed"`` (4.05 / 3.61 Å).
        seed: seed of the validation/test split.
        overwrite: start again even if ``out`` holds a run.
        progress: a progress bar on stderr (True), none (False) or a ``progress(done, total)``
            callback over all cells.
        workers: local Dask worker processes for the chunks (1: this process).
        scheduler: address (tcp://HOST:8786) or scheduler file of a running Dask cluster to
            use instead. The data do not depend on where the chunks run.
        chunk: cells per chunk (the unit of work, distribution and resumption).

    Returns:
        summary: ``out``, ``n_samples``, ``n_new`` (elements done now), ``lattice_constants``
        (Å), ``seconds_per_cell`` (EMT, this call), ``complete``, ``wall_time_s``.
    """

    from deepatoms.simulate.reference import make_calculator

    t0 = time.perf_counter()
    els = check_metals(elements)
    _check(points, train_points)
    if cell not in CELLS:
        raise ValueError(f"unknown --cell {cell!r}; choose one of {list(CELLS)}")
    lattice_constants_ = lattice_constants(els, lattice)  # refuses unknown modes
    _, labeller = make_calculator("emt")
    grid = np.linspace(*SCALE_RANGE, points)
    train = training_indices(points, train_points)
    settings = {"elements": els, "points": points, "train_points": train_points, "cell": cell,
                "lattice": lattice, "seed": seed}  # fmt: skip
    writer = GeneratedDataset(
        out, source=SOURCE, settings=settings, n_bases=len(els) * points, units=UNITS,
        extra_metadata={"bond_types": ["metallic"], "bond_rule": "rdkit"},
        provenance=_provenance(labeller, lattice_constants_, grid, train), flush_every=chunk,
        overwrite=overwrite,
    )  # fmt: skip
    splits = [_split(points, train, seed, group) for group in range(len(els))]
    cells = [
        {"group": group, "element": el, "a0": lattice_constants_[el]["a"], "index": k,
         "scale": float(grid[k]), "split": str(splits[group][k])}
        for group, el in enumerate(els) for k in range(points)
    ]  # fmt: skip
    with (
        on_cluster(workers, scheduler, bool(progress)) as cluster,
        reporting(progress, "cells") as report,
    ):
        writer.run(_label_cells, cells, (cell,), cluster=cluster, progress=report)
    n_cells, emt_time = writer.stats.get("points", 0), writer.stats.get("emt_s", 0.0)
    return writer.summary(
        t0, lattice_constants={el: v["a"] for el, v in lattice_constants_.items()},
        seconds_per_cell=emt_time / n_cells if n_cells else None,
    )  # fmt: skip


def _provenance(labeller: dict, a0: dict, grid: np.ndarray, train: np.ndarray) -> dict:
    return {
        "dataset": "Infinite Crystal (Morgan et al. 2020): fcc cells scaled isotropically",
        "labeller": labeller,
        "lattice_constants": a0,
        "scale_grid": f"linspace({SCALE_RANGE[0]}, {SCALE_RANGE[1]}, {len(grid)}) per element",
        "training_scales": grid[train].tolist(),
        "bonds": "metallic nearest-neighbour shell of the s = 1 cell (r_nn = 1.2 a/sqrt 2), "
        "periodic shifts, kept for every s",
        "split": "train = grid points nearest linspace(0.9, 1.5, train_points); the rest "
        "shuffled (numpy default_rng([seed, group])) and halved into val and test",
        "versions": versions("ase", "numpy", "scipy"),
    }


def _split(points: int, train: np.ndarray, seed: int, group: int) -> np.ndarray:
    """train at the training indices; the rest shuffled per element, halved into val and test."""
    split = np.full(points, "test", dtype="<U5")
    split[train] = "train"
    rest = np.random.default_rng([seed, group]).permutation(np.setdiff1d(np.arange(points), train))
    split[rest[: len(rest) // 2]] = "val"
    return split


def _label_cells(
    cells: Sequence[dict], cell: str, on_item: Any = None
) -> tuple[PackedSystems | None, list[dict], dict[str, float]]:
    """A chunk task: the scaled fcc ``cells`` labelled with EMT, as one pack per run of cells of
    the same element joined in order; the failed points; the number of cells and EMT seconds."""
    from ase.calculators.emt import EMT

    t1 = time.perf_counter()
    calc = EMT()
    packs, failures = [], []
    for k0, k1 in _runs(cells):
        first = cells[k0]
        stable = fcc_cell(first["element"], first["a0"], cell)
        samples, rows = [], []
        for k in range(k0, k1):
            c = cells[k]
            atoms = scale_atoms(stable, c["scale"])
            res = emt_label(atoms, calc)
            if isinstance(res, str):
                failures.append({"group": c["group"], "scale": c["scale"], "reason": res})
            else:
                samples.append(atoms)
                rows.append((c, *res))
            if on_item is not None and (k % 100 == 0 or k == len(cells) - 1):
                on_item(k + 1)
        if samples:
            scale = np.array([r[0]["scale"] for r in rows], dtype=np.float64)
            props = {
                "energy": np.array([r[1] for r in rows], dtype=np.float64), "scale": scale,
                "lattice_constant": scale * first["a0"], "group": first["group"],
                "element": first["element"], "split": np.array([r[0]["split"] for r in rows]),
            }  # fmt: skip
            packs.append(labelled_pack(samples, props, [r[2] for r in rows],
                                       perceive_bonds(stable), ["metallic"]))  # fmt: skip
    stats = {"points": len(cells), "emt_s": time.perf_counter() - t1}
    joined = (
        None if not packs else packs[0] if len(packs) == 1 else PackedSystems.concatenate(packs)
    )
    return joined, failures, stats


def _runs(cells: Sequence[dict]) -> list[tuple[int, int]]:
    """``[start, stop)`` of the runs of consecutive cells with the same element."""
    out, start = [], 0
    for k in range(1, len(cells) + 1):
        if k == len(cells) or cells[k]["group"] != cells[start]["group"]:
            out.append((start, k))
            start = k
    return out
