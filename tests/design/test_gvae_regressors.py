"""Latent property regressors of a grammar VAE, trained through the one training protocol
(``deepatoms vae regress`` / ``deepatoms.workflows.grammar_vae.regress``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gvae_helpers import QM9_SMILES, write_csv

from deepatoms.core.errors import ConfigError
from deepatoms.grammar.cfg import load_grammar
from deepatoms.models.grammar_vae import GrammarVAE
from deepatoms.models.latent_regressor import LatentRegressors
from deepatoms.models.latent_space import LatentSpace
from deepatoms.models.loading import load_model
from deepatoms.workflows.grammar_vae import regress
from model_helpers import save_grammar_vae

SMALL = ["regressor.hidden=[64,64,32]", "regressor.dropout=0.0", "regressor.l2=0.0",
         "regressor.lr=0.01", "regressor.batch_size=32"]  # fmt: skip


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory):
    """A tiny untrained VAE whose posterior is sharp (σ ≈ 0), so z ≈ μ(x)."""
    g = load_grammar("smiles")
    torch.manual_seed(0)
    model = GrammarVAE({"n_rules": g.n_rules, "max_len": 64, "latent_dim": 2, "hidden": 16})
    mu = LatentSpace(model, g).encode_mean(QM9_SMILES)
    m, s = torch.as_tensor(mu.mean(0)), torch.as_tensor(mu.std(0))
    with torch.no_grad():  # μ standardised over the strings; σ ≈ 0
        model.mu_head.weight.div_(s[:, None].float())
        model.mu_head.bias.sub_(m.float()).div_(s.float())
        model.logvar_head.weight.zero_()
        model.logvar_head.bias.fill_(-12.0)
    run = tmp_path_factory.mktemp("vae")
    save_grammar_vae(run / "model.pt", model, g, {"note": "tiny"})
    return run, load_model(run)


def _table(tmp_path, space, f, split=None):
    mu = space.encode_mean(QM9_SMILES)
    path = tmp_path / "props.csv"
    write_csv(path, QM9_SMILES, split, {"y": f(mu), "w": -f(mu)})
    return path, mu


def _f(mu: np.ndarray) -> np.ndarray:
    return 2.0 * mu[:, 0] + mu[:, 1]


def test_regressors_learn_a_function_of_the_latent_mean(vae_run, tmp_path):
    run, space = vae_run
    split = ["train"] * 48 + ["val"] * 8 + ["test"] * 8
    path, mu = _table(tmp_path, space, _f, split)
    res = regress(run, path, ["y", "w"], overrides=[*SMALL, "regressor.max_epochs=300",
                  "regressor.patience=300"], progress=False)  # fmt: skip
    y = _f(mu)
    baseline = float(np.mean(np.abs(y[48:56] - y[:48].mean())))
    st = res.properties["y"]
    assert st["val_mae"] < 0.25 * baseline
    assert (st["n_train"], st["n_val"], res.n_test) == (48, 8, 8)
    assert np.isfinite(st["test_mae"]) and st["best_epoch"] is not None
    regs = load_model(res.out)
    assert isinstance(regs, LatentRegressors) and regs.properties == ["y", "w"]
    assert regs.stats["y"]["val_mae"] == pytest.approx(st["val_mae"])
    pred = regs.predict_strings(space, QM9_SMILES[48:56])
    assert np.mean(np.abs(pred["y"] - y[48:56])) == pytest.approx(st["val_mae"], rel=1e-4)
    assert regs.meta["grammar"] == "smiles" and regs.meta["latent_space"] == str(run / "model.pt")
    with pytest.raises(ValueError, match=r"shape \[N, 2\]"):
        regs.predict(np.zeros((2, 5)))
    # the run folder of the regressors sits next to their model file
    assert (run / "regressors" / "metrics.csv").is_file()
    assert (run / "regressors" / "checkpoints" / "last.ckpt").is_file()


def test_each_regressor_keeps_its_best_epoch_and_training_stops_early(vae_run, tmp_path):
    run, space = vae_run
    path, _ = _table(tmp_path, space, _f)  # no split column: a seeded 10 % validates
    res = regress(run, path, ["y"], out=tmp_path / "r.pt",
                  overrides=[*SMALL, "regressor.lr=1e-30", "regressor.patience=7"],
                  progress=False)  # fmt: skip
    st = res.properties["y"]
    # lr ≈ 0: the validation MAE never improves after the first epoch
    assert (st["best_epoch"], st["epochs"]) == (0, 8)
    assert (st["n_train"], st["n_val"]) == (58, 6)


def test_regressor_input_errors(vae_run, tmp_path):
    run, _ = vae_run
    path = write_csv(tmp_path / "s.csv", QM9_SMILES[:4], ["train", "train", "test", "test"],
                     {"y": [1.0, 2.0, 3.0, 4.0]})  # fmt: skip
    with pytest.raises(ConfigError, match="no 'val' rows"):
        regress(run, path, ["y"], out=tmp_path / "a.pt", progress=False)
    path = write_csv(tmp_path / "t.csv", QM9_SMILES[:2], ["train", "val"], {"y": [1.0, 2.0]})
    with pytest.raises(ConfigError, match="at least 2 training rows"):
        regress(run, path, ["y"], out=tmp_path / "b.pt", progress=False)
    with pytest.raises(ValueError, match="lacks property column"):
        regress(run, path, ["nope"], out=tmp_path / "c.pt", progress=False)
    assert not (tmp_path / "b").exists()  # a failed set-up leaves no run folder behind


def test_regressor_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_model(tmp_path / "none.pt", expect="latent-regressors")
    other = tmp_path / "o.pt"
    torch.save({"format": "other"}, other)
    with pytest.raises(ValueError, match="not a deepatoms model file"):
        load_model(other, expect="latent-regressors")
