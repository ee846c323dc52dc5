"""`deepatoms datagen scaled | crystal | growth` as a user calls them: bad arguments refused
before any work, JSON summaries, continuing a run and refusing other settings."""

from __future__ import annotations

import pytest

from cli_helpers import invoke, last_json, one_line
from deepatoms.data.dataset import read_dataset


@pytest.mark.parametrize(
    "args, message",
    [
        (["scaled", "--molecules", "0"], "--molecules must be a whole number ≥ 1, got 0"),
        (["scaled", "--molecules", "2", "--first", "-1"], "--first must be a whole number ≥ 0"),
        (["scaled", "--molecules", "200000"], "exceeds the 130,831 molecules of qm9pack"),
        (["scaled", "--molecules", "2", "--scales", "0.9:1.5:0"], "count must be at least 1"),
        (["scaled", "--molecules", "2", "--scales", "0,1"], "must be a positive finite number"),
        (["scaled", "--molecules", "2", "--split", "0.5,0.1"], "--split takes three fractions"),
        (["scaled", "--molecules", "2", "--bond-rule", "vsepr"], "unknown bond rule 'vsepr'"),
        (["scaled", "--molecules", "2", "--calculator", "emt"], "labels come from GFN2-xTB"),
        (["crystal", "--elements", "Al,H"], "H are not metals"),
        (["crystal", "--elements", "Al,Fe"], "EMT has no parameters for Fe"),
        (["crystal", "--points", "5"], "leaves no validation and test points"),
        (["crystal", "--cell", "hexagonal"], "unknown --cell 'hexagonal'"),
        (["crystal", "--lattice", "guess"], "unknown --lattice 'guess'"),
        (["growth", "--min-atoms", "10"], "--min-atoms must be a whole number ≥ 15"),
        (["growth", "--max-atoms", "14"], "--max-atoms must be a whole number ≥ 15"),
        (["growth", "--steps", "5", "--min-atoms", "30"], "exceeds the largest cluster (19 atoms"),
        (["growth", "--unstable", "--runs", "2"], "--unstable-runs 5 exceeds --runs 2"),
        (["growth", "--split-by", "size"], "unknown --split-by 'size'"),
    ],
)
def test_bad_arguments_are_refused_before_any_work(tmp_path, args, message):
    out = tmp_path / "x.h5"
    res = invoke("datagen", *args, "--out", out, "--no-progress", code=2)
    assert message in one_line(res.stderr)
    assert not out.exists()


def test_crystal_command_continues_and_refuses_other_settings(tmp_path):
    out = tmp_path / "cu.h5"
    args = ["datagen", "crystal", "--elements", "Cu", "--points", "12", "--train-points", "3"]
    res = invoke(*args, "--out", out, "--no-progress", "--json")
    summary = last_json(res.stdout)
    assert summary["n_samples"] == 12 and summary["complete"] and summary["n_new"] == 12
    assert "s = 1 lattice constants: Cu 3.5898" in res.stdout
    again = last_json(invoke(*args, "--out", out, "--no-progress", "--json").stdout)
    assert (again["n_new"], again["n_skipped"], again["n_samples"]) == (0, 12, 12)
    res = invoke(*args[:-1], "4", "--out", out, "--no-progress", code=2)
    msg = one_line(res.stderr)
    assert "cannot continue" in msg and "train_points: 3 (saved) vs 4" in msg
    invoke(*args[:-1], "4", "--out", out, "--no-progress", "--overwrite")
    data, meta = read_dataset(out)
    assert meta["provenance"]["settings"]["train_points"] == 4
    assert (data.system_props["split"] == "train").sum() == 4


def test_scaled_and_growth_commands_write_datasets(tmp_path):
    out = tmp_path / "aug.h5"
    res = invoke(
        "datagen",
        "scaled",
        "--molecules",
        "1",
        "--first",
        "4",
        "--scales",
        "0.9:1.1:3",
        "--out",
        out,
        "--no-progress",
        "--json",
    )
    summary = last_json(res.stdout)
    assert summary["n_samples"] == 3 and summary["bond_types"] == ["single", "double", "triple"]
    assert "ms per point" in res.stdout
    data, _ = read_dataset(out)
    assert data.system_props["qm9_index"].tolist() == [5, 5, 5]
    out = tmp_path / "cg.h5"
    res = invoke(
        "datagen",
        "growth",
        "--elements",
        "Al",
        "--runs",
        "1",
        "--steps",
        "3",
        "--unstable",
        "--unstable-runs",
        "1",
        "--scales",
        "1,1.2",
        "--out",
        out,
        "--no-progress",
        "--json",
    )
    summary = last_json(res.stdout)
    assert summary["kind"] == "unstable" and summary["n_samples"] == 6
