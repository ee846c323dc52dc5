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
    commands,
    number,
    out,
    output_path,
    print_notes,
    run_options,
)

app = commands("Build, import and inspect datasets.")

__all__ = ["app"]


OutArg = Annotated[
    Path | None,
    typer.Argument(help="Deprecated: use --out.", metavar="[OUT.h5]", show_default=False),
]
CsvArg = Annotated[
    Path | None,
    typer.Argument(help="Deprecated: use --out.", metavar="[OUT.csv]", show_default=False),
]
OptOut = Annotated[
    Path | None, typer.Option("--out", help="Output dataset (.h5).", metavar="OUT.h5")
]
CsvOut = Annotated[Path | None, typer.Option("--out", help="Output CSV.", metavar="OUT.csv")]


# -- molecules and structures ------------------------------------------------------------------
@command(app, "qm9", run_options())
def data_qm9(
    old_out: OutArg = None,
    out_file: OptOut = None,
    limit: int | None = None,
    seed: int = 0,
    *,
    run: Run,
) -> None:
    """Build a QM9 dataset (all 130,831 molecules, or --limit N) from the installed qm9pack data.

    Targets (eV-based units): mu, alpha, homo, lumo, gap, r2, zpve, U0, U, H, G, Cv, plus the
    atomization energies U0_atom, U_atom, H_atom, G_atom and SMILES.

    Args:
        limit: Random subset of N molecules.
        seed: Seed of the random subset.
    """
    from deepatoms.workflows.datasets import build_qm9

    out_file = output_path(out_file, old_out, "OUT.h5")
    res = build_qm9(out_file, limit=limit, seed=seed, overwrite=run.overwrite,
                    progress=run.progress)  # fmt: skip
    out.print(f"wrote {res.n_systems} molecules ({res.n_atoms} atoms) to {out_file}")
    run.emit(res)


@command(app, "import", run_options())
def data_import(
    paths: Annotated[list[Path], typer.Argument(metavar="FILES...")],
    out_file: Annotated[Path | None, typer.Option("--out", metavar="OUT.h5")] = None,
    append: Annotated[bool, typer.Option("--append")] = False,
    energy_key: str | None = None,
    forces_key: str | None = None,
    stress_key: str | None = None,
    energy_unit: str = "eV",
    length_unit: str = "Å",
    skip_bad_rows: Annotated[bool, typer.Option("--skip-bad-rows")] = False,
    *,
    run: Run,
) -> None:
    """Import structures and their labels from ASE-readable files into one dataset file.

    The declared energy, forces and stress are stored as 'energy' (eV), 'forces' (eV/Å) and
    'stress' (eV/Å³), converted from the given units, e.g. a MACE-style file in Hartree and bohr:
    deepatoms data import train.extxyz --out train.h5 --energy-key REF_energy
    --forces-key REF_forces --energy-unit Ha --length-unit bohr

    Args:
        paths: Input files (extxyz, xyz, ASE db, CIF, …). Giving the output .h5 as the last
            of them still works but is deprecated: use --out.
        out_file: Output dataset (.h5).
        append: Add to an existing dataset.
        energy_key: Label holding the total energy (default: the file's 'energy').
        forces_key: Per-atom label holding the forces (default: the file's 'forces').
        stress_key: Label holding the stress (default: the file's 'stress').
        energy_unit: Unit of the energies in the files: eV, meV, Ha, Ry, kcal/mol or kJ/mol.
        length_unit: Unit of positions and cells in the files: Å, bohr or nm.
        skip_bad_rows: Leave out unusable structures (NaN values, coincident atoms, …) and list
            them, instead of refusing the import.
    """
    from deepatoms.workflows.datasets import import_structures

    inputs = list(paths)
    if out_file is None:
        if len(inputs) < 2 or Path(inputs[-1]).suffix not in (".h5", ".hdf5"):
            raise ValueError("give the output dataset with --out OUT.h5")
        *inputs, out_file = inputs
        print_notes(["the output as the last argument is deprecated; use --out OUT.h5"],
                    "warning")  # fmt: skip
    res = import_structures(
        inputs, out_file, append=append, overwrite=run.overwrite, progress=run.progress,
        energy_key=energy_key, forces_key=forces_key, stress_key=stress_key,
        energy_unit=energy_unit, length_unit=length_unit, skip_bad_rows=skip_bad_rows,
    )  # fmt: skip
    verb = "appended" if append else "wrote"
    units = ", ".join(f"{k} [{u}]" for k, u in res.units.items() if k in res.properties)
    out.print(f"{verb} {res.n_systems} structures with properties {res.properties} to {out_file}")
    if units:
        out.print(f"units: {units}")
    print_notes(res.notes)
    run.emit(res, drop=("notes", "appended"))


