"""``deepatoms generate gschnet``: sample molecules from a trained G-SchNet
(``deepatoms.workflows.generation``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from deepatoms.cli.common import Run, Workers, cluster_options, command, commands, out, run_options

app = commands("Generate new molecules with a trained generative model.")

__all__ = ["app"]


@command(app, "gschnet", run_options(device=True), cluster_options())
def gschnet_command(
    model: Annotated[Path, typer.Argument(metavar="MODEL")],
    n: Annotated[int, typer.Option("-n", "--n")],
    out_file: Annotated[Path, typer.Option("--out", metavar="FILE")], temperature: float = 0.1,
    seed: int = 0, max_atoms: int = 35, chunk: int = 1000, *, run: Run, dask: Workers,
) -> None:  # fmt: skip
    """Generate N molecules atom by atom in 3-D (Gebauer et al. 2019) and write the finished ones.

    Molecules that reach --max-atoms atoms or whose densities turn NaN are discarded and counted.

    Args:
        model: G-SchNet model file (model.pt) or run folder.
        n: Molecules to generate (attempts).
        out_file: Output: ASE database (.db) or extended XYZ (.xyz).
        temperature: Temperature T > 0 of the position distribution (Eq. 5).
        seed: Random seed; the same seed gives the same set.
        max_atoms: Discard molecules that reach this many atoms.
        chunk: Molecules generated together, with their own seed (the unit of --workers and of
            continuing after a kill).
    """
    from deepatoms.workflows.generation import generate_gschnet

    res = generate_gschnet(model, n, out_file, temperature=temperature, seed=seed,
                           max_atoms=max_atoms, chunk=chunk, device=run.device, overwrite=run.overwrite,
                           progress=run.progress, **dask.kwargs())  # fmt: skip
    out.print(
        f"requested {res.requested}, finished {res.finished}, discarded at the "
        f"{max_atoms}-atom cap {res.discarded_cap}, NaN {res.discarded_nan} "
        f"({res.molecules_per_minute} molecules/minute, {res.wall_s} s)"
    )
    out.print(f"wrote {res.written} molecules to {out_file}")
    run.emit(res, drop=("written",))
