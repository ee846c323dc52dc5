"""Periodic crystals with labels: CSV of CIFs, a folder of CIFs plus a labels CSV, MP/OQMD JSON.

Three loaders return ``(PackedSystems, metadata)`` like the other sources; every system is a
periodic cell (``pbc`` all True), positions are Cartesian in Å and cells are row vectors in Å.
CIFs are parsed with pymatgen (``CifParser``, conventional setting as written, no primitive
reduction); disordered sites (partial occupancies) make a row bad.

- :func:`load_cif_csv`: one crystal per CSV row (MP-20, Perov-5, carbon sets); a leading unnamed
  pandas index column is ignored.
- :func:`load_cif_folder`: ``<id>.cif`` files plus a labels CSV mapping the file stem to labels.
- :func:`load_mp_json`: Materials Project / OQMD style JSON exports.

Per system, numeric label columns become float64 properties (units from :data:`CRYSTAL_UNITS`,
``""`` when unknown), text columns become string properties, and three columns are derived:
``n_elements`` (int64: 1 unary, 2 binary, 3 ternary, ...), ``reduced_formula`` (str, pymatgen
``Composition.reduced_formula``) and ``source_row`` (int64: 0-based data row / record of the
input). A bad row (unreadable CIF, non-numeric target, disordered structure, ...) raises a
``ValueError`` naming the file and row; with ``on_error="skip"`` it is left out and listed in
``metadata["skipped"]`` instead (nothing is dropped silently).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from deepatoms.data.csv_table import CsvTable, read_csv_table
from deepatoms.data.packed import PackedSystems
from deepatoms.data.sources.common import file_md5, progress_bar
from deepatoms.data.validate import structure_problem

__all__ = [
    "CRYSTAL_UNITS",
    "DERIVED_COLUMNS",
    "load_cif_csv",
    "load_cif_folder",
    "load_mp_json",
]

#: Units of known label names; other numeric columns get ``""`` (unknown).
CRYSTAL_UNITS: dict[str, str] = {
    "formation_energy_per_atom": "eV/atom",
    "heat_ref": "eV/atom",
    "heat_all": "eV/atom",
    "delta_e": "eV/atom",
    "e_above_hull": "eV/atom",
    "energy_per_atom": "eV/atom",
    "stability": "eV/atom",
    "band_gap": "eV",
    "dir_gap": "eV",
    "ind_gap": "eV",
    "n_elements": "",
    "source_row": "",
}

#: Columns every loader adds; an input column of the same name is an error.
DERIVED_COLUMNS: tuple[str, ...] = ("n_elements", "reduced_formula", "source_row")

OnError = Literal["raise", "skip"]
_N_EXAMPLES = 5


class _BadRow(ValueError):
    """A problem with one input row; becomes an error naming the row, or a skipped entry."""


@dataclass
class _Crystal:
    numbers: np.ndarray  # [n] int64
    positions: np.ndarray  # [n, 3] Å
    cell: np.ndarray  # [3, 3] Å, rows
    n_elements: int
    reduced_formula: str


# -- small helpers ------------------------------------------------------------------------------


def _check_options(limit: int | None, on_error: str) -> None:
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    if limit is not None and (
        isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1
    ):
        raise ValueError(f"limit must be a positive int or None, got {limit!r}")


def _check_file(path: Path, what: str) -> None:
    if not path.exists():
        raise FileNotFoundError(f"{what} '{path}' does not exist")
    if path.is_dir():
        raise IsADirectoryError(f"'{path}' is a folder; expected a {what}")


def _examples(items: Sequence[Any], n: int = _N_EXAMPLES) -> str:
    shown = ", ".join(str(x) for x in list(items)[:n])
    return shown + (f", … ({len(items) - n} more)" if len(items) > n else "")


def _pymatgen_version() -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version("pymatgen")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover
        return "unknown"


# -- structures ---------------------------------------------------------------------------------
def _crystal(structure: Any) -> _Crystal:
    """Arrays of one pymatgen ``Structure``; raises :class:`_BadRow` for unusable ones."""
    if len(structure) == 0:
        raise _BadRow("the structure has no atoms")
    if not structure.is_ordered:
        raise _BadRow(
            "the structure is disordered (partial occupancies); order it first, e.g. with "
            "pymatgen's OrderDisorderedStructureTransformation"
        )
    try:
        numbers = np.array([site.specie.Z for site in structure], dtype=np.int64)
    except AttributeError as err:
        raise _BadRow(f"a site holds a dummy species, not an element ({err})") from None
    cell = np.array(structure.lattice.matrix, dtype=np.float64)
    positions = np.array(structure.cart_coords, dtype=np.float64).reshape(-1, 3)
    why = structure_problem(numbers, positions, cell, np.ones(3, dtype=bool))
    if why:  # the checks of every entry point (deepatoms.data.validate)
        raise _BadRow(why)
    return _Crystal(
        numbers=numbers,
        positions=positions,
        cell=cell,
        n_elements=len(set(numbers.tolist())),
        reduced_formula=structure.composition.reduced_formula,
    )


def _from_cif(text: str, notes: list[str]) -> _Crystal:
    """Parse one CIF (exactly one structure); parser warnings are appended to ``notes``."""
    from pymatgen.io.cif import CifParser

    if not isinstance(text, str) or not text.strip():
        raise _BadRow("the CIF is empty")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            parser = CifParser.from_str(text)
            structures = parser.parse_structures(primitive=False, on_error="raise")
        except _BadRow:
            raise
        except Exception as err:
            raise _BadRow(f"pymatgen cannot parse the CIF: {type(err).__name__}: {err}") from None
    for msg in [*parser.warnings, *(str(w.message) for w in caught)]:
        msg = " ".join(str(msg).split())
        if msg not in notes:
            notes.append(msg)
    if len(structures) != 1:
        raise _BadRow(f"the CIF holds {len(structures)} structures, expected exactly one")
    return _crystal(structures[0])


def _from_dict(obj: dict, notes: list[str]) -> _Crystal:
    """A pymatgen ``Structure.as_dict()`` mapping."""
    from pymatgen.core import Structure

    try:
        structure = Structure.from_dict(obj)
    except Exception as err:
        raise _BadRow(
            f"'structure' is not a pymatgen Structure dict: {type(err).__name__}: {err}"
        ) from None
    return _crystal(structure)


@dataclass
class _Parsed:
    crystals: dict[int, _Crystal]
    skipped: list[dict[str, Any]]
    warnings: list[dict[str, Any]]


def _parse_all(
    n: int, parse: Callable[[int, list[str]], _Crystal],
    describe: Callable[[int], tuple[str, dict[str, Any]]], pre_bad: dict[int, str],
    on_error: OnError, progress: bool, label: str,
) -> _Parsed:  # fmt: skip
    """Parse items ``0..n-1``; bad ones raise (naming the item) or are recorded as skipped."""
    out = _Parsed({}, [], [])

    def bad(i: int, reason: str) -> None:
        where, record = describe(i)
        if on_error == "raise":
            raise ValueError(
                f"{where}: {reason}. Fix or remove it, or skip bad rows (on_error='skip', "
                "--skip-bad-rows on the command line)"
            )
        out.skipped.append({**record, "reason": reason})

    with progress_bar(progress) as bar:
        task = bar.add_task(label, total=n)
        for i in range(n):
            if i in pre_bad:
                bad(i, pre_bad[i])
                continue
            notes: list[str] = []
            try:
                out.crystals[i] = parse(i, notes)
            except _BadRow as why:
                bad(i, str(why))
            if notes:
                out.warnings.append({**describe(i)[1], "warnings": notes})
            if i % 50 == 0:
                bar.update(task, completed=i + 1)
        bar.update(task, completed=n)
    return out


def _pack(parsed: _Parsed, n: int, columns: dict[str, np.ndarray], where: str) -> PackedSystems:
    """Packed systems of the parsed rows (in row order) with their column values."""
    keep = np.array(sorted(parsed.crystals), dtype=np.int64)
    if len(keep) == 0:
        first = parsed.skipped[0]["reason"] if parsed.skipped else "no rows"
        raise ValueError(f"{where}: none of the {n} rows could be read (first problem: {first})")
    crystals = [parsed.crystals[int(i)] for i in keep]
    sizes = np.array([len(c.numbers) for c in crystals], dtype=np.int64)
    props = {name: np.asarray(v)[keep] for name, v in columns.items()}
    props["n_elements"] = np.array([c.n_elements for c in crystals], dtype=np.int64)
    props["reduced_formula"] = np.array([c.reduced_formula for c in crystals], dtype=str)
    props["source_row"] = keep.copy()
    data = PackedSystems(
        numbers=np.concatenate([c.numbers for c in crystals]),
        positions=np.concatenate([c.positions for c in crystals]),
        offsets=np.concatenate([[0], np.cumsum(sizes)]),
        cell=np.stack([c.cell for c in crystals]),
        pbc=np.ones((len(crystals), 3), dtype=bool),
        system_props=props,
    )
    return data


def _warning_summary(parsed: _Parsed) -> dict[str, Any]:
    return {"n_rows": len(parsed.warnings), "examples": parsed.warnings[:_N_EXAMPLES]}


# -- CSV tables ---------------------------------------------------------------------------------
def _is_index_column(name: str) -> bool:
    return name == "" or name.startswith("Unnamed: ")


def _float_or_none(text: str) -> float | None:
    """float of a CSV cell; ``nan`` for an empty cell; None when it is not a number."""
    text = text.strip()
    if not text:
        return math.nan
    try:
        return float(text)
    except ValueError:
        return None


@dataclass
class _Columns:
    values: dict[str, np.ndarray]  # name -> float64 or str array over all table rows
    units: dict[str, str]
    numeric: list[str]
    text: list[str]
    ignored: dict[str, str]
    missing: dict[str, int]
    bad_rows: dict[int, str]
    renamed: dict[str, str]


def _table_columns(
    table: CsvTable,
    structure_column: str | None,
    id_column: str | None,
    targets: Sequence[str] | None,
) -> _Columns:
    """Type the label columns of a table: numeric (float64), text (str) or ignored."""
    cols = _Columns({}, {}, [], [], {}, {}, {}, {})
    header, rows = table.header, table.rows
    for i, row in enumerate(rows):
        if row is None:
            cols.bad_rows[i] = (
                f"the row has a different number of fields than the header ({len(header)})"
            )
    good = [r for r in rows if r is not None]
    clash = [c for c in header if c in DERIVED_COLUMNS]
    if clash:
        raise ValueError(
            f"'{table.path}': column(s) {clash} clash with columns deepatoms derives "
            f"{list(DERIVED_COLUMNS)}; rename them in the CSV"
        )
    if targets is not None:
        unknown = [t for t in targets if t not in header]
        if unknown:
            raise ValueError(f"'{table.path}' has no column(s) {unknown}; its columns are {header}")
        for t in targets:
            if t in (structure_column, id_column):
                raise ValueError(
                    f"'{table.path}': {t!r} is the structure or id column, not a label"
                )
    for j, name in enumerate(header):
        if name == structure_column:
            continue
        if _is_index_column(name) and name != id_column:
            cols.ignored[name or "(unnamed)"] = "row index column"
            continue
        store = name.replace("/", "_")
        if store != name:
            cols.renamed[name] = store  # '/' is not allowed in property names
        cells = [r[j] for r in good]
        is_empty = not any(c.strip() for c in cells)
        is_numeric = not is_empty and all(_float_or_none(c) is not None for c in cells)
        requested = targets is not None and name in targets
        # a known physical label stays numeric: a stray text cell is a bad row, not a reason
        # to turn the whole column into text (and silently switch the energy filter off)
        known = name in CRYSTAL_UNITS and not is_empty and (targets is None or requested)
        if name == id_column or (not is_numeric and not requested and not known):
            if is_empty and name != id_column:
                cols.ignored[name] = "empty column"
                continue
            cols.values[store] = np.array(
                [r[j].strip() if r is not None else "" for r in rows], dtype=str
            )
            cols.text.append(store)
            continue
        if targets is not None and not requested:
            cols.ignored[name] = "numeric column not among the requested targets"
            continue
        values = np.full(len(rows), math.nan)
        for i, row in enumerate(rows):
            if row is None:
                continue
            v = _float_or_none(row[j])
            if v is None:
                cols.bad_rows.setdefault(
                    i, f"column {name!r} holds {row[j].strip()!r}, which is not a number"
                )
            else:
                values[i] = v
        cols.values[store] = values
        cols.numeric.append(store)
        cols.units[store] = CRYSTAL_UNITS.get(name, "")
        n_missing = int(sum(1 for r in good if not r[j].strip()))
        if n_missing:
            cols.missing[store] = n_missing
    return cols


def _csv_describe(table: CsvTable, id_index: int | None) -> Callable[[int], tuple[str, dict]]:
    def describe(i: int) -> tuple[str, dict[str, Any]]:
        row = table.rows[i]
        ident = row[id_index].strip() if row is not None and id_index is not None else None
        where = f"'{table.path}', row {i} (line {table.lines[i]}"
        where += f", {table.header[id_index]} {ident!r})" if ident else ")"
        record: dict[str, Any] = {"file": str(table.path), "row": i, "line": table.lines[i]}
        if ident:
            record["id"] = ident
        return where, record

    return describe


def _auto_id(header: list[str], id_column: str | None, path: Path) -> str | None:
    if id_column is None:
        return "material_id" if "material_id" in header else None
    if id_column not in header:
        raise ValueError(f"'{path}' has no id column {id_column!r}; its columns are {header}")
    return id_column


# -- public loaders -----------------------------------------------------------------------------
def load_cif_csv(
    path: str | os.PathLike, *, cif_column: str = "cif", id_column: str | None = None,
    targets: Sequence[str] | None = None, limit: int | None = None, on_error: OnError = "raise",
    progress: bool = True,
) -> tuple[PackedSystems, dict[str, Any]]:  # fmt: skip
    """Read a CSV with one crystal per row (a CIF in ``cif_column``) and its labels.

    Args:
        path: the CSV file (UTF-8, header row; a leading unnamed index column is ignored).
        cif_column: column holding the complete CIF text.
        id_column: identifier column, stored as a string property; ``None`` uses
            ``material_id`` when present.
        targets: numeric columns to keep (each must exist; a non-numeric cell is a bad row);
            ``None`` keeps every numeric column. Text columns are always kept as strings.
        limit: read only the first ``limit`` data rows.
        on_error: ``"raise"`` (a bad row is a ``ValueError`` naming file, row and line) or
            ``"skip"`` (bad rows are listed in ``metadata["skipped"]``).
        progress: show a progress bar on stderr.

    Returns:
        ``(data, metadata)``. Per system: float64 label columns (known units in
        :data:`CRYSTAL_UNITS`, e.g. ``formation_energy_per_atom``/``heat_ref`` eV/atom,
        ``band_gap`` eV; empty cells are NaN and counted in ``metadata["missing_values"]``),
        string columns, and the derived ``n_elements``, ``reduced_formula``, ``source_row``.
        Positions and cells in Å, pbc True. ``metadata`` has ``units``, ``source``,
        ``provenance`` (file, md5, row counts, columns), ``skipped``, ``ignored_columns``,
        ``renamed_columns`` (a "/" in a name becomes "_"),
        ``missing_values`` and ``cif_warnings`` (rows whose CIF gave parser warnings).
    """
    _check_options(limit, on_error)
    p = Path(path)
    table = read_csv_table(p, limit, "CSV file")
    if cif_column not in table.header:
        raise ValueError(
            f"'{p}' has no CIF column {cif_column!r}; its columns are {table.header}. "
            "Name the column holding the CIF text with cif_column (--cif-column)."
        )
    id_col = _auto_id(table.header, id_column, p)
    cols = _table_columns(table, cif_column, id_col, targets)
    j_cif = table.header.index(cif_column)
    id_index = table.header.index(id_col) if id_col is not None else None
    parsed = _parse_all(
        len(table.rows),
        lambda i, notes: _from_cif(table.rows[i][j_cif], notes),  # type: ignore[index]
        _csv_describe(table, id_index),
        cols.bad_rows,
        on_error,
        progress,
        f"reading CIFs from {p.name}",
    )
    data = _pack(parsed, len(table.rows), cols.values, f"'{p}'")
    provenance = {
        "reader": "deepatoms.data.sources.crystals.load_cif_csv", "kind": "cif-csv",
        "file": str(p.resolve()), "file_size_bytes": p.stat().st_size, "md5": file_md5(p),
        "n_rows_in_file": table.n_rows_in_file, "cif_column": cif_column, "id_column": id_col,
    }  # fmt: skip
    return data, _table_metadata(f"CSV of CIFs {p.name}", provenance, table, cols, parsed, data,
                                 limit)  # fmt: skip


def _table_metadata(
    source: str, provenance: dict[str, Any], table: CsvTable, cols: _Columns, parsed: _Parsed,
    data: PackedSystems, limit: int | None,
) -> dict[str, Any]:  # fmt: skip
    """The metadata of crystals read from a table: units, the source's ``provenance`` with the
    counts, skipped rows, column notes and CIF parser warnings."""
    return {
        "units": {**cols.units, "n_elements": "", "source_row": ""},
        "source": source,
        "provenance": {
            **provenance,
            "n_rows_read": len(table.rows),
            "n_systems": len(data),
            "n_skipped": len(parsed.skipped),
            "limit": limit,
            "numeric_columns": cols.numeric,
            "string_columns": cols.text,
            "pymatgen_version": _pymatgen_version(),
        },
        "skipped": parsed.skipped,
        "ignored_columns": cols.ignored,
        "renamed_columns": cols.renamed,
        "missing_values": cols.missing,
        "cif_warnings": _warning_summary(parsed),
    }


def _match_cifs(cifs: dict[str, Path], ids: list[str], d: Path, lp: Path, id_column: str) -> None:
    """Every CIF file needs one label row and every label row a CIF file."""
    dupes = sorted(i for i, c in Counter(ids).items() if c > 1)
    if dupes:
        raise ValueError(f"labels CSV '{lp}' repeats id(s) {_examples(dupes)}; keep one row each")
    no_label = sorted(set(cifs) - set(ids))
    no_cif = [i for i in ids if i not in cifs]
    if no_label or no_cif:
        parts = []
        if no_label:
            parts.append(
                f"{len(no_label)} CIF file(s) in '{d}' have no row in '{lp}' (column "
                f"{id_column!r}): {_examples([cifs[s].name for s in no_label])}"
            )
        if no_cif:
            parts.append(
                f"{len(no_cif)} label row(s) have no CIF file '{d}/<id>.cif': {_examples(no_cif)}"
            )
        raise ValueError(
            "; ".join(parts) + ". Add the missing labels or files, or remove the extra ones."
        )


def load_cif_folder(
    folder: str | os.PathLike, labels_csv: str | os.PathLike, *, id_column: str = "id",
    targets: Sequence[str] | None = None, limit: int | None = None, on_error: OnError = "raise",
    progress: bool = True,
) -> tuple[PackedSystems, dict[str, Any]]:  # fmt: skip
    """Read ``<id>.cif`` files of ``folder`` with their labels from ``labels_csv``.

    The labels CSV has one row per crystal; ``id_column`` holds the CIF file stem (``mp-1`` for
    ``mp-1.cif``). Every CIF must have a label row and every label row a CIF, else a
    ``ValueError`` lists a few of the unmatched names. Crystals come in label-row order;
    ``limit`` keeps the first rows. Label columns are typed as in :func:`load_cif_csv` (numeric
    → float64 with units from :data:`CRYSTAL_UNITS`, text → str); the id is stored as a string
    property named ``id_column``. Each CIF file must hold exactly one structure. Positions and
    cells in Å, pbc True. ``metadata["provenance"]`` holds the folder, the labels file and md5
    sums of the labels and of all CIF files (in label order).
    """
    _check_options(limit, on_error)
    d, lp = Path(folder), Path(labels_csv)
    if not d.is_dir():
        raise FileNotFoundError(f"CIF folder '{d}' does not exist or is not a folder")
    cifs = {f.stem: f for f in sorted(d.iterdir()) if f.is_file() and f.suffix.lower() == ".cif"}
    if not cifs:
        raise ValueError(f"'{d}' holds no .cif files")
    full = read_csv_table(lp, None, "labels CSV")
    if id_column not in full.header:
        raise ValueError(
            f"labels CSV '{lp}' has no id column {id_column!r} (the CIF file stem); its columns "
            f"are {full.header}. Name it with id_column (--id-column)."
        )
    j_id = full.header.index(id_column)
    ids = [r[j_id].strip() if r is not None else "" for r in full.rows]
    _match_cifs(cifs, ids, d, lp, id_column)
    table = (
        full
        if limit is None
        else CsvTable(
            lp,
            full.header,
            full.rows[:limit],
            full.lines[:limit],
            full.n_rows_in_file,
            {i: w for i, w in full.widths.items() if i < limit},
        )
    )
    cols = _table_columns(table, None, id_column, targets)
    files = [cifs[r[j_id].strip()] if r is not None else None for r in table.rows]
    cif_md5 = hashlib.md5(usedforsecurity=False)

    def parse(i: int, notes: list[str]) -> _Crystal:
        f = files[i]
        assert f is not None  # rows with a wrong field count are bad before parsing
        raw = f.read_bytes()
        cif_md5.update(raw)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")
        return _from_cif(text, notes)

    def describe(i: int) -> tuple[str, dict[str, Any]]:
        f = files[i]
        name = f.name if f is not None else "?"
        where = f"CIF file '{d / name}' (row {i} of '{lp}', line {table.lines[i]})"
        return where, {"file": str(d / name), "row": i, "id": ids[i]}

    parsed = _parse_all(
        len(table.rows),
        parse,
        describe,
        cols.bad_rows,
        on_error,
        progress,
        f"reading {d.name}/*.cif",
    )
    data = _pack(parsed, len(table.rows), cols.values, f"'{d}' with labels '{lp}'")
    provenance = {
        "reader": "deepatoms.data.sources.crystals.load_cif_folder", "kind": "cif-folder",
        "folder": str(d.resolve()), "labels_file": str(lp.resolve()), "labels_md5": file_md5(lp),
        "cifs_md5": cif_md5.hexdigest(), "n_cif_files": len(cifs),
        "n_rows_in_file": full.n_rows_in_file, "id_column": id_column,
    }  # fmt: skip
    return data, _table_metadata(f"CIF folder {d.name} with labels {lp.name}", provenance, table,
                                 cols, parsed, data, limit)  # fmt: skip


# -- Materials Project / OQMD JSON ----------------------------------------------------------------
_JSON_ENERGY_KEYS = ("formation_energy_per_atom", "delta_e")
_JSON_ID_KEYS = ("material_id", "entry_id")
_JSON_PROTOTYPE_KEYS = ("prototype", "spacegroup")
_JSON_ICSD_KEYS = ("icsd", "icsd_ids", "icsd_id")
_JSON_STRUCTURE_KEYS = ("structure", "cif")


def _json_records(obj: Any, path: Path) -> list[Any]:
    if isinstance(obj, list):
        return obj
    if isinstance(obj, dict) and isinstance(obj.get("data"), list):
        return obj["data"]
    what = (
        f"an object with keys {sorted(obj)[:10]}" if isinstance(obj, dict) else type(obj).__name__
    )
    raise ValueError(
        f"'{path}' holds {what}; expected a list of records or {{\"data\": [records]}}"
    )


def _first_key(rec: dict, keys: Sequence[str]) -> str | None:
    return next((k for k in keys if rec.get(k) is not None), None)


def _prototype_label(value: Any) -> str:
    """A prototype / space-group label as text (MP's spacegroup dict gives its symbol)."""
    if isinstance(value, dict):
        for key in ("symbol", "number", "crystal_system"):
            if value.get(key) is not None:
                return str(value[key])
        return json.dumps(value, sort_keys=True)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _icsd_flag(rec: dict) -> bool:
    if "icsd" in rec and rec["icsd"] is not None:
        return bool(rec["icsd"])
    ids = rec.get("icsd_ids")
    if ids is not None:
        return len(ids) > 0 if isinstance(ids, (list, tuple)) else bool(ids)
    return rec.get("icsd_id") is not None


def _json_extra_columns(
    records: list[Any], ok: list[int], used: set[str]
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Other scalar keys present in every usable record: numbers → float64, bools, strings."""
    ignored: dict[str, str] = {}
    keys: dict[str, None] = {}
    for i in ok:
        keys.update(dict.fromkeys(records[i]))
    columns: dict[str, np.ndarray] = {}
    for key in keys:
        if key in used or key in _JSON_STRUCTURE_KEYS:
            continue
        if key in DERIVED_COLUMNS or "/" in key:
            ignored[key] = "name reserved by deepatoms or holding '/'"
            continue
        values = [records[i].get(key) for i in ok]
        if any(v is None for v in values):
            ignored[key] = "missing or null in some records"
        elif all(isinstance(v, bool) for v in values):
            columns[key] = np.array(values, dtype=bool)
        elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            columns[key] = np.array(values, dtype=np.float64)
        elif all(isinstance(v, str) for v in values):
            columns[key] = np.array(values, dtype=str)
        else:
            ignored[key] = "not a number, bool or string in every record"
    return columns, ignored


def load_mp_json(
    path: str | os.PathLike,
    *,
    limit: int | None = None,
    on_error: OnError = "raise",
    progress: bool = True,
) -> tuple[PackedSystems, dict[str, Any]]:
    """Read a Materials Project / OQMD style JSON export of crystals with formation energies.

    The file holds a list of records or ``{"data": [records]}``. Accepted record keys:

    - structure (required): ``structure`` — a pymatgen ``Structure.as_dict()`` mapping or a CIF
      string — or ``cif`` (CIF string);
    - formation energy (required, eV/atom): ``formation_energy_per_atom`` or OQMD ``delta_e``;
      stored as ``formation_energy_per_atom`` (float64);
    - id (optional): ``material_id`` or OQMD ``entry_id`` → string ``material_id``;
    - prototype label (optional): ``prototype`` or ``spacegroup`` (string, number, or MP's dict,
      whose ``symbol`` is used) → string ``prototype`` (``""`` where missing);
    - ICSD flag (optional): ``icsd`` (truthy), ``icsd_ids`` (non-empty list) or ``icsd_id``
      (not null) → bool ``icsd``;
    - any other key whose value is a number, bool or string in every record becomes a column
      (numbers float64, units from :data:`CRYSTAL_UNITS`); the rest is listed in
      ``metadata["ignored_keys"]``.

    ``limit`` keeps the first records; a bad record raises a ``ValueError`` naming its index (or
    is listed in ``metadata["skipped"]`` with ``on_error="skip"``). Derived columns as in
    :func:`load_cif_csv`; positions and cells in Å, pbc True.
    """
    _check_options(limit, on_error)
    p = Path(path)
    _check_file(p, "JSON file")
    try:
        with open(p, encoding="utf-8") as fh:
            obj = json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"'{p}' is not valid JSON: {err}") from err
    all_records = _json_records(obj, p)
    if not all_records:
        raise ValueError(f"'{p}' holds no records")
    records = all_records[:limit] if limit is not None else all_records
    n = len(records)
    pre_bad: dict[int, str] = {}
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            pre_bad[i] = f"the record is a {type(rec).__name__}, not an object"
        elif _first_key(rec, _JSON_STRUCTURE_KEYS) is None:
            pre_bad[i] = f"the record has no structure (keys {list(_JSON_STRUCTURE_KEYS)})"
        else:
            e_key = _first_key(rec, _JSON_ENERGY_KEYS)
            e = rec.get(e_key) if e_key else None
            if e_key is None:
                pre_bad[i] = f"the record has no formation energy (keys {list(_JSON_ENERGY_KEYS)})"
            elif isinstance(e, bool) or not isinstance(e, (int, float)):
                pre_bad[i] = f"{e_key} is {e!r}, not a number"
    ok = [i for i in range(n) if i not in pre_bad]
    present = {k for i in ok for k in records[i] if records[i][k] is not None}
    columns: dict[str, np.ndarray] = {}
    energy = np.full(n, math.nan)
    for i in ok:
        energy[i] = float(records[i][_first_key(records[i], _JSON_ENERGY_KEYS)])
    columns["formation_energy_per_atom"] = energy
    id_keys = [k for k in _JSON_ID_KEYS if k in present]
    ids = [""] * n  # for every record, so that error messages can name bad ones
    for i, rec in enumerate(records):
        k = _first_key(rec, _JSON_ID_KEYS) if isinstance(rec, dict) else None
        ids[i] = str(rec[k]) if k else ""
    if id_keys:
        columns["material_id"] = np.array(ids, dtype=str)
    proto_keys = [k for k in _JSON_PROTOTYPE_KEYS if k in present]
    if proto_keys:
        protos = [""] * n
        for i in ok:
            k = _first_key(records[i], _JSON_PROTOTYPE_KEYS)
            protos[i] = _prototype_label(records[i][k]) if k else ""
        columns["prototype"] = np.array(protos, dtype=str)
    icsd_keys = [k for k in _JSON_ICSD_KEYS if any(k in records[i] for i in ok)]
    if icsd_keys:
        flags = np.zeros(n, dtype=bool)
        for i in ok:
            flags[i] = _icsd_flag(records[i])
        columns["icsd"] = flags
    used = {*_JSON_ENERGY_KEYS, *_JSON_ID_KEYS, *_JSON_PROTOTYPE_KEYS, *_JSON_ICSD_KEYS}
    extra, ignored = _json_extra_columns(records, ok, used)
    for key, values in extra.items():
        full = np.zeros(n, dtype=values.dtype) if values.dtype.kind != "f" else np.full(n, math.nan)
        full[ok] = values
        columns[key] = full

    def parse(i: int, notes: list[str]) -> _Crystal:
        rec = records[i]
        s = rec.get("structure")
        if isinstance(s, dict):
            return _from_dict(s, notes)
        if isinstance(s, str):
            return _from_cif(s, notes)
        if s is not None:
            raise _BadRow(f"'structure' is a {type(s).__name__}; expected a dict or CIF string")
        return _from_cif(rec.get("cif"), notes)

    def describe(i: int) -> tuple[str, dict[str, Any]]:
        ident = ids[i]
        where = f"'{p}', record {i}" + (f" ({ident})" if ident else "")
        return where, {"file": str(p), "row": i, **({"id": ident} if ident else {})}

    parsed = _parse_all(n, parse, describe, pre_bad, on_error, progress, f"reading {p.name}")
    data = _pack(parsed, n, columns, f"'{p}'")
    units = {k: CRYSTAL_UNITS.get(k, "") for k, v in columns.items() if v.dtype.kind in "biuf"}
    units.update({"n_elements": "", "source_row": ""})
    energy_keys = sorted({str(_first_key(records[i], _JSON_ENERGY_KEYS)) for i in ok})
    meta = {
        "units": units,
        "source": f"Materials Project / OQMD JSON {p.name}",
        "provenance": {
            "reader": "deepatoms.data.sources.crystals.load_mp_json",
            "kind": "mp-json",
            "file": str(p.resolve()),
            "file_size_bytes": p.stat().st_size,
            "md5": file_md5(p),
            "layout": "list" if isinstance(obj, list) else "data",
            "energy_keys": energy_keys,
            "id_keys": id_keys,
            "prototype_keys": proto_keys,
            "icsd_keys": icsd_keys,
            "n_records_in_file": len(all_records),
            "n_records_read": n,
            "n_systems": len(data),
            "n_skipped": len(parsed.skipped),
            "limit": limit,
            "pymatgen_version": _pymatgen_version(),
        },
        "skipped": parsed.skipped,
        "ignored_keys": ignored,
        "cif_warnings": _warning_summary(parsed),
    }
    return data, meta
