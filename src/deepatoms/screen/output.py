"""Screening results on disk: the ranked CSV and an ASE database of the best candidates."""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from deepatoms.core.files import atomic_target
from deepatoms.screen.rank import Ranking

__all__ = ["CSV_COLUMNS", "write_best_db", "write_ranking_csv"]

#: Columns of ``ranking.csv`` (energies in eV/atom).
CSV_COLUMNS = (
    "composition",
    "prototype",
    "assignment",
    "predicted_eV_per_atom",
    "gap_eV_per_atom",
    "rank",
    "flagged",
    "n_candidates",
    "n_atoms",
    "candidate_id",
)


def write_ranking_csv(path: str | os.PathLike, ranking: Ranking) -> None:
    """Write every candidate, sorted by composition then rank, to ``path`` (atomically).

    Columns: :data:`CSV_COLUMNS`, and ``std_eV_per_atom`` (the committee's standard deviation)
    for a committee model; energies with 6 decimals (eV/atom), ``flagged`` 1/0.
    """
    with_std = ranking.table.std is not None
    with atomic_target(Path(path)) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow([*CSV_COLUMNS, *(["std_eV_per_atom"] if with_std else [])])
        for row in ranking.rows():
            writer.writerow(
                [
                    row["composition"],
                    row["prototype"],
                    row["assignment"],
                    f"{row['energy']:.6f}",
                    f"{row['gap']:.6f}",
                    row["rank"],
                    int(row["flagged"]),
                    row["n_candidates"],
                    row["n_atoms"],
                    row["candidate_id"],
                    *([f"{row['std']:.6f}"] if with_std else []),
                ]
            )


_DB_KEYS = ("composition", "prototype", "assignment", "candidate_id", "rank", "n_candidates",
            "flagged")  # fmt: skip


def write_best_db(
    path: str | os.PathLike,
    ranking: Ranking,
    top: int = 3,
    metadata: Mapping[str, Any] | None = None,
) -> int:
    """Write the ``top`` best candidates of every composition to the ASE database ``path``
    (replaced atomically); returns the number of rows.

    Structures are the candidates' (the rescaled prototype, unrelaxed). Key-value pairs:
    ``composition``, ``prototype``, ``assignment``, ``candidate_id``, ``predicted_energy`` and
    ``gap`` (eV/atom), ``rank``, ``n_candidates``, ``flagged``; ``metadata`` is stored as the
    database's metadata (e.g. model, window, units).
    """
    from ase.db import connect

    if isinstance(top, bool) or not isinstance(top, int) or top < 0:
        raise ValueError(f"top must be a non-negative number of candidates, got {top!r}")
    n = 0
    with atomic_target(Path(path)) as tmp:
        tmp.unlink()  # ase.db picks the backend from the name; give it a fresh .db path
        db_path = tmp.with_suffix(".db")
        try:
            db = connect(str(db_path), type="db", append=False)
            with db:
                for row in ranking.rows(top=top):
                    kvp = {k: row[k] for k in _DB_KEYS}
                    kvp.update(predicted_energy=row["energy"], gap=row["gap"])
                    if "std" in row:
                        kvp["predicted_std"] = row["std"]
                    db.write(row["candidate"].atoms(), key_value_pairs=kvp)
                    n += 1
            db.metadata = dict(metadata or {})
            os.replace(db_path, tmp)
        finally:
            db_path.unlink(missing_ok=True)
    return n
