"""``deepatoms datagen ...``: labelled data from reference calculators (GFN2-xTB, EMT)
(``deepatoms.workflows.datagen``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from deepatoms.cli.common import (
    Run,
    command,
    err,
    out,
    run_options,
)
from deepatoms.datagen.defaults import DEFAULT_ELEMENTS, DEFAULT_PROTOTYPES

app = typer.Typer(
    help="Make labelled data with a reference calculator (GFN2-xTB, EMT).", no_args_is_help=True
)

__all__ = ["app", "register"]


def register(main: typer.Typer) -> None:
    """Add the ``datagen`` group to ``main``."""
    main.add_typer(app, name="datagen")


def _split(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


_SHOWN = 5  # failures printed
_SHOWN_IDS = 10  # unconverged ids printed

OutOpt = Annotated[Path, typer.Option("--out", help="Output dataset (.h5).", metavar="FILE.h5")]
SeedOpt = Annotated[int, typer.Option(help="Seed (split; growth runs).")]
ScalesOpt = Annotated[
    str, typer.Option(help="Scaling factors s: lo:hi:n (linspace) or a comma list.")
]
ElementsOpt = Annotated[str, typer.Option(help="fcc metals with EMT parameters, comma-separated.")]
LatticeOpt = Annotated[
    str,
    typer.Option(help="s = 1 lattice constant: minimize (EMT minimum) or fixed (4.05/3.61 Å)."),
]
OverwriteRunOpt = Annotated[
    bool, typer.Option("--overwrite", help="Start again instead of continuing the run in --out.")
]


def _report(summary: dict[str, Any], what: str) -> None:
    failures = summary["failures"]
    state = "complete" if summary["complete"] else "INCOMPLETE (run the same command again)"
    again = f", {summary['n_skipped']} already there" if summary.get("n_skipped") else ""
    out.print(
        f"wrote {summary['n_samples']} samples ({summary['n_new']} {what} computed now{again}) "
        f"to {summary['out']}, {state}, in {summary['wall_time_s']:.1f} s"
    )
    if failures:
        more = f" … and {len(failures) - _SHOWN} more" if len(failures) > _SHOWN else ""
        shown = "; ".join(
            f"group {f['group']} s={f['scale']}: {f['reason']}" for f in failures[:_SHOWN]
        )
        err.print(f"warning: {len(failures)} point(s) skipped (metadata 'failures'): {shown}{more}")


@command(app, "md", run_options())
def datagen_md(
    out_file: Annotated[
        Path, typer.Option("--out", help="Output dataset (.h5).", metavar="FILE.h5")
    ],
    molecule: Annotated[
        str | None,
        typer.Option(help="Molecule: ASE name (CH3CH2OH), alias (ethanol, aspirin) or SMILES."),
    ] = None,
    bulk: Annotated[
        str | None, typer.Option(help="Bulk metal or random alloy: Cu, CuNi, Cu3Au, Cu0.7Ni0.3.")
    ] = None,
    structure: Annotated[
        str | None, typer.Option(help="Bulk lattice: fcc (default), bcc or hcp.")
    ] = None,
    size: Annotated[
        int | None, typer.Option(help="Bulk: about this many atoms in the cell (default 32).")
    ] = None,
    lattice_constant: Annotated[
        float | None,
        typer.Option(
            help="Bulk lattice constant a (Å) (default: ASE reference, Vegard for alloys)."
        ),
    ] = None,
    calculator: Annotated[
        str | None,
        typer.Option(
            help="Reference calculator: xtb or emt (default: xtb for molecules, emt for bulk)."
        ),
    ] = None,
    method: Annotated[
        str | None, typer.Option(help="xtb Hamiltonian: GFN2-xTB (default) or GFN1-xTB.")
    ] = None,
    threads: Annotated[
        int, typer.Option(help="xtb: OpenMP threads (1 is fastest for small molecules).")
    ] = 1,
    temperature: Annotated[float, typer.Option(help="Temperature (K).")] = 500.0,
    timestep: Annotated[float, typer.Option(help="MD time step (fs).")] = 0.5,
    frames: Annotated[int, typer.Option(help="Frames to record.")] = 1000,
    stride: Annotated[int, typer.Option(help="MD steps between recorded frames.")] = 10,
    equilibration: Annotated[int, typer.Option(help="MD steps before the first frame.")] = 1000,
    friction: Annotated[float, typer.Option(help="Langevin friction (1/fs).")] = 0.01,
    seed: Annotated[int, typer.Option(help="Seed: conformer, alloy, velocities, noise.")] = 0,
    rattle: Annotated[
        float, typer.Option(help="Random displacement (Å, std) added to recorded frames.")
    ] = 0.0,
    strain: Annotated[
        float | None,
        typer.Option(
            help="Random cell strain amplitude of recorded frames (default: 0.02 bulk, 0 molecules)."
        ),
    ] = None,
    *,
    run: Run,
) -> None:
    """Langevin MD with a reference calculator; writes energies, forces (and stress) per frame.

    Molecules default to GFN2-xTB (tblite), bulk cells to EMT.
    Bulk frames get a random cell strain (--strain) on top of the MD snapshot, so stress varies.
    """
    from deepatoms.workflows.datagen import reference_md

    try:
        res = reference_md(
            out_file, molecule=molecule, bulk=bulk, structure=structure, size=size,
            lattice_constant=lattice_constant, calculator=calculator, method=method,
            threads=threads, temperature=temperature, timestep=timestep, frames=frames,
            stride=stride, equilibration=equilibration, friction=friction, seed=seed,
            rattle=rattle, strain=strain, overwrite=run.overwrite, progress=run.progress,
        )  # fmt: skip
    except RuntimeError as exc:  # the reference calculator failed (e.g. no SCF convergence)
        err.print(f"[bold red]error:[/] {exc}", markup=True)
        raise typer.Exit(1) from None
    out.print(
        f"wrote {res.n_systems} frames of {res.formula} ({res.n_atoms} atoms) with "
        f"{res.properties} from {res.method} at {temperature:g} K to {out_file} in "
        f"{res.wall_time_s:.1f} s (mean kinetic T {res.mean_kinetic_temperature_K:.0f} K)"
    )
    run.emit(res)


@command(app, "prototypes", run_options())
def datagen_prototypes(
    out_dir: Annotated[
        Path,
        typer.Option("--out", help="Output folder: initial.h5 and relaxed.h5.", metavar="DIR"),
    ],
    elements: Annotated[
        str, typer.Option(help="EMT elements to combine, comma-separated.")
    ] = ",".join(DEFAULT_ELEMENTS),
    arity: Annotated[
        str, typer.Option(help="Elements per candidate, comma-separated (1: elemental).")
    ] = "1,2,3",
    prototypes: Annotated[
        str,
        typer.Option(
            help="AFLOW labels or Strukturbericht designations (L1_2, B2) or CIF files, "
            "comma-separated."
        ),
    ] = ",".join(DEFAULT_PROTOTYPES),
    fmax: Annotated[
        float, typer.Option(help="Force tolerance (eV/Å), also on stress × volume.")
    ] = 0.01,
    steps: Annotated[int, typer.Option(help="Maximum optimiser steps per candidate.")] = 500,
    optimizer: Annotated[str, typer.Option(help="bfgs, fire or lbfgs.")] = "bfgs",
    rescale: Annotated[
        str,
        typer.Option(help="Initial cell: volume (Vegard on atomic volumes), contact or none."),
    ] = "volume",
    rattle: Annotated[
        float,
        typer.Option(help="Random displacement (Å, std) of the relaxation start (0: symmetric)."),
    ] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed of the rattle.")] = 0,
    limit: Annotated[
        int | None, typer.Option(help="Stop after this many new candidates (continue: --resume).")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run in --out, skipping done candidates.")
    ] = False,
    *,
    run: Run,
) -> None:
    """Relax ordered alloys on crystal prototypes with EMT; formation energies per atom.

    Writes initial.h5 (unrelaxed, rescaled prototypes) and relaxed.h5 (same rows) with
    formation_energy_per_atom (eV/atom) against the lowest of fcc/bcc/hcp per element. The
    default set (630 candidates) takes about half a minute on one CPU core.
    """
    from deepatoms.workflows.datagen import prototype_set

    try:
        arities = [int(x) for x in _split(arity)]
    except ValueError:
        raise ValueError(f"--arity takes whole numbers such as 1,2,3; got {arity!r}") from None
    summary = prototype_set(
        out_dir, elements=_split(elements), arities=arities, prototypes=_split(prototypes),
        fmax=fmax, steps=steps, optimizer=optimizer, rescale=rescale, rattle=rattle, seed=seed,
        limit=limit, resume=resume, overwrite=run.overwrite, progress=run.progress,
    )  # fmt: skip
    skipped = f", {summary['n_skipped']} already there" if summary["n_skipped"] else ""
    state = "complete" if summary["complete"] else "INCOMPLETE (continue with --resume)"
    out.print(
        f"wrote {summary['n_new']} candidates{skipped}: {summary['n_written']} of "
        f"{summary['n_candidates']} in {summary['files']['initial']} and "
        f"{summary['files']['relaxed']}, {state}, in {summary['wall_time_s']:.1f} s"
    )
    refs = ", ".join(
        f"{el} {r['structure'] or r['prototype']} {r['energy_per_atom']:+.4f}"
        for el, r in summary["references"].items()
    )
    out.print(f"elemental references (eV/atom): {refs}")
    for kind in ("unconverged", "failed"):
        ids = summary[kind]
        if ids:
            more = f" … and {len(ids) - _SHOWN_IDS} more" if len(ids) > _SHOWN_IDS else ""
            err.print(
                f"warning: {len(ids)} relaxation(s) {kind} (kept, marked converged=False): "
                f"{', '.join(ids[:_SHOWN_IDS])}{more}"
            )
    run.emit(summary)


@command(app, "scaled", run_options(overwrite=OverwriteRunOpt))
def datagen_scaled(
    out_file: OutOpt,
    molecules: Annotated[int, typer.Option(help="Number of QM9 molecules (index order).")],
    first: Annotated[int, typer.Option(help="QM9 molecules to skip first.")] = 0,
    scales: ScalesOpt = "0.9:1.5:10",
    seed: SeedOpt = 0,
    bond_rule: Annotated[
        str, typer.Option(help="Bond types: rdkit (bond orders) or electronegativity.")
    ] = "rdkit",
    calculator: Annotated[str, typer.Option(help="Labeller: xtb (GFN2-xTB).")] = "xtb",
    split: Annotated[
        str, typer.Option(help="train,val,test fractions of the molecules.")
    ] = "0.8,0.1,0.1",
    flush_every: Annotated[int, typer.Option(help="Molecules between writes.")] = 50,
    *,
    run: Run,
) -> None:
    """Augmented QM9: the first N QM9 molecules scaled about their centroid, GFN2-xTB labels.

    SCF failures are retried at 1,000 K and 5,000 K electronic temperature; points still
    failing are skipped and listed in the metadata.
    """
    from deepatoms.workflows.datagen import scaled_qm9

    summary = scaled_qm9(
        out_file, molecules, first=first, scales=scales, seed=seed, bond_rule=bond_rule,
        calculator=calculator, split=split, flush_every=flush_every, overwrite=run.overwrite,
        progress=run.progress,
    )  # fmt: skip
    _report(summary, "molecules")
    if summary["seconds_per_point"] is not None:
        out.print(
            f"xTB: {summary['seconds_per_point'] * 1e3:.1f} ms per point, "
            f"{summary['retried_points']} retried at higher electronic temperature"
        )
    run.emit(summary, drop=("failures",))


@command(app, "crystal", run_options(overwrite=OverwriteRunOpt))
def datagen_crystal(
    out_file: OutOpt,
    elements: ElementsOpt = "Al,Cu",
    points: Annotated[int, typer.Option(help="Scalings per element in [0.9, 1.5].")] = 20000,
    train_points: Annotated[int, typer.Option(help="Training points per element.")] = 8,
    cell: Annotated[
        str, typer.Option(help="conventional (4 atoms) or primitive (1 atom).")
    ] = "conventional",
    lattice: LatticeOpt = "minimize",
    seed: SeedOpt = 0,
    *,
    run: Run,
) -> None:
    """Infinite Crystal: fcc cells scaled isotropically, EMT energy per cell."""
    from deepatoms.workflows.datagen import infinite_crystal

    summary = infinite_crystal(
        out_file, elements=_split(elements), points=points, train_points=train_points,
        cell=cell, lattice=lattice, seed=seed, overwrite=run.overwrite, progress=run.progress,
    )  # fmt: skip
    _report(summary, "element curves")
    consts = ", ".join(f"{el} {a:.5f} Å" for el, a in summary["lattice_constants"].items())
    out.print(f"s = 1 lattice constants: {consts}")
    run.emit(summary, drop=("failures",))


@command(app, "growth", run_options(overwrite=OverwriteRunOpt))
def datagen_growth(
    out_file: OutOpt,
    elements: ElementsOpt = "Al,Cu",
    runs: Annotated[int, typer.Option(help="Growth runs per element.")] = 20,
    steps: Annotated[int, typer.Option(help="Atoms added per run.")] = 100,
    min_atoms: Annotated[int, typer.Option(help="Smallest cluster kept.")] = 15,
    max_atoms: Annotated[int, typer.Option(help="Largest cluster kept.")] = 75,
    unstable: Annotated[
        bool, typer.Option("--unstable", help="Write the scaled (Unstable CG) set.")
    ] = False,
    unstable_runs: Annotated[int, typer.Option(help="Unstable set: first runs per element.")] = 5,
    scales: ScalesOpt = "0.9:1.5:10",
    seed: SeedOpt = 0,
    split: Annotated[str, typer.Option(help="train,val,test fractions.")] = "0.6,0.2,0.2",
    split_by: Annotated[str, typer.Option(help="Split by group (base cluster) or run.")] = (
        "group"
    ),
    lattice: LatticeOpt = "minimize",
    flush_every: Annotated[int, typer.Option(help="Base clusters between writes.")] = 200,
    *,
    run: Run,
) -> None:
    """Crystal Growth: fcc clusters grown atom by atom from the 14-atom cube, EMT labels."""
    from deepatoms.workflows.datagen import crystal_growth

    summary = crystal_growth(
        out_file, elements=_split(elements), runs=runs, steps=steps, min_atoms=min_atoms,
        max_atoms=max_atoms, unstable=unstable, unstable_runs=unstable_runs, scales=scales,
        seed=seed, split=split, split_by=split_by, lattice=lattice, flush_every=flush_every,
        overwrite=run.overwrite, progress=run.progress,
    )  # fmt: skip
    _report(summary, "base clusters")
    run.emit(summary, drop=("failures",))
