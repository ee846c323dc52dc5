"""MkDocs hook: the command-line reference page, generated from ``deepatoms ... --help``.

Every command and command group is invoked with ``--help`` (as a user would see it, 100 columns,
no colour) and the texts become ``reference/cli.md``, so the reference never drifts from the
code.
"""

from __future__ import annotations

from typing import Any


def _commands(group: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path below the click ``group``, groups before their commands."""
    ctx = type(group).context_class(group) if hasattr(group, "context_class") else None
    out = []
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        if cmd is None or getattr(cmd, "hidden", False):
            continue
        out.append((*path, name))
        if hasattr(cmd, "list_commands"):  # a group (typer may bring its own click)
            out += _commands(cmd, (*path, name))
    return out


def cli_reference() -> str:
    """The Markdown text of the command-line reference."""
    import typer
    from typer.testing import CliRunner

    from deepatoms.cli import app

    runner = CliRunner()
    env = {"COLUMNS": "100", "NO_COLOR": "1", "TERM": "dumb"}
    parts = [
        "# Command-line reference\n",
        "Generated from `deepatoms … --help` when the site is built. Every command also takes "
        "`--help`.\n",
    ]
    root = runner.invoke(app, ["--help"], env=env, terminal_width=100)
    parts.append(f"## deepatoms\n\n```text\n{root.stdout.rstrip()}\n```\n")
    for path in _commands(typer.main.get_command(app)):
        res = runner.invoke(app, [*path, "--help"], env=env, terminal_width=100)
        if res.exit_code != 0:
            raise RuntimeError(f"deepatoms {' '.join(path)} --help failed: {res.output}")
        parts.append(f"## deepatoms {' '.join(path)}\n\n```text\n{res.stdout.rstrip()}\n```\n")
    return "\n".join(parts)


def on_files(files: Any, config: Any) -> Any:
    """Add the generated ``reference/cli.md`` to the site's files."""
    from mkdocs.structure.files import File

    files.append(File.generated(config, "reference/cli.md", content=cli_reference()))
    return files
