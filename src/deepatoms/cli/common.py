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

import copy
import functools
import inspect
import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from deepatoms.core.files import json_ready

__all__ = [
    "BatchOpt",
    "DeviceOpt",
    "Group",
    "JsonOpt",
    "OutOpt",
    "OverwriteOpt",
    "QuietOpt",
    "Run",
    "SetOpt",
    "command",
    "commands",
    "emit_json",
    "err",
    "fail_cleanly",
    "number",
    "out",
    "output_path",
    "print_notes",
    "split_docstring",
    "training_verb",
]

out = Console(highlight=False, soft_wrap=True, markup=False)
err = Console(stderr=True, highlight=False)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print a JSON result as the last line.")]
QuietOpt = Annotated[
    bool,
    typer.Option("--quiet", "-q", "--no-progress", help="No progress bars (results still print)."),
]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace an existing output file.")]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a config value, e.g. --set train.lr=1e-4 (repeatable)."),
]
DeviceOpt = Annotated[
    str, typer.Option(help="Torch device: cpu, or cuda (a GPU) for large models.")
]
BatchOpt = Annotated[int, typer.Option("--batch-size", help="Systems per model batch.", min=1)]
OutOpt = Annotated[Path, typer.Option("--out", help="Output dataset (.h5).", metavar="FILE.h5")]


WorkersOpt = Annotated[
    int,
    typer.Option(
        "--workers", min=1, metavar="N",
        help="Run the chunks on N local Dask worker processes (1: in this process).",
    ),
]  # fmt: skip
SchedulerOpt = Annotated[
    str | None,
    typer.Option(
        "--scheduler", metavar="ADDRESS",
        help="Run the chunks on the Dask cluster at tcp://HOST:8786 (or a scheduler file).",
    ),
]  # fmt: skip


def commands(help: str | None = None) -> typer.Typer:
    """The commands of one module: a group named in :mod:`deepatoms.cli` when ``help`` is given
    (``deepatoms data …``), else top-level commands (``deepatoms train``)."""
    return typer.Typer(help=help, no_args_is_help=help is not None)


@dataclass(frozen=True)
class Run:
    """The options commands share: ``--overwrite``, ``--quiet``, ``--json`` and ``--device``."""

    overwrite: bool = False
    quiet: bool = False
    as_json: bool = False
    device: str = "cpu"

    @property
    def progress(self) -> bool:
        """Whether to show progress bars."""
        return not self.quiet

    def emit(self, obj: Mapping[str, Any], drop: tuple[str, ...] = ("notes", "warnings")) -> None:
        """With ``--json``: ``obj`` without the keys ``drop`` as the last line of stdout."""
        if self.as_json:
            emit_json({k: v for k, v in obj.items() if k not in drop})


class Group:
    """Options that several commands share, handed to each command as one value.

    ``options``: parameter name → (``Annotated`` typer type, default); ``build`` turns the
    parsed values (keyword arguments) into what the command receives as ``name``.
    """

    def __init__(self, name: str, build: Callable[..., Any], **options: tuple[Any, Any]) -> None:
        self.name, self.build, self.options = name, build, options

    def parameters(self) -> list[inspect.Parameter]:
        kind = inspect.Parameter.KEYWORD_ONLY
        return [inspect.Parameter(n, kind, annotation=t, default=d)
                for n, (t, d) in self.options.items()]  # fmt: skip


@dataclass(frozen=True)
class Workers:
    """Where chunked work runs: ``--workers N`` (a local Dask cluster) or ``--scheduler``."""

    workers: int = 1
    scheduler: str | None = None

    def kwargs(self) -> dict[str, Any]:
        """``workers=…, scheduler=…`` for the library function."""
        return {"workers": self.workers, "scheduler": self.scheduler}


def cluster_options() -> Group:
    """The :class:`Workers` group: ``--workers`` and ``--scheduler``."""
    return Group("dask", Workers, workers=(WorkersOpt, 1), scheduler=(SchedulerOpt, None))


def run_options(overwrite: Any = True, quiet: bool = True, device: bool = False) -> Group:
    """The :class:`Run` group: ``--json`` and, when asked, ``--device``, ``--overwrite`` (True,
    or an ``Annotated`` option with the command's own help) and ``--quiet``."""
    options: dict[str, tuple[Any, Any]] = {}
    if device:
        options["device"] = (DeviceOpt, "cpu")
    if overwrite is True:
        options["overwrite"] = (OverwriteOpt, False)
    elif overwrite:
        options["overwrite"] = (overwrite, False)
    if quiet:
        options["quiet"] = (QuietOpt, False)
    options["as_json"] = (JsonOpt, False)
    return Group("run", Run, **options)


