"""Latent property regressors (design.regressors, specs/grammar-vae.md §5)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gvae_helpers import QM9_SMILES

from deepatoms.design.regressors import (
    fit_regressor,
    load_regressors,
    save_regressors,
    train_regressors,
)
from deepatoms.grammar.cfg import load_grammar
from deepatoms.models.grammar_vae import GrammarVAE
from deepatoms.models.latent_space import LatentSpace

SMALL = {"hidden": [64, 64, 32], "dropout": 0.0, "l2": 0.0, "lr": 1e-2, "batch_size": 32}


def _f(z: np.ndarray) -> np.ndarray:
    return z[:, 0] + 0.5 * z[:, 1] ** 2


def test_gvae_regressor_learns_synthetic_function_of_z():
    rng = np.random.default_rng(0)
    mu, val = rng.uniform(-2, 2, (600, 2)), rng.uniform(-2, 2, (200, 2))
    logvar = np.full_like(mu, -12.0)  # posterior samples ≈ μ
    cfg = {**SMALL, "max_epochs": 150, "patience": 30}
    model, mean, std, stats = fit_regressor(mu, logvar, _f(mu), val, _f(val), cfg)
    baseline = np.mean(np.abs(_f(val) - _f(val).mean()))  # 1.09
    assert stats["val_mae"] < 0.05 < baseline
    assert mean == pytest.approx(_f(mu).mean()) and std == pytest.approx(_f(mu).std())
    with torch.no_grad():
        pred = model(torch.as_tensor(val, dtype=torch.float32)).numpy() * std + mean
    assert np.mean(np.abs(pred - _f(val))) == pytest.approx(stats["val_mae"], rel=1e-4)


def test_gvae_regressor_early_stopping_patience():
    rng = np.random.default_rng(1)
    mu = rng.normal(size=(40, 3))
    cfg = {**SMALL, "lr": 0.0, "max_epochs": 100, "patience": 7}
    _, _, _, stats = fit_regressor(mu, np.zeros_like(mu), mu[:, 0], mu[:5], mu[:5, 0], cfg)
    # lr = 0: the validation MAE never improves after epoch 1
    assert (stats["best_epoch"], stats["epochs"]) == (1, 8)


def test_gvae_regressor_input_errors():
    z = np.zeros((1, 2))
    with pytest.raises(ValueError, match="at least 2 training points"):
        fit_regressor(z, z, np.zeros(1), z, np.zeros(1), SMALL)
    with pytest.raises(ValueError, match="at least 1 validation point"):
        fit_regressor(np.zeros((3, 2)), np.zeros((3, 2)), np.arange(3.0), z[:0], [], SMALL)


@pytest.fixture(scope="module")
def space() -> LatentSpace:
    g = load_grammar("smiles")
    torch.manual_seed(0)
    model = GrammarVAE({"n_rules": g.n_rules, "max_len": 64, "latent_dim": 4, "hidden": 16})
    return LatentSpace(model, g, {"model_file": "/x/model.pt"})


def test_gvae_regressor_set_round_trip(space, tmp_path):
    lengths = np.array([len(s) for s in QM9_SMILES], dtype=float)
    targets = {"lumo": 0.1 * lengths, "gap": 5.0 - 0.05 * lengths}
    cfg = {**SMALL, "max_epochs": 5, "patience": 5, "dropout": 0.2}
    regs = train_regressors(space, QM9_SMILES, targets, config=cfg)
    assert regs.properties == ["lumo", "gap"] and regs.latent_dim == 4
    assert regs.stats["lumo"]["n_val"] == 6 and regs.stats["lumo"]["n_train"] == 58
    assert regs.meta["grammar"] == "smiles" and regs.meta["model_file"] == "/x/model.pt"
    pred = regs.predict_strings(space, QM9_SMILES[:7])
    assert set(pred) == {"lumo", "gap"} and pred["gap"].shape == (7,)
    path = tmp_path / "regressors.pt"
    save_regressors(path, regs, {"data": "d.csv"})
    loaded = load_regressors(path)
    z = space.sample_prior(9, seed=0)
    a, b = regs.predict(z), loaded.predict(z)
    assert all(np.array_equal(a[k], b[k]) for k in a)  # eval mode: no dropout
    assert loaded.meta["data"] == "d.csv" and loaded.stats["gap"] == regs.stats["gap"]
    with pytest.raises(ValueError, match=r"shape \[N, 4\]"):
        loaded.predict(np.zeros((2, 5)))


def test_gvae_regressor_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_regressors(tmp_path / "none.pt")
    other = tmp_path / "o.pt"
    torch.save({"format": "other"}, other)
    with pytest.raises(ValueError, match="not a deepatoms model file"):
        load_regressors(other)
