"""How commands are declared (``deepatoms.cli.common.command``): help from the docstring's
``Args:`` section, option groups, and every option of every command documented."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pytest
import typer
import typer.main
from typer.testing import CliRunner

from deepatoms.cli import app
from deepatoms.cli.common import Group, Run, command, commands, run_options, split_docstring


def _leaves(cmd, path=()):
    if hasattr(cmd, "commands"):
        for name, sub in sorted(cmd.commands.items()):
            yield from _leaves(sub, (*path, name))
    else:
        yield " ".join(path), cmd


def test_every_argument_and_option_of_every_command_has_help():
    missing = [
        f"{name}: {p.name}"
        for name, cmd in _leaves(typer.main.get_command(app))
        for p in cmd.params
        if not (getattr(p, "help", None) or "").strip()
    ]
    assert not missing, "parameters without help (add them to the Args: section):\n" + "\n".join(
        missing
    )


def test_split_docstring_reads_google_style_args():
    doc = """Do a thing.

    More about it.

    Args:
        first: The first
            value, continued.
        second: Second (Å).
    """
    summary, helps = split_docstring(doc)
    assert summary == "Do a thing.\n\nMore about it."
    assert helps == {"first": "The first value, continued.", "second": "Second (Å)."}
    assert split_docstring("Only a summary.") == ("Only a summary.", {})


def _demo() -> typer.Typer:
    """A command group with a second command (so typer keeps the command names)."""
    demo = commands("demo")

    @command(demo, "other")
    def other() -> None:
        """Another command."""

    return demo


def test_help_comes_from_the_docstring_and_groups_arrive_as_one_value(tmp_path):
    demo = _demo()
    seen = {}
    pair = Group("pair", lambda a, b: (a, b), a=(Annotated[int, typer.Option(help="A.")], 1),
                 b=(Annotated[int, typer.Option(help="B.")], 2))  # fmt: skip

    @command(demo, "go", pair, run_options())
    def go(
        path: Path,
        scale: float = 1.0,
        out_file: Annotated[Path | None, typer.Option("--out", metavar="FILE")] = None,
        *,
        pair: tuple,
        run: Run,
    ) -> None:
        """Go somewhere.

        Args:
            path: Where to go.
            scale: How far (Å).
            out_file: Where to write.
        """
        seen.update(path=path, scale=scale, out=out_file, pair=pair, run=run)

    runner = CliRunner()
    res = runner.invoke(demo, ["go", "--help"])
    text = " ".join(res.output.split())
    assert res.exit_code == 0
    for expected in ("Go somewhere.", "Where to go.", "How far (Å).", "--out", "FILE",
                     "Where to write.", "--overwrite", "--quiet", "--json"):  # fmt: skip
        assert expected in text, expected
    assert "Args:" not in text
    res = runner.invoke(demo, ["go", str(tmp_path), "--scale", "2", "--a", "5", "-q", "--json"])
    assert res.exit_code == 0, res.output
    assert seen["path"] == tmp_path and seen["scale"] == 2.0 and seen["out"] is None
    assert seen["pair"] == (5, 2)
    assert seen["run"] == Run(overwrite=False, quiet=True, as_json=True)


def test_a_docstring_naming_an_unknown_parameter_is_refused():
    demo = _demo()
    with pytest.raises(TypeError, match="names no parameter"):

        @command(demo, "bad")
        def bad(x: int = 1) -> None:
            """Bad.

            Args:
                y: Not a parameter.
            """


def test_a_user_error_is_one_line_and_exit_status_2():
    demo = _demo()

    @command(demo, "fail")
    def fail(x: int = 1) -> None:
        """Fail.

        Args:
            x: Anything.
        """
        raise ValueError(f"x = {x} is wrong; use another")

    res = CliRunner().invoke(demo, ["fail", "--x", "3"])
    assert res.exit_code == 2
    assert "error: x = 3 is wrong; use another" in " ".join(res.output.split())
