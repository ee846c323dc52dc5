"""Shared data and helpers of the grammar-VAE tests (test_gvae_*.py)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from deepatoms.models.grammar_vae import GrammarVAE, vae_loss
from tiny_data import QM9_SMILES, write_csv  # noqa: F401 (shared by the grammar-VAE tests)


def overfit(model: GrammarVAE, idx: torch.Tensor, epochs: int, lr: float, batch: int):
    """Train ``model`` on production indices ``idx`` with α = 0 until the teacher-forced argmax
    at the encoder mean is exact (then greedy masked decoding of μ is exact too); returns the
    number of epochs used."""
    x = F.one_hot(idx, model.n_rules).float()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for epoch in range(1, epochs + 1):
        model.train()
        for b in range(0, len(idx), batch):
            out = model(x[b : b + batch])
            loss = vae_loss(out["logits"], idx[b : b + batch], out["mu"], out["logvar"], 0.0)
            opt.zero_grad()
            loss["loss"].backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            mu, _ = model.encode(x)
            if bool((model.decoder_logits(mu, x).argmax(-1) == idx).all()):
                return epoch
    return epochs
