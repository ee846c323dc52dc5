"""What every command module shares: consoles, common options, error handling and ``--json``.

Conventions of the command line:

- a command parses its arguments, calls one library function (``deepatoms.workflows``) and
  prints what it returned; nothing outside ``deepatoms.cli`` imports this package;
- ``--json`` prints one machine-readable line as the last line of stdout;
- an expected user error (a bad value, a missing or unreadable file) prints one ``error: …``
  line to stderr and exits with status 2; progress bars go to stderr too;
- no output is replaced unless ``--overwrite`` is given.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Mapping
from typing import Annotated, Any

import typer
from rich.console import Console

from deepatoms.core.files import json_ready

__all__ = [
    "BatchOpt",
    "DeviceOpt",
    "JsonOpt",
    "OverwriteOpt",
    "QuietOpt",
    "SetOpt",
    "emit_json",
    "err",
    "fail_cleanly",
    "number",
    "out",
    "print_notes",
]

out = Console(highlight=False, soft_wrap=True, markup=False)
err = Console(stderr=True, highlight=False)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print a JSON result as the last line.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", "--no-progress", help="No progress bars.")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace an existing output file.")]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a config value, e.g. --set train.lr=1e-4 (repeatable)."),
]
DeviceOpt = Annotated[
    str, typer.Option(help="Torch device: cpu, or cuda (a GPU) for large models.")
]
BatchOpt = Annotated[int, typer.Option("--batch-size", help="Systems per model batch.", min=1)]


def fail_cleanly(fn: Callable) -> Callable:
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


def emit_json(obj: Mapping[str, Any]) -> None:
    """Print ``obj`` as one JSON line on stdout (non-finite floats become null)."""
    sys.stdout.write(json.dumps(json_ready(dict(obj))) + "\n")
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


def print_notes(notes: list[str], kind: str = "note") -> None:
    """Print each of ``notes`` as a ``note: …`` (or ``warning: …``) line on stderr."""
    for text in notes:
        err.print(f"{kind}: {text}", markup=False, highlight=False)
