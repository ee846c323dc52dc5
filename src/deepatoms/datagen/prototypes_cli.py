"""``deepatoms datagen prototypes``: EMT formation energies of alloys on crystal prototypes.

Registers the command on ``deepatoms.datagen.cli.datagen_app`` when imported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from deepatoms.cli import JsonOpt, OverwriteOpt, _emit_json, _fail_cleanly, err, out
from deepatoms.core.progress import ProgressBar
from deepatoms.datagen.cli import datagen_app
from deepatoms.datagen.prototypes import DEFAULT_ELEMENTS, DEFAULT_PROTOTYPES

_SHOWN = 10  # unconverged ids printed


def _split(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


@datagen_app.command("prototypes")
@_fail_cleanly
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
    overwrite: OverwriteOpt = False,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bar.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Relax ordered alloys on crystal prototypes with EMT; formation energies per atom.

    Writes initial.h5 (unrelaxed, rescaled prototypes) and relaxed.h5 (same rows) with
    formation_energy_per_atom (eV/atom) against the lowest of fcc/bcc/hcp per element. The
    default set (630 candidates) takes about half a minute on one CPU core.
    """
    from deepatoms.datagen.prototypes import generate_prototype_set

    try:
        arities = [int(x) for x in _split(arity)]
    except ValueError:
        raise ValueError(f"--arity takes whole numbers such as 1,2,3; got {arity!r}") from None
    with ProgressBar("relaxations", no_progress) as bar:
        summary = generate_prototype_set(
            out_dir,
            elements=_split(elements),
            arities=arities,
            prototypes=_split(prototypes),
            fmax=fmax,
            steps=steps,
            optimizer=optimizer,
            rescale=rescale,
            rattle=rattle,
            seed=seed,
            resume=resume,
            overwrite=overwrite,
            limit=limit,
            progress=bar,
        )
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
            more = f" … and {len(ids) - _SHOWN} more" if len(ids) > _SHOWN else ""
            err.print(
                f"warning: {len(ids)} relaxation(s) {kind} (kept, marked converged=False): "
                f"{', '.join(ids[:_SHOWN])}{more}"
            )
    if as_json:
        _emit_json(summary)
