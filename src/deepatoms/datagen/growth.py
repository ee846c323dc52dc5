"""Crystal Growth: fcc metal clusters grown atom by atom, EMT labels (docs/vimpnn.md §8).

fcc sites are integer triples n (units of a/2) with n_x + n_y + n_z even; the 12 nearest
neighbours of a site are n + (±1, ±1, 0) and permutations, at distance a/√2. A run starts from
the 14-atom conventional cube (8 corners {0, 2}³ + 6 face centres) and, at each of ``steps``
steps, adds one atom at a site drawn uniformly from the empty sites with ≥ 1 occupied nearest
neighbour (sorted list, ``numpy.random.default_rng([seed, Z, run])``, so a run depends only on
the seed, element and run number). Cluster k of a run is the first 14 + k atoms (atoms are in
order of addition), k = 1 … steps: 15 … 114 atoms for 100 steps. Positions are n · a₀/2 with a₀
the element's EMT lattice constant (:func:`deepatoms.datagen.infinite_crystal.lattice_constants`);
non-periodic.

* Stable CG: every cluster with ``min_atoms`` ≤ N ≤ ``max_atoms`` (Default 15–75) of ``runs``
  runs per element, s = 1.
* Unstable CG (``unstable``): the clusters of the first ``unstable_runs`` runs per element
  (identical to the stable ones for the same seed; same ``group`` ids), each scaled about its
  centroid by every s of the grid (Default linspace(0.9, 1.5, 10)).

Base clusters are numbered (``group``) in the order element, run, size over the stable set.
Recommended split 60/20/20 (seeded) by base cluster (Default) or by growth run. Bonds: the
metallic nearest-neighbour shell of the s = 1 cluster (d ≤ 1.2 a₀/√2), fixed under scaling.
Samples: ``energy`` (eV), ``scale``, ``group``, ``run``, ``element``, ``split``; atom prop
``forces`` (eV/Å).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers

from deepatoms.core.progress import Progress, reporting
from deepatoms.data.bonds import perceive_bonds
from deepatoms.data.packed import PackedSystems
from deepatoms.data.scaling import DEFAULT_SCALES, parse_scales, scale_atoms
from deepatoms.datagen.infinite_crystal import check_metals, emt_label, lattice_constants
from deepatoms.datagen.resumable import (
    DatagenResult,
    GeneratedDataset,
    check_count,
    label_bases,
    labelled_pack,
    parse_fractions,
    split_labels,
    versions,
)
from deepatoms.distribute.cluster import on_cluster

__all__ = [
    "FCC_NEIGHBOURS",
    "SEED_SITES",
    "SOURCE",
    "UNITS",
    "base_clusters",
    "generate_growth",
    "grow_sites",
]

SOURCE = "deepatoms datagen growth"
UNITS = {"energy": "eV", "forces": "eV/Å", "scale": ""}
#: The 12 nearest-neighbour offsets of an fcc site (units of a/2).
FCC_NEIGHBOURS = np.array(
    sorted(
        {
            p
            for v in ((1, 1, 0), (1, -1, 0), (-1, 1, 0), (-1, -1, 0))
            for p in itertools.permutations(v)
        }
    ),
    dtype=np.int64,
)
#: The 14-atom seed: corners and face centres of the conventional cube (units of a/2).
SEED_SITES = np.array(
    [c for c in itertools.product((0, 2), repeat=3)]
    + [(1, 1, 0), (1, 1, 2), (1, 0, 1), (1, 2, 1), (0, 1, 1), (2, 1, 1)],
    dtype=np.int64,
)
SPLIT_BY = ("group", "run")


def grow_sites(steps: int, rng: np.random.Generator) -> np.ndarray:
    """Sites [14 + steps, 3] (units of a/2) of one growth run, in order of addition."""
    sites = [tuple(s) for s in SEED_SITES.tolist()]
    occupied = set(sites)
    frontier = {tuple(n) for s in sites for n in (np.array(s) + FCC_NEIGHBOURS).tolist()}
    frontier -= occupied
    for _ in range(steps):
        choices = sorted(frontier)
        new = choices[int(rng.integers(len(choices)))]
        sites.append(new)
        occupied.add(new)
        frontier.discard(new)
        frontier.update(
            n for n in map(tuple, (np.array(new) + FCC_NEIGHBOURS).tolist()) if n not in occupied
        )
    return np.array(sites, dtype=np.int64)


def base_clusters(
    elements: Sequence[str], runs: int, steps: int, min_atoms: int, max_atoms: int, seed: int
) -> list[dict[str, Any]]:
    """The stable base clusters in group order: dicts with ``group``, ``element``, ``run``,
    ``sites`` [N, 3] (units of a/2)."""
    out = []
    for el in elements:
        for run in range(runs):
            sites = grow_sites(steps, np.random.default_rng([seed, atomic_numbers[el], run]))
            for n in range(max(min_atoms, len(SEED_SITES) + 1), min(max_atoms, len(sites)) + 1):
                out.append({"group": len(out), "element": el, "run": run, "sites": sites[:n]})
    return out


def _check(
    runs, steps, min_atoms, max_atoms, unstable, unstable_runs, split_by,
) -> None:  # fmt: skip
    check_count(runs, "--runs")
    check_count(steps, "--steps")
    check_count(min_atoms, "--min-atoms", minimum=len(SEED_SITES) + 1)
    check_count(max_atoms, "--max-atoms", minimum=min_atoms)
    if min_atoms > len(SEED_SITES) + steps:
        raise ValueError(
            f"--min-atoms {min_atoms} exceeds the largest cluster ({len(SEED_SITES) + steps} atoms "
            f"after {steps} steps); lower it or add --steps"
        )
    if unstable:
        check_count(unstable_runs, "--unstable-runs")
        if unstable_runs > runs:
            raise ValueError(f"--unstable-runs {unstable_runs} exceeds --runs {runs}")
    if split_by not in SPLIT_BY:
        raise ValueError(f"unknown --split-by {split_by!r}; choose one of {list(SPLIT_BY)}")


def generate_growth(
    out: str | Path, *, elements: Sequence[str] = ("Al", "Cu"), runs: int = 20, steps: int = 100,
    min_atoms: int = 15, max_atoms: int = 75, unstable: bool = False, unstable_runs: int = 5,
    scales: str | Sequence[float] = DEFAULT_SCALES, seed: int = 0,
    split: str | Sequence[float] = (0.6, 0.2, 0.2), split_by: str = "group",
    lattice: str = "minimize", flush_every: int = 200, overwrite: bool = False,
    progress: bool | Progress = True, workers: int = 1, scheduler: str | None = None,
) -> DatagenResult:  # fmt: skip
    """Write the Stable (or, with ``unstable``, the Unstable) Crystal-Growth dataset (module
    docstring) to ``out``, continuing an interrupted run with the same settings.

    Args:
        out: output dataset (.h5).
        elements: fcc metals with EMT parameters.
        runs: growth runs per element.
        steps: atoms added per run (clusters of 15 … 14 + steps atoms).
        min_atoms, max_atoms: cluster sizes kept.
        unstable: write the scaled clusters of the first ``unstable_runs`` runs per element.
        unstable_runs: runs per element of the unstable set.
        scales: scaling grid of the unstable set (``"lo:hi:n"`` or a comma list).
        seed: seed of the growth runs and of the split.
        split: train/val/test fractions.
        split_by: ``"group"`` (base cluster) or ``"run"`` (growth run).
        lattice: s = 1 lattice constant, ``"minimize"`` (EMT minimum) or ``"fixed"``.
        flush_every: base clusters per chunk (the unit of work, distribution and resumption).
        overwrite: start again even if ``out`` holds a run.
        progress: a progress bar on stderr (True), none (False) or a ``progress(done, total)``
            callback over the base clusters.
        workers: local Dask worker processes for the chunks (1: this process).
        scheduler: address (tcp://HOST:8786) or scheduler file of a running Dask cluster to
            use instead. The data do not depend on where the chunks run.

    Returns:
        summary: ``out``, ``n_samples``, ``n_bases``, ``n_new``, ``n_failures``, ``complete``,
        ``lattice_constants`` (Å), ``seconds_per_cluster`` (EMT, this call), ``wall_time_s``.
    """
    from deepatoms.simulate.reference import make_calculator

    t0 = time.perf_counter()
    els = check_metals(elements)
    _check(runs, steps, min_atoms, max_atoms, unstable, unstable_runs, split_by)
    grid = parse_scales(scales) if unstable else np.array([1.0])
    fractions = parse_fractions(split)
    a0 = lattice_constants(els, lattice)
    _, labeller = make_calculator("emt")
    bases = base_clusters(els, runs, steps, min_atoms, max_atoms, seed)
    if unstable:
        bases = [b for b in bases if b["run"] < unstable_runs]
    labels = _split_by(bases, split_by, fractions, seed)
    settings = {
        "elements": els, "runs": runs, "steps": steps, "min_atoms": min_atoms,
        "max_atoms": max_atoms, "unstable": unstable,
        "unstable_runs": unstable_runs if unstable else None, "scales": grid.tolist(),
        "seed": seed, "split": list(fractions), "split_by": split_by, "lattice": lattice,
    }  # fmt: skip
    kind = "Unstable" if unstable else "Stable"
    writer = GeneratedDataset(
        out, source=SOURCE, settings=settings, n_bases=len(bases), units=UNITS,
        extra_metadata={"bond_types": ["metallic"], "bond_rule": "rdkit"},
        provenance=_provenance(kind, labeller, a0, split_by), flush_every=flush_every,
        overwrite=overwrite,
    )  # fmt: skip
    for base in bases:
        base["split"] = str(labels[base["group"]])
    with (
        on_cluster(workers, scheduler, bool(progress)) as cluster,
        reporting(progress, "clusters") as report,
    ):
        writer.run(label_bases, bases, (_label_cluster, grid, a0), cluster=cluster,
                   progress=report)  # fmt: skip
    n_points, emt_time = writer.stats.get("points", 0), writer.stats.get("emt_s", 0.0)
    return writer.summary(
        t0, kind=kind.lower(), n_bases=len(bases),
        lattice_constants={el: v["a"] for el, v in a0.items()},
        seconds_per_cluster=emt_time / n_points if n_points else None,
    )  # fmt: skip


def _split_by(bases: list[dict], split_by: str, fractions: Sequence[float], seed: int) -> dict:
    """Split label of each base cluster's group: by group, or by growth run."""
    if split_by == "group":
        groups = [b["group"] for b in bases]
        return dict(zip(groups, split_labels(len(groups), fractions, seed).tolist(), strict=True))
    run_ids = sorted({(b["element"], b["run"]) for b in bases})
    by_run = dict(zip(run_ids, split_labels(len(run_ids), fractions, seed).tolist(), strict=True))
    return {b["group"]: by_run[b["element"], b["run"]] for b in bases}


def _provenance(kind: str, labeller: dict, a0: dict, split_by: str) -> dict[str, Any]:
    return {
        "dataset": f"{kind} Crystal Growth (Morgan et al. 2020): fcc clusters grown from the "
        "14-atom cube, one atom per step on a random empty site with >= 1 nearest neighbour",
        "labeller": labeller,
        "lattice_constants": a0,
        "growth_rng": "numpy default_rng([seed, Z, run]); site drawn from the sorted list",
        "scaling": "r_i(s) = c + s (r_i - c), c = centroid (deepatoms.data.scaling)",
        "bonds": "metallic nearest-neighbour shell of the s = 1 cluster (r_nn = 1.2 a/sqrt 2),"
        " kept for every s",
        "split": f"by {split_by}, seeded permutation (deepatoms.data.splits.random_split)",
        "versions": versions("ase", "numpy", "scipy"),
    }


def _label_cluster(
    base: dict, grid: np.ndarray, a0: dict
) -> tuple[PackedSystems | None, list[dict], dict[str, float]]:
    """The scaled copies of one base cluster labelled with EMT (None if every point failed),
    the failed points, and the number of points and EMT seconds."""
    from ase.calculators.emt import EMT

    t1 = time.perf_counter()
    el, group = base["element"], base["group"]
    stable = Atoms(el * len(base["sites"]), positions=base["sites"] * (a0[el]["a"] / 2))
    calc = EMT()
    samples, rows, failures = [], [], []
    for s in grid:
        atoms = scale_atoms(stable, float(s))
        res = emt_label(atoms, calc)
        if isinstance(res, str):
            failures.append({"group": group, "scale": float(s), "reason": res})
            continue
        samples.append(atoms)
        rows.append((float(s), *res))
    stats = {"points": len(grid), "emt_s": time.perf_counter() - t1}
    if not samples:
        return None, failures, stats
    props = {
        "energy": np.array([r[1] for r in rows], dtype=np.float64),
        "scale": np.array([r[0] for r in rows], dtype=np.float64),
        "group": group, "run": base["run"], "element": el, "split": base["split"],
    }  # fmt: skip
    pack = labelled_pack(samples, props, [r[2] for r in rows], perceive_bonds(stable), ["metallic"])
    return pack, failures, stats
