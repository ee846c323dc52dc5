"""Generated molecules on disk: an ASE database or an extended-XYZ file (docs/gschnet.md §8).

One row (frame) per finished molecule, positions in Å. Every row carries the key-value pairs
(extxyz: ``info`` entries) ``model`` (the model file), ``seed``, ``temperature`` and ``index``
(the molecule's number among the requested attempts). An ASE database also stores the run's
provenance in ``db.metadata``. The format follows the suffix: ``.db`` → ASE database (SQLite),
``.xyz`` / ``.extxyz`` → extended XYZ. Files are replaced atomically and never overwritten
unless asked.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ase import Atoms

from deepatoms.core.files import atomic_target

__all__ = ["OUTPUT_SUFFIXES", "check_output_path", "write_molecules"]

#: Output suffix → format.
OUTPUT_SUFFIXES = {".db": "db", ".xyz": "extxyz", ".extxyz": "extxyz"}


def check_output_path(path: str | os.PathLike, overwrite: bool = False) -> str:
    """Check ``path`` before generating; returns its format (``"db"`` or ``"extxyz"``).

    Raises ValueError for an unknown suffix, an existing file without ``overwrite`` or a folder.
    """
    path = Path(path)
    fmt = OUTPUT_SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(
            f"output {path}: unknown suffix {path.suffix!r}; use .db (ASE database) or "
            ".xyz / .extxyz (extended XYZ)"
        )
    if path.is_dir():
        raise ValueError(f"output {path} is a folder; give a file name ending in .db or .xyz")
    if path.exists() and not overwrite:
        raise ValueError(f"{path} already exists; pass --overwrite to replace it")
    return fmt


def write_molecules(
    path: str | os.PathLike, molecules: Sequence[Atoms], model: str, seed: int, temperature: float,
    metadata: Mapping[str, Any] | None = None, overwrite: bool = False,
) -> int:  # fmt: skip
    """Write ``molecules`` to ``path`` (.db or .xyz/.extxyz); returns the number of rows.

    Key-value pairs per row: ``model``, ``seed``, ``temperature`` and ``index`` (from
    ``atoms.info["index"]``, else the row number). ``metadata`` (provenance) goes to
    ``db.metadata`` of a database; extxyz files keep the per-row pairs only.
    """
    path = Path(path)
    fmt = check_output_path(path, overwrite)
    rows = []
    for i, mol in enumerate(molecules):
        kvp = {
            "model": str(model),
            "seed": int(seed),
            "temperature": float(temperature),
            "index": int(mol.info.get("index", i)),
        }
        rows.append((Atoms(numbers=mol.numbers, positions=mol.positions), kvp))
    with atomic_target(path) as tmp:
        if fmt == "db":
            _write_db(tmp, rows, metadata)
        else:
            _write_extxyz(tmp, rows)
    return len(rows)


def _write_db(tmp: Path, rows: list[tuple[Atoms, dict]], metadata: Mapping | None) -> None:
    from ase.db import connect

    tmp.unlink()  # ase.db picks the backend from the name; give it a fresh .db path
    db_path = tmp.with_suffix(".db")
    try:
        db = connect(str(db_path), type="db", append=False)
        with db:
            for atoms, kvp in rows:
                db.write(atoms, key_value_pairs=kvp)
        db.metadata = dict(metadata or {})
        os.replace(db_path, tmp)
    finally:
        db_path.unlink(missing_ok=True)


def _write_extxyz(tmp: Path, rows: list[tuple[Atoms, dict]]) -> None:
    from ase.io import write

    frames = []
    for atoms, kvp in rows:
        atoms.info.update(kvp)
        frames.append(atoms)
    with open(tmp, "w", encoding="utf-8") as f:
        write(f, frames, format="extxyz")
