"""Crystal datasets with the filters of Jørgensen et al. (Paper B, §V): the functions behind
``deepatoms data cif-csv | cif-folder | mp-json``.

Each reads crystals, applies the filters in order (noble gases, formation energy above
``max_formation_energy`` eV/atom, optional duplicates: same reduced formula and prototype),
writes one dataset and returns what it wrote and what each filter removed.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deepatoms.core.errors import DeepatomsError
from deepatoms.core.files import check_new_file
from deepatoms.core.results import Result
from deepatoms.data.packed import PackedSystems

__all__ = [
    "AUTO_ENERGY_COLUMNS",
    "CrystalFilters",
    "CrystalImport",
    "import_cif_csv",
    "import_cif_folder",
    "import_mp_json",
]

#: Formation-energy columns looked for, in order, when no energy column is named.
AUTO_ENERGY_COLUMNS = ("formation_energy_per_atom", "delta_e", "heat_ref")


@dataclass(frozen=True)
class CrystalFilters:
    """The filters of Paper B §V, applied in this order.

    ``drop_noble_gases``: remove crystals with He, Ne, Ar, Kr, Xe or Rn;
    ``max_formation_energy``: remove crystals above it (eV/atom; ``inf`` keeps all), read from
    ``energy_column`` (default: the first of :data:`AUTO_ENERGY_COLUMNS` present);
    ``dedupe``: of crystals with the same reduced formula and prototype (``prototype_column``,
    default ``prototype``) keep the first, or drop the set when its formation energies spread
    more than 0.05 eV/atom.
    """

    drop_noble_gases: bool = True
    max_formation_energy: float = 5.0
    energy_column: str | None = None
    dedupe: bool = False
    prototype_column: str | None = None


class CrystalImport(Result):
    """A written crystal dataset: ``out``, ``n_systems``, ``n_atoms``, ``n_read`` (rows read),
    ``n_skipped`` (unreadable rows left out), ``filters`` (settings and removed counts),
    ``properties``, ``units`` and ``notes`` (messages about skipped rows, empty cells, parser
    warnings)."""


def _check_out(path: str | os.PathLike, overwrite: bool) -> Path:
    path = Path(path)
    if path.suffix not in (".h5", ".hdf5"):
        raise DeepatomsError(f"--out is the output dataset and must end in .h5, got {path}")
    return check_new_file(path, overwrite)


def _energy_column(data: PackedSystems, name: str | None) -> str | None:
    numeric = [k for k, v in data.system_props.items() if v.dtype.kind == "f"]
    if name is None:
        return next((c for c in AUTO_ENERGY_COLUMNS if c in numeric), None)
    if name not in numeric:
        raise DeepatomsError(
            f"--energy-column {name!r} is not a numeric column of the data; numeric columns: "
            f"{numeric}"
        )
    return name


def _prototype_column(data: PackedSystems, name: str | None) -> str:
    if name is None:
        if "prototype" in data.system_props:
            return "prototype"
        raise DeepatomsError(
            "--dedupe needs a prototype label column and the data has no 'prototype' column; "
            "pass --prototype-column COL (e.g. spacegroup.number for MP-20). Columns: "
            f"{sorted(data.system_props)}"
        )
    if name not in data.system_props:
        raise DeepatomsError(
            f"--prototype-column {name!r} is not a column of the data; columns: "
            f"{sorted(data.system_props)}"
        )
    return name


def _filter_and_write(
    data: PackedSystems, meta: dict[str, Any], out: Path, filters: CrystalFilters
) -> CrystalImport:
    """Apply the filters, write the dataset, report what was written and removed."""
    from deepatoms.data.dataset import write_dataset
    from deepatoms.data.filters import apply_filters, crystal_filters

    e_col = _energy_column(data, filters.energy_column)
    if filters.dedupe and e_col is None:
        raise DeepatomsError(
            "--dedupe needs formation energies: pass --energy-column COL (none of "
            f"{list(AUTO_ENERGY_COLUMNS)} is present)"
        )
    p_col = _prototype_column(data, filters.prototype_column) if filters.dedupe else None
    max_energy = filters.max_formation_energy
    chain = crystal_filters(
        drop_noble_gases=filters.drop_noble_gases,
        energy_column=e_col,
        max_ev_per_atom=max_energy,
        dedupe=filters.dedupe,
        prototype_column=p_col,
    )
    kept, report = apply_filters(data, chain)
    if len(kept) == 0:
        raise DeepatomsError(
            f"the filters removed all {len(data)} crystals ({report['removed']}); loosen them, "
            "e.g. --keep-noble-gases or a higher --max-formation-energy"
        )
    report.pop("kept_index")
    settings = {
        "drop_noble_gases": filters.drop_noble_gases,
        "energy_column": e_col,
        "max_formation_energy_ev_per_atom": max_energy if np.isfinite(max_energy) else None,
        "dedupe": filters.dedupe,
        "prototype_column": p_col,
    }
    meta = {**meta, "filters": {**settings, **report}}
    write_dataset(out, kept, meta)
    skipped = meta.get("skipped") or []
    return CrystalImport(
        out=str(out),
        n_systems=len(kept),
        n_atoms=int(kept.offsets[-1]),
        n_read=len(data) + len(skipped),
        n_skipped=len(skipped),
        n_removed=len(data) - len(kept),
        filters=meta["filters"],
        properties=kept.property_names,
        units=meta["units"],
        notes=_notes(meta, skipped, e_col, max_energy),
    )


def _notes(meta: dict, skipped: list, e_col: str | None, max_energy: float) -> list[str]:
    notes = [f"skipped {Path(s['file']).name} row {s['row']}: {s['reason']}" for s in skipped[:5]]
    if not e_col and np.isfinite(max_energy):
        notes.append("no formation-energy column, so the energy filter was not applied")
    for name, n in (meta.get("missing_values") or {}).items():
        notes.append(f"{n} empty cell(s) in {name!r} are stored as NaN")
    n_warn = (meta.get("cif_warnings") or {}).get("n_rows", 0)
    if n_warn:
        notes.append(f"{n_warn} CIF(s) gave pymatgen parser warnings (see metadata)")
    return notes


def _merge_csv_parts(
    paths: Sequence[Path], parts: list[tuple[PackedSystems, dict[str, Any]]]
) -> tuple[PackedSystems, dict[str, Any]]:
    """Concatenate per-file packs (with ``source_file``/``split_hint``) and their metadata."""
    first_path, (first, first_meta) = paths[0], parts[0]
    kinds = {k: v.dtype.kind for k, v in first.system_props.items()}
    for path, (data, _) in zip(paths[1:], parts[1:], strict=True):
        other = {k: v.dtype.kind for k, v in data.system_props.items()}
        if set(other) != set(kinds):
            raise DeepatomsError(
                f"'{path}' and '{first_path}' have different columns: only in '{path}' "
                f"{sorted(set(other) - set(kinds))}, only in '{first_path}' "
                f"{sorted(set(kinds) - set(other))}; give files with the same columns "
                "(or pick common numeric labels with --target)"
            )
        differ = [k for k in kinds if (kinds[k] == "U") != (other[k] == "U")]
        if differ:
            raise DeepatomsError(
                f"column(s) {differ} are numeric in one of '{first_path}', '{path}' and text in "
                "the other; fix the values or choose numeric labels with --target"
            )
    data = PackedSystems.concatenate([d for d, _ in parts])
    data.system_props = {k: data.system_props[k] for k in first.system_props}  # file order
    metas = [m for _, m in parts]
    missing: dict[str, int] = {}
    for m in metas:
        for k, n in m["missing_values"].items():
            missing[k] = missing.get(k, 0) + n
    meta = {
        "units": first_meta["units"],
        "source": "CSV of CIFs " + ", ".join(p.name for p in paths),
        "provenance": {
            "reader": "deepatoms.data.sources.crystals.load_cif_csv",
            "kind": "cif-csv",
            "files": [m["provenance"] for m in metas],
            "n_systems": len(data),
            "n_skipped": sum(len(m["skipped"]) for m in metas),
        },
        "skipped": [s for m in metas for s in m["skipped"]],
        "ignored_columns": {k: v for m in metas for k, v in m["ignored_columns"].items()},
        "renamed_columns": {k: v for m in metas for k, v in m["renamed_columns"].items()},
        "missing_values": missing,
        "cif_warnings": {
            "n_rows": sum(m["cif_warnings"]["n_rows"] for m in metas),
            "examples": [e for m in metas for e in m["cif_warnings"]["examples"]][:5],
        },
    }
    return data, meta


def import_cif_csv(
    csvs: Sequence[str | os.PathLike], out: str | os.PathLike, *, cif_column: str = "cif",
    id_column: str | None = None, targets: Sequence[str] | None = None, limit: int | None = None,
    skip_bad_rows: bool = False, filters: CrystalFilters = CrystalFilters(),
    overwrite: bool = False, progress: bool = True,
) -> CrystalImport:  # fmt: skip
    """Crystals from CSV files of CIFs (MP-20, Perov-5, carbon sets) into one dataset.

    Each crystal records its file in the string columns ``source_file`` and ``split_hint``
    (the file stem, e.g. train/val/test). Numeric columns become labels
    (formation_energy_per_atom, heat_ref in eV/atom, band_gap in eV, ...); ``n_elements`` and
    ``reduced_formula`` are added.
    """
    from deepatoms.data.sources.crystals import load_cif_csv

    out = _check_out(out, overwrite)
    paths = [Path(p) for p in csvs]
    if not paths:
        raise DeepatomsError("give at least one CSV file of CIFs")
    parts = []
    for path in paths:
        data, meta = load_cif_csv(
            path, cif_column=cif_column, id_column=id_column, targets=targets, limit=limit,
            on_error="skip" if skip_bad_rows else "raise", progress=progress,
        )  # fmt: skip
        for name in ("source_file", "split_hint"):
            if name in data.system_props:
                raise DeepatomsError(
                    f"'{path}' has a column {name!r}, which this command adds; rename it"
                )
        data.system_props["source_file"] = np.full(len(data), str(path))
        data.system_props["split_hint"] = np.full(len(data), path.stem)
        parts.append((data, meta))
    data, meta = _merge_csv_parts(paths, parts)
    meta["split_hints"] = {p.stem: len(d) for p, (d, _) in zip(paths, parts, strict=True)}
    return _filter_and_write(data, meta, out, filters)


def import_cif_folder(
    folder: str | os.PathLike, labels: str | os.PathLike, out: str | os.PathLike, *,
    id_column: str = "id", targets: Sequence[str] | None = None, limit: int | None = None,
    skip_bad_rows: bool = False, filters: CrystalFilters = CrystalFilters(),
    overwrite: bool = False, progress: bool = True,
) -> CrystalImport:  # fmt: skip
    """A folder of CIF files with their labels from a CSV (file stem → labels)."""
    from deepatoms.data.sources.crystals import load_cif_folder

    out = _check_out(out, overwrite)
    data, meta = load_cif_folder(
        folder, labels, id_column=id_column, targets=targets, limit=limit,
        on_error="skip" if skip_bad_rows else "raise", progress=progress,
    )  # fmt: skip
    return _filter_and_write(data, meta, out, filters)


def import_mp_json(
    json_file: str | os.PathLike, out: str | os.PathLike, *, limit: int | None = None,
    skip_bad_rows: bool = False, filters: CrystalFilters = CrystalFilters(),
    overwrite: bool = False, progress: bool = True,
) -> CrystalImport:  # fmt: skip
    """A Materials Project / OQMD JSON export (structure, formation energy, prototype, ICSD).

    Records need a structure (pymatgen dict under ``structure`` or CIF under ``cif``) and a
    formation energy (``formation_energy_per_atom`` or OQMD ``delta_e``, eV/atom).
    """
    from deepatoms.data.sources.crystals import load_mp_json

    out = _check_out(out, overwrite)
    data, meta = load_mp_json(
        json_file, limit=limit, on_error="skip" if skip_bad_rows else "raise", progress=progress
    )
    filters = dataclasses.replace(filters, energy_column="formation_energy_per_atom")
    return _filter_and_write(data, meta, out, filters)