@command(app, "md17", run_options())
def data_md17(
    npz: Annotated[Path, typer.Argument(metavar="NPZ")],
    out_file: OutOpt,
    limit: int | None = None,
    seed: int | None = None,
    units: str = "kcal/mol",
    *,
    run: Run,
) -> None:
    """Import an MD17-style .npz trajectory (energies → eV, forces → eV/Å).

    Args:
        npz: MD17 or rMD17 trajectory (.npz).
        limit: Keep N frames (default: all).
        seed: With --limit: a seeded random subset, else the first N.
        units: Energy unit of the file: kcal/mol (MD17, rMD17) or eV.
    """
    from deepatoms.workflows.datasets import import_md17

    res = import_md17(npz, out_file, limit=limit, seed=seed, units=units, overwrite=run.overwrite)
    out.print(
        f"wrote {res.n_systems} frames of {res.n_atoms} atoms (energy, forces in eV) to {out_file}"
    )
    run.emit(res)


@command(app, "info", run_options(overwrite=False))
def data_info(
    file: Annotated[Path, typer.Argument(metavar="FILE.h5")],
    *,
    run: Run,
) -> None:
    """Summarise a dataset: sizes, elements, properties with units and statistics, provenance.

    Args:
        file: Dataset file (.h5).
    """
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
    csvs: Annotated[list[Path], typer.Argument(metavar="CSV...")], out_file: OutOpt,
    cif_column: str = "cif", id_column: str | None = None, *, rows: dict, filters: Any, run: Run,
) -> None:  # fmt: skip
    """Import crystals from CSV files of CIFs (MP-20, Perov-5, carbon sets) into one dataset.

    Several files are concatenated; each crystal records its file in the string columns
    source_file (path) and split_hint (file stem, e.g. train/val/test) for stratified splits.
    Numeric columns become float64 labels (formation_energy_per_atom, heat_ref in eV/atom,
    band_gap in eV, ...); n_elements and reduced_formula are added.

    Args:
        csvs: CSV files with one CIF per row (e.g. train/val/test).
        cif_column: Column holding the CIF text.
        id_column: Identifier column (default: material_id if present).
    """
    from deepatoms.workflows.crystal_data import import_cif_csv

    res = import_cif_csv(csvs, out_file, cif_column=cif_column, id_column=id_column, **rows,
                         filters=filters, overwrite=run.overwrite, progress=run.progress)  # fmt: skip
    _report_crystals(res, run)


@command(app, "cif-folder", _rows(True), _filters(True), run_options())
def data_cif_folder(
    folder: Annotated[Path, typer.Argument(metavar="DIR")],
    labels: Annotated[Path, typer.Option(metavar="CSV")], out_file: OutOpt, id_column: str = "id",
    *, rows: dict, filters: Any, run: Run,
) -> None:  # fmt: skip
    """Import a folder of CIF files with their labels from a CSV (file stem → labels).

    Args:
        folder: Folder of <id>.cif files.
        labels: CSV with one row per CIF: the file stem and the labels.
        id_column: Labels column holding the CIF file stem.
    """
    from deepatoms.workflows.crystal_data import import_cif_folder

    res = import_cif_folder(folder, labels, out_file, id_column=id_column, **rows,
                            filters=filters, overwrite=run.overwrite,
                            progress=run.progress)  # fmt: skip
    _report_crystals(res, run)


