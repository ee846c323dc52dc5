"""Tables of strings (SMILES, polymer strings) with split labels and properties, read from CSV.

A table is a CSV file with a ``string`` (or ``smiles``) column, an optional ``split`` column
(``train``/``val``/``test``) and optional numeric property columns (eV). Errors name the file,
the line and the column.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deepatoms.data.csv_table import read_csv_table

__all__ = ["SPLITS", "STRING_COLUMNS", "StringTable", "read_string_csv", "table_summary"]

STRING_COLUMNS = ("string", "smiles")
SPLITS = ("train", "val", "test")


@dataclass
class StringTable:
    """Rows of a string CSV: strings, their split labels (or None), properties and file lines."""

    path: Path
    column: str
    strings: list[str]
    lines: np.ndarray
    split: np.ndarray | None = None
    properties: dict[str, np.ndarray] = field(default_factory=dict)
    columns: list[str] = field(default_factory=list)

    def where(self, i: int) -> str:
        """'FILE line L' of row ``i`` (the header is line 1), for error messages."""
        return f"{self.path} line {int(self.lines[i])}"

    def rows(self, split: str) -> np.ndarray:
        """Indices of the rows labelled ``split`` (all rows when the table has no split)."""
        if self.split is None:
            return np.arange(len(self.strings))
        return np.flatnonzero(self.split == split)


def _pick_column(header: Sequence[str], wanted: str | None, path: Path) -> str:
    if wanted is not None:
        if wanted not in header:
            raise ValueError(f"{path} has no column {wanted!r}; columns: {', '.join(header)}")
        return wanted
    lower = {h.strip().lower(): h for h in header}
    for name in STRING_COLUMNS:
        if name in lower:
            return lower[name]
    raise ValueError(
        f"{path} has no 'string' (or 'smiles') column; columns: {', '.join(header) or 'none'}. "
        "Name the column holding the strings 'string'."
    )


def _split_label(cell: str, path: Path, line: int) -> str:
    label = cell.strip().lower()
    if label not in SPLITS:
        raise ValueError(f"{path} line {line}: split label {cell!r} is not one of {list(SPLITS)}")
    return label


def _number(cell: str, name: str, path: Path, line: int) -> float:
    try:
        return float(cell)
    except ValueError:
        raise ValueError(
            f"{path} line {line}: column {name!r} holds {cell!r}, not a number"
        ) from None


def read_string_csv(
    path: str | Path,
    column: str | None = None,
    properties: Sequence[str] = (),
    split_column: str | None = "split",
) -> StringTable:
    """Read a CSV of strings; ``properties``: numeric columns to read (eV).

    ``column``: the string column (default ``string``, else ``smiles``, case-insensitive).
    ``split_column``: per-row ``train``/``val``/``test`` labels when that column exists (None:
    ignore it). Empty strings, unknown split labels and non-numeric property values raise
    ``ValueError`` naming the file and line.
    """
    table = read_csv_table(path, what="data file")
    path, header = table.path, table.header
    col = _pick_column(header, column, path)
    missing = [p for p in properties if p not in header]
    if missing:
        raise ValueError(f"{path} lacks property column(s) {missing}; columns: {', '.join(header)}")
    i_str = header.index(col)
    i_split = header.index(split_column) if split_column in header else None
    strings: list[str] = []
    splits: list[str] = []
    values: dict[str, list[float]] = {p: [] for p in properties}
    for i, (row, line) in enumerate(zip(table.rows, table.lines, strict=True)):
        if row is None:
            raise ValueError(
                f"{path} line {line}: {table.widths[i]} fields, but the header has {len(header)}"
            )
        text = row[i_str].strip()
        if not text:
            raise ValueError(f"{path} line {line}: the {col!r} cell is empty")
        strings.append(text)
        if i_split is not None:
            splits.append(_split_label(row[i_split], path, line))
        for p in properties:
            values[p].append(_number(row[header.index(p)], p, path, line))
    lines = table.lines
    props = {p: np.asarray(v, dtype=np.float64) for p, v in values.items()}
    for p, v in props.items():
        bad = np.flatnonzero(~np.isfinite(v))
        if len(bad):
            raise ValueError(f"{path} line {lines[bad[0]]}: column {p!r} is not finite")
    return StringTable(
        path=path,
        column=col,
        strings=strings,
        lines=np.asarray(lines, dtype=np.int64),
        split=np.asarray(splits) if i_split is not None else None,
        properties=props,
        columns=header,
    )


def table_summary(table: StringTable) -> dict[str, Any]:
    """Row counts of a table: total and per split label."""
    out: dict[str, Any] = {"n": len(table.strings)}
    if table.split is not None:
        out.update({s: int((table.split == s).sum()) for s in SPLITS})
    return out
