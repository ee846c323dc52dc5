"""Helpers shared by the command-line tests: invoke the app in-process and read its output."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from deepatoms.cli import app


def invoke(*args, code: int = 0):
    """Run ``deepatoms ARGS`` in-process; assert the exit code (0 by default)."""
    res = CliRunner().invoke(app, [str(a) for a in args])
    assert res.exit_code == code, f"{args}: exit {res.exit_code}\n{res.stdout}\n{res.stderr}"
    return res


def last_json(text: str) -> dict:
    """The JSON object on the last line of ``text`` (the ``--json`` result)."""
    return json.loads(text.strip().splitlines()[-1])


def one_line(text: str) -> str:
    """``text`` with all whitespace runs collapsed (rich wraps long messages)."""
    return " ".join(text.split())
