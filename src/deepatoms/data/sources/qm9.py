"""QM9 from the installed ``qm9pack`` package (Ramakrishnan et al. 2014; Schütt 2018 thesis App. A).

``qm9pack`` ships the 130,831 QM9 molecules that pass the geometry-consistency check as three CSV
files in its package data folder. The folder is located with ``importlib.util.find_spec`` and the
CSVs are read with the stdlib ``csv`` module; the ``qm9pack`` module itself is never imported
(its ``__init__`` imports ``pkg_resources`` and pandas).

Units on output: positions Å; orbital energies, ZPVE, U0, U, H, G and the atomization energies in
eV (1 Ha = 27.211386 eV); μ in Debye, α in Bohr³, ⟨R²⟩ in Bohr², Cv in cal/(mol K), Mulliken
charges in e. Atomization quantities ``X_atom = X − Σ_i ref_X(Z_i)`` use the QM9 atomref table.
Level of theory: B3LYP/6-31G(2df,p).
"""

from __future__ import annotations

import csv
import importlib.metadata
import importlib.util
import operator
from pathlib import Path
from typing import Any

import numpy as np

from deepatoms.data.packed import PackedSystems
from deepatoms.data.sources.common import progress_bar
from deepatoms.data.stats import atomref_sum

__all__ = [
    "HARTREE_TO_EV",
    "QM9_ATOMREFS",
    "QM9_ATOMREFS_HARTREE",
    "QM9_N_MOLECULES",
    "QM9_TARGETS",
    "QM9_UNITS",
    "load_qm9",
    "qm9_data_dir",
]

HARTREE_TO_EV = 27.211386
QM9_N_MOLECULES = 130_831
QM9_FILES = ("qm9_part1.csv", "qm9_part2.csv", "qm9_part3.csv")

#: The 12 standard QM9 regression targets (names of per-system properties).
QM9_TARGETS = ["mu", "alpha", "homo", "lumo", "gap", "r2", "zpve", "U0", "U", "H", "G", "Cv"]

#: QM9 atom reference table: {property: {Z: value}}; Hartree for U0/U/H/G, cal/(mol K) for Cv.
QM9_ATOMREFS_HARTREE: dict[str, dict[int, float]] = {
    "U0": {1: -0.500273, 6: -37.846772, 7: -54.583861, 8: -75.064579, 9: -99.718730},
    "U": {1: -0.498857, 6: -37.845355, 7: -54.582445, 8: -75.063163, 9: -99.717314},
    "H": {1: -0.497912, 6: -37.844411, 7: -54.581501, 8: -75.062219, 9: -99.716370},
    "G": {1: -0.510927, 6: -37.861317, 7: -54.598897, 8: -75.079532, 9: -99.733544},
    "Cv": {1: 2.981, 6: 2.981, 7: 2.981, 8: 2.981, 9: 2.981},
}

#: The same table in product units: eV for U0/U/H/G, cal/(mol K) for Cv.
QM9_ATOMREFS: dict[str, dict[int, float]] = {
    prop: {z: v * (1.0 if prop == "Cv" else HARTREE_TO_EV) for z, v in table.items()}
    for prop, table in QM9_ATOMREFS_HARTREE.items()
}

# property name -> (CSV column, factor to product units, unit)
_SCALARS: dict[str, tuple[str, float, str]] = {
    "mu": ("Dipole_debye", 1.0, "Debye"),
    "alpha": ("Polarizability_bohr3", 1.0, "Bohr^3"),
    "homo": ("HOMO_au", HARTREE_TO_EV, "eV"),
    "lumo": ("LUMO_au", HARTREE_TO_EV, "eV"),
    "gap": ("HOMO_LUMO_gap_au", HARTREE_TO_EV, "eV"),
    "r2": ("R2_bohr2", 1.0, "Bohr^2"),
    "zpve": ("ZPVE_au", HARTREE_TO_EV, "eV"),
    "U0": ("InternalEnergy_0K_au", HARTREE_TO_EV, "eV"),
    "U": ("InternalEnergy_298K_au", HARTREE_TO_EV, "eV"),
    "H": ("Enthalphy_298K_au", HARTREE_TO_EV, "eV"),  # sic: the column is spelled this way
    "G": ("GibbsFreeEnergy_298K_au", HARTREE_TO_EV, "eV"),
    "Cv": ("Heatcapacity_Cv_cal_mol_K", 1.0, "cal/(mol K)"),
}
_ATOMIZATION = ("U0", "U", "H", "G", "Cv")

