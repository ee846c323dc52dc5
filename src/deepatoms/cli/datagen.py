"""``deepatoms datagen ...``: labelled data from reference calculators (GFN2-xTB, EMT)
(``deepatoms.workflows.datagen``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from deepatoms.cli.common import (
    Run,
    Workers,
    cluster_options,
    command,
    commands,
    err,
    out,
    run_options,
)
from deepatoms.datagen.defaults import DEFAULT_ELEMENTS, DEFAULT_PROTOTYPES

app = commands("Make labelled data with a reference calculator (GFN2-xTB, EMT).")

__all__ = ["app"]


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


@command(app, "md", run_options(), cluster_options())
def datagen_md(
    out_file: Annotated[Path, typer.Option("--out", metavar="FILE.h5")],
    molecule: str | None = None, bulk: str | None = None, structure: str | None = None,
    size: int | None = None, lattice_constant: float | None = None, calculator: str | None = None,
    method: str | None = None, threads: int = 1, temperature: float = 500.0, timestep: float = 0.5,
    frames: int = 1000, stride: int = 10, equilibration: int = 1000, friction: float = 0.01,
    seed: int = 0, rattle: float = 0.0, strain: float | None = None, replicas: int = 1, *,
    run: Run, dask: Workers,
) -> None:  # fmt: skip
    """Langevin MD with a reference calculator; writes energies, forces (and stress) per frame.

    Molecules default to GFN2-xTB (tblite), bulk cells to EMT.
    Bulk frames get a random cell strain (--strain) on top of the MD snapshot, so stress varies.

    Args:
        out_file: Output dataset (.h5).
        molecule: Molecule: ASE name (CH3CH2OH), alias (ethanol, aspirin) or SMILES.
        bulk: Bulk metal or random alloy: Cu, CuNi, Cu3Au, Cu0.7Ni0.3.
        structure: Bulk lattice: fcc (default), bcc or hcp.
        size: Bulk: about this many atoms in the cell (default 32).
        lattice_constant: Bulk lattice constant a (Å) (default: ASE reference, Vegard for
            alloys).
        calculator: Reference calculator: xtb or emt (default: xtb for molecules, emt for bulk).
        method: xtb Hamiltonian: GFN2-xTB (default) or GFN1-xTB.
        threads: xtb: OpenMP threads (1 is fastest for small molecules).
        temperature: Temperature (K).
        timestep: MD time step (fs).
        frames: Frames to record.
        stride: MD steps between recorded frames.
        equilibration: MD steps before the first frame.
        friction: Langevin friction (1/fs).
        seed: Seed: conformer, alloy, velocities, noise.
        rattle: Random displacement (Å, std) added to recorded frames.
        strain: Random cell strain amplitude of recorded frames (default: 0.02 bulk, 0
            molecules).
        replicas: Independent trajectories sharing the frames (seeds seed and (seed, k)); they
            run in parallel with --workers, and a rerun continues the missing ones.
    """
    from deepatoms.workflows.datagen import reference_md

    try:
        res = reference_md(
            out_file, molecule=molecule, bulk=bulk, structure=structure, size=size,
            lattice_constant=lattice_constant, calculator=calculator, method=method,
            threads=threads, temperature=temperature, timestep=timestep, frames=frames,
            stride=stride, equilibration=equilibration, friction=friction, seed=seed,
            rattle=rattle, strain=strain, replicas=replicas, overwrite=run.overwrite,
            progress=run.progress, **dask.kwargs(),
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


@command(app, "prototypes", run_options(), cluster_options())
def datagen_prototypes(
    out_dir: Annotated[Path, typer.Option("--out", metavar="DIR")],
    elements: str = ",".join(DEFAULT_ELEMENTS), arity: str = "1,2,3",
    prototypes: str = ",".join(DEFAULT_PROTOTYPES), fmax: float = 0.01, steps: int = 500,
    optimizer: str = "bfgs", rescale: str = "volume", rattle: float = 0.0, seed: int = 0,
    limit: int | None = None, resume: Annotated[bool, typer.Option("--resume")] = False,
    flush_every: int = 50, *, run: Run, dask: Workers,
) -> None:  # fmt: skip
    """Relax ordered alloys on crystal prototypes with EMT; formation energies per atom.

    Writes initial.h5 (unrelaxed, rescaled prototypes) and relaxed.h5 (same rows) with
    formation_energy_per_atom (eV/atom) against the lowest of fcc/bcc/hcp per element. The
    default set (630 candidates) takes about half a minute on one CPU core.

    Args:
        out_dir: Output folder: initial.h5 and relaxed.h5.
        elements: EMT elements to combine, comma-separated.
        arity: Elements per candidate, comma-separated (1: elemental).
        prototypes: AFLOW labels or Strukturbericht designations (L1_2, B2) or CIF files,
            comma-separated.
        fmax: Force tolerance (eV/Å), also on stress × volume.
        steps: Maximum optimiser steps per candidate.
        optimizer: bfgs, fire or lbfgs.
        rescale: Initial cell: volume (Vegard on atomic volumes), contact or none.
        rattle: Random displacement (Å, std) of the relaxation start (0: symmetric).
        seed: Seed of the rattle.
        limit: Stop after this many new candidates (continue: --resume).
        resume: Continue the run in --out, skipping done candidates.
        flush_every: Candidates per chunk (unit of work, parallelism and writing).
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
        flush_every=flush_every, **dask.kwargs(),
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


