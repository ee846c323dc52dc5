"""``deepatoms data cif-csv | cif-folder | mp-json``: crystal datasets with the Paper B filters.

Registered on ``data_app`` of :mod:`deepatoms.cli` when this module is imported (``cli.py``
imports it last, like the other command groups). Each command reads crystals, applies the
filters in order (noble gases, ΔH_f > 5 eV/atom, optional duplicates), writes one dataset file
and prints what it wrote and how many crystals each filter removed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from deepatoms.cli import (
    JsonOpt,
    OverwriteOpt,
    QuietOpt,
    _check_new_output,
    _emit_json,
    _fail_cleanly,
    data_app,
    err,
    out,
)
from deepatoms.data.packed import PackedSystems

__all__ = ["data_cif_csv", "data_cif_folder", "data_mp_json"]

#: Formation-energy columns looked for, in order, when --energy-column is not given.
AUTO_ENERGY_COLUMNS = ("formation_energy_per_atom", "delta_e", "heat_ref")

OutOpt = Annotated[Path, typer.Option("--out", help="Output dataset (.h5).", metavar="FILE.h5")]
LimitOpt = Annotated[int | None, typer.Option(help="Read only the first N rows (per input file).")]
TargetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--target",
        help="Numeric label column to keep (repeatable; default: every numeric column).",
    ),
]
SkipOpt = Annotated[
    bool,
    typer.Option(
        "--skip-bad-rows",
        help="Leave out rows that cannot be read (listed in the metadata) instead of stopping.",
    ),
]
NobleOpt = Annotated[
    bool,
    typer.Option(
        "--drop-noble-gases/--keep-noble-gases",
        help="Remove crystals containing He, Ne, Ar, Kr, Xe or Rn.",
    ),
]
MaxEOpt = Annotated[
    float,
    typer.Option(
        "--max-formation-energy",
        help="Remove crystals whose formation energy exceeds this (eV/atom; inf: keep all).",
    ),
]
EnergyColOpt = Annotated[
    str | None,
    typer.Option(
        "--energy-column",
        help="Formation-energy column (eV/atom) for the energy and duplicate filters "
        f"(default: the first of {', '.join(AUTO_ENERGY_COLUMNS)} present).",
    ),
]
DedupeOpt = Annotated[
    bool,
    typer.Option(
        "--dedupe",
        help="Remove duplicates (same reduced formula and prototype): keep the first unless "
        "the set's formation energies spread more than 0.05 eV/atom (std), then drop the set.",
    ),
]
ProtoOpt = Annotated[
    str | None,
    typer.Option(
        "--prototype-column",
        help="Prototype label column for --dedupe (default: 'prototype'; for MP-20 use "
        "spacegroup.number).",
    ),
]


# -- shared steps -------------------------------------------------------------------------------
def _note(text: str) -> None:
    err.print(f"note: {text}", markup=False, highlight=False)


def _check_out(path: Path, overwrite: bool) -> None:
    if path.suffix not in (".h5", ".hdf5"):
        raise ValueError(f"--out is the output dataset and must end in .h5, got {path}")
    _check_new_output(path, overwrite)


def _energy_column(data: PackedSystems, name: str | None) -> str | None:
    numeric = [k for k, v in data.system_props.items() if v.dtype.kind == "f"]
    if name is None:
        return next((c for c in AUTO_ENERGY_COLUMNS if c in numeric), None)
    if name not in numeric:
        raise ValueError(
            f"--energy-column {name!r} is not a numeric column of the data; numeric columns: "
            f"{numeric}"
        )
    return name


def _prototype_column(data: PackedSystems, name: str | None) -> str:
    if name is None:
        if "prototype" in data.system_props:
            return "prototype"
        raise ValueError(
            "--dedupe needs a prototype label column and the data has no 'prototype' column; "
            "pass --prototype-column COL (e.g. spacegroup.number for MP-20). Columns: "
            f"{sorted(data.system_props)}"
        )
    if name not in data.system_props:
        raise ValueError(
            f"--prototype-column {name!r} is not a column of the data; columns: "
            f"{sorted(data.system_props)}"
        )
    return name


def _filter_write_report(
    data: PackedSystems,
    meta: dict[str, Any],
    out_file: Path,
    *,
    drop_noble_gases: bool,
    energy_column: str | None,
    max_formation_energy: float,
    dedupe: bool,
    prototype_column: str | None,
    as_json: bool,
) -> None:
    """Apply the filters, write the dataset, print what was written and removed."""
    from deepatoms.data.dataset import write_dataset
    from deepatoms.data.filters import apply_filters, crystal_filters

    e_col = _energy_column(data, energy_column)
    if dedupe and e_col is None:
        raise ValueError(
            "--dedupe needs formation energies: pass --energy-column COL (none of "
            f"{list(AUTO_ENERGY_COLUMNS)} is present)"
        )
    p_col = _prototype_column(data, prototype_column) if dedupe else None
    chain = crystal_filters(
        drop_noble_gases=drop_noble_gases,
        energy_column=e_col,
        max_ev_per_atom=max_formation_energy,
        dedupe=dedupe,
        prototype_column=p_col,
    )
    kept, report = apply_filters(data, chain)
    if len(kept) == 0:
        raise ValueError(
            f"the filters removed all {len(data)} crystals ({report['removed']}); loosen them, "
            "e.g. --keep-noble-gases or a higher --max-formation-energy"
        )
    report.pop("kept_index")
    settings = {
        "drop_noble_gases": drop_noble_gases,
        "energy_column": e_col,
        "max_formation_energy_ev_per_atom": max_formation_energy
        if np.isfinite(max_formation_energy)
        else None,
        "dedupe": dedupe,
        "prototype_column": p_col,
    }
    meta = {**meta, "filters": {**settings, **report}}
    write_dataset(out_file, kept, meta)

    n_atoms = int(kept.offsets[-1])
    skipped = meta.get("skipped") or []
    out.print(f"wrote {len(kept)} crystals ({n_atoms} atoms) to {out_file}")
    out.print(f"read {len(data) + len(skipped)} rows; skipped {len(skipped)} bad rows")
    for s in skipped[:5]:
        where = f"{Path(s['file']).name} row {s['row']}"
        _note(f"skipped {where}: {s['reason']}")
    if not e_col and np.isfinite(max_formation_energy):
        _note("no formation-energy column, so the energy filter was not applied")
    removed = ", ".join(f"{n} {why}" for why, n in report["removed"].items()) or "nothing"
    out.print(f"filters removed {len(data) - len(kept)}: {removed}")
    for name, n in (meta.get("missing_values") or {}).items():
        _note(f"{n} empty cell(s) in {name!r} are stored as NaN")
    n_warn = (meta.get("cif_warnings") or {}).get("n_rows", 0)
    if n_warn:
        _note(f"{n_warn} CIF(s) gave pymatgen parser warnings (see metadata)")
    if as_json:
        _emit_json(
            {
                "out": str(out_file),
                "n_systems": len(kept),
                "n_atoms": n_atoms,
                "n_read": len(data) + len(skipped),
                "n_skipped": len(skipped),
                "filters": meta["filters"],
                "properties": kept.property_names,
                "units": meta["units"],
            }
        )


def _merge_csv_parts(
    paths: Sequence[Path], parts: list[tuple[PackedSystems, dict[str, Any]]]
) -> tuple[PackedSystems, dict[str, Any]]:
    """Concatenate per-file packs (with ``source_file``/``split_hint``) and their metadata."""
    first_path, (first, first_meta) = paths[0], parts[0]
    kinds = {k: v.dtype.kind for k, v in first.system_props.items()}
    for path, (data, _) in zip(paths[1:], parts[1:], strict=True):
        other = {k: v.dtype.kind for k, v in data.system_props.items()}
        if set(other) != set(kinds):
            raise ValueError(
                f"'{path}' and '{first_path}' have different columns: only in '{path}' "
                f"{sorted(set(other) - set(kinds))}, only in '{first_path}' "
                f"{sorted(set(kinds) - set(other))}; give files with the same columns "
                "(or pick common numeric labels with --target)"
            )
        differ = [k for k in kinds if (kinds[k] == "U") != (other[k] == "U")]
        if differ:
            raise ValueError(
                f"column(s) {differ} are numeric in one of '{first_path}', '{path}' and text in "
                "the other; fix the values or choose numeric labels with --target"
            )
    data = PackedSystems.concatenate([d for d, _ in parts])
    data.system_props = {k: data.system_props[k] for k in first.system_props}  # keep file order
    metas = [m for _, m in parts]
    missing: dict[str, int] = {}
    for m in metas:
        for k, n in m["missing_values"].items():
            missing[k] = missing.get(k, 0) + n
    examples = [e for m in metas for e in m["cif_warnings"]["examples"]][:5]
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
            "examples": examples,
        },
    }
    return data, meta


# -- commands -----------------------------------------------------------------------------------
@data_app.command("cif-csv")
@_fail_cleanly
def data_cif_csv(
    csvs: Annotated[
        list[Path],
        typer.Argument(
            help="CSV files with one CIF per row (e.g. train/val/test).", metavar="CSV..."
        ),
    ],
    out_file: OutOpt,
    cif_column: Annotated[str, typer.Option(help="Column holding the CIF text.")] = "cif",
    id_column: Annotated[
        str | None, typer.Option(help="Identifier column (default: material_id if present).")
    ] = None,
    target: TargetOpt = None,
    limit: LimitOpt = None,
    skip_bad_rows: SkipOpt = False,
    drop_noble_gases: NobleOpt = True,
    max_formation_energy: MaxEOpt = 5.0,
    energy_column: EnergyColOpt = None,
    dedupe: DedupeOpt = False,
    prototype_column: ProtoOpt = None,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Import crystals from CSV files of CIFs (MP-20, Perov-5, carbon sets) into one dataset.

    Several files are concatenated; each crystal records its file in the string columns
    source_file (path) and split_hint (file stem, e.g. train/val/test) for stratified splits.
    Numeric columns become float64 labels (formation_energy_per_atom, heat_ref in eV/atom,
    band_gap in eV, ...); n_elements and reduced_formula are added.
    """
    from deepatoms.data.sources.crystals import load_cif_csv

    _check_out(out_file, overwrite)
    stems = [p.stem for p in csvs]
    parts = []
    for path in csvs:
        data, meta = load_cif_csv(
            path,
            cif_column=cif_column,
            id_column=id_column,
            targets=target,
            limit=limit,
            on_error="skip" if skip_bad_rows else "raise",
            progress=not quiet,
        )
        for name in ("source_file", "split_hint"):
            if name in data.system_props:
                raise ValueError(
                    f"'{path}' has a column {name!r}, which this command adds; rename it"
                )
        data.system_props["source_file"] = np.full(len(data), str(path))
        data.system_props["split_hint"] = np.full(len(data), path.stem)
        parts.append((data, meta))
    data, meta = _merge_csv_parts(csvs, parts)
    meta["split_hints"] = dict(zip(stems, (len(d) for d, _ in parts), strict=True))
    _filter_write_report(
        data,
        meta,
        out_file,
        drop_noble_gases=drop_noble_gases,
        energy_column=energy_column,
        max_formation_energy=max_formation_energy,
        dedupe=dedupe,
        prototype_column=prototype_column,
        as_json=as_json,
    )


