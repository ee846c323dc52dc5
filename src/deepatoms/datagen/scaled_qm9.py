"""Augmented QM9: scaled QM9 molecules with GFN2-xTB labels (docs/vimpnn.md §8).

The molecules are the first N of ``qm9pack`` in QM9-index order (after skipping ``first``); the
stable (s = 1) geometry is the QM9 B3LYP/6-31G(2df,p) geometry. Each molecule is scaled about
its geometric centroid by every s of the grid (:func:`deepatoms.datagen.scaling.scale_atoms`;
Default linspace(0.9, 1.5, 10)) and labelled by a GFN2-xTB single point (``tblite``, one OpenMP
thread, a fresh calculator per point so every label is independent of the order of work):
energy E (Hartree → eV) and forces (eV/Å). An SCF that does not converge is retried at higher
electronic temperature, T_el = 300 K → 1,000 K → 5,000 K; the temperature used is stored per
sample (``electronic_temperature``, K); a point still failing is skipped and listed in
``metadata["failures"]``.

Bonds (:func:`deepatoms.data.bonds.perceive_bonds`, rule ``rdkit`` by Default, with the QM9
SMILES) are perceived once on the s = 1 geometry and stored for every scaled copy; the
vocabulary is the rule's full covalent set (``single``, ``double``, ``triple`` for ``rdkit``), so
all files made with one rule share channels. Split by molecule (seeded, Default 80/10/10).

Samples (system props): ``energy`` (eV), ``scale``, ``group`` (position of the molecule in the
set, 0 … N−1), ``qm9_index``, ``smiles``, ``split``, ``electronic_temperature`` (K); atom prop
``forces`` (eV/Å).
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from deepatoms.core.progress import Progress, reporting
from deepatoms.data.bonds import RULE_TYPES, perceive_bonds
from deepatoms.data.packed import PackedSystems
from deepatoms.data.scaling import DEFAULT_SCALES, parse_scales, scale_atoms
from deepatoms.data.sources.qm9 import (
    QM9_FILES,
    QM9_N_MOLECULES,
    parse_lists,
    qm9_data_dir,
    qm9pack_version,
)
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
    "SOURCE",
    "UNITS",
    "XTB_TEMPERATURES",
    "XtbFailed",
    "generate_scaled_qm9",
    "read_qm9_molecules",
    "xtb_label",
]

SOURCE = "deepatoms datagen scaled"
#: Electronic temperatures (K) tried in turn until the SCF converges.
XTB_TEMPERATURES = (300.0, 1000.0, 5000.0)
UNITS = {"energy": "eV", "forces": "eV/Å", "scale": "", "electronic_temperature": "K"}
_SYMBOL_TO_Z = {"H": 1, "C": 6, "N": 7, "O": 8, "F": 9}
_FIELDS = ("Index", "SMILES", "Elements", "XYZ_Ang")


class XtbFailed(RuntimeError):
    """The SCF did not converge at any electronic temperature."""


def read_qm9_molecules(first: int, n: int) -> Iterator[tuple[int, str, Atoms]]:
    """Yield ``(qm9_index, smiles, atoms)`` of molecules ``first … first+n−1`` of ``qm9pack`` in
    QM9-index order (B3LYP geometry, Å), streaming the CSV files (only these rows are parsed)."""
    folder = qm9_data_dir()
    position, last_index = 0, 0
    for name in QM9_FILES:
        with open(folder / name, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = next(reader)
            missing = [c for c in _FIELDS if c not in header]
            if missing:
                raise ValueError(f"QM9 file '{folder / name}' lacks column(s) {missing}")
            col = {c: header.index(c) for c in _FIELDS}
            for row in reader:
                index = int(row[col["Index"]])
                if index <= last_index:
                    raise ValueError(
                        f"QM9 file '{folder / name}' is not in QM9-index order ({index} after "
                        f"{last_index}); reinstall qm9pack"
                    )
                last_index = index
                if position >= first:
                    symbols = parse_lists([row[col["Elements"]]])
                    xyz = np.array(parse_lists([row[col["XYZ_Ang"]]]), dtype=np.float64)
                    atoms = Atoms(
                        numbers=[_SYMBOL_TO_Z[s] for s in symbols], positions=xyz.reshape(-1, 3)
                    )
                    yield index, row[col["SMILES"]], atoms
                position += 1
                if position >= first + n:
                    return


def xtb_label(
    atoms: Atoms,
    temperatures: Sequence[float] = XTB_TEMPERATURES,
    method: str = "GFN2-xTB",
    make: Callable[..., Any] | None = None,
) -> tuple[float, np.ndarray, float]:
    """GFN2-xTB single point of ``atoms`` with retries at rising electronic temperature.

    Returns ``(energy eV, forces [N, 3] eV/Å, electronic temperature K)`` of the first
    temperature whose SCF converges; raises :class:`XtbFailed` if none does. ``make`` builds the
    calculator (Default :func:`deepatoms.datagen.calculators.make_calculator`).
    """
    from deepatoms.simulate.reference import make_calculator

    make = make or make_calculator
    problems = []
    for t_el in temperatures:
        calc, _ = make("xtb", method=method, electronic_temperature=float(t_el), threads=1)
        trial = atoms.copy()
        trial.calc = calc
        try:
            energy = float(trial.get_potential_energy())
            forces = np.asarray(trial.get_forces(), dtype=np.float64)
        except Exception as exc:  # tblite raises ase CalculationFailed on SCF failure
            problems.append(f"{t_el:g} K: {str(exc).strip()[:120]}")
            continue
        if np.isfinite(energy) and np.all(np.isfinite(forces)):
            return energy, forces, float(t_el)
        problems.append(f"{t_el:g} K: non-finite energy or forces")
    raise XtbFailed("xTB SCF failed at every electronic temperature (" + "; ".join(problems) + ")")


def _check(molecules: int, first: int, calculator: str) -> None:
    check_count(molecules, "--molecules")
    check_count(first, "--first", minimum=0)
    if first + molecules > QM9_N_MOLECULES:
        raise ValueError(
            f"--first {first} + --molecules {molecules} exceeds the {QM9_N_MOLECULES:,} molecules "
            "of qm9pack; ask for fewer"
        )
    if calculator.lower() != "xtb":
        raise ValueError(
            f"--calculator {calculator!r}: the scaled-QM9 labels come from GFN2-xTB; use xtb"
        )


def generate_scaled_qm9(
    out: str | Path, molecules: int, *, first: int = 0,
    scales: str | Sequence[float] = DEFAULT_SCALES, seed: int = 0, bond_rule: str = "rdkit",
    calculator: str = "xtb", split: str | Sequence[float] = (0.8, 0.1, 0.1),
    temperatures: Sequence[float] = XTB_TEMPERATURES, flush_every: int = 50,
    overwrite: bool = False, progress: bool | Progress = True, workers: int = 1, scheduler: str | None = None,
) -> DatagenResult:  # fmt: skip
    """Write the Augmented-QM9 dataset (module docstring) to ``out``, continuing an interrupted
    run with the same settings.

    Args:
        out: output dataset (.h5).
        molecules: number of molecules N (≥ 1).
        first: molecules of qm9pack to skip (in QM9-index order).
        scales: scaling grid (``"lo:hi:n"``, a comma list or numbers; Default 0.9:1.5:10).
        seed: seed of the split by molecule.
        bond_rule: ``"rdkit"`` or ``"electronegativity"`` (:mod:`deepatoms.data.bonds`).
        calculator: ``"xtb"`` (GFN2-xTB through tblite).
        split: train/val/test fractions of the molecules.
        temperatures: electronic temperatures (K) tried in turn.
        flush_every: molecules per chunk (the unit of work, distribution and resumption).
        overwrite: start again even if ``out`` holds a run.
        progress: a progress bar on stderr (True), none (False) or a ``progress(done, total)``
            callback over the molecules.
        workers: local Dask worker processes for the chunks (1: this process).
        scheduler: address (tcp://HOST:8786) or scheduler file of a running Dask cluster to
            use instead. The data do not depend on where the chunks run.

    Returns:
        summary: ``out``, ``n_samples``, ``n_molecules``, ``n_new`` (molecules done by this
        call), ``n_failures``, ``complete``, ``bond_types``, ``seconds_per_point`` (xTB, this
        call, retries included), ``retried_points``, ``wall_time_s``.
    """
    from deepatoms.simulate.reference import make_calculator

    t0 = time.perf_counter()
    grid = parse_scales(scales)
    fractions = parse_fractions(split)
    _check(molecules, first, calculator)
    if bond_rule not in RULE_TYPES:
        raise ValueError(f"unknown bond rule {bond_rule!r}; choose one of {list(RULE_TYPES)}")
    temps = [float(t) for t in temperatures]
    if not temps or min(temps) <= 0:
        raise ValueError(f"electronic temperatures must be positive (K), got {temperatures!r}")
    _, labeller = make_calculator("xtb", electronic_temperature=temps[0], threads=1)
    vocab = list(RULE_TYPES[bond_rule])
    settings = {
        "molecules": molecules, "first": first, "scales": grid.tolist(), "seed": seed,
        "bond_rule": bond_rule, "calculator": "xtb", "method": labeller["method"],
        "split": list(fractions), "electronic_temperatures_K": temps,
    }  # fmt: skip
    writer = GeneratedDataset(
        out, source=SOURCE, settings=settings, n_bases=molecules, units=UNITS,
        extra_metadata={"bond_types": vocab, "bond_rule": bond_rule},
        provenance=_provenance(labeller, temps, bond_rule), flush_every=flush_every,
        overwrite=overwrite,
    )  # fmt: skip
    labels = split_labels(molecules, fractions, seed)
    bases = [
        {"group": group, "qm9_index": qm9_index, "smiles": smiles, "split": str(labels[group]),
         "atoms": atoms}
        for group, (qm9_index, smiles, atoms) in enumerate(read_qm9_molecules(first, molecules))
    ]  # fmt: skip
    with (
        on_cluster(workers, scheduler, bool(progress)) as cluster,
        reporting(progress, "molecules") as report,
    ):
        writer.run(label_bases, bases, (_label_molecule, grid, temps, labeller["method"],
                                        bond_rule, vocab), cluster=cluster, progress=report)  # fmt: skip
    stats = {"points": 0, "xtb_s": 0.0, "retried": 0, **writer.stats}
    if writer.n_samples == 0:
        raise ValueError(
            f"no samples: every point failed ({len(writer.failures)} failures, e.g. "
            f"{writer.failures[0]['reason'] if writer.failures else 'none'})"
        )
    return writer.summary(
        t0, n_molecules=molecules, bond_types=vocab, retried_points=stats["retried"],
        seconds_per_point=stats["xtb_s"] / stats["points"] if stats["points"] else None,
    )  # fmt: skip


def _provenance(labeller: dict, temps: list[float], bond_rule: str) -> dict[str, Any]:
    return {
        "dataset": "Augmented QM9 (Morgan et al. 2020): QM9 molecules (qm9pack, "
        "B3LYP/6-31G(2df,p) geometries = s 1) scaled about their centroid",
        "qm9pack_version": qm9pack_version(),
        "labeller": {
            **labeller,
            "retry_electronic_temperatures_K": temps,
            "fresh_calculator_per_point": True,
        },
        "scaling": "r_i(s) = c + s (r_i - c), c = centroid (deepatoms.data.scaling)",
        "bonds": f"deepatoms.data.bonds.perceive_bonds rule={bond_rule!r} with the QM9 "
        "SMILES at s = 1, kept for every s",
        "split": "by molecule, seeded permutation (deepatoms.data.splits.random_split)",
        "versions": versions("ase", "numpy", "tblite", "rdkit", "qm9pack"),
    }


def _label_molecule(
    base: dict, grid: np.ndarray, temps: list[float], method: str, bond_rule: str,
    vocab: list[str],
) -> tuple[PackedSystems | None, list[dict[str, Any]], dict[str, float]]:  # fmt: skip
    """The scaled copies of one molecule ``base`` labelled with xTB (None if every point
    failed), the failed points, and counts of points, xTB seconds and retried points."""
    atoms = base["atoms"]
    stats = {"points": 0, "xtb_s": 0.0, "retried": 0}
    where = {"group": base["group"], "qm9_index": base["qm9_index"]}
    try:
        bonds = perceive_bonds(atoms, bond_rule, smiles=base["smiles"])
    except ValueError as exc:
        return None, [{**where, "scale": None, "reason": f"bond perception: {exc}"}], stats
    samples, rows, failures = [], [], []
    for s in grid:
        scaled = scale_atoms(atoms, float(s))
        t1 = time.perf_counter()
        try:
            energy, forces, t_el = xtb_label(scaled, temps, method)
        except XtbFailed as exc:
            failures.append({**where, "scale": float(s), "reason": str(exc)})
            continue
        finally:
            stats["xtb_s"] += time.perf_counter() - t1
            stats["points"] += 1
        stats["retried"] += t_el != temps[0]
        samples.append(scaled)
        rows.append((energy, float(s), forces, t_el))
    if not samples:
        return None, failures, stats
    props = {
        "energy": np.array([r[0] for r in rows], dtype=np.float64),
        "scale": np.array([r[1] for r in rows], dtype=np.float64),
        "group": base["group"], "qm9_index": base["qm9_index"], "smiles": base["smiles"],
        "split": base["split"], "electronic_temperature": np.array([r[3] for r in rows]),
    }  # fmt: skip
    return labelled_pack(samples, props, [r[2] for r in rows], bonds, vocab), failures, stats
