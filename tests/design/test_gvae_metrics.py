"""Generative-model metrics (design.vae_metrics, docs/grammar_vae.md §4)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from gvae_helpers import QM9_SMILES

from deepatoms.design.vae_metrics import (
    active_dimensions,
    elbo,
    importance_weighted_bound,
    prior_metrics,
    reconstruction_accuracy,
)
from deepatoms.grammar.cfg import load_grammar
from deepatoms.models.grammar_vae import GrammarVAE, vae_loss
from deepatoms.models.latent_space import LatentSpace


class _Stub:
    """A latent space whose decodes and posteriors are fixed."""

    latent_dim = 2
    grammar = None

    def __init__(self, decodes=(), mu=None, logvar=None):
        self.decodes, self.mu, self.logvar = list(decodes), mu, logvar

    def sample_prior(self, n, seed):
        return np.zeros((n, 2))

    def decode(self, z, batch_size=1024, progress=None):
        return self.decodes[: len(z)]

    def encode_mean(self, strings, batch_size=1024):
        return np.zeros((len(strings), 2))

    def decode_greedy(self, z, batch_size=1024):
        return self.decodes[: len(z)]

    def posterior(self, strings, batch_size=1024):
        return self.mu, self.logvar


def test_gvae_reconstruction_accuracy_counts_exact_matches():
    stub = _Stub(decodes=["CC", None, "CO", "C"])
    r = reconstruction_accuracy(stub, ["CC", "CCC", "OC", "C"])
    assert r == {"accuracy": 0.5, "n": 4, "n_exact": 2, "n_unfinished": 1}


def test_gvae_prior_metrics_fractions():
    stub = _Stub(decodes=[None, "C", "C", "CC", "X", "N"])
    out = prior_metrics(stub, 6, training=["CC", "Y"], is_valid=lambda s: s != "X", key=str.lower)
    # finished 5/6; valid C, C, CC, N = 4/6; unique {c, cc, n} = 3/4; novel {c, n} = 2/3
    assert out["finished"] == pytest.approx(5 / 6)
    assert out["valid"] == pytest.approx(4 / 6)
    assert out["unique"] == pytest.approx(3 / 4)
    assert out["novel"] == pytest.approx(2 / 3)
    assert (out["n_valid"], out["n_unique"], out["n_novel"]) == (4, 3, 2)


def test_gvae_active_dimensions_threshold():
    mu = np.array([[1.0, 0.0, 0.1], [1.0, 0.0, 0.1]])  # KL per dim: 0.5, 0, 0.005
    stub = _Stub(mu=mu, logvar=np.zeros_like(mu))
    stub.latent_dim = 3
    out = active_dimensions(stub, ["a", "b"])
    assert out["n_active"] == 1
    assert out["kl_per_dim"] == pytest.approx([0.5, 0.0, 0.005])


@pytest.fixture(scope="module")
def space() -> LatentSpace:
    g = load_grammar("smiles")
    torch.manual_seed(0)
    model = GrammarVAE({"n_rules": g.n_rules, "max_len": 64, "latent_dim": 3, "hidden": 16})
    return LatentSpace(model, g)


def test_gvae_elbo_equals_loss_at_alpha_one(space):
    strings = QM9_SMILES[:10]
    got = elbo(space, strings, seed=5, batch_size=512)
    idx = torch.as_tensor(space.indices(strings))
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        out = space.model(F.one_hot(idx, 76).float(), gen)
        ref = vae_loss(out["logits"], idx, out["mu"], out["logvar"], alpha=1.0)
    assert got["nelbo"] == pytest.approx(float(ref["loss"]), rel=1e-5)
    assert got["kl"] == pytest.approx(float(ref["kl"]), rel=1e-5)
    assert got["elbo"] == -got["nelbo"]


def test_gvae_importance_weighted_bound_is_above_elbo(space):
    strings = QM9_SMILES[:3]
    iw = importance_weighted_bound(space, strings, k=64, seed=0, chunk=16)
    lower = elbo(space, strings, seed=0)["elbo"]
    assert lower < iw < 0
