"""``deepatoms generate gschnet``: sample molecules from a trained G-SchNet (specs/gschnet.md §8).

The command lives on ``generate_app``; ``deepatoms.cli`` adds it under the name ``generate`` with
:func:`register` (idempotent). Importing this module registers nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from deepatoms.cli_support import add_group_once
from deepatoms.core.progress import ProgressBar

# Defined before the import of deepatoms.cli below: that module imports this one at its end,
# and with `python -m deepatoms.cli` the import chain comes back here half-initialised.
generate_app = typer.Typer(
    help="Generate new molecules with a trained generative model.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    """Add the ``generate`` command group to ``app`` once."""
    add_group_once(app, generate_app, "generate")


from deepatoms.cli import (  # noqa: E402
    JsonOpt,
    OverwriteOpt,
    QuietOpt,
    _emit_json,
    _fail_cleanly,
    out,
)


@generate_app.command("gschnet")
@_fail_cleanly
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
    device: Annotated[
        str, typer.Option(help="Torch device: cpu, or cuda (a GPU) for large models.")
    ] = "cpu",
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Generate N molecules atom by atom in 3-D (Gebauer et al. 2019) and write the finished ones.

    Molecules that reach --max-atoms atoms or whose densities turn NaN are discarded and counted.
    """
    from deepatoms import __version__
    from deepatoms.generate.gschnet_sampler import generate_molecules, load_gschnet
    from deepatoms.generate.output import check_output_path, write_molecules

    if n < 1:
        raise ValueError(f"-n must be at least 1 molecule, got {n}")
    if not temperature > 0:
        raise ValueError(f"--temperature must be > 0, got {temperature}")
    if max_atoms < 2:
        raise ValueError(f"--max-atoms must be at least 2, got {max_atoms}")
    if chunk < 1:
        raise ValueError(f"--chunk must be at least 1 molecule, got {chunk}")
    check_output_path(out_file, overwrite)  # fail before the generation, not after
    net, model_file = load_gschnet(model)
    net.to(_device(device))
    with ProgressBar("generating", quiet) as bar:
        molecules, stats = generate_molecules(
            net, n, temperature=temperature, seed=seed, max_atoms=max_atoms, chunk=chunk,
            progress=bar,
        )  # fmt: skip
    metadata = {
        "generator": "deepatoms generate gschnet",
        "deepatoms_version": __version__,
        "model": str(model_file.resolve()),
        "seed": seed,
        "temperature": temperature,
        "max_atoms": max_atoms,
        "chunk": chunk,
        "device": device,
        "stats": stats,
        "units": {"positions": "Å"},
    }
    n_rows = write_molecules(
        out_file, molecules, model=str(model_file), seed=seed, temperature=temperature,
        metadata=metadata, overwrite=overwrite,
    )  # fmt: skip
    out.print(
        f"requested {stats['requested']}, finished {stats['finished']}, discarded at the "
        f"{max_atoms}-atom cap {stats['discarded_cap']}, NaN {stats['discarded_nan']} "
        f"({stats['molecules_per_minute']} molecules/minute, {stats['wall_s']} s)"
    )
    out.print(f"wrote {n_rows} molecules to {out_file}")
    if as_json:
        keys = ("seed", "temperature", "max_atoms", "chunk", "device")
        settings = {k: metadata[k] for k in keys}
        _emit_json({"out": str(out_file), "model": str(model_file), **settings, **stats})


def _device(name: str):
    """The torch device ``name``; ValueError for an unknown or unavailable one."""
    import torch

    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ValueError(f"--device {name!r} is not a torch device; use cpu or cuda") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: no CUDA GPU is available here; use --device cpu")
    return dev
