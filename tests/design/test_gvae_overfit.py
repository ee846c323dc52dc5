"""A small grammar VAE overfits QM9 SMILES to 100 % reconstruction (docs/grammar_vae.md §4).

Reconstruction = encoder mean, greedy masked decode, exact string match.
"""

from __future__ import annotations

import pytest
import torch
from gvae_helpers import QM9_SMILES, overfit

from deepatoms.design.vae_metrics import reconstruction_accuracy
from deepatoms.grammar.cfg import load_grammar
from deepatoms.models.grammar_vae import GrammarVAE
from deepatoms.models.latent_space import LatentSpace


def _overfit(
    strings: list[str], epochs: int, batch: int, lr: float, latent_dim: int
) -> tuple[dict, int]:
    g = load_grammar("smiles")
    max_len = max(len(g.parse(s)) for s in strings)
    idx = torch.as_tensor(g.encode(strings, max_len))
    torch.manual_seed(0)
    model = GrammarVAE(
        {
            "n_rules": g.n_rules,
            "max_len": max_len,
            "latent_dim": latent_dim,
            "hidden": 128,
            "dense": 128,
        }
    )
    used = overfit(model, idx, epochs, lr=lr, batch=batch)
    return reconstruction_accuracy(LatentSpace(model, g), strings), used


def test_gvae_overfits_16_qm9_smiles():
    acc, epochs = _overfit(QM9_SMILES[:16], epochs=600, batch=16, lr=2e-2, latent_dim=16)
    assert acc == {"accuracy": 1.0, "n": 16, "n_exact": 16, "n_unfinished": 0}, epochs


@pytest.mark.slow
def test_gvae_overfits_64_qm9_smiles():
    acc, epochs = _overfit(QM9_SMILES, epochs=1500, batch=16, lr=5e-3, latent_dim=8)
    assert acc["accuracy"] == 1.0, (acc, epochs)
