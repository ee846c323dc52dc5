"""``deepatoms screen``: rank hypothetical crystals of given compositions with a trained model
(``deepatoms.workflows.screening``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from deepatoms.cli.common import Run, Workers, cluster_options, command, commands, out, run_options

app = commands()

__all__ = ["app"]


_SHOWN = 20  # compositions printed


def _ints(text: str | None, name: str) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"{name} takes whole numbers such as 2 or 2,3; got {text!r}") from None


@command(app, "screen", run_options(device=True), cluster_options())
def screen_command(
    model: Annotated[Path, typer.Argument(metavar="MODEL")],
    out_dir: Annotated[Path, typer.Option("--out", metavar="DIR")], elements: str | None = None,
    arity: str | None = None, stoichiometry: str | None = None, formula: list[str] | None = None,
    prototypes: list[str] | None = None, max_atoms: Annotated[int, typer.Option(min=1)] = 8,
    rescale: str = "volume", window: float = 0.05, top: Annotated[int, typer.Option(min=0)] = 3,
    chunk: Annotated[int, typer.Option(min=1)] = 10_000,
    batch_size: Annotated[int, typer.Option(min=1)] = 100, per_atom: str = "auto",
    reference: Annotated[Path | None, typer.Option(metavar="FILE.h5")] = None,
    reference_column: str = "formation_energy_per_atom",
    threads: Annotated[int | None, typer.Option(min=1)] = None, *, run: Run, dask: Workers,
) -> None:  # fmt: skip
    """Rank hypothetical crystals (prototype × elements) per composition with a model.

    Predicts the energy per atom of every substitution of the elements onto the species sites
    of the prototypes, ranks the candidates of each composition and flags those within --window
    of the lowest for DFT.

    Example: deepatoms screen run/ --elements Al,Cu,Ni --arity 2 --out screen/

    Args:
        model: Model file (model.pt) or run folder.
        out_dir: Output folder: ranking.csv, best.db, screen.json.
        elements: Elements to combine, comma-separated: Al,Cu,Ni.
        arity: Elements per candidate, e.g. 2 or 2,3 (default 2, or from --stoichiometry).
        stoichiometry: Only these site stoichiometries, e.g. AB,AB3 (order-insensitive).
        formula: Explicit compositions instead of --elements: CuAu,Cu3Au (repeatable).
        prototypes: 'aflow' (pymatgen's 288 AFLOW prototypes), AFLOW labels or Strukturbericht
            designations (L1_2, B2), or CIF files; comma-separated or repeated (default aflow).
        max_atoms: Largest prototype cell (atoms).
        rescale: Cell size of a candidate: volume (sum of elemental atomic volumes), contact
            (touching atomic spheres) or none (prototype's cell).
        window: Flag candidates within this of the ML minimum (eV/atom).
        top: Best candidates per composition in best.db.
        chunk: Candidates per prediction chunk (bounds memory; the unit of --workers and of
            continuing an interrupted screen).
        batch_size: Systems per inference batch.
        per_atom: auto: predictions are per atom if the model's unit ends in /atom or its
            readout is the mean, else divided by the atom count; yes; no.
        reference: Dataset with candidate_id and reference energies (e.g. relaxed.h5 of
            `deepatoms datagen prototypes`): reports the ground-state gap ΔE.
        reference_column: Energy column (eV/atom) of --reference.
        threads: CPU threads for the model (default: torch's).
    """
    from deepatoms.workflows.screening import screen

    summary = screen(
        model, out_dir, elements=elements, arity=_ints(arity, "--arity"),
        stoichiometry=stoichiometry, formula=formula or None, prototypes=prototypes or ["aflow"],
        max_atoms=max_atoms, rescale=rescale, window=window, top=top, chunk=chunk,
        batch_size=batch_size, per_atom=per_atom, reference=reference,
        reference_column=reference_column, threads=threads, overwrite=run.overwrite,
        progress=run.progress, device=run.device, **dask.kwargs(),
    )  # fmt: skip
    _report(summary)
    run.emit({k: v for k, v in summary.items() if k != "ground_states" or len(v) <= 1000})


def _report(summary: dict[str, Any]) -> None:
    info = summary["model"]
    out.print(
        f"screened {summary['n_candidates']} candidates of {summary['n_compositions']} "
        f"compositions on {summary['n_prototypes']} prototypes with {info['property']} "
        f"({info['unit']}): {summary['n_flagged']} within {summary['window_eV_per_atom']:g} "
        f"eV/atom of their composition's minimum"
    )
    rows = summary["ground_states"]
    for r in rows[:_SHOWN]:
        out.print(
            f"  {r['composition']:<12} {r['energy']:+.4f} eV/atom  {r['candidate_id']}  "
            f"({r['n_flagged']} of {r['n_candidates']} flagged)"
        )
    if len(rows) > _SHOWN:
        out.print(f"  … {len(rows) - _SHOWN} more compositions in ranking.csv")
    gs = summary.get("ground_state")
    if gs:
        out.print(
            f"ground state vs {gs['reference']}: {gs['n_correct']} of {gs['n_compositions']} "
            f"compositions correct (random guess {gs['random_expectation']:.1f}); ΔE mean "
            f"{gs['mad'] * 1000:.1f}, max {gs['max_delta_e'] * 1000:.1f} meV/atom"
        )
    files = summary["files"]
    out.print(
        f"wrote {files['ranking.csv']}, {files['best.db']} ({summary['n_best_rows']} structures) "
        f"and {files['screen.json']} in {summary['wall_time_s']:.1f} s"
    )