@command(app, "scaled", run_options(overwrite=OverwriteRunOpt), cluster_options())
def datagen_scaled(
    out_file: OutOpt, molecules: Annotated[int, typer.Option()], first: int = 0,
    scales: ScalesOpt = "0.9:1.5:10", seed: SeedOpt = 0, bond_rule: str = "rdkit",
    calculator: str = "xtb", split: str = "0.8,0.1,0.1", flush_every: int = 50, *, run: Run,
    dask: Workers,
) -> None:  # fmt: skip
    """Augmented QM9: the first N QM9 molecules scaled about their centroid, GFN2-xTB labels.

    SCF failures are retried at 1,000 K and 5,000 K electronic temperature; points still
    failing are skipped and listed in the metadata.

    Args:
        molecules: Number of QM9 molecules (index order).
        first: QM9 molecules to skip first.
        bond_rule: Bond types: rdkit (bond orders) or electronegativity.
        calculator: Labeller: xtb (GFN2-xTB).
        split: train,val,test fractions of the molecules.
        flush_every: Molecules per chunk (unit of work, parallelism and resumption).
    """
    from deepatoms.workflows.datagen import scaled_qm9

    summary = scaled_qm9(
        out_file, molecules, first=first, scales=scales, seed=seed, bond_rule=bond_rule,
        calculator=calculator, split=split, flush_every=flush_every, overwrite=run.overwrite,
        progress=run.progress, **dask.kwargs(),
    )  # fmt: skip
    _report(summary, "molecules")
    if summary["seconds_per_point"] is not None:
        out.print(
            f"xTB: {summary['seconds_per_point'] * 1e3:.1f} ms per point, "
            f"{summary['retried_points']} retried at higher electronic temperature"
        )
    run.emit(summary, drop=("failures",))


@command(app, "crystal", run_options(overwrite=OverwriteRunOpt), cluster_options())
def datagen_crystal(
    out_file: OutOpt, elements: ElementsOpt = "Al,Cu", points: int = 20000, train_points: int = 8,
    cell: str = "conventional", lattice: LatticeOpt = "minimize", seed: SeedOpt = 0,
    chunk: int = 1000, *, run: Run, dask: Workers,
) -> None:  # fmt: skip
    """Infinite Crystal: fcc cells scaled isotropically, EMT energy per cell.

    Args:
        points: Scalings per element in [0.9, 1.5].
        train_points: Training points per element.
        cell: conventional (4 atoms) or primitive (1 atom).
        chunk: Cells per chunk (unit of work, parallelism and resumption).
    """
    from deepatoms.workflows.datagen import infinite_crystal

    summary = infinite_crystal(
        out_file, elements=_split(elements), points=points, train_points=train_points,
        cell=cell, lattice=lattice, seed=seed, chunk=chunk, overwrite=run.overwrite,
        progress=run.progress, **dask.kwargs(),
    )  # fmt: skip
    _report(summary, "cells")
    consts = ", ".join(f"{el} {a:.5f} Å" for el, a in summary["lattice_constants"].items())
    out.print(f"s = 1 lattice constants: {consts}")
    run.emit(summary, drop=("failures",))


@command(app, "growth", run_options(overwrite=OverwriteRunOpt), cluster_options())
def datagen_growth(
    out_file: OutOpt, elements: ElementsOpt = "Al,Cu", runs: int = 20, steps: int = 100,
    min_atoms: int = 15, max_atoms: int = 75,
    unstable: Annotated[bool, typer.Option("--unstable")] = False, unstable_runs: int = 5,
    scales: ScalesOpt = "0.9:1.5:10", seed: SeedOpt = 0, split: str = "0.6,0.2,0.2",
    split_by: str = "group", lattice: LatticeOpt = "minimize", flush_every: int = 200, *, run: Run,
    dask: Workers,
) -> None:  # fmt: skip
    """Crystal Growth: fcc clusters grown atom by atom from the 14-atom cube, EMT labels.

    Args:
        runs: Growth runs per element.
        steps: Atoms added per run.
        min_atoms: Smallest cluster kept.
        max_atoms: Largest cluster kept.
        unstable: Write the scaled (Unstable CG) set.
        unstable_runs: Unstable set: first runs per element.
        split: train,val,test fractions.
        split_by: Split by group (base cluster) or run.
        flush_every: Base clusters per chunk (unit of work, parallelism and resumption).
    """
    from deepatoms.workflows.datagen import crystal_growth

    summary = crystal_growth(
        out_file, elements=_split(elements), runs=runs, steps=steps, min_atoms=min_atoms,
        max_atoms=max_atoms, unstable=unstable, unstable_runs=unstable_runs, scales=scales,
        seed=seed, split=split, split_by=split_by, lattice=lattice, flush_every=flush_every,
        overwrite=run.overwrite, progress=run.progress, **dask.kwargs(),
    )  # fmt: skip
    _report(summary, "base clusters")
    run.emit(summary, drop=("failures",))