#: Units of every property produced by :func:`load_qm9`.
QM9_UNITS: dict[str, str] = {
    **{name: unit for name, (_, _, unit) in _SCALARS.items()},
    **{f"{p}_atom": _SCALARS[p][2] for p in _ATOMIZATION},
    "mulliken": "e",
}

_FIELDS = ["Index", "SMILES", "N_atoms", "Elements", "XYZ_Ang", "Mulliken_pop"] + [
    col for col, _, _ in _SCALARS.values()
]
_SYMBOL_TO_Z = {"H": 1, "C": 6, "N": 7, "O": 8, "F": 9}
_STRIP = str.maketrans("", "", "[]' \"")


def qm9_data_dir() -> Path:
    """The data folder of the installed ``qm9pack`` (found without importing the module)."""
    spec = importlib.util.find_spec("qm9pack")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "the QM9 data package 'qm9pack' is not installed; install it with `pip install qm9pack`"
        )
    for loc in spec.submodule_search_locations:
        folder = Path(loc) / "data"
        if all((folder / name).is_file() for name in QM9_FILES):
            return folder
    raise FileNotFoundError(
        f"qm9pack is installed at {list(spec.submodule_search_locations)} but its data folder "
        f"lacks one of {list(QM9_FILES)}; reinstall it with `pip install --force-reinstall qm9pack`"
    )


def qm9pack_version() -> str:
    """Version of the installed qm9pack package (``"unknown"`` when it is not installed)."""
    try:
        return importlib.metadata.version("qm9pack")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _read_rows(folder: Path, progress: bool) -> tuple[list[tuple[str, ...]], list[str], np.ndarray]:
    """Needed CSV fields of every row (strings), the file names and the file id of each row."""
    rows: list[tuple[str, ...]] = []
    file_of_row: list[int] = []
    files: list[str] = []
    with progress_bar(progress) as bar:
        task = bar.add_task("QM9: reading qm9pack CSV", total=QM9_N_MOLECULES)
        for fid, name in enumerate(QM9_FILES):
            path = folder / name
            files.append(str(path))
            with open(path, newline="", encoding="utf-8") as fh:
                reader = csv.reader(fh)
                try:
                    header = next(reader)
                except StopIteration:
                    raise ValueError(f"QM9 file '{path}' is empty; reinstall qm9pack") from None
                missing = [c for c in _FIELDS if c not in header]
                if missing:
                    raise ValueError(
                        f"QM9 file '{path}' lacks column(s) {missing}; this qm9pack version "
                        f"({qm9pack_version()}) has an unexpected layout"
                    )
                pick = operator.itemgetter(*(header.index(c) for c in _FIELDS))
                n_cols = len(header)
                start = len(rows)
                for row in reader:
                    if len(row) != n_cols:
                        raise ValueError(
                            f"QM9 file '{path}', line {reader.line_num}: {len(row)} fields, "
                            f"expected {n_cols}; the file is damaged, reinstall qm9pack"
                        )
                    rows.append(pick(row))
                    if len(rows) % 5000 == 0:
                        bar.update(task, completed=len(rows))
                file_of_row.extend([fid] * (len(rows) - start))
        bar.update(task, completed=len(rows), total=len(rows))
    return rows, files, np.asarray(file_of_row, dtype=np.int64)


