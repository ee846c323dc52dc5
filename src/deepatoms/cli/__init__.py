"""The ``deepatoms`` command line: one module per command group, each a thin layer that parses
arguments, calls one function of :mod:`deepatoms.workflows` and prints what it returned.

Every command has ``--help``; ``--json`` makes the last stdout line a machine-readable result;
errors in user input print one clear line to stderr and exit with status 2
(:mod:`deepatoms.cli.common`).
"""

from __future__ import annotations

import typer

from deepatoms.cli import (
    crystals,
    data,
    datagen,
    design,
    evaluation,
    generation,
    screening,
    simulation,
    training,
    vae,
)

__all__ = ["app", "main"]

app = typer.Typer(
    help="deepatoms: deep learning for molecules and materials — train, evaluate and use "
    "property models, potentials and generative models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

#: Each module's commands: top-level (None) or a named group, in the order of ``--help``.
MODULES = (
    (training, None),  # train, cv, presets, learn
    (evaluation, None),  # evaluate, predict, curves, evaluate-generated
    (simulation, None),  # relax, md, vibrations, scan
    (screening, None),  # screen
    (data, "data"),
    (datagen, "datagen"),
    (generation, "generate"),
    (vae, "vae"),
    (design, "design"),
    (crystals, "crystals"),
)
for _module, _name in MODULES:
    app.add_typer(_module.app, name=_name)


def main() -> None:
    """Console-script entry point."""
    app()
