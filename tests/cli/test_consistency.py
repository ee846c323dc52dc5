"""One consistent command line: every command has --quiet, on/off options are flags, the
commands that run a model take --device, an absent GPU is one clear line, evaluate RUN finds its
own dataset."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import typer

from cli_helpers import invoke, last_json, one_line
from deepatoms.cli import app

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "docs_hooks"))
from cli_reference import _commands

COMMANDS = [p for p in _commands(typer.main.get_command(app))]
LEAVES = [p for p in COMMANDS if "Commands" not in invoke(*p, "--help").stdout]


def test_every_command_has_the_one_progress_switch():
    missing = [" ".join(p) for p in LEAVES if "--quiet" not in invoke(*p, "--help").stdout]
    assert not missing, f"no --quiet on: {missing}"


def test_on_off_options_are_flags():
    takes_value = [" ".join(p) for p in LEAVES if "BOOLEAN" in invoke(*p, "--help").stdout]
    assert not takes_value, f"boolean options shown as taking a value on: {takes_value}"


@pytest.mark.parametrize("cmd", ["predict", "evaluate", "md", "relax", "screen", "vibrations"])
def test_model_commands_take_device(cmd):
    assert "--device" in invoke(cmd, "--help").stdout


def test_an_absent_gpu_is_one_clear_line(qm9_small, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    res = invoke("predict", "runs/none", "x.xyz", "--device", "cuda", code=2)
    assert "no CUDA GPU is available here; use --device cpu" in one_line(res.stderr)
    res = invoke("train", "--preset", "schnet-fast", "--data", qm9_small, "--target", "U0",
                 "--out", tmp_path / "run", "--set", "train.accelerator=gpu", code=2)  # fmt: skip
    text = one_line(res.stderr)
    assert "train.accelerator='gpu'" in text and "Traceback" not in res.stdout + res.stderr
    assert not (tmp_path / "run").exists()


def test_evaluate_run_uses_the_run_dataset(qm9_small, tmp_path):
    args = ["train", "--preset", "schnet-fast", "--data", qm9_small, "--out", tmp_path / "run",
            "--max-epochs", "1", "--target", "U0", "--n-train", "24", "--n-val", "8", "-q",
            "--set", "model.n_atom_basis=8", "--set", "model.n_interactions=1"]  # fmt: skip
    invoke(*args)
    res = last_json(invoke("evaluate", tmp_path / "run", "--json", "-q").stdout)
    assert res["data"] == str(Path(qm9_small).resolve()) and res["split"] == "test"
    # another dataset of the same size is refused: its fingerprint differs from the split's
    from deepatoms.data.dataset import read_dataset, write_dataset

    data, meta = read_dataset(qm9_small)
    data.system_props["U0"] = data.system_props["U0"] + 1.0
    other = tmp_path / "other.h5"
    write_dataset(other, data, meta)
    bad = invoke("evaluate", tmp_path / "run", "--data", other, code=2)
    assert "fingerprint differs" in one_line(bad.stderr)


def test_presets_are_grouped_by_the_command_that_trains_them():
    res = last_json(invoke("presets", "--json").stdout)
    commands = {g["command"] for g in res["families"]}
    assert {"deepatoms train", "deepatoms vae train", "deepatoms crystals train"} <= commands
    text = invoke("presets").stdout
    assert "train with `deepatoms crystals train`" in text


def test_cv_bootstrap_default_is_moderate():
    assert "10000" in invoke("cv", "--help").stdout.replace(",", "")


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("train.lr=abc", "train.lr: 'abc' is not a number"),
        ("train.max_time=-1", "train.max_time: -1 is out of range"),
    ],
)
def test_bad_training_settings_are_one_line(qm9_small, tmp_path, setting, message):
    res = invoke("train", "--preset", "schnet-fast", "--data", qm9_small, "--target", "U0",
                 "--out", tmp_path / "run", "--set", setting, code=2)  # fmt: skip
    assert message in one_line(res.stderr) and "Traceback" not in res.stderr
    assert not (tmp_path / "run").exists()
