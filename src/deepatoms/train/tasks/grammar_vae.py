"""Training task of the grammar VAE (Kusner et al. 2017; Jørgensen et al. 2018, Paper D App. B).

Data: a CSV of strings (``deepatoms.data.strings``). Split: the CSV's ``split`` column
(``data.split_column``; train/val/test rows) or, without one, a seeded random ``data.n_val``
fraction (10 %) for validation; ``data.max_train``/``data.max_val`` cap both (seeded random
subsets, for CPU presets). Every string is parsed once into its leftmost derivation (T =
``data.max_len`` steps, NULL-padded); ``training_strings.txt`` keeps the training strings (for
novelty and for excluding them in design).

Objective (Paper D Eq. B2; ``models.grammar_vae.vae_loss``): per string
−Σ_t log p(x⁽ᵗ⁾|x⁽<ᵗ⁾, z) + α·KL(q(z|x) ‖ N(0, I)), one reparameterised sample, batch mean.
α = ``train.alpha`` (0.08); optional linear warm-up α_e = α·min(1, e / W) over the first
``alpha_warmup_epochs`` W epochs, free bits, ``mask_in_loss``, ``exclude_padding``.

Optimisation (Paper D App. B): Adam (lr 10⁻³), the learning rate multiplied by ``lr_factor`` (½)
every ``lr_step_epochs`` (100) epochs; batch 64; at most ``max_epochs`` (300); early stopping
after ``early_stopping_patience`` (30) epochs without a lower validation loss. The validation
loss is the objective at the final α (not the warm-up α) with fixed noise ε each epoch, so
epochs compare. ``metrics.csv`` has one row per epoch: train and validation loss,
reconstruction term, KL, −ELBO (α = 1) and teacher-forced token accuracy (non-NULL steps), lr,
α and training throughput. The summary reports the reconstruction accuracy of up to
``train.recon_check`` validation strings.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from deepatoms.core.errors import ConfigError
from deepatoms.core.files import atomic_write_text
from deepatoms.core.progress import ProgressBar
from deepatoms.data.fingerprint import file_fingerprint
from deepatoms.data.strings import StringTable, read_string_csv
from deepatoms.grammar.cfg import Grammar, load_grammar
from deepatoms.models.grammar_vae import GrammarVAE, token_accuracy, vae_loss
from deepatoms.models.latent_space import TRAINING_STRINGS, LatentSpace, parse_strings
from deepatoms.train.data_split import run_split
from deepatoms.train.loader import EpochBatchSampler
from deepatoms.train.tasks.base import Export, Prepared, RunContext, TrainingTask

__all__ = ["GrammarVAETask", "string_table_split"]


def _count(value: float | int, n: int, key: str) -> int:
    v = float(value)
    if v < 1:  # a fraction: at least one row when it is > 0
        return max(1, round(v * n)) if v > 0 else 0
    return int(v)


def _cap(idx: np.ndarray, cap: int | None, rng: np.random.Generator) -> np.ndarray:
    if cap is None or len(idx) <= int(cap):
        return idx
    return np.sort(rng.choice(idx, size=int(cap), replace=False))


def string_table_split(table: StringTable, data_cfg: dict, seed: int) -> dict[str, np.ndarray]:
    """Row indices ``{"train", "val", "test"}`` from the split column or a seeded random split."""
    rng = np.random.default_rng(seed)
    if table.split is not None:
        split = {s: table.rows(s) for s in ("train", "val", "test")}
        if len(split["val"]) == 0:
            raise ConfigError(
                f"{table.path} has a split column but no 'val' rows; label some rows 'val', or "
                "set data.split_column=null for a random data.n_val split"
            )
    else:
        n = len(table.strings)
        perm = rng.permutation(n)
        n_val = _count(data_cfg["n_val"], n, "data.n_val")
        split = {
            "train": np.sort(perm[n_val:]),
            "val": np.sort(perm[:n_val]),
            "test": np.zeros(0, dtype=np.int64),
        }
    split["train"] = _cap(split["train"], data_cfg["max_train"], rng)
    split["val"] = _cap(split["val"], data_cfg["max_val"], rng)
    if len(split["train"]) == 0 or len(split["val"]) == 0:
        raise ConfigError(
            f"{table.path}: the training and validation sets must both be non-empty "
            f"(train {len(split['train'])}, val {len(split['val'])} strings)"
        )
    return split


def _loader(idx: np.ndarray, batch_size: int, shuffle: bool, seed: int) -> DataLoader:
    """Batches of string indices: per-epoch seeded order, shared out among the processes of a
    multi-process run (:class:`~deepatoms.train.loader.EpochBatchSampler`)."""
    sampler = EpochBatchSampler(np.arange(len(idx)), int(batch_size), shuffle, seed)
    return DataLoader(TensorDataset(torch.from_numpy(idx)), batch_sampler=sampler)


class GrammarVAETask(TrainingTask):
    """The α-weighted negative ELBO on production-index batches (module docstring)."""

    monitor = "val_loss"
    unit = "nats"

    def __init__(self, model: GrammarVAE, grammar: Grammar, train_cfg: dict) -> None:
        super().__init__()
        self.model = model
        self.grammar = grammar
        self.cfg = dict(train_cfg)
        self.null = grammar.null_index
        self._sums = {"train": torch.zeros(6, dtype=torch.float64), "val": torch.zeros(6)}
        self._t0 = self._t_last = time.perf_counter()
        self._val_gen: torch.Generator | None = None
        self._lr = float(self.cfg["lr"])
        self.setup_info: dict[str, Any] = {}

    # -- the protocol -----------------------------------------------------------------------
    @classmethod
    def prepare(cls, ctx: RunContext) -> Prepared:
        """Grammar and strings → split → derivations → model."""
        config, tcfg, dcfg = ctx.config, ctx.train_cfg, ctx.config["data"]
        path = Path(ctx.data)
        grammar = load_grammar(dcfg["grammar"])
        model_cfg = {**config["model"], "n_rules": grammar.n_rules, "max_len": int(dcfg["max_len"])}
        try:
            model = GrammarVAE(model_cfg)
        except ValueError as err:
            raise ConfigError(str(err)) from err
        table = read_string_csv(path, dcfg["string_column"], (), dcfg["split_column"])
        seed = int(ctx.seed if dcfg["split_seed"] is None else dcfg["split_seed"])
        fingerprint = file_fingerprint(path)
        meta = {
            "dataset": str(path.resolve()),
            "n_rows": len(table.strings),
            "seed": seed,
            "dataset_fingerprint": fingerprint,
        }
        split = run_split(
            ctx.run,
            ctx.resume,
            len(table.strings),
            lambda: string_table_split(table, dcfg, seed),
            meta,
        )
        used = np.concatenate([split["train"], split["val"]])
        with ProgressBar("parsing strings", quiet=not ctx.progress) as bar:
            parsed = parse_strings(
                grammar,
                [table.strings[i] for i in used],
                int(dcfg["max_len"]),
                where=lambda k: table.where(int(used[k])),
                progress=bar,
            )
        n_tr = len(split["train"])
        lengths = (parsed != grammar.null_index).sum(1)
        strings_file = ctx.run.root / TRAINING_STRINGS
        atomic_write_text(strings_file, "\n".join(table.strings[i] for i in split["train"]) + "\n")
        stats = {
            "grammar": grammar.name,
            "n_rules": grammar.n_rules,
            "n_train": n_tr,
            "n_val": len(parsed) - n_tr,
            "derivation_length": {"max": int(lengths.max()), "mean": float(lengths.mean())},
        }
        ctx.write_stats(stats)
        train_loader = _loader(parsed[:n_tr], tcfg["batch_size"], True, ctx.seed)
        val_loader = _loader(parsed[n_tr:], tcfg["eval_batch_size"], False, 0)
        task = cls(model, grammar, tcfg)
        task.setup_info = {
            "table": table,
            "split": split,
            "stats": stats,
            "path": path,
            "fingerprint": fingerprint,
            "strings_file": strings_file,
            "split_file": ctx.run.split,
        }
        return Prepared(task, train_loader, val_loader)

    def finish(self, trainer: Any) -> dict[str, Any]:
        """Reconstruction accuracy of up to ``recon_check`` validation strings (§4)."""
        from deepatoms.design.vae_metrics import reconstruction_accuracy

        info = self.setup_info
        table, split = info["table"], info["split"]
        n_check = min(int(self.cfg["recon_check"] or 0), len(split["val"]))
        recon = None
        if n_check > 0:
            space = LatentSpace(self.model, self.grammar)
            check = [table.strings[i] for i in split["val"][:n_check]]
            recon = reconstruction_accuracy(space, check)["accuracy"]
        return {
            "grammar": self.grammar.name,
            "n_train": info["stats"]["n_train"],
            "n_val": info["stats"]["n_val"],
            "val_recon_accuracy": recon,
            "val_recon_checked": n_check,
        }

    def export(self) -> Export:
        """The grammar text and the training strings travel with the model."""
        info = self.setup_info
        return Export(
            model=self.model,
            extras={
                "grammar": {"name": self.grammar.name, "text": self.grammar.text},
                "training_strings": str(info["strings_file"].resolve()),
            },
            training_data={
                "path": str(info["path"].resolve()),
                "fingerprint": info["fingerprint"],
                "n_systems": len(info["table"].strings),
            },
            meta={
                "dataset": str(info["path"].resolve()),
                "stats": info["stats"],
                "split_file": str(info["split_file"].resolve()),
                "training_strings": str(info["strings_file"].resolve()),
                "epochs": self.current_epoch,
            },
        )

    # -- Lightning ----------------------------------------------------------------------------
    def alpha(self) -> float:
        """α of the current epoch (linear warm-up from 0 when ``alpha_warmup_epochs`` > 0)."""
        a, w = float(self.cfg["alpha"]), int(self.cfg["alpha_warmup_epochs"])
        return a * min(1.0, self.current_epoch / w) if w > 0 else a

    def _loss(self, idx: torch.Tensor, alpha: float, generator=None):
        x = F.one_hot(idx, self.model.n_rules).to(self.model.out.weight.dtype)
        out = self.model(x, generator)
        allowed = None
        if self.cfg["mask_in_loss"]:
            from deepatoms.grammar.decode import rule_masks

            allowed = rule_masks(self.grammar, idx)
        loss = vae_loss(
            out["logits"],
            idx,
            out["mu"],
            out["logvar"],
            alpha,
            null_index=self.null,
            exclude_padding=bool(self.cfg["exclude_padding"]),
            allowed=allowed,
            free_bits=float(self.cfg["free_bits"]),
        )
        return loss, token_accuracy(out["logits"], idx, self.null)

    def _add(self, key: str, loss: dict, acc: tuple[int, int], n: int) -> None:
        self._sums[key] += torch.tensor(
            [
                float(loss["loss"].detach()) * n,
                float(loss["recon"].detach()) * n,
                float(loss["kl"].detach()) * n,
                n,
                acc[0],
                acc[1],
            ],
            dtype=torch.float64,
        )

    def on_train_epoch_start(self) -> None:
        self._sums["train"] = torch.zeros(6, dtype=torch.float64)
        self._t0 = self._t_last = time.perf_counter()
        self._lr = self.trainer.optimizers[0].param_groups[0]["lr"]  # the epoch's lr

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        (idx,) = batch
        loss, acc = self._loss(idx, self.alpha())
        self._add("train", loss, acc, idx.shape[0])
        self.log("loss", loss["loss"], prog_bar=True, logger=False, batch_size=idx.shape[0])
        return loss["loss"]

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        self._t_last = time.perf_counter()

    def on_validation_epoch_start(self) -> None:
        self._sums["val"] = torch.zeros(6, dtype=torch.float64)
        self._val_gen = torch.Generator(device=self.device)
        self._val_gen.manual_seed(int(self.cfg["seed"]) + 1)

    def validation_step(self, batch, batch_idx: int) -> None:
        (idx,) = batch
        loss, acc = self._loss(idx, float(self.cfg["alpha"]), self._val_gen)
        self._add("val", loss, acc, idx.shape[0])

    @staticmethod
    def _means(prefix: str, s: torch.Tensor) -> dict[str, float]:
        loss, recon, kl, n, hits, count = s.tolist()
        n = max(n, 1.0)
        return {
            f"{prefix}loss": loss / n,
            f"{prefix}recon": recon / n,
            f"{prefix}kl": kl / n,
            f"{prefix}nelbo": (recon + kl) / n,
            f"{prefix}token_acc": hits / max(count, 1.0),
        }

    def on_validation_epoch_end(self) -> None:
        metrics = self._means("val_", self.sum_over_processes(self._sums["val"]))
        train = self.sum_over_processes(self._sums["train"])
        if train[3] > 0:
            metrics.update(self._means("train_", train))
            metrics["strings_per_s"] = float(train[3]) / max(self._t_last - self._t0, 1e-9)
        metrics["lr"] = self._lr
        metrics["alpha"] = self.alpha()
        self.log(self.monitor, metrics.pop(self.monitor), prog_bar=True)
        self.log_dict(metrics)

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.model.parameters(), lr=float(self.cfg["lr"]))
        step = int(self.cfg["lr_step_epochs"] or 0)
        if step <= 0:
            return opt
        sched = torch.optim.lr_scheduler.StepLR(opt, step, gamma=float(self.cfg["lr_factor"]))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}
