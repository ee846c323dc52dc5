"""Shared data and helpers of the grammar-VAE tests (test_gvae_*.py)."""

from __future__ import annotations

import csv
from pathlib import Path

import torch
import torch.nn.functional as F

from deepatoms.models.grammar_vae import GrammarVAE, vae_loss

#: 64 QM9 SMILES from qm9pack (every 2,000th row from row 6; derivations ≤ 64 productions).
QM9_SMILES = [
    "C=O",
    "O=C1NCC=CN1",
    "ON=C1CCCC=C1",
    "CC1(C)CC(=O)CO1",
    "OC1CN(CC#C)C1",
    "CCC(C#N)C(N)=O",
    "N=C1OCCNC1=O",
    "O=C1CC2CCC2O1",
    "OCC12CN1CC2=O",
    "O=C1OCC2CCC12",
    "C1C2C1C1=CN=NN21",
    "ON=C(CNC=O)C#C",
    "O1C=NC2=C1N=CN=C2",
    "CC1=C(N)OC=C1C=O",
    "NC1=CC=C2NCCN12",
    "COC1=C(O)N=C(N)N1",
    "OCCC1=CC=NC=C1",
    "N#CC1C2CCC=CC12",
    "C1CC23CCCCC12O3",
    "C1C2CCC11CCCC21",
    "C1CC23C=CC4C(C24)C13",
    "O=C1C2CCC11OCC21",
    "N=C1OC2CC3(CN3)C12",
    "O=C1NCC=C1C1CN1",
    "O=CC1=CC2(CC2)OC1",
    "O=CCC12CC1CCC2",
    "CC#CC1C2NC2C1O",
    "NC(=O)C1COCC1=O",
    "CC(C)(O)CCCC#N",
    "CC(O)C1OC2CCC12",
    "CC(CC1CCC1)C#N",
    "CC1(C)OC1CCC#C",
    "OC1(CC=O)C2CC1C2",
    "OC12C3CCC1=CCC23",
    "CC12CC1C1C(C=O)N21",
    "OC12CN3C4C(CC14)C23",
    "CC12CCCC3C1CC23",
    "CN1C(=N)C2OC2C1=N",
    "OC1C23COC12C=CC3",
    "CC1C2C3OC3C2C1=O",
    "OC1C2OC2(C#C)C1=O",
    "CC1C2N1CCC21CN1",
    "CC1CC(C#N)C2CN12",
    "CN1CC11CC2(C)NC12",
    "CC1CC2(CO2)C2NC12",
    "CC1OC2CC2(O)C1O",
    "CC1COC(C)C(C)=C1",
    "CC1CCOC(C1)C#C",
    "CC(C)(O)CC#CCO",
    "CC(O)(CO)C(=O)C#C",
    "COC(C=O)C(=O)C=O",
    "OCC1(O)CC2CN2C1",
    "COC12C3CC1(O)CC23",
    "COC12CC3CC1(C)C23",
    "COC1C(C=O)C1C#C",
    "COC1C=CCC2CC12",
    "OCC1CC2(O)COC12",
    "OCC1CNCC(=N)O1",
    "CCCC(C)C1CCO1",
    "OCCC1C2NC1C2=O",
    "CCOCC1(CO)CN1",
    "CC(=O)C1=CN=NC=N1",
    "CCC1=NC(=O)ON=N1",
    "COC1=C(CO)N=NO1",
]


def write_csv(path: Path, strings, split=None, props=None) -> Path:
    """A string CSV with optional split labels and property columns."""
    props = props or {}
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["string", *props, *(["split"] if split is not None else [])])
        for i, s in enumerate(strings):
            extra = [split[i]] if split is not None else []
            w.writerow([s, *(props[k][i] for k in props), *extra])
    return path


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
