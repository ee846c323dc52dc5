"""``deepatoms generate gschnet``: sample molecules from a trained G-SchNet
(``deepatoms.workflows.generation``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from deepatoms.cli.common import (
    Run,
    command,
    out,
    run_options,
)

app = typer.Typer(
    help="Generate new molecules with a trained generative model.", no_args_is_help=True
)

__all__ = ["app", "register"]


def register(main: typer.Typer) -> None:
    """Add the ``generate`` group to ``main``."""
    main.add_typer(app, name="generate")


@command(app, "gschnet", run_options(device=True))
def gschnet_command(
    model: Annotated[
        Path, typer.Argument(help="G-SchNet model file (model.pt) or run folder.", metavar="MODEL")
    ],
    n: Annotated[int, typer.Option("-n", "--n", help="Molecules to generate (attempts).")],
    out_file: Annotated[
        Path,
        typer.Option(
            "--out", help="Output: ASE database (.db) or extended XYZ (.xyz).", metavar="FILE"
        ),
    ],
    temperature: Annotated[
        float, typer.Option(help="Temperature T > 0 of the position distribution (Eq. 5).")
    ] = 0.1,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same set.")] = 0,
    max_atoms: Annotated[
        int, typer.Option(help="Discard molecules that reach this many atoms.")
    ] = 35,
    chunk: Annotated[int, typer.Option(help="Molecules generated together.")] = 1000,
    *,
    run: Run,
) -> None:
    """Generate N molecules atom by atom in 3-D (Gebauer et al. 2019) and write the finished ones.

    Molecules that reach --max-atoms atoms or whose densities turn NaN are discarded and counted.
    """
    from deepatoms.workflows.generation import generate_gschnet

    res = generate_gschnet(model, n, out_file, temperature=temperature, seed=seed,
                           max_atoms=max_atoms, chunk=chunk, device=run.device, overwrite=run.overwrite,
                           progress=run.progress)  # fmt: skip
    out.print(
        f"requested {res.requested}, finished {res.finished}, discarded at the "
        f"{max_atoms}-atom cap {res.discarded_cap}, NaN {res.discarded_nan} "
        f"({res.molecules_per_minute} molecules/minute, {res.wall_s} s)"
    )
    out.print(f"wrote {res.written} molecules to {out_file}")
    run.emit(res, drop=("written",))
