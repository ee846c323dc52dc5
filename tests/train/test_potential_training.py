"""Training potentials on energies and forces (Schütt 2018 thesis Ch. 5, Eq. 5.7)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from deepatoms.cli import app
from deepatoms.config.overrides import apply_overrides
from deepatoms.core.errors import ConfigError
from deepatoms.data.dataset import read_dataset
from deepatoms.data.splits import load_split
from deepatoms.models.inference import predict_potential
from deepatoms.models.loading import load_model
from deepatoms.models.registry import load_preset
from deepatoms.train import fit as train
from deepatoms.workflows.evaluation import evaluate

SMALL = [
    "model.n_atom_basis=32",
    "model.n_interactions=2",
    "data.n_train=100",
    "data.n_val=25",
    "train.batch_size=10",
    "train.eval_batch_size=25",
    "train.lr=3e-3",
    "train.max_epochs=12",
]


def _cfg(*extra: str) -> dict:
    return apply_overrides(load_preset("schnet-md17-fast"), [*SMALL, *extra])


def test_forces_improve_force_errors_over_energy_only(ethanol_xtb, tmp_path):
    """The thesis trend (Tables 5.3/5.4): with the same budget, forces cut the force error."""
    ef = train(_cfg(), ethanol_xtb, tmp_path / "ef", progress=False)
    e_only = train(_cfg("data.forces=null"), ethanol_xtb, tmp_path / "e", progress=False)
    assert ef["forces"] == "forces" and e_only["forces"] is None
    assert {"best_val_loss", "val_energy_mae", "val_force_mae", "val_force_rmse"} <= set(ef)
    r_ef = evaluate(tmp_path / "ef", ethanol_xtb, split="test")
    r_e = evaluate(tmp_path / "e", ethanol_xtb, split="test")
    # the energy-only model is still scored on forces, since the dataset has them
    assert r_e["forces"] == r_ef["forces"] == "forces"
    assert r_ef["force_mae"] < 0.6 * r_e["force_mae"], (r_ef["force_mae"], r_e["force_mae"])
    assert r_ef["n"] == 25
    meta = load_model(tmp_path / "ef" / "model.pt").meta
    assert meta["forces"] == "forces" and meta["rho"] == pytest.approx(0.01)


def test_force_only_training_fits_the_energy_offset(ethanol_xtb, tmp_path):
    """ρ = 0: the integration constant is fitted after training (thesis Table 5.6)."""
    s = train(
        _cfg("train.rho=0", "train.max_epochs=3"), ethanol_xtb, tmp_path / "f", progress=False
    )
    assert "energy_offset_fit" in s
    loaded = load_model(tmp_path / "f" / "model.pt")
    data, _ = read_dataset(ethanol_xtb)
    tr = load_split(tmp_path / "f" / "split.json")["train"]
    pred = predict_potential(loaded.model, loaded.graph, data, tr)["energy"]
    resid = data.system_props["energy"][tr] - pred
    # every frame has 9 atoms, so the least-squares shift zeroes the mean residual (float32 model)
    assert abs(resid.mean()) < 1e-3 * np.abs(resid).mean() + 1e-5


def test_force_label_errors(ethanol_xtb, tmp_path):
    with pytest.raises(ConfigError, match="no per-atom property of that name"):
        train(_cfg("data.forces=grad"), ethanol_xtb, tmp_path / "x", progress=False)
    with pytest.raises(ValueError, match=r"train\.rho: -1 is out of range; expected a number ≥ 0"):
        train(_cfg("train.rho=-1"), ethanol_xtb, tmp_path / "y", progress=False)


def test_cli_trains_a_potential_and_reports_force_errors(ethanol_xtb, tmp_path):
    out = tmp_path / "cli"
    args = ["train", "--preset", "schnet-md17-fast", "--data", ethanol_xtb, "--out", str(out)]
    args += ["--max-epochs", "2", "--n-train", "60", "--n-val", "20", "--rho", "0.1", "--quiet"]
    res = CliRunner().invoke(app, [*args, "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output.strip().splitlines()[-1])
    assert summary["forces"] == "forces" and np.isfinite(summary["val_force_mae"])
    assert "force MAE" in res.output
    res = CliRunner().invoke(app, ["evaluate", str(out), "--data", ethanol_xtb, "--quiet"])
    assert res.exit_code == 0, res.output
    assert "forces (forces, all components): MAE" in res.output
    bad = CliRunner().invoke(app, [*args[:-1], "--forces", "nope", "--out", str(tmp_path / "b")])
    assert bad.exit_code == 2
    assert "no per-atom property of that name" in bad.output


def test_paper_md17_preset_trains_on_energies_and_forces(ethanol_xtb, tmp_path):
    """schnet-md17 (thesis settings: T=3, F=64, 300 Gaussians, all pairs, ρ=0.01) runs end to end."""
    cfg = apply_overrides(
        load_preset("schnet-md17"),
        ["data.n_train=20", "data.n_val=10", "train.max_steps=4", "train.val_every_steps=2"],
    )
    assert cfg["model"]["n_interactions"] == 3 and cfg["model"]["n_atom_basis"] == 64
    assert cfg["train"]["rho"] == 0.01 and cfg["data"]["forces"] == "forces"
    s = train(cfg, ethanol_xtb, tmp_path / "paper", progress=False)
    assert s["steps"] == 4 and np.isfinite(s["val_force_mae"])
