"""Latent property regressors on a grammar-VAE latent space (``specs/grammar-vae.md`` §5).

One :class:`~deepatoms.models.latent_regressor.LatentRegressor` per property (Paper D: MLP
512-512-256-1, tanh, dropout dp after hidden layers 2 and 3). Training, per property k:

- targets z-scored with the training mean and standard deviation: y' = (y − m_k) / s_k;
- every epoch each training string x_i gets a fresh sample z_i = μ(x_i) + σ(x_i) ⊙ ε (Paper D);
- loss per mini-batch: mean (f(z) − y')² + λ Σ‖W‖² (weight matrices; ``l2`` = λ);
- SGD, lr 10⁻³, momentum 0.9, batch 64, at most 1,000 epochs; early stopping with patience 50
  on the validation MAE (eV) of predictions at the encoder mean μ(x); the best epoch is kept
  (Defaults of §5, not stated in the sources).

Predictions f_k(z)·s_k + m_k are in the property's unit (eV). The trained regressors are one
:class:`~deepatoms.models.latent_regressor.LatentRegressors` module, saved as a model file.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from deepatoms.core.progress import ProgressBar
from deepatoms.models.latent_regressor import LatentRegressor, LatentRegressors
from deepatoms.models.loading import load_model
from deepatoms.models.model_file import write_model_file

if TYPE_CHECKING:  # pragma: no cover
    from deepatoms.models.latent_space import LatentSpace

__all__ = [
    "REGRESSOR_DEFAULTS",
    "fit_regressor",
    "latent_space_info",
    "load_regressors",
    "save_regressors",
    "train_regressors",
]

REGRESSOR_DEFAULTS: dict[str, Any] = {
    "hidden": [512, 512, 256],
    "dropout": 0.2,
    "dropout_after": [2, 3],
    "l2": 1.0e-5,
    "lr": 1.0e-3,
    "momentum": 0.9,
    "batch_size": 64,
    "max_epochs": 1000,
    "patience": 50,
    "n_val": 0.1,  # validation fraction drawn from the training strings when none are given
    "seed": 0,
}


def _mae(model: LatentRegressor, z: torch.Tensor, y: np.ndarray, mean: float, std: float) -> float:
    model.eval()
    with torch.no_grad():
        pred = model(z).double().numpy() * std + mean
    model.train()
    return float(np.mean(np.abs(pred - y)))


def fit_regressor(
    mu: np.ndarray,
    logvar: np.ndarray,
    y: np.ndarray,
    val_mu: np.ndarray,
    val_y: np.ndarray,
    config: Mapping[str, Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[LatentRegressor, float, float, dict]:
    """Train one regressor (module docstring) → (model, mean, std, stats).

    ``mu``/``logvar [N, d]``: the training strings' posteriors; ``y [N]`` targets (eV);
    ``val_mu [M, d]``, ``val_y [M]``: validation points at the encoder mean. ``stats``:
    ``best_epoch``, ``epochs``, ``val_mae`` (eV, best), ``train_mae`` (eV, at μ).
    """
    c = {**REGRESSOR_DEFAULTS, **(config or {})}
    y = np.asarray(y, dtype=np.float64)
    if len(y) < 2:
        raise ValueError(f"a regressor needs at least 2 training points, got {len(y)}")
    if len(val_y) == 0:
        raise ValueError("a regressor needs at least 1 validation point for early stopping")
    mean, std = float(y.mean()), float(y.std())
    std = std if std > 0 else 1.0
    gen = torch.Generator()
    gen.manual_seed(int(c["seed"]))
    torch.manual_seed(int(c["seed"]))
    model = LatentRegressor(mu.shape[1], c["hidden"], c["dropout"], c["dropout_after"])
    opt = torch.optim.SGD(model.parameters(), lr=float(c["lr"]), momentum=float(c["momentum"]))
    mu_t = torch.as_tensor(mu, dtype=torch.float32)
    sigma_t = torch.exp(0.5 * torch.as_tensor(logvar, dtype=torch.float32))
    y_t = torch.as_tensor((y - mean) / std, dtype=torch.float32)
    val_t = torch.as_tensor(val_mu, dtype=torch.float32)
    l2, bs = float(c["l2"]), int(c["batch_size"])
    max_epochs, patience = int(c["max_epochs"]), int(c["patience"])
    best, best_epoch, best_state = math.inf, 0, copy.deepcopy(model.state_dict())
    epoch = 0
    model.train()
    for epoch in range(1, max_epochs + 1):
        z = mu_t + sigma_t * torch.randn(mu_t.shape, generator=gen)
        perm = torch.randperm(len(y_t), generator=gen)
        for s in range(0, len(perm), bs):
            b = perm[s : s + bs]
            loss = (model(z[b]) - y_t[b]).pow(2).mean()
            if l2 > 0:
                loss = loss + l2 * model.l2_penalty()
            opt.zero_grad()
            loss.backward()
            opt.step()
        val = _mae(model, val_t, np.asarray(val_y, dtype=np.float64), mean, std)
        if val < best:
            best, best_epoch, best_state = val, epoch, copy.deepcopy(model.state_dict())
        if progress is not None:
            progress(epoch, max_epochs)
        if epoch - best_epoch >= patience:
            break
    model.load_state_dict(best_state)
    model.eval()
    stats = {
        "best_epoch": best_epoch,
        "epochs": epoch,
        "val_mae": best,
        "train_mae": _mae(model, mu_t, y, mean, std),
        "n_train": len(y),
        "n_val": len(val_y),
    }
    model.eval()
    return model, mean, std, stats


def train_regressors(
    latent_space: LatentSpace,
    strings: Sequence[str],
    targets: Mapping[str, np.ndarray],
    val_strings: Sequence[str] | None = None,
    val_targets: Mapping[str, np.ndarray] | None = None,
    config: Mapping[str, Any] | None = None,
    progress: bool = False,
) -> LatentRegressors:
    """One regressor per property of ``targets`` (eV) on ``latent_space`` (§5).

    Without ``val_strings`` a seeded ``config['n_val']`` fraction of ``strings`` is held out for
    early stopping. ``progress``: a bar per property on stderr.
    """
    c = {**REGRESSOR_DEFAULTS, **(config or {})}
    strings = list(strings)
    for k, v in targets.items():
        if len(v) != len(strings):
            raise ValueError(f"property {k!r} has {len(v)} values for {len(strings)} strings")
    targets = {k: np.asarray(v, dtype=np.float64) for k, v in targets.items()}
    if val_strings is None:
        rng = np.random.default_rng(int(c["seed"]))
        perm = rng.permutation(len(strings))
        n_val = max(1, round(float(c["n_val"]) * len(strings)))
        val_i, tr_i = perm[:n_val], perm[n_val:]
        val_strings = [strings[i] for i in val_i]
        val_targets = {k: v[val_i] for k, v in targets.items()}
        strings = [strings[i] for i in tr_i]
        targets = {k: v[tr_i] for k, v in targets.items()}
    elif val_targets is None or set(val_targets) != set(targets):
        raise ValueError("val_targets must hold the same properties as targets")
    mu, logvar = latent_space.posterior(strings)
    val_mu = latent_space.encode_mean(list(val_strings))
    regs = LatentRegressors(
        {
            "latent_dim": latent_space.latent_dim,
            "hidden": c["hidden"],
            "dropout": c["dropout"],
            "dropout_after": c["dropout_after"],
            "properties": list(targets),
        }
    )
    means, stds = {}, {}
    for k in targets:
        with ProgressBar(f"regressor {k}", quiet=not progress) as bar:
            m, means[k], stds[k], regs.stats[k] = fit_regressor(
                mu, logvar, targets[k], val_mu, np.asarray(val_targets[k]), c, bar
            )
        regs.regressors[k].load_state_dict(m.state_dict())
    regs.set_statistics(means, stds)
    regs.meta = {"config": {k: c[k] for k in REGRESSOR_DEFAULTS}, **latent_space_info(latent_space)}
    return regs.eval()


def latent_space_info(latent_space: LatentSpace) -> dict[str, Any]:
    """Identification of the latent space regressors belong to (model file, grammar, size)."""
    return {
        "model_file": latent_space.meta.get("model_file"),
        "grammar": latent_space.grammar.name,
        "latent_dim": latent_space.latent_dim,
    }


def save_regressors(
    path: str | Path, regressors: LatentRegressors, meta: dict | None = None
) -> None:
    """Write ``regressors`` to the model file ``path`` (atomically)."""
    write_model_file(
        path,
        regressors,
        "grammar_vae",
        units={"target": "eV"},
        target={"names": regressors.properties, "unit": "eV"},
        normalisation={
            k: {"mean": float(regressors.mean[i]), "std": float(regressors.std[i])}
            for i, k in enumerate(regressors.properties)
        },
        extras={"stats": regressors.stats},
        meta={**regressors.meta, **(meta or {})},
    )


def load_regressors(path: str | Path) -> LatentRegressors:
    """The latent regressors of a model file written by :func:`save_regressors`."""
    return load_model(path, expect="latent-regressors")
