"""``deepatoms generate gschnet`` as a user calls it: files written, counts, exit codes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from ase.db import connect
from ase.io import read

from cli_helpers import invoke, last_json, one_line
from deepatoms.generate.steps import ALL_PAIRS
from deepatoms.models.registry import build_model
from model_helpers import save_atomistic


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A run folder holding a tiny untrained G-SchNet as model.pt."""
    folder = tmp_path_factory.mktemp("gschnet_run")
    torch.manual_seed(0)
    model = build_model({"name": "gschnet", "n_atom_basis": 8, "n_interactions": 1,
                         "type_head": [8], "distance_head": [16]})  # fmt: skip
    save_atomistic(folder / "model.pt", model, ALL_PAIRS, "")
    return folder


def test_generate_db_and_extxyz(run_dir, tmp_path):
    db_file = tmp_path / "mols.db"
    res = invoke("generate", "gschnet", run_dir, "-n", 5, "--max-atoms", 12, "--seed", 2,
                 "--chunk", 2, "--out", db_file, "--quiet", "--json")  # fmt: skip
    summary = last_json(res.stdout)
    assert summary["requested"] == 5 and summary["seed"] == 2 and summary["temperature"] == 0.1
    assert summary["finished"] + summary["discarded_cap"] + summary["discarded_nan"] == 5
    assert summary["finished"] > 0 and summary["discarded_cap"] > 0  # this model and seed: both
    text = one_line(res.stdout)
    assert f"requested 5, finished {summary['finished']}, discarded at the 12-atom cap" in text
    assert f"wrote {summary['finished']} molecules to {db_file}" in text
    with connect(db_file) as db:
        rows = list(db.select())
        meta = db.metadata
    assert len(rows) == summary["finished"]
    assert meta["seed"] == 2 and meta["max_atoms"] == 12 and meta["stats"]["requested"] == 5
    for row in rows:
        assert row.model == str(run_dir / "model.pt") and row.seed == 2
        assert row.temperature == 0.1 and 0 <= row.index < 5 and 1 <= row.natoms <= 11
    xyz = tmp_path / "mols.xyz"
    invoke("generate", "gschnet", run_dir / "model.pt", "-n", 5, "--max-atoms", 12, "--seed", 2,
           "--chunk", 2, "--out", xyz, "--quiet")  # fmt: skip
    frames = read(xyz, ":")
    assert len(frames) == len(rows)
    for frame, row in zip(frames, rows, strict=True):  # same seed, same molecules
        assert frame.info["index"] == row.index and frame.info["seed"] == 2
        np.testing.assert_allclose(frame.positions, row.positions, atol=1e-6)
        assert list(frame.numbers) == list(row.numbers)


def test_existing_output_needs_overwrite(run_dir, tmp_path):
    out = tmp_path / "mols.db"
    out.write_text("keep me")
    res = invoke("generate", "gschnet", run_dir, "-n", 1, "--out", out, "--quiet", code=2)
    assert "already exists; pass --overwrite" in one_line(res.stderr)
    assert out.read_text() == "keep me"
    invoke("generate", "gschnet", run_dir, "-n", 1, "--max-atoms", 4, "--out", out,
           "--overwrite", "--quiet")  # fmt: skip
    with connect(out) as db:
        assert db.count() <= 1


def test_user_errors_exit_2_with_a_clear_message(run_dir, tmp_path):
    out = tmp_path / "x.db"
    cases = [
        ((tmp_path / "nowhere", "-n", 1), "does not exist; give a model file"),
        ((run_dir, "-n", 0), "-n must be at least 1"),
        ((run_dir, "-n", 2, "--temperature", 0), "--temperature must be > 0"),
        ((run_dir, "-n", 2, "--temperature", -1), "--temperature must be > 0"),
        ((run_dir, "-n", 2, "--device", "gpu0"), "is not a torch device"),
    ]
    for args, message in cases:
        res = invoke("generate", "gschnet", *args, "--out", out, "--quiet", code=2)
        assert message in one_line(res.stderr), (args, res.stderr)
    res = invoke("generate", "gschnet", run_dir, "-n", 1, "--out", tmp_path / "x.csv", code=2)
    assert "use .db (ASE database) or .xyz" in one_line(res.stderr)
    assert not out.exists()


def test_a_property_model_is_refused(tmp_path):
    model = build_model({"name": "schnet", "n_atom_basis": 8, "n_interactions": 1})
    save_atomistic(tmp_path / "model.pt", model, ALL_PAIRS, "eV")
    res = invoke("generate", "gschnet", tmp_path / "model.pt", "-n", 1, "--out",
                 tmp_path / "m.db", code=2)  # fmt: skip
    assert "is a 'schnet' model" in one_line(res.stderr)
    assert "not a G-SchNet" in one_line(res.stderr)
    (tmp_path / "junk.pt").write_text("not a model")
    res = invoke("generate", "gschnet", tmp_path / "junk.pt", "-n", 1, "--out",
                 tmp_path / "m.db", code=2)  # fmt: skip
    assert "is not a readable model file" in one_line(res.stderr)


def test_help_lists_the_command():
    res = invoke("generate", "--help")
    assert "gschnet" in res.stdout
