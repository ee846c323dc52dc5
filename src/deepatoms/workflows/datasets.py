"""Build, import and inspect datasets: the functions behind ``deepatoms data ...``.

Every function writes its output atomically, refuses to replace an existing file unless
``overwrite``, and returns a :class:`DatasetResult` (``out``, ``n_systems`` and what else it
knows). Units inside are eV and Å; each dataset records its units in its metadata.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deepatoms.core.errors import DeepatomsError
from deepatoms.core.files import check_new_file
from deepatoms.core.progress import ProgressBar
from deepatoms.core.results import Result
from deepatoms.data.dataset import append_dataset, dataset_info, format_info, write_dataset

__all__ = [
    "DatasetResult",
    "build_polymer_strings",
    "build_qm9",
    "build_qm9_generative",
    "build_qm9_smiles",
    "dataset_summary",
    "format_info",
    "import_md17",
    "import_structures",
]

_H5 = (".h5", ".hdf5")


class DatasetResult(Result):
    """A written dataset: ``out`` (its path), ``n_systems`` and, depending on the source,
    ``n_atoms``, ``properties``, ``units``, ``info`` (the :func:`dataset_summary`), ``notes``
    (things the user should know, e.g. labels that were dropped)."""


def build_qm9(
    out: str | os.PathLike,
    limit: int | None = None,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = True,
) -> DatasetResult:
    """QM9 (all 130,831 molecules, or a seeded random subset of ``limit``) from the installed
    qm9pack data: 12 targets in eV-based units, atomization energies and SMILES."""
    from deepatoms.data.sources.qm9 import load_qm9

    check_new_file(out, overwrite)
    data, meta = load_qm9(limit=limit, seed=seed, progress=progress)
    write_dataset(out, data, meta)
    return DatasetResult(out=str(out), n_systems=len(data), n_atoms=int(data.offsets[-1]),
                         info=dataset_info(out))  # fmt: skip


def import_structures(
    inputs: Sequence[str | os.PathLike], out: str | os.PathLike, append: bool = False,
    overwrite: bool = False, progress: bool = True, *, energy_key: str | None = None,
    forces_key: str | None = None, stress_key: str | None = None, energy_unit: str = "eV",
    length_unit: str = "Å", skip_bad_rows: bool = False,
) -> DatasetResult:  # fmt: skip
    """Structures and their labels (energies, forces, stress, info keys) from ASE-readable
    files into one dataset; ``append`` adds them to an existing dataset.

    ``energy_key``/``forces_key``/``stress_key`` name the labels to use (e.g. ``REF_energy``);
    they are stored as ``energy`` (eV), ``forces`` (eV/Å) and ``stress`` (eV/Å³), converted
    from ``energy_unit`` (eV, meV, Ha, Ry, kcal/mol, kJ/mol) and ``length_unit`` (Å, bohr, nm),
    which apply to positions and cells too. Structures that cannot be used
    (:mod:`deepatoms.data.validate`: no atoms, unknown elements, non-finite values, collapsed
    cells, coincident atoms, non-finite labels) are refused, or left out and listed with
    ``skip_bad_rows``."""
    from deepatoms.data.labels import declare_labels
    from deepatoms.data.sources.ase_io import read_structures
    from deepatoms.data.validate import packed_problems, raise_problems

    out = Path(out)
    if not inputs:
        raise DeepatomsError("give at least one input file and the output .h5 file (--out)")
    if out.suffix not in _H5:
        raise DeepatomsError(f"the output dataset must end in .h5, got {out}")
    if append and overwrite:
        raise DeepatomsError("--append and --overwrite exclude each other")
    if any(Path(p).resolve() == out.resolve() for p in inputs):
        raise DeepatomsError(f"--out {out} is one of the input files; choose another output name")
    if not append:
        check_new_file(out, overwrite, " or --append to add to it")
    elif not out.exists():
        raise DeepatomsError(f"--append: {out} does not exist yet; import without --append first")
    data, meta = read_structures(list(inputs), progress=progress)
    data, meta, notes = declare_labels(
        data, meta, energy_key=energy_key, forces_key=forces_key, stress_key=stress_key,
        energy_unit=energy_unit, length_unit=length_unit,
    )  # fmt: skip
    sources = [str(s) for s in data.system_props["source"]]
    with ProgressBar("checking structures", quiet=not progress) as bar:
        problems = packed_problems(data, progress=bar)
    skipped = []
    if problems and not skip_bad_rows:
        raise_problems(problems, "import", sources,
                       "; pass --skip-bad-rows to import the other structures and list these")  # fmt: skip
    if problems:
        skipped = [{"source": sources[k], "reason": why} for k, why in sorted(problems.items())]
        keep = np.array([k for k in range(len(data)) if k not in problems], dtype=np.int64)
        if len(keep) == 0:
            raise_problems(problems, "import: no usable structure left", sources)
        data = data.subset(keep)
        meta["provenance"]["skipped"] = skipped
        notes += [f"skipped {s['source']}: {s['reason']}" for s in skipped]
    if append:
        append_dataset(out, data)
    else:
        write_dataset(out, data, meta)
    notes += [f"dropped property {name!r}: {why}"
              for name, why in (meta.get("dropped_properties") or {}).items()]  # fmt: skip
    untagged = [k for k in data.property_names if k != "source" and k not in meta["units"]]
    if untagged:
        notes.append(
            f"no unit known for {', '.join(untagged)}: to train on an energy or forces among "
            "them, import again with --energy-key/--forces-key and --energy-unit"
        )
    return DatasetResult(out=str(out), n_systems=len(data), properties=data.property_names,
                         units=meta["units"], appended=append, skipped=skipped,
                         notes=notes)  # fmt: skip


def import_md17(
    npz: str | os.PathLike,
    out: str | os.PathLike,
    limit: int | None = None,
    seed: int | None = None,
    units: str = "kcal/mol",
    overwrite: bool = False,
) -> DatasetResult:
    """An MD17/rMD17 ``.npz`` trajectory; energies (``units``: kcal/mol or eV) → eV, forces →
    eV/Å. ``limit``: keep N frames (the first N, or a random subset with ``seed``)."""
    from deepatoms.data.sources.md17 import load_md17

    check_new_file(out, overwrite)
    data, meta = load_md17(npz, limit=limit, seed=seed, units=units)
    write_dataset(out, data, meta)
    n_atoms = int(data.n_atoms[0]) if len(data) else 0
    return DatasetResult(out=str(out), n_systems=len(data), n_atoms=n_atoms,
                         properties=data.property_names, units=meta["units"])  # fmt: skip


def dataset_summary(path: str | os.PathLike) -> Result:
    """Sizes, elements, properties with units and statistics, and provenance of a dataset."""
    return Result(dataset_info(path))


def build_qm9_generative(
    out: str | os.PathLike, *, limit: int | None = None, first: int | None = None,
    max_gap: float | None = None, where: str | None = None, no_small_rings: bool = False,
    n_train: int | float | None = None, n_val: int | float | None = None,
    n_test: int | float | None = None, split_seed: int = 0, seed: int = 0, overwrite: bool = False,
    progress: bool = True,
) -> DatasetResult:  # fmt: skip
    """QM9 prepared for G-SchNet: centred on the centre of mass, atoms sorted by distance to it,
    bonds perceived, invalid molecules dropped and counted, canonical SMILES, and a seeded
    train/val/test ``split`` column (``deepatoms.generate.qm9_prep``)."""
    from deepatoms.generate.qm9_prep import prepare_qm9_generative

    check_new_file(out, overwrite)
    t0 = time.perf_counter()
    with ProgressBar("QM9: perceiving bonds", quiet=not progress) as bar:
        data, meta = prepare_qm9_generative(
            limit=limit, first=first, max_gap=max_gap, where=where,
            no_small_rings=no_small_rings, n_train=n_train, n_val=n_val, n_test=n_test,
            split_seed=split_seed, seed=seed, progress=bar,
        )  # fmt: skip
    write_dataset(out, data, meta)
    dropped = {k: v for k, v in meta["dropped"].items() if k != "qm9_index"}
    return DatasetResult(
        out=str(out), n_systems=len(data), n_atoms=int(data.offsets[-1]),
        seconds=time.perf_counter() - t0, dropped=dropped, filters=meta["filters"],
        split=meta["split"], timing=meta["timing"],
    )  # fmt: skip


def build_qm9_smiles(
    out: str | os.PathLike,
    limit: int | None = None,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = True,
) -> DatasetResult:
    """QM9 SMILES with HOMO, LUMO and gap (eV) and a seeded 80/10/10 split (a CSV for the
    grammar VAE: columns string, homo, lumo, gap, qm9_index, split)."""
    from deepatoms.design.qm9_smiles import (
        QM9_DESIGN_WINDOWS,
        qm9_smiles_table,
        window_fractions,
        write_table_csv,
    )

    check_new_file(out, overwrite)
    table = qm9_smiles_table(limit=limit, seed=seed, progress=progress)
    n = write_table_csv(out, table)
    sizes = {s: int((table["split"] == s).sum()) for s in ("train", "val", "test")}
    return DatasetResult(out=str(out), n_systems=n, split=sizes,
                         window_fractions=window_fractions(table, QM9_DESIGN_WINDOWS))  # fmt: skip


def build_polymer_strings(
    out: str | os.PathLike,
    n: int = 4000,
    seed: int = 0,
    max_groups: int = 3,
    synthetic_labels: bool = False,
    overwrite: bool = False,
) -> DatasetResult:
    """Generated donor–acceptor polymer strings (Jørgensen et al. 2018, Paper D, Fig. 2 and
    Table I) with a seeded 80/10/10 split; ``synthetic_labels`` adds SYNTHETIC homo, lumo, gap
    and opt columns (eV) to exercise the regressors and the design loop (Paper D's DFT data is
    not available)."""
    from deepatoms.data.splits import random_split
    from deepatoms.design.qm9_smiles import write_table_csv
    from deepatoms.grammar.polymer import generate_polymer_strings, synthetic_polymer_labels

    check_new_file(out, overwrite)
    strings = generate_polymer_strings(n, seed=seed, max_groups=max_groups)
    columns: dict[str, Any] = {"string": strings}
    if synthetic_labels:
        columns.update(synthetic_polymer_labels(strings, seed=seed))
    split = np.empty(len(strings), dtype="<U5")
    for name, idx in random_split(len(strings), 0.8, 0.1, None, seed=seed).items():
        split[idx] = name
    columns["split"] = split
    rows = write_table_csv(out, columns)
    return DatasetResult(out=str(out), n_systems=rows, unique=len(set(strings)), seed=seed,
                         synthetic_labels=synthetic_labels)  # fmt: skip
