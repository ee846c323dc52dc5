"""Structures with labels from any file ASE can read (extxyz, xyz, ASE db, CIF, POSCAR, ...).

Each file is read with ``ase.io.iread(path, index=":")``; ASE databases (``.db``) are read with
``ase.db`` so that ``key_value_pairs`` and ``data`` come along. Collected properties:

- per system: numeric (or string) entries of ``atoms.info`` and of db ``key_value_pairs``;
  numeric entries of db ``data`` (see below); from an attached calculator (e.g. the
  ``SinglePointCalculator`` that extxyz and ASE db attach) ``energy``/``free_energy`` (eV),
  ``stress`` (stored as Voigt ``[B,6]`` in ASE order xx, yy, zz, yz, xz, xy, eV/Å³), ``dipole``
  (e·Å) and ``magmom`` (μB);
- per atom: ``forces`` (eV/Å), ``charges`` (e), ``magmoms`` (μB), ``energies`` (eV) from the
  calculator and numeric arrays of ``atoms.arrays`` other than ``numbers`` and ``positions``;
- ``source``: per-system string ``"<file>:<index in file>"``.

Only properties present, with one consistent shape and kind, on *all* structures are kept; the
others are listed with the reason in ``metadata["dropped_properties"]``. Arrays in db ``data`` are
per atom when their first axis equals the number of atoms of every structure, else per system.
ASE files already use eV and Å, so values are stored as read.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.stress import full_3x3_to_voigt_6_stress

from deepatoms.core.files import check_input_file
from deepatoms.data.packed import PackedSystems

__all__ = ["ASE_UNITS", "read_structures"]

#: Units of the calculator properties (ASE conventions).
ASE_UNITS: dict[str, str] = {
    "energy": "eV",
    "free_energy": "eV",
    "forces": "eV/Å",
    "stress": "eV/Å^3",
    "dipole": "e Å",
    "magmom": "μB",
    "charges": "e",
    "magmoms": "μB",
    "energies": "eV",
}
_CALC_SYSTEM = ("energy", "free_energy", "stress", "dipole", "magmom")
_CALC_ATOM = ("forces", "charges", "magmoms", "energies")
_RESERVED = {"source", "numbers", "positions"}


@dataclass
class _Collector:
    """Values of one candidate property across structures."""

    level: str  # "system" | "atom" | "data" (db data: level decided at the end)
    values: list[Any] = field(default_factory=list)
    structures: list[int] = field(default_factory=list)
    problem: str | None = None

    def add(self, k: int, value: Any) -> None:
        self.values.append(value)
        self.structures.append(k)


def _progress(enabled: bool) -> Any:
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=not enabled,
    )


def _scalar_or_array(value: Any) -> tuple[str, Any] | None:
    """Classify an info/kvp value: ("str", s), ("num", ndarray) or None (unsupported)."""
    if isinstance(value, str):
        return "str", value
    if isinstance(value, (bool, int, float, np.bool_, np.integer, np.floating)):
        return "num", np.asarray(value)
    if isinstance(value, (list, tuple, np.ndarray)):
        arr = np.asarray(value)
        if arr.dtype.kind in "biuf":
            return "num", arr
    return None


def _iter_file(path: Path) -> Iterator[tuple[Atoms, dict[str, Any], dict[str, Any]]]:
    """(atoms, key_value_pairs, data) for every structure of one file."""
    if path.suffix.lower() == ".db":
        import ase.db

        with ase.db.connect(str(path), type="db") as con:
            for row in con.select():
                yield (
                    row.toatoms(),
                    dict(row.key_value_pairs),
                    dict(getattr(row, "data", None) or {}),
                )
    else:
        import ase.io

        for atoms in ase.io.iread(str(path), index=":"):
            yield atoms, {}, {}


def _stack(values: list[Any], name: str) -> tuple[np.ndarray | None, str | None]:
    """Stack per-structure values into one array, or explain why not."""
    kinds = {type(v) is str for v in values}
    if len(kinds) > 1:
        return None, "mixed strings and numbers"
    if kinds == {True}:
        return np.asarray(values, dtype=str), None
    shapes = {np.shape(v) for v in values}
    if len(shapes) > 1:
        return None, f"shape differs between structures: {sorted(shapes)}"
    return np.stack([np.asarray(v) for v in values]), None


def read_structures(
    paths: Sequence[str | os.PathLike] | str | os.PathLike, progress: bool = True
) -> tuple[PackedSystems, dict[str, Any]]:
    """Read all structures of ``paths`` with ASE into packed systems plus metadata.

    Positions and cells in Å; calculator properties in ASE units (eV, eV/Å, eV/Å³, see
    :data:`ASE_UNITS`). Raises ``FileNotFoundError`` for a missing file and ``ValueError`` naming
    the file (and the structure, where known) for one that ASE cannot read or that holds no
    structures. The metadata holds ``units`` (for the calculator properties kept), ``source``,
    ``provenance`` (files, structures per file, ASE version) and ``dropped_properties``
    ({name: reason}).
    """
    import ase

    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files = [Path(p) for p in paths]
    if not files:
        raise ValueError("no input files given")
    for p in files:
        check_input_file(p, "structure file")

    atoms_list: list[Atoms] = []
    sources: list[str] = []
    per_file: dict[str, int] = {}
    cols: dict[str, _Collector] = {}
    dropped: dict[str, str] = {}

    def collect(name: str, level: str, k: int, value: Any) -> None:
        c = cols.setdefault(name, _Collector(level))
        if c.level != level:
            c.problem = c.problem or f"appears both as a {c.level} and a {level} property"
            return
        c.add(k, value)

    with _progress(progress) as bar:
        task = bar.add_task("reading structures", total=None)
        for p in files:
            start = len(atoms_list)
            try:
                for i, (atoms, kvp, data) in enumerate(_iter_file(p)):
                    k = len(atoms_list)
                    atoms_list.append(atoms)
                    sources.append(f"{p}:{i}")
                    _collect_one(atoms, kvp, data, k, collect, dropped)
                    if k % 200 == 0:
                        bar.update(task, description=f"reading {p.name}: {i + 1} structures")
            except Exception as err:
                n_ok = len(atoms_list) - start
                where = f" (after {n_ok} structures)" if n_ok else ""
                raise ValueError(
                    f"could not read structures from '{p}'{where} with ASE: "
                    f"{type(err).__name__}: {err}. Check the file format (ASE guesses it from "
                    "the extension and contents)."
                ) from err
            per_file[str(p)] = len(atoms_list) - start
            if per_file[str(p)] == 0:
                raise ValueError(f"'{p}' holds no structures")
            bar.update(task, description=f"read {len(atoms_list)} structures")

    n = len(atoms_list)
    n_atoms = np.array([len(a) for a in atoms_list], dtype=np.int64)
    system_props: dict[str, np.ndarray] = {}
    atom_props: dict[str, np.ndarray] = {}
    for name, c in cols.items():
        if c.problem:
            dropped[name] = c.problem
            continue
        if len(set(c.structures)) != n:
            dropped[name] = f"present on {len(set(c.structures))} of {n} structures"
            continue
        level = c.level
        if level == "data":
            lead = [np.shape(v)[0] if np.ndim(v) else -1 for v in c.values]
            level = "atom" if np.array_equal(lead, n_atoms) else "system"
        if level == "atom":
            trailing = {np.shape(v)[1:] for v in c.values}
            bad_len = [
                sources[k]
                for k, v in zip(c.structures, c.values, strict=True)
                if np.ndim(v) == 0 or len(v) != n_atoms[k]
            ]
            if bad_len:
                dropped[name] = f"per-atom array with the wrong length in {bad_len[0]}"
            elif len(trailing) > 1:
                dropped[name] = f"per-atom shape differs between structures: {sorted(trailing)}"
            else:
                atom_props[name] = (
                    np.concatenate([np.asarray(v) for v in c.values])
                    if n_atoms.sum()
                    else np.zeros((0, *trailing.pop()))
                )
            continue
        arr, why = _stack(c.values, name)
        if arr is None:
            dropped[name] = str(why)
        else:
            system_props[name] = arr
    system_props["source"] = np.asarray(sources, dtype=str)

    packed = PackedSystems.from_atoms(atoms_list)
    data = PackedSystems(
        packed.numbers,
        packed.positions,
        packed.offsets,
        packed.cell,
        packed.pbc,
        system_props,
        atom_props,
    )
    # a name dropped somewhere (e.g. a duplicate array) but kept from another origin is not lost
    dropped = {k: v for k, v in dropped.items() if k not in system_props and k not in atom_props}
    units = {k: u for k, u in ASE_UNITS.items() if k in system_props or k in atom_props}
    metadata: dict[str, Any] = {
        "units": units,
        "source": "ase.io: " + ", ".join(str(p) for p in files),
        "provenance": {
            "reader": "deepatoms.data.sources.ase_io.read_structures",
            "ase_version": ase.__version__,
            "files": [str(p.resolve()) for p in files],
            "structures_per_file": per_file,
        },
        "dropped_properties": dict(sorted(dropped.items())),
    }
    return data, metadata


def _collect_one(
    atoms: Atoms,
    kvp: dict[str, Any],
    data: dict[str, Any],
    k: int,
    collect: Any,
    dropped: dict[str, str],
) -> None:
    """Add the properties of structure ``k`` to the collectors."""
    results = dict(getattr(atoms.calc, "results", None) or {}) if atoms.calc is not None else {}
    taken: set[str] = set()
    for name in _CALC_SYSTEM:
        if name in results and results[name] is not None:
            value = np.asarray(results[name], dtype=np.float64)
            if name == "stress" and value.size == 9:  # full 3x3 (ASE db may flatten it)
                value = full_3x3_to_voigt_6_stress(value.reshape(3, 3))
            collect(name, "system", k, value)
            taken.add(name)
    for name in _CALC_ATOM:
        if name in results and results[name] is not None:
            value = np.asarray(results[name], dtype=np.float64)
            collect(name, "atom", k, value)
            taken.add(name)
    for name in results:
        if name not in taken:
            dropped.setdefault(name, "calculator result of unknown kind (not per system/atom)")
    for origin, mapping in (("atoms.info", atoms.info), ("key_value_pairs", kvp)):
        for name, value in mapping.items():
            if name in taken:
                continue  # the calculator value wins
            if name in _RESERVED:
                dropped.setdefault(name, f"name reserved by deepatoms ({origin})")
                continue
            kind = _scalar_or_array(value)
            if kind is None:
                dropped.setdefault(name, f"{origin} value of type {type(value).__name__}")
                continue
            collect(name, "system", k, kind[1])
            taken.add(name)
    for name, value in data.items():
        arr = np.asarray(value) if not isinstance(value, str) else None
        if arr is None or arr.dtype.kind not in "biuf" or name in taken or name in _RESERVED:
            dropped.setdefault(name, "db data entry that is not a numeric array or is a duplicate")
            continue
        collect(name, "data", k, arr)
        taken.add(name)
    for name, value in atoms.arrays.items():
        if name in ("numbers", "positions"):
            continue
        if name in taken or name in _RESERVED:
            dropped.setdefault(name, "per-atom array whose name is already used")
            continue
        if value.dtype.kind not in "biuf":
            dropped.setdefault(name, f"per-atom array of non-numeric dtype {value.dtype}")
            continue
        collect(name, "atom", k, value)
        taken.add(name)
