"""docs/python-api.md runs: its Python blocks are executed in order, in an empty folder."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "python-api.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_the_tutorial_has_code_to_run():
    blocks = python_blocks(DOC.read_text(encoding="utf-8"))
    assert len(blocks) >= 6
    code = "\n".join(blocks)
    for call in (
        "build_qm9",
        "fit(",
        "evaluate(",
        "predict(",
        "Calculator(",
        "molecular_dynamics(",
    ):
        assert call in code, call


def test_python_api_tutorial_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "tutorial"}
    for i, block in enumerate(python_blocks(DOC.read_text(encoding="utf-8"))):
        try:
            exec(compile(block, f"{DOC.name} block {i + 1}", "exec"), namespace)
        except Exception as exc:  # name the block that failed
            pytest.fail(f"block {i + 1} of {DOC.name} failed: {type(exc).__name__}: {exc}\n{block}")
    out = capsys.readouterr().out
    assert "500 molecules" in out
    assert (tmp_path / "runs" / "u0" / "model.pt").is_file()
    assert (tmp_path / "runs" / "cu" / "model.pt").is_file()
    assert (tmp_path / "cu.traj").is_file()
    # the numbers the tutorial prints are real: predictions are finite energies in eV
    pred = namespace["pred"]
    assert pred.unit == "eV" and len(pred.predicted) == 3
    assert all(abs(v) < 1e5 for v in pred.predicted)
