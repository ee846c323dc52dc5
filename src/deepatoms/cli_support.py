"""Shared pieces of the ``deepatoms`` command modules: consoles, common options, error handling,
JSON output and idempotent registration of command groups and commands.

Every CLI module takes these from here (``deepatoms.cli`` re-exports them under its older
private names), so a command module need not import ``deepatoms.cli``, which imports the
command modules at its end. Conventions (DESIGN.md, CLI): ``--json`` prints one
machine-readable line as the last stdout line; an expected user error prints one
``error: …`` line to stderr and exits with status 2; outputs are never replaced unless
``--overwrite`` is given.
"""

from __future__ import annotations

import functools
import json
import math
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

__all__ = [
    "JsonOpt",
    "OverwriteOpt",
    "QuietOpt",
    "add_group_once",
    "check_new_output",
    "emit_json",
    "err",
    "fail_cleanly",
    "has_command",
    "number",
    "out",
]

out = Console(highlight=False, soft_wrap=True, markup=False)
err = Console(stderr=True, highlight=False)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print a JSON result as the last line.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace an existing output file.")]


def fail_cleanly(fn):
    """Turn expected user errors into one 'error: …' line and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (ValueError, FileNotFoundError, KeyError, OSError) as exc:
            msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            err.print(f"[bold red]error:[/] {msg}", markup=True)
            raise typer.Exit(2) from None

    return wrapper


def emit_json(obj: dict) -> None:
    """Print ``obj`` as one JSON line on stdout (non-finite floats become null)."""

    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v

    sys.stdout.write(json.dumps(clean(obj)) + "\n")
    sys.stdout.flush()


def number(text: str | None, name: str) -> int | float | None:
    """'1000' → 1000, '0.8' → 0.8 (fraction), None → None."""
    if text is None:
        return None
    try:
        v = float(text)
    except ValueError:
        raise ValueError(f"{name} must be a count or a fraction, got {text!r}") from None
    return int(v) if v >= 1 and v == int(v) else v


def check_new_output(path: Path, overwrite: bool, hint: str = "") -> None:
    """Refuse to replace an existing file unless asked to."""
    if path.exists() and not overwrite:
        raise ValueError(f"{path} already exists; pass --overwrite to replace it{hint}")


def add_group_once(app: typer.Typer, group: typer.Typer, name: str | None = None) -> None:
    """Add the typer ``group`` to ``app`` (as ``name``; None: its commands at the top level)
    unless it is already there."""
    if not any(g.typer_instance is group for g in app.registered_groups):
        app.add_typer(group, name=name)


def has_command(app: typer.Typer, name: str) -> bool:
    """True if ``app`` already has a command called ``name``."""
    return any(getattr(c, "name", None) == name for c in app.registered_commands)