def command(app: typer.Typer, name: str, *groups: Group) -> Callable[[Callable], Callable]:
    """Register ``fn`` as the command ``name`` of ``app``.

    The help of each argument and option is written once, in the ``Args:`` section of the
    function's docstring (Google style; the section is not shown as the command's help). A
    parameter without typer metadata becomes an argument (no default) or an option; one with
    ``Annotated[T, typer.Option(...)]`` keeps its settings (flag names, metavar, limits) and
    gets the help from the docstring unless it has its own. Expected user errors exit with one
    line (:func:`fail_cleanly`). Each group's options are added to the command's own; the
    command receives the group's built value as the parameter named like the group (e.g.
    ``run: Run`` for :func:`run_options`).
    """

    def decorate(fn: Callable) -> Callable:
        sig = inspect.signature(fn, eval_str=True)
        names = {g.name for g in groups}
        missing = names - set(sig.parameters)
        if missing:
            raise TypeError(f"{fn.__name__} lacks the parameter(s) {sorted(missing)}")
        summary, helps = split_docstring(fn.__doc__ or "")
        unknown = set(helps) - set(sig.parameters)
        if unknown:
            raise TypeError(f"{fn.__name__}: Args: names no parameter {sorted(unknown)}")
        own = [_with_help(p, helps.get(p.name)) for p in sig.parameters.values()
               if p.name not in names]  # fmt: skip
        params = [*own, *(p for g in groups for p in g.parameters())]

        @functools.wraps(fn)
        def wrapper(**kwargs: Any) -> Any:
            for g in groups:
                kwargs[g.name] = g.build(**{n: kwargs.pop(n) for n in g.options})
            return fn(**kwargs)

        wrapper.__signature__ = sig.replace(  # type: ignore[attr-defined]
            parameters=[p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in params]
        )
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        return app.command(name, help=summary)(fail_cleanly(wrapper))

    return decorate


def split_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """(the text before ``Args:``, {parameter: help}) of a Google-style docstring; an entry is
    ``name: text`` indented under ``Args:``, continued on more deeply indented lines."""
    lines = inspect.cleandoc(doc).splitlines()
    if "Args:" not in lines:
        return "\n".join(lines), {}
    start = lines.index("Args:")
    helps: dict[str, str] = {}
    current = None
    for line in lines[start + 1 :]:
        if not line.strip():
            current = None
            continue
        indent = len(line) - len(line.lstrip())
        if indent == 4 and ":" in line:
            current, _, text = line.strip().partition(":")
            helps[current] = text.strip()
        elif indent > 4 and current is not None:
            helps[current] += " " + line.strip()
        else:
            break
    return "\n".join(lines[:start]).rstrip(), helps


def _with_help(param: inspect.Parameter, help: str | None) -> inspect.Parameter:
    """``param`` with typer metadata carrying ``help`` (kept if it has its own)."""
    if help is None:
        return param
    ann = param.annotation
    meta = getattr(ann, "__metadata__", ())
    info = next((m for m in meta if isinstance(m, typer.models.ParameterInfo)), None)
    if info is None:
        make = typer.Argument if param.default is inspect.Parameter.empty else typer.Option
        return param.replace(annotation=Annotated[ann, make(help=help)])
    if info.help:
        return param
    info = copy.copy(info)
    info.help = help
    kept = tuple(info if isinstance(m, typer.models.ParameterInfo) else m for m in meta)
    return param.replace(annotation=Annotated[(ann.__origin__, *kept)])


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


def training_verb(summary: Mapping[str, Any]) -> str:
    """How a training run ended, for its first line ("finished", "resumed and finished", or
    "already finished:" after printing why and how to continue)."""
    if summary.get("already_finished"):
        print_notes([summary["note"]])
        return "already finished:"
    return "resumed and finished" if summary.get("resumed") else "finished"


def output_path(option: Path | None, positional: Path | None, metavar: str) -> Path:
    """The output named by ``--out`` (or, deprecated, by the older positional argument)."""
    if option is not None and positional is not None:
        raise ValueError(f"give the output once, with --out {metavar}")
    if positional is not None:
        print_notes([f"the output as an argument is deprecated; use --out {positional}"],
                    "warning")  # fmt: skip
        return positional
    if option is None:
        raise ValueError(f"give the output with --out {metavar}")
    return option