@command(app, "mp-json", _rows(False), _filters(False), run_options())
def data_mp_json(
    json_file: Annotated[Path, typer.Argument(metavar="FILE")],
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

    Args:
        json_file: Materials Project / OQMD JSON export.
    """
    from deepatoms.workflows.crystal_data import import_mp_json

    res = import_mp_json(json_file, out_file, **rows, filters=filters, overwrite=run.overwrite,
                         progress=run.progress)  # fmt: skip
    _report_crystals(res, run)


# -- generative models ---------------------------------------------------------------------------
@command(app, "qm9-generative", run_options())
def data_qm9_generative(
    out_file: OutOpt, limit: Annotated[int | None, typer.Option(min=1)] = None,
    first: Annotated[int | None, typer.Option(min=1)] = None,
    max_gap: Annotated[float | None, typer.Option(metavar="EV")] = None,
    where: Annotated[str | None, typer.Option(metavar="COND")] = None,
    no_small_rings: Annotated[bool, typer.Option("--no-small-rings")] = False,
    n_train: Annotated[str | None, typer.Option(metavar="N")] = None,
    n_val: Annotated[str | None, typer.Option(metavar="N")] = None,
    n_test: Annotated[str | None, typer.Option(metavar="N")] = None, split_seed: int = 0,
    seed: int = 0, *, run: Run,
) -> None:  # fmt: skip
    """Prepare QM9 for G-SchNet: centred, sorted, bonds perceived, seeded split.

    Molecules are centred on the centre of mass, atoms sorted by distance to it, bonds perceived (RDKit, charge 0), invalid molecules dropped and counted, canonical
    SMILES and a seeded train/val/test 'split' column stored with the data.

    Args:
        limit: Seeded random subset of N molecules.
        first: The first N molecules by QM9 index.
        max_gap: Keep molecules with HOMO-LUMO gap < EV.
        where: Property conditions, e.g. 'gap<4.5' or 'gap<5 and mu>1' (eV, Debye …).
        no_small_rings: Drop molecules with 3- or 4-membered rings.
        n_train: Training molecules (count or fraction). Default 50000; the rest for filtered
            subsets.
        n_val: Validation molecules. Default 5000; 2000 with --no-small-rings; 500 for filtered
            subsets.
        n_test: Test molecules (default: the rest).
        split_seed: Seed of the split.
        seed: Seed of the --limit subset.
    """
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
    old_out: CsvArg = None,
    out_file: CsvOut = None,
    limit: Annotated[int | None, typer.Option(min=1)] = None,
    seed: int = 0,
    *,
    run: Run,
) -> None:
    """QM9 SMILES with HOMO, LUMO and gap (eV) and a seeded 80/10/10 split, for the grammar VAE.

    Columns: string, homo, lumo, gap, qm9_index, split.

    Args:
        limit: Seeded random subset of N molecules.
        seed: Seed of the subset and of the split.
    """
    from deepatoms.workflows.datasets import build_qm9_smiles

    out_file = output_path(out_file, old_out, "OUT.csv")
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
    old_out: CsvArg = None,
    out_file: CsvOut = None,
    n: Annotated[int, typer.Option("--n", "-n", min=1)] = 4000,
    seed: int = 0,
    max_groups: Annotated[int, typer.Option(min=0)] = 3,
    synthetic_labels: Annotated[bool, typer.Option("--synthetic-labels")] = False,
    *,
    run: Run,
) -> None:
    """Generated donor–acceptor polymer strings with a seeded 80/10/10 split.

    Paper D Fig. 2 syntax and Table I building blocks; Paper D's DFT data is not available.

    Args:
        n: Strings to generate.
        seed: Seed of the strings, labels and split.
        max_groups: Side groups per list: 0..N.
        synthetic_labels: Add SYNTHETIC homo/lumo/gap/opt labels (eV) to exercise regressors and
            ICM.
    """
    from deepatoms.workflows.datasets import build_polymer_strings

    out_file = output_path(out_file, old_out, "OUT.csv")
    res = build_polymer_strings(out_file, n=n, seed=seed, max_groups=max_groups,
                                synthetic_labels=synthetic_labels,
                                overwrite=run.overwrite)  # fmt: skip
    labels = " with SYNTHETIC labels" if synthetic_labels else ""
    out.print(
        f"wrote {res.n_systems} polymer strings ({res.unique} distinct){labels} to {out_file}"
    )
    run.emit({"out": res.out, "n": res.n_systems, "unique": res.unique, "seed": seed,
              "synthetic_labels": synthetic_labels})  # fmt: skip
