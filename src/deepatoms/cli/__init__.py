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

# Top-level commands first (train, cv, presets, evaluate, predict, curves, evaluate-generated,
# relax, md, vibrations, scan, screen), then the groups.
for module in (training, evaluation, simulation, screening, data, datagen, generation, vae,
               design, crystals):  # fmt: skip
    module.register(app)


def main() -> None:
    """Console-script entry point."""
    app()
