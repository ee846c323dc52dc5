"""``deepatoms data ...``: build, import and inspect datasets (``deepatoms.workflows.datasets``
and ``deepatoms.workflows.crystal_data``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from deepatoms.cli.common import (
    Group,
    OutOpt,
    Run,
    command,
    number,
    out,
    print_notes,
    run_options,
)

app = typer.Typer(help="Build, import and inspect datasets.", no_args_is_help=True)

__all__ = ["app", "register"]


def register(main: typer.Typer) -> None:
    """Add the ``data`` group to ``main``."""
    main.add_typer(app, name="data")


OutArg = Annotated[Path, typer.Argument(help="Output dataset (.h5).", metavar="OUT.h5")]
CsvOut = Annotated[Path, typer.Argument(help="Output CSV.", metavar="OUT.csv")]


# -- molecules and structures ------------------------------------------------------------------
@command(app, "qm9", run_options())
def data_qm9(
    out_file: OutArg,
    limit: Annotated[int | None, typer.Option(help="Random subset of N molecules.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the random subset.")] = 0,
    *,
    run: Run,
) -> None:
    """Build a QM9 dataset (all 130,831 molecules, or --limit N) from the installed qm9pack data.

    Targets (eV-based units): mu, alpha, homo, lumo, gap, r2, zpve, U0, U, H, G, Cv, plus the
    atomization energies U0_atom, U_atom, H_atom, G_atom and SMILES.
    """
    from deepatoms.workflows.datasets import build_qm9

    res = build_qm9(out_file, limit=limit, seed=seed, overwrite=run.overwrite,
                    progress=run.progress)  # fmt: skip
    out.print(f"wrote {res.n_systems} molecules ({res.n_atoms} atoms) to {out_file}")
    run.emit(res)


@command(app, "import", run_options())
def data_import(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="Input files (extxyz, xyz, ASE db, CIF, …) then the output .h5.",
            metavar="FILES... OUT.h5",
        ),
    ],
    append: Annotated[bool, typer.Option("--append", help="Add to an existing dataset.")] = False,
    *,
    run: Run,
) -> None:
    """Import structures and their labels from ASE-readable files into one dataset file."""
    from deepatoms.workflows.datasets import import_structures

    if len(paths) < 2:
        raise ValueError("give at least one input file and the output .h5 file (last)")
    *inputs, out_file = paths
    res = import_structures(inputs, out_file, append=append, overwrite=run.overwrite,
                            progress=run.progress)  # fmt: skip
    verb = "appended" if append else "wrote"
    out.print(f"{verb} {res.n_systems} structures with properties {res.properties} to {out_file}")
    print_notes(res.notes)
    run.emit(res, drop=("notes", "appended"))


@command(app, "md17", run_options(quiet=False))
def data_md17(
    npz: Annotated[Path, typer.Argument(help="MD17 or rMD17 trajectory (.npz).", metavar="NPZ")],
    out_file: OutOpt,
    limit: Annotated[int | None, typer.Option(help="Keep N frames (default: all).")] = None,
    seed: Annotated[
        int | None, typer.Option(help="With --limit: a seeded random subset, else the first N.")
    ] = None,
    units: Annotated[
        str, typer.Option(help="Energy unit of the file: kcal/mol (MD17, rMD17) or eV.")
    ] = "kcal/mol",
    *,
    run: Run,
) -> None:
    """Import an MD17-style .npz trajectory (energies → eV, forces → eV/Å)."""
    from deepatoms.workflows.datasets import import_md17

    res = import_md17(npz, out_file, limit=limit, seed=seed, units=units, overwrite=run.overwrite)
    out.print(
        f"wrote {res.n_systems} frames of {res.n_atoms} atoms (energy, forces in eV) to {out_file}"
    )
    run.emit(res)


@command(app, "info", run_options(overwrite=False, quiet=False))
def data_info(
    file: Annotated[Path, typer.Argument(help="Dataset file (.h5).", metavar="FILE.h5")],
    *,
    run: Run,
) -> None:
    """Summarise a dataset: sizes, elements, properties with units and statistics, provenance."""
    from deepatoms.workflows.datasets import dataset_summary, format_info

    info = dataset_summary(file)
    out.print(format_info(info))
    run.emit(info)


# -- crystals -----------------------------------------------------------------------------------
LimitOpt = Annotated[int | None, typer.Option(help="Read only the first N rows (per input file).")]
TargetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--target", help="Numeric label column to keep (repeatable; default: every numeric column)."
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
        "(default: the first of formation_energy_per_atom, delta_e, heat_ref present).",
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


def _filters(energy_column: bool) -> Group:
    """The crystal filters (Paper B §V) as a ``CrystalFilters`` (``filters``)."""

    def build(**values: Any) -> Any:
        from deepatoms.workflows.crystal_data import CrystalFilters

        return CrystalFilters(**values)

    options = {"drop_noble_gases": (NobleOpt, True), "max_formation_energy": (MaxEOpt, 5.0),
               "energy_column": (EnergyColOpt, None), "dedupe": (DedupeOpt, False),
               "prototype_column": (ProtoOpt, None)}  # fmt: skip
    if not energy_column:  # the JSON exports name their formation-energy field
        del options["energy_column"]
    return Group("filters", build, **options)


def _rows(targets: bool) -> Group:
    """Which rows and labels to read (``rows``: keyword arguments of the reader)."""

    def build(limit: int | None, skip_bad_rows: bool, targets: list[str] | None = None) -> dict:
        rows = {"limit": limit, "skip_bad_rows": skip_bad_rows}
        return {**rows, "targets": targets} if targets is not None else rows

    options = {"targets": (TargetOpt, None)} if targets else {}
    return Group("rows", build, **options, limit=(LimitOpt, None), skip_bad_rows=(SkipOpt, False))


def _report_crystals(res, run: Run) -> None:
    out.print(f"wrote {res.n_systems} crystals ({res.n_atoms} atoms) to {res.out}")
    out.print(f"read {res.n_read} rows; skipped {res.n_skipped} bad rows")
    removed = ", ".join(f"{n} {why}" for why, n in res.filters["removed"].items()) or "nothing"
    out.print(f"filters removed {res.n_removed}: {removed}")
    print_notes(res.notes)
    run.emit(res, drop=("notes", "n_removed"))


@command(app, "cif-csv", _rows(True), _filters(True), run_options())
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
    *,
    rows: dict,
    filters: Any,
    run: Run,
) -> None:
    """Import crystals from CSV files of CIFs (MP-20, Perov-5, carbon sets) into one dataset.

    Several files are concatenated; each crystal records its file in the string columns
    source_file (path) and split_hint (file stem, e.g. train/val/test) for stratified splits.
    Numeric columns become float64 labels (formation_energy_per_atom, heat_ref in eV/atom,
    band_gap in eV, ...); n_elements and reduced_formula are added.
    """
    from deepatoms.workflows.crystal_data import import_cif_csv

    res = import_cif_csv(csvs, out_file, cif_column=cif_column, id_column=id_column, **rows,
                         filters=filters, overwrite=run.overwrite, progress=run.progress)  # fmt: skip
    _report_crystals(res, run)


@command(app, "cif-folder", _rows(True), _filters(True), run_options())
def data_cif_folder(
    folder: Annotated[Path, typer.Argument(help="Folder of <id>.cif files.", metavar="DIR")],
    labels: Annotated[
        Path,
        typer.Option(help="CSV with one row per CIF: the file stem and the labels.", metavar="CSV"),
    ],
    out_file: OutOpt,
    id_column: Annotated[str, typer.Option(help="Labels column holding the CIF file stem.")] = "id",
    *,
    rows: dict,
    filters: Any,
    run: Run,
) -> None:
    """Import a folder of CIF files with their labels from a CSV (file stem → labels)."""
    from deepatoms.workflows.crystal_data import import_cif_folder

    res = import_cif_folder(folder, labels, out_file, id_column=id_column, **rows,
                            filters=filters, overwrite=run.overwrite,
                            progress=run.progress)  # fmt: skip
    _report_crystals(res, run)


@command(app, "mp-json", _rows(False), _filters(False), run_options())
def data_mp_json(
    json_file: Annotated[
        Path, typer.Argument(help="Materials Project / OQMD JSON export.", metavar="FILE")
    ],
    out_file: OutOpt,
    *,
    rows: dict,
    filters: Any,
    run: Run,
) -> None:
    """Import a Materials Project / OQMD JSON export (structure, formation energy, prototype, ICSD).

    Records need a structure (pymatgen dict under 'structure' or CIF under 'cif') and a
    formation energy ('formation_energy_per_atom' or OQMD 'delta_e', eV/atom); 'material_id' /
    'entry_id', 'prototype' / 'spacegroup' and 'icsd' / 'icsd_ids' are read when present.
    """
    from deepatoms.workflows.crystal_data import import_mp_json

    res = import_mp_json(json_file, out_file, **rows, filters=filters, overwrite=run.overwrite,
                         progress=run.progress)  # fmt: skip
    _report_crystals(res, run)


# -- generative models ---------------------------------------------------------------------------
@command(app, "qm9-generative", run_options())
def data_qm9_generative(
    out_file: OutOpt,
    limit: Annotated[
        int | None, typer.Option(help="Seeded random subset of N molecules.", min=1)
    ] = None,
    first: Annotated[
        int | None, typer.Option(help="The first N molecules by QM9 index.", min=1)
    ] = None,
    max_gap: Annotated[
        float | None, typer.Option(help="Keep molecules with HOMO-LUMO gap < EV.", metavar="EV")
    ] = None,
    where: Annotated[
        str | None,
        typer.Option(
            help="Property conditions, e.g. 'gap<4.5' or 'gap<5 and mu>1' (eV, Debye …).",
            metavar="COND",
        ),
    ] = None,
    no_small_rings: Annotated[
        bool, typer.Option("--no-small-rings", help="Drop molecules with 3- or 4-membered rings.")
    ] = False,
    n_train: Annotated[
        str | None,
        typer.Option(
            help="Training molecules (count or fraction). Default 50000; the rest for filtered "
            "subsets.",
            metavar="N",
        ),
    ] = None,
    n_val: Annotated[
        str | None,
        typer.Option(
            help="Validation molecules. Default 5000; 2000 with --no-small-rings; 500 for "
            "filtered subsets.",
            metavar="N",
        ),
    ] = None,
    n_test: Annotated[
        str | None, typer.Option(help="Test molecules (default: the rest).", metavar="N")
    ] = None,
    split_seed: Annotated[int, typer.Option(help="Seed of the split.")] = 0,
    seed: Annotated[int, typer.Option(help="Seed of the --limit subset.")] = 0,
    *,
    run: Run,
) -> None:
    """Prepare QM9 for G-SchNet: centred, sorted, bonds perceived, seeded split.

    Molecules are centred on the centre of mass, atoms sorted by distance to it, bonds perceived (RDKit, charge 0), invalid molecules dropped and counted, canonical
    SMILES and a seeded train/val/test 'split' column stored with the data."""
    from deepatoms.workflows.datasets import build_qm9_generative

    res = build_qm9_generative(
        out_file, limit=limit, first=first, max_gap=max_gap, where=where,
        no_small_rings=no_small_rings, n_train=number(n_train, "--n-train"),
        n_val=number(n_val, "--n-val"), n_test=number(n_test, "--n-test"),
        split_seed=split_seed, seed=seed, overwrite=run.overwrite, progress=run.progress,
    )  # fmt: skip
    dropped, sizes = res.dropped, res.split["sizes"]
    reasons = ", ".join(f"{k} {v}" for k, v in dropped["reasons"].items()) or "none"
    filters = "; ".join(res.filters["applied"]) or "none"
    out.print(
        f"wrote {res.n_systems} molecules ({res.n_atoms} atoms) to {out_file} "
        f"in {res.seconds:.1f} s"
    )
    out.print(f"filters: {filters} ({res.filters['n_after_property_filters']} checked)")
    out.print(
        f"dropped {dropped['n_dropped']} of {dropped['n_checked']} failing the validity check "
        f"({reasons}); valid rate {dropped['n_valid'] / dropped['n_checked']:.2%}"
    )
    out.print(
        f"split (seed {split_seed}): train {sizes['train']}, val {sizes['val']}, "
        f"test {sizes['test']}"
    )
    run.emit(res, drop=("n_atoms",))


@command(app, "qm9-smiles", run_options())
def data_qm9_smiles(
    out_file: CsvOut,
    limit: Annotated[
        int | None, typer.Option(help="Seeded random subset of N molecules.", min=1)
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the subset and of the split.")] = 0,
    *,
    run: Run,
) -> None:
    """QM9 SMILES with HOMO, LUMO and gap (eV) and a seeded 80/10/10 split, for the grammar VAE.

    Columns: string, homo, lumo, gap, qm9_index, split.
    """
    from deepatoms.workflows.datasets import build_qm9_smiles

    res = build_qm9_smiles(out_file, limit=limit, seed=seed, overwrite=run.overwrite,
                           progress=run.progress)  # fmt: skip
    s, f = res.split, res.window_fractions
    out.print(f"wrote {res.n_systems} SMILES to {out_file} (train {s['train']}, val {s['val']}, "
              f"test {s['test']})")  # fmt: skip
    out.print(
        f"design windows: lumo [-1, 0] eV {100 * f['lumo']:.1f} %, gap [4, 6] eV "
        f"{100 * f['gap']:.1f} %, both {100 * f['all']:.1f} %"
    )
    run.emit({"out": res.out, "n": res.n_systems, "split": s, "window_fractions": f})


@command(app, "polymers", run_options())
def data_polymers(
    out_file: CsvOut,
    n: Annotated[int, typer.Option("--n", "-n", help="Strings to generate.", min=1)] = 4000,
    seed: Annotated[int, typer.Option(help="Seed of the strings, labels and split.")] = 0,
    max_groups: Annotated[int, typer.Option(help="Side groups per list: 0..N.", min=0)] = 3,
    synthetic_labels: Annotated[
        bool,
        typer.Option(
            "--synthetic-labels",
            help="Add SYNTHETIC homo/lumo/gap/opt labels (eV) to exercise regressors and ICM.",
        ),
    ] = False,
    *,
    run: Run,
) -> None:
    """Generated donor–acceptor polymer strings with a seeded 80/10/10 split.

    Paper D Fig. 2 syntax and Table I building blocks; Paper D's DFT data is not available.
    """
    from deepatoms.workflows.datasets import build_polymer_strings

    res = build_polymer_strings(out_file, n=n, seed=seed, max_groups=max_groups,
                                synthetic_labels=synthetic_labels,
                                overwrite=run.overwrite)  # fmt: skip
    labels = " with SYNTHETIC labels" if synthetic_labels else ""
    out.print(
        f"wrote {res.n_systems} polymer strings ({res.unique} distinct){labels} to {out_file}"
    )
    run.emit({"out": res.out, "n": res.n_systems, "unique": res.unique, "seed": seed,
              "synthetic_labels": synthetic_labels})  # fmt: skip