def _floats(strings: list[str] | tuple[str, ...], what: str) -> np.ndarray:
    try:
        return np.fromiter(map(float, strings), dtype=np.float64, count=len(strings))
    except ValueError as err:
        raise ValueError(f"QM9: {what}: {err}") from err


def parse_lists(cells: tuple[str, ...] | list[str]) -> list[str]:
    """Tokens of many '[[a,b,c],[d,e,f]]'-style cells, concatenated in order."""
    return ",".join(cells).translate(_STRIP).split(",")


def _locate_bad_row(
    cells: tuple[str, ...], expected: np.ndarray, per_item: int, what: str, where: Any
) -> None:
    """Find the first row whose list length is wrong and raise an error naming it."""
    for k, (cell, n) in enumerate(zip(cells, expected, strict=True)):
        got = len(cell.translate(_STRIP).split(","))
        if got != n * per_item:
            raise ValueError(
                f"QM9 {where(k)}: {what} has {got} entries, expected {n * per_item} "
                f"(N_atoms = {n}); the qm9pack data is damaged, reinstall it"
            )
    raise ValueError(f"QM9: {what} entries do not add up")  # pragma: no cover


def load_qm9(
    limit: int | None = None, seed: int = 0, progress: bool = True
) -> tuple[PackedSystems, dict[str, Any]]:
    """Load QM9 from ``qm9pack`` as packed systems plus dataset metadata.

    Args:
        limit: if given, a seeded random subset of this many molecules (ordered by QM9 index);
            only the selected rows' coordinates are parsed. ``None`` loads all 130,831.
        seed: seed of the subset selection (``numpy.random.default_rng(seed)``).
        progress: show a progress bar (on stderr) while reading.

    Returns:
        ``(data, metadata)``. Per-system properties: ``index`` (QM9 index, int), ``smiles`` (str),
        ``mu`` (Debye), ``alpha`` (Bohr³), ``homo``, ``lumo``, ``gap``, ``zpve``, ``U0``, ``U``,
        ``H``, ``G`` (eV), ``r2`` (Bohr²), ``Cv`` (cal/(mol K)), atomization quantities ``U0_atom``,
        ``U_atom``, ``H_atom``, ``G_atom`` (eV) and ``Cv_atom`` (cal/(mol K)). Per atom:
        ``mulliken`` (e). Molecules have a zero cell and no periodicity. The metadata holds
        ``units``, ``source`` ("qm9pack <version>"), ``atomrefs`` (eV; Cv in cal/(mol K);
        keys are atomic numbers as strings) and ``provenance``.
    """
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 0:
            raise ValueError(f"QM9 limit must be a non-negative int or None, got {limit!r}")
        limit = int(limit)
    folder = qm9_data_dir()
    rows, files, file_of_row = _read_rows(folder, progress)
    n_total = len(rows)
    cols = list(zip(*rows, strict=True))
    del rows
    field = {name: k for k, name in enumerate(_FIELDS)}
    try:
        index_all = np.fromiter(map(int, cols[field["Index"]]), dtype=np.int64, count=n_total)
    except ValueError as err:
        raise ValueError(
            f"QM9: a value of column 'Index' in {files} is not an integer: {err}"
        ) from err
    order = np.argsort(index_all, kind="stable")
    if np.any(np.diff(index_all[order]) == 0):
        dup = index_all[order][:-1][np.diff(index_all[order]) == 0]
        raise ValueError(f"QM9: duplicate QM9 indices {dup[:5].tolist()} in {files}")

    if limit is None:
        sel = order
    else:
        if limit > n_total:
            raise ValueError(
                f"QM9 limit={limit} exceeds the {n_total} molecules in qm9pack; use at most "
                f"{n_total} (or limit=None for all)"
            )
        rng = np.random.default_rng(seed)
        sel = order[np.sort(rng.choice(n_total, size=limit, replace=False))]

    identity = len(sel) == n_total and bool(np.all(sel == np.arange(n_total)))
    pick = operator.itemgetter(*sel.tolist()) if len(sel) > 1 and not identity else None

    def column(name: str) -> tuple[str, ...]:
        """The selected rows' strings of one CSV column."""
        c = cols[field[name]]
        if identity:
            return c
        return pick(c) if pick is not None else tuple(c[i] for i in sel)

    index = index_all[sel]

    def where(k: int) -> str:
        """Location of the k-th selected row, for error messages."""
        return f"file '{files[file_of_row[sel[k]]]}', QM9 index {index_all[sel[k]]}"

    n_atoms = _floats(column("N_atoms"), "column 'N_atoms'").astype(np.int64)
    n_tot = int(n_atoms.sum())

    el_cells = column("Elements")
    symbols = parse_lists(el_cells) if len(sel) else []
    if len(symbols) != n_tot:
        _locate_bad_row(el_cells, n_atoms, 1, "'Elements'", where)
    try:
        numbers = np.fromiter(map(_SYMBOL_TO_Z.__getitem__, symbols), np.int64, count=n_tot)
    except KeyError as err:
        k = next(i for i, c in enumerate(el_cells) if err.args[0] in c.translate(_STRIP).split(","))
        raise ValueError(
            f"QM9 {where(k)}: unknown element {err.args[0]!r} (expected H, C, N, O, F)"
        ) from None

    xyz_cells = column("XYZ_Ang")
    xyz_tokens = parse_lists(xyz_cells) if len(sel) else []
    if len(xyz_tokens) != 3 * n_tot:
        _locate_bad_row(xyz_cells, n_atoms, 3, "'XYZ_Ang'", where)
    positions = _floats(xyz_tokens, "column 'XYZ_Ang'").reshape(-1, 3)
    del xyz_tokens

    mull_cells = column("Mulliken_pop")
    mull_tokens = parse_lists(mull_cells) if len(sel) else []
    if len(mull_tokens) != n_tot:
        _locate_bad_row(mull_cells, n_atoms, 1, "'Mulliken_pop'", where)
    mulliken = _floats(mull_tokens, "column 'Mulliken_pop'")

    offsets = np.concatenate([[0], np.cumsum(n_atoms)]).astype(np.int64)
    system_props: dict[str, np.ndarray] = {
        "index": index,
        "smiles": np.asarray(column("SMILES"), dtype=str),
    }
    for name, (col, factor, _) in _SCALARS.items():
        values = _floats(column(col), f"column '{col}'")
        system_props[name] = values * factor if factor != 1.0 else values
    for prop in _ATOMIZATION:
        system_props[f"{prop}_atom"] = system_props[prop] - atomref_sum(
            numbers, offsets, QM9_ATOMREFS[prop]
        )
    data = PackedSystems(
        numbers=numbers,
        positions=positions,
        offsets=offsets,
        cell=np.zeros((len(sel), 3, 3)),
        pbc=np.zeros((len(sel), 3), dtype=bool),
        system_props=system_props,
        atom_props={"mulliken": mulliken},
    )
    version = qm9pack_version()
    metadata: dict[str, Any] = {
        "units": dict(QM9_UNITS),
        "source": f"qm9pack {version}",
        "atomrefs": {p: {str(z): v for z, v in t.items()} for p, t in QM9_ATOMREFS.items()},
        "provenance": {
            "dataset": "QM9 (Ramakrishnan et al., Sci. Data 2014) as shipped by qm9pack",
            "level_of_theory": "B3LYP/6-31G(2df,p)",
            "qm9pack_version": version,
            "files": [Path(f).name for f in files],
            "n_molecules_in_source": n_total,
            "limit": limit,
            "seed": seed,
            "hartree_to_ev": HARTREE_TO_EV,
            "atomization": {f"{p}_atom": f"{p} - sum_i atomref_{p}(Z_i)" for p in _ATOMIZATION},
        },
    }
    return data, metadata
