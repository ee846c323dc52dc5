"""`deepatoms vae …` as a user calls it: train, regress, evaluate, sample, and clear errors."""

from __future__ import annotations

import csv
import json
import shutil

import pytest
import typer
from gvae_helpers import QM9_SMILES, write_csv
from typer.testing import CliRunner

from deepatoms.cli import app as APP
from deepatoms.models.loading import load_model

SPLIT = ["train"] * 48 + ["val"] * 8 + ["test"] * 8
TINY = [
    "--set", "model.hidden=16", "--set", "model.dense=16", "--set", "model.latent_dim=4",
    "--set", "data.max_train=null", "--set", "data.max_len=64", "--set", "train.batch_size=16",
    "--set", "train.recon_check=8",
]  # fmt: skip


def _app() -> typer.Typer:
    return APP


def _invoke(app, *args, code: int = 0):
    res = CliRunner().invoke(app, [str(a) for a in args])
    assert res.exit_code == code, f"{args}: exit {res.exit_code}\n{res.stdout}\n{res.stderr}"
    return res


def _json(res) -> dict:
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("vae")
    lengths = [len(s) for s in QM9_SMILES]
    props = {"lumo": [0.1 * n for n in lengths], "gap": [6.0 - 0.05 * n for n in lengths]}
    data = write_csv(tmp / "qm9.csv", QM9_SMILES, SPLIT, props)
    app = _app()
    run = tmp / "run"
    res = _invoke(
        app, "vae", "train", "--data", data, "--out", run, "--preset", "grammar-vae-qm9-fast",
        "--max-epochs", "2", *TINY, "--quiet", "--json",
    )  # fmt: skip
    return app, data, run, res


def test_gvae_cli_train(trained):
    _, _, run, res = trained
    out = _json(res)
    assert (out["epochs"], out["n_train"], out["n_val"], out["grammar"]) == (2, 48, 8, "smiles")
    assert out["preset"] == "grammar-vae-qm9-fast" and out["val_recon_checked"] == 8
    assert "finished grammar-vae-qm9-fast (smiles grammar, 48 training strings): 2 epochs" in (
        res.stdout
    )
    assert (run / "model.pt").is_file()


@pytest.mark.filterwarnings("ignore:The dirpath has changed")
def test_gvae_cli_train_resumes(trained, tmp_path):
    app, data, run, _ = trained
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    res = _invoke(
        app, "vae", "train", "--data", data, "--out", copy, "--preset", "grammar-vae-qm9-fast",
        "--max-epochs", "3", *TINY, "--quiet", "--json",
    )  # fmt: skip
    assert _json(res)["resumed"] is True and _json(res)["epochs"] == 3


def test_gvae_cli_regress(trained):
    app, data, run, _ = trained
    res = _invoke(
        app, "vae", "regress", run, "--data", data, "--property", "lumo", "--property", "gap",
        "--set", "regressor.max_epochs=3", "--set", "regressor.hidden=[8, 8, 4]", "--quiet",
        "--json",
    )  # fmt: skip
    out = _json(res)
    assert out["n_test"] == 8 and set(out["properties"]) == {"lumo", "gap"}
    assert out["properties"]["lumo"]["epochs"] == 3 and out["properties"]["gap"]["n_val"] == 8
    assert "lumo: validation MAE" in res.stdout and "test MAE" in res.stdout
    regs = load_model(run / "regressors.pt")
    assert regs.properties == ["lumo", "gap"] and regs.regressors["lumo"].config["hidden"] == [
        8,
        8,
        4,
    ]
    again = _invoke(app, "vae", "regress", run, "--data", data, "--property", "lumo", code=2)
    assert "already exists; pass --overwrite" in " ".join(again.stderr.split())


def test_gvae_cli_evaluate(trained):
    app, data, run, _ = trained
    res = _invoke(app, "vae", "evaluate", run, "--data", data, "--samples", "20", "--json")
    out = _json(res)
    assert out["n_strings"] == 8 and out["split"] == "test"
    assert out["prior"]["n"] == 20 and out["n_training_strings"] == 48
    assert 0.0 <= out["reconstruction"]["accuracy"] <= 1.0
    assert out["active_dimensions"]["latent_dim"] == 4
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["elbo"] == out["elbo"]
    assert "reconstruction accuracy" in res.stdout and "prior samples 20" in res.stdout


def test_gvae_cli_sample(trained, tmp_path):
    app, _, run, _ = trained
    target = tmp_path / "samples.csv"
    res = _invoke(app, "vae", "sample", run, "-n", "12", "--seed", "3", "--out", target, "--json")
    out = _json(res)
    assert out["n"] == 12 and out["greedy"] is True and 0.0 <= out["valid"] <= 1.0
    with open(target) as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 12 and list(rows[0]) == ["index", "string", "finished", "valid", "key"]
    same = _invoke(app, "vae", "sample", run, "-n", "12", "--seed", "3", "--json")
    assert _json(same)["valid"] == out["valid"]
    assert _invoke(app, "vae", "sample", run, "-n", "2", "--out", target, code=2)


@pytest.mark.parametrize(
    ("rows", "args", "message"),
    [
        ("smile,x\nC,1\n", [], "has no 'string' (or 'smiles') column"),
        ("string\nC\nCC\nC(X\n", [], "line 4: cannot parse 'C(X'"),
        ("string\nC\nCC\n", ["--grammar", "zinc"], "unknown grammar 'zinc'"),
        ("string\nC\nCC\n", ["--preset", "schnet-qm9"], "not a grammar VAE preset"),
        ("string\nC\nCC\n", ["--set", "train.alpah=0.1"], "unknown key train.alpah"),
    ],
)
def test_gvae_cli_train_errors(tmp_path, rows, args, message):
    data = tmp_path / "d.csv"
    data.write_text(rows)
    res = _invoke(
        _app(), "vae", "train", "--data", data, "--out", tmp_path / "run", *args, "--quiet",
        code=2,
    )  # fmt: skip
    assert message in " ".join(res.stderr.split())


def test_gvae_cli_missing_run(tmp_path):
    res = _invoke(_app(), "vae", "sample", tmp_path, "-n", "3", code=2)
    assert "without a model.pt" in " ".join(res.stderr.split())
