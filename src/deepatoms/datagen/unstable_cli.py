"""``deepatoms datagen scaled | crystal | growth``: the VIMPNN datasets (specs/vimpnn.md §8).

:func:`register` adds the three commands to ``deepatoms.datagen.cli.datagen_app`` (called once
at the end of that module; importing this module registers nothing). Every command continues an
interrupted run when given the same ``--out`` and settings (``--overwrite`` starts again).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from deepatoms.cli import JsonOpt, _emit_json, _fail_cleanly, err, out
from deepatoms.core.progress import ProgressBar

__all__ = ["register"]

_SHOWN = 5  # failures printed

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
NoProgressOpt = Annotated[bool, typer.Option("--no-progress", help="No progress bar.")]


def _report(summary: dict[str, Any], what: str, failures: list[dict[str, Any]]) -> None:
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


def _failures(path: Path) -> list[dict[str, Any]]:
    from deepatoms.data.dataset import dataset_info

    return list(dataset_info(path)["metadata"].get("failures", [])) if path.exists() else []


def register(datagen_app: typer.Typer) -> None:
    """Add the ``scaled``, ``crystal`` and ``growth`` commands to ``datagen_app``."""

    @datagen_app.command("scaled")
    @_fail_cleanly
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
        overwrite: OverwriteRunOpt = False,
        no_progress: NoProgressOpt = False,
        as_json: JsonOpt = False,
    ) -> None:
        """Augmented QM9: the first N QM9 molecules scaled about their centroid, GFN2-xTB labels.

        SCF failures are retried at 1,000 K and 5,000 K electronic temperature; points still
        failing are skipped and listed in the metadata.
        """
        from deepatoms.datagen.scaled_qm9 import generate_scaled_qm9

        with ProgressBar("molecules", no_progress) as bar:
            summary = generate_scaled_qm9(
                out_file,
                molecules=molecules,
                first=first,
                scales=scales,
                seed=seed,
                bond_rule=bond_rule,
                calculator=calculator,
                split=split,
                flush_every=flush_every,
                overwrite=overwrite,
                progress=bar,
            )
        _report(summary, "molecules", _failures(out_file))
        if summary["seconds_per_point"] is not None:
            out.print(
                f"xTB: {summary['seconds_per_point'] * 1e3:.1f} ms per point, "
                f"{summary['retried_points']} retried at higher electronic temperature"
            )
        if as_json:
            _emit_json(summary)

    @datagen_app.command("crystal")
    @_fail_cleanly
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
        overwrite: OverwriteRunOpt = False,
        no_progress: NoProgressOpt = False,
        as_json: JsonOpt = False,
    ) -> None:
        """Infinite Crystal: fcc cells scaled isotropically, EMT energy per cell."""
        from deepatoms.datagen.infinite_crystal import generate_infinite_crystal

        with ProgressBar("cells", no_progress) as bar:
            summary = generate_infinite_crystal(
                out_file,
                elements=_split_list(elements),
                points=points,
                train_points=train_points,
                cell=cell,
                lattice=lattice,
                seed=seed,
                overwrite=overwrite,
                progress=bar,
            )
        _report(summary, "element curves", _failures(out_file))
        consts = ", ".join(f"{el} {a:.5f} Å" for el, a in summary["lattice_constants"].items())
        out.print(f"s = 1 lattice constants: {consts}")
        if as_json:
            _emit_json(summary)

    @datagen_app.command("growth")
    @_fail_cleanly
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
        unstable_runs: Annotated[
            int, typer.Option(help="Unstable set: first runs per element.")
        ] = 5,
        scales: ScalesOpt = "0.9:1.5:10",
        seed: SeedOpt = 0,
        split: Annotated[str, typer.Option(help="train,val,test fractions.")] = "0.6,0.2,0.2",
        split_by: Annotated[str, typer.Option(help="Split by group (base cluster) or run.")] = (
            "group"
        ),
        lattice: LatticeOpt = "minimize",
        flush_every: Annotated[int, typer.Option(help="Base clusters between writes.")] = 200,
        overwrite: OverwriteRunOpt = False,
        no_progress: NoProgressOpt = False,
        as_json: JsonOpt = False,
    ) -> None:
        """Crystal Growth: fcc clusters grown atom by atom from the 14-atom cube, EMT labels."""
        from deepatoms.datagen.growth import generate_growth

        with ProgressBar("clusters", no_progress) as bar:
            summary = generate_growth(
                out_file,
                elements=_split_list(elements),
                runs=runs,
                steps=steps,
                min_atoms=min_atoms,
                max_atoms=max_atoms,
                unstable=unstable,
                unstable_runs=unstable_runs,
                scales=scales,
                seed=seed,
                split=split,
                split_by=split_by,
                lattice=lattice,
                flush_every=flush_every,
                overwrite=overwrite,
                progress=bar,
            )
        _report(summary, "base clusters", _failures(out_file))
        if as_json:
            _emit_json(summary)


def _split_list(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]