@data_app.command("cif-folder")
@_fail_cleanly
def data_cif_folder(
    folder: Annotated[Path, typer.Argument(help="Folder of <id>.cif files.", metavar="DIR")],
    labels: Annotated[
        Path,
        typer.Option(help="CSV with one row per CIF: the file stem and the labels.", metavar="CSV"),
    ],
    out_file: OutOpt,
    id_column: Annotated[str, typer.Option(help="Labels column holding the CIF file stem.")] = "id",
    target: TargetOpt = None,
    limit: LimitOpt = None,
    skip_bad_rows: SkipOpt = False,
    drop_noble_gases: NobleOpt = True,
    max_formation_energy: MaxEOpt = 5.0,
    energy_column: EnergyColOpt = None,
    dedupe: DedupeOpt = False,
    prototype_column: ProtoOpt = None,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Import a folder of CIF files with their labels from a CSV (file stem → labels)."""
    from deepatoms.data.sources.crystals import load_cif_folder

    _check_out(out_file, overwrite)
    data, meta = load_cif_folder(
        folder,
        labels,
        id_column=id_column,
        targets=target,
        limit=limit,
        on_error="skip" if skip_bad_rows else "raise",
        progress=not quiet,
    )
    _filter_write_report(
        data,
        meta,
        out_file,
        drop_noble_gases=drop_noble_gases,
        energy_column=energy_column,
        max_formation_energy=max_formation_energy,
        dedupe=dedupe,
        prototype_column=prototype_column,
        as_json=as_json,
    )


@data_app.command("mp-json")
@_fail_cleanly
def data_mp_json(
    json_file: Annotated[
        Path, typer.Argument(help="Materials Project / OQMD JSON export.", metavar="FILE")
    ],
    out_file: OutOpt,
    limit: LimitOpt = None,
    skip_bad_rows: SkipOpt = False,
    drop_noble_gases: NobleOpt = True,
    max_formation_energy: MaxEOpt = 5.0,
    dedupe: DedupeOpt = False,
    prototype_column: ProtoOpt = None,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Import a Materials Project / OQMD JSON export (structure, formation energy, prototype, ICSD).

    Records need a structure (pymatgen dict under 'structure' or CIF under 'cif') and a
    formation energy ('formation_energy_per_atom' or OQMD 'delta_e', eV/atom); 'material_id' /
    'entry_id', 'prototype' / 'spacegroup' and 'icsd' / 'icsd_ids' are read when present.
    """
    from deepatoms.data.sources.crystals import load_mp_json

    _check_out(out_file, overwrite)
    data, meta = load_mp_json(
        json_file,
        limit=limit,
        on_error="skip" if skip_bad_rows else "raise",
        progress=not quiet,
    )
    _filter_write_report(
        data,
        meta,
        out_file,
        drop_noble_gases=drop_noble_gases,
        energy_column="formation_energy_per_atom",
        max_formation_energy=max_formation_energy,
        dedupe=dedupe,
        prototype_column=prototype_column,
        as_json=as_json,
    )
