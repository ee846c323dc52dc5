"""The command line as a user calls it, on tiny data."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

EXE = str(Path(sys.executable).parent / "deepatoms")
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "molecules.xyz"


def run(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([EXE, *args], capture_output=True, text=True, timeout=600)
    if ok and proc.returncode != 0:
        raise AssertionError(f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def last_json(proc: subprocess.CompletedProcess) -> dict:
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def workflow(tmp_path_factory):
    """data qm9 → train → evaluate → predict, as in the README."""
    d = tmp_path_factory.mktemp("cli")
    h5 = d / "q.h5"
    made = last_json(run("data", "qm9", str(h5), "--limit", "120", "--seed", "2", "-q", "--json"))
    trained = last_json(
        run(
            "train", "--preset", "schnet-fast", "--data", str(h5), "--target", "U0",
            "--out", str(d / "run"), "--max-epochs", "2", "--n-train", "80", "--n-val", "20",
            "--seed", "1", "--set", "model.n_atom_basis=16", "--set", "model.n_interactions=1",
            "-q", "--json",
        )
    )  # fmt: skip
    return d, h5, made, trained


def test_every_command_has_help():
    """The installed executable answers --help; every (sub)command documents itself."""
    from typer.testing import CliRunner

    from deepatoms.cli import app

    assert "Usage" in run("--help").stdout
    for cmd in (
        ["data"], ["data", "qm9"], ["data", "import"], ["data", "md17"], ["data", "info"],
        ["datagen"], ["datagen", "md"], ["train"], ["evaluate"], ["predict"], ["presets"],
        ["relax"], ["md"], ["vibrations"], ["scan"], ["cv"], ["screen"],
        ["data", "cif-csv"], ["data", "cif-folder"], ["data", "mp-json"], ["datagen", "prototypes"],
        ["data", "qm9-smiles"], ["data", "polymers"], ["vae"], ["vae", "train"],
        ["vae", "regress"], ["vae", "evaluate"], ["vae", "sample"], ["design"], ["design", "run"],
        ["design", "check"], ["design", "baselines"], ["crystals"], ["crystals", "train"],
        ["crystals", "voxelize"], ["crystals", "encode"], ["crystals", "decode"],
        ["crystals", "sample"], ["crystals", "interpolate"], ["crystals", "alter"],
        ["crystals", "evaluate"],
    ):  # fmt: skip
        res = CliRunner().invoke(app, [*cmd, "--help"])
        assert res.exit_code == 0 and "Usage" in res.output, cmd


def test_data_qm9_and_info(workflow):
    _, h5, made, _ = workflow
    assert made["n_systems"] == 120
    info = last_json(run("data", "info", str(h5), "--json"))
    assert info["n_systems"] == 120
    text = run("data", "info", str(h5)).stdout
    u0_line = next(ln for ln in text.splitlines() if ln.strip().startswith("U0 "))
    assert "[eV]" in u0_line  # units are shown, not eaten as terminal markup


def test_train_evaluate_predict(workflow):
    d, h5, _, trained = workflow
    assert trained["epochs"] == 2 and trained["target"] == "U0" and trained["unit"] == "eV"
    assert (d / "run" / "model.pt").is_file()
    res = last_json(run("evaluate", str(d / "run"), "--data", str(h5), "--json"))
    assert res["split"] == "test" and res["n"] == 20 and res["unit"] == "eV"
    assert res["mae"] > 0 and res["rmse"] >= res["mae"]
    assert Path(res["plot"]).is_file()
    out_csv = d / "pred.csv"
    pred = last_json(
        run("predict", str(d / "run" / "model.pt"), str(EXAMPLES), "--out", str(out_csv), "--json")
    )
    assert pred["n"] == 7
    rows = list(csv.DictReader(out_csv.open()))
    assert len(rows) == 7 and rows[1]["formula"] == "C6H6"
    assert float(rows[0]["U0 [eV]"]) < 0
    assert not (d / "pred_forces.csv").exists()  # U0 was not trained on forces: no forces
    # an existing CSV is replaced only with --overwrite; an input is never replaced
    again = run("predict", str(d / "run"), str(EXAMPLES), "--out", str(out_csv), "-q", ok=False)
    assert again.returncode == 2 and "already exists; pass --overwrite" in " ".join(
        again.stderr.split()
    )
    run("predict", str(d / "run"), str(EXAMPLES), "--out", str(out_csv), "-q", "--overwrite")
    assert len(list(csv.DictReader(out_csv.open()))) == 7
    copy = d / "inputs.xyz"
    copy.write_bytes(EXAMPLES.read_bytes())
    refused = run("predict", str(d / "run"), str(copy), "--out", str(copy), ok=False)
    assert refused.returncode == 2 and "is one of the input files" in " ".join(
        refused.stderr.split()
    )
    assert copy.read_bytes() == EXAMPLES.read_bytes()


def test_import_then_train_on_imported_data(tmp_path):
    from ase.build import molecule
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import write

    frames = []
    for k, name in enumerate(["H2O", "NH3", "CH4", "C2H6", "CH3OH", "HCN"] * 3):
        a = molecule(name)
        a.rattle(0.01, seed=k)
        a.calc = SinglePointCalculator(a, energy=-1.0 * len(a) - 0.1 * k)
        frames.append(a)
    write(tmp_path / "frames.extxyz", frames)
    h5 = tmp_path / "imp.h5"
    res = last_json(run("data", "import", str(tmp_path / "frames.extxyz"), str(h5), "-q", "--json"))
    assert res["n_systems"] == 18 and "energy" in res["properties"]
    again = run("data", "import", str(tmp_path / "frames.extxyz"), str(h5), "-q", ok=False)
    assert again.returncode == 2 and "--overwrite" in again.stderr and "--append" in again.stderr
    run("data", "import", str(tmp_path / "frames.extxyz"), str(h5), "-q", "--append")
    assert last_json(run("data", "info", str(h5), "--json"))["n_systems"] == 36
    run("data", "import", str(tmp_path / "frames.extxyz"), str(h5), "-q", "--overwrite")
    trained = last_json(
        run(
            "train", "--preset", "schnet-fast", "--data", str(h5), "--target", "energy",
            "--out", str(tmp_path / "r"), "--max-epochs", "1", "--n-train", "12", "--n-val", "3",
            "--set", "model.n_atom_basis=8", "-q", "--json",
        )
    )  # fmt: skip
    assert trained["n_test"] == 3


@pytest.mark.parametrize(
    "args, message",
    [
        (["data", "info", "missing.h5"], "missing.h5"),
        (["evaluate", "no_run_here", "--data", "x.h5"], "no_run_here"),
        (["predict", "missing.pt", str(EXAMPLES)], "missing.pt"),
        (
            ["train", "--preset", "nope", "--data", "x.h5", "--target", "U0", "--out", "r"],
            "unknown preset",
        ),
        (["data", "import", "only_one.h5"], "give the output dataset with --out OUT.h5"),
        (
            ["train", "--preset", "grammar-vae-qm9-fast", "--data", "x.csv", "--out", "r"],
            "deepatoms vae train",
        ),
        (
            ["train", "--preset", "density-vae-fast", "--data", "x.h5", "--out", "r"],
            "deepatoms crystals train",
        ),
    ],
)
def test_bad_input_gives_one_clear_error_line(tmp_path, args, message):
    proc = subprocess.run([EXE, *args], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2
    assert message in " ".join(proc.stderr.split())  # rich wraps long lines
    assert "Traceback" not in proc.stderr


def test_presets_lists_one_line_each():
    proc = run("presets")
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    names = [ln.split()[0] for ln in lines]
    assert "schnet-fast" in names and "schnet-qm9" in names
    assert len(names) == len(set(names))
