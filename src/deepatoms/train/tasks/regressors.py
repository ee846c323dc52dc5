"""Training task of the latent property regressors of a grammar VAE (Jørgensen et al. 2018,
Paper D; docs/grammar_vae.md §5).

One MLP per property (:class:`~deepatoms.models.latent_regressor.LatentRegressors`), trained
together on one latent space:

- targets z-scored with the training mean and standard deviation: y' = (y − m_k) / s_k;
- every step each training string x_i gets a fresh sample z_i = μ(x_i) + σ(x_i) ⊙ ε (Paper D);
- loss per mini-batch: Σ_k [mean (f_k(z) − y'_k)² + λ Σ‖W_k‖²] (weight matrices; λ =
  ``train.l2``); the regressors share no weights, so each gets the gradient it would get alone;
- SGD, lr 10⁻³, momentum 0.9, batch 64, at most 1,000 epochs.

Validation: predictions at the encoder mean μ(x); ``val_mae_<property>`` in eV and
``val_score`` = Σ_k MAE_k / s_k, which stops training after ``early_stopping_patience`` epochs
without improvement. Each regressor keeps the weights of its own best epoch (lowest MAE of its
property), as if it had been trained and stopped on its own.

Data: the CSV's train rows are fitted, its val rows stop early and its test rows give a test
MAE per property; without a split column a seeded ``data.n_val`` fraction of the rows is held
out for validation.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from deepatoms.core.errors import ConfigError
from deepatoms.data.fingerprint import file_fingerprint
from deepatoms.data.strings import read_string_csv
from deepatoms.models.latent_regressor import LatentRegressors
from deepatoms.models.loading import load_model
from deepatoms.train.data_split import run_split
from deepatoms.train.loader import EpochBatchSampler
from deepatoms.train.tasks.base import Export, Prepared, RunContext, TrainingTask

__all__ = ["LatentRegressorTask"]


class LatentRegressorTask(TrainingTask):
    """Fits :class:`LatentRegressors` on posterior samples of a latent space (module docstring)."""

    monitor = "val_score"
    unit = "eV"

    def __init__(self, model: LatentRegressors, train_cfg: dict) -> None:
        super().__init__()
        self.model = model
        self.cfg = dict(train_cfg)
        self.best: dict[str, dict[str, Any]] = {}
        self.setup_info: dict[str, Any] = {}

    # -- the protocol -----------------------------------------------------------------------
    @classmethod
    def prepare(cls, ctx: RunContext) -> Prepared:
        """Latent space and strings → split → posteriors → regressors."""
        config, d, tcfg = ctx.config, ctx.config["data"], ctx.train_cfg
        props = list(config["model"]["properties"] or [])
        if not props:
            raise ConfigError("give at least one property to fit (model.properties, --property)")
        space = load_model(d["latent_space"], expect="grammar-vae")
        path = Path(ctx.data)
        table = read_string_csv(path, d["string_column"], props, d["split_column"])
        fingerprint = file_fingerprint(path)
        meta = {
            "dataset": str(path.resolve()),
            "n_rows": len(table.strings),
            "dataset_fingerprint": fingerprint,
            "seed": ctx.seed,
        }
        split = run_split(
            ctx.run,
            ctx.resume,
            len(table.strings),
            lambda: _split(table, float(d["n_val"]), ctx.seed),
            meta,
        )
        tr, val = split["train"], split["val"]
        y = {p: table.properties[p] for p in props}
        mean = {p: float(y[p][tr].mean()) for p in props}
        std = {p: float(y[p][tr].std()) for p in props}
        mu, logvar = space.posterior([table.strings[i] for i in tr])
        val_mu = space.encode_mean([table.strings[i] for i in val])
        regs = LatentRegressors({**config["model"], "latent_dim": space.latent_dim})
        regs.set_statistics(mean, std)
        y_tr = np.stack(
            [(y[p][tr] - regs.mean[k].item()) / regs.std[k].item() for k, p in enumerate(props)],
            axis=1,
        )
        y_val = np.stack([y[p][val] for p in props], axis=1)
        train_ds = TensorDataset(
            torch.as_tensor(mu, dtype=torch.float32),
            torch.exp(0.5 * torch.as_tensor(logvar, dtype=torch.float32)),
            torch.as_tensor(y_tr, dtype=torch.float32),
        )
        val_ds = TensorDataset(
            torch.as_tensor(val_mu, dtype=torch.float32),
            torch.as_tensor(y_val, dtype=torch.float64),
        )
        train_loader = DataLoader(train_ds, batch_sampler=EpochBatchSampler(
            np.arange(len(train_ds)), int(tcfg["batch_size"]), True, ctx.seed))  # fmt: skip
        val_loader = DataLoader(val_ds, batch_sampler=EpochBatchSampler(
            np.arange(len(val_ds)), int(tcfg["eval_batch_size"]), False))  # fmt: skip
        ctx.write_stats(
            {"properties": props, "mean": mean, "std": std, "n_train": len(tr), "n_val": len(val)}
        )
        task = cls(regs, tcfg)
        task.setup_info = {
            "space": space,
            "path": path,
            "fingerprint": fingerprint,
            "n_rows": len(table.strings),
            "n_train": len(tr),
            "n_val": len(val),
            "train_mu": mu,
            "train_y": {p: y[p][tr] for p in props},
            "test_strings": [table.strings[i] for i in split["test"]],
            "test_y": {p: y[p][split["test"]] for p in props},
        }
        return Prepared(task, train_loader, val_loader)

    def finish(self, trainer: Any) -> dict[str, Any]:
        """Each regressor with its own best weights; per-property statistics (eV)."""
        info = self.setup_info
        for p, best in self.best.items():
            self.model.regressors[p].load_state_dict(best["state"])
        self.model.eval()
        pred = self.model.predict(info["train_mu"])
        test = None
        if info["test_strings"]:
            test = self.model.predict(info["space"].encode_mean(info["test_strings"]))
        for p in self.model.properties:
            best = self.best.get(p, {})
            self.model.stats[p] = {
                "best_epoch": best.get("epoch"),
                "epochs": trainer.current_epoch,
                "val_mae": best.get("mae"),
                "train_mae": float(np.mean(np.abs(pred[p] - info["train_y"][p]))),
                "n_train": info["n_train"],
                "n_val": info["n_val"],
            }
            if test is not None:
                self.model.stats[p]["test_mae"] = float(
                    np.mean(np.abs(test[p] - info["test_y"][p]))
                )
        return {
            "properties": {p: dict(s) for p, s in self.model.stats.items()},
            "n_train": info["n_train"],
            "n_val": info["n_val"],
            "n_test": len(info["test_strings"]),
        }

    def export(self) -> Export:
        """Statistics per property and the latent space the regressors belong to."""
        info, regs = self.setup_info, self.model
        space = info["space"]
        regs.meta = {
            "latent_space": space.meta.get("model_file"),
            "grammar": space.grammar.name,
            "latent_dim": space.latent_dim,
            "data": str(info["path"].resolve()),
        }
        return Export(
            model=regs,
            extras={"stats": regs.stats},
            units={"target": "eV"},
            target={"names": regs.properties, "unit": "eV"},
            normalisation={
                p: {"mean": float(regs.mean[i]), "std": float(regs.std[i])}
                for i, p in enumerate(regs.properties)
            },
            training_data={
                "path": str(info["path"].resolve()),
                "fingerprint": info["fingerprint"],
                "n_systems": info["n_rows"],
            },
            meta=dict(regs.meta),
        )

    # -- Lightning ----------------------------------------------------------------------------
    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        mu, sigma, y = batch
        z = mu + sigma * torch.randn_like(mu)
        pred = self.model(z)
        loss = (pred - y).pow(2).mean(dim=0).sum()
        l2 = float(self.cfg["l2"])
        if l2 > 0:
            loss = loss + l2 * sum(m.l2_penalty() for m in self.model.regressors.values())
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(y))
        return loss

    def on_validation_epoch_start(self) -> None:
        self._val_abs = torch.zeros(len(self.model.properties), dtype=torch.float64)
        self._val_n = 0

    def validation_step(self, batch, batch_idx: int) -> None:
        z, y = batch
        pred = self.model(z).double() * self.model.std + self.model.mean
        self._val_abs += (pred - y).abs().sum(dim=0).cpu()
        self._val_n += len(y)

    def on_validation_epoch_end(self) -> None:
        total = self.sum_over_processes(torch.cat([self._val_abs, torch.tensor([self._val_n],
                                                                              dtype=torch.float64)]))  # fmt: skip
        mae = total[:-1] / max(float(total[-1]), 1.0)
        for k, p in enumerate(self.model.properties):
            self.log(f"val_mae_{p}", float(mae[k]))
            if p not in self.best or float(mae[k]) < self.best[p]["mae"]:
                state = copy.deepcopy(self.model.regressors[p].state_dict())
                self.best[p] = {"mae": float(mae[k]), "epoch": self.current_epoch, "state": state}
        score = float((mae / self.model.std.cpu()).sum())
        self.log(self.monitor, score, prog_bar=True)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["regressor_best"] = self.best

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.best = checkpoint.get("regressor_best", {})

    def configure_optimizers(self):
        c = self.cfg
        return torch.optim.SGD(
            self.model.parameters(), lr=float(c["lr"]), momentum=float(c["momentum"])
        )


def _split(table: Any, n_val: float, seed: int) -> dict[str, np.ndarray]:
    """Train and validation rows: the table's split column, else a seeded fraction."""
    if table.split is not None:
        split = {s: table.rows(s) for s in ("train", "val", "test")}
        if len(split["val"]) == 0:
            raise ConfigError(
                f"{table.path} has a split column but no 'val' rows for early stopping"
            )
    else:
        perm = np.random.default_rng(seed).permutation(len(table.strings))
        k = max(1, round(n_val * len(perm)))
        split = {"train": np.sort(perm[k:]), "val": np.sort(perm[:k]), "test": np.zeros(0, int)}
    if len(split["train"]) < 2:
        raise ConfigError(f"{table.path}: a regressor needs at least 2 training rows")
    return split
