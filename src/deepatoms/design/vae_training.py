"""Train (or resume) a grammar VAE in a run folder (``specs/grammar-vae.md`` §2–4).

Data: a CSV of strings (``design.vae_io.read_string_csv``). Split: the CSV's ``split`` column
(``data.split_column``; train/val/test rows) or, without one, a seeded random ``data.n_val``
fraction (10 %, §3) for validation; ``data.max_train``/``data.max_val`` cap both (seeded random
subsets, for CPU presets). Every string is parsed once into its leftmost derivation (T =
``data.max_len`` steps, NULL-padded).

Objective (Paper D Eq. B2, Paper C Eq. 10; ``models.grammar_vae.vae_loss``): per string
−Σ_t log p(x⁽ᵗ⁾|x⁽<ᵗ⁾, z) + α·KL(q(z|x) ‖ N(0, I)), one reparameterised sample, batch mean.
α = ``train.alpha`` (0.08); optional linear warm-up α_e = α·min(1, e / W) over the first
``alpha_warmup_epochs`` W epochs (thesis Ch. 4), free bits, ``mask_in_loss``, ``exclude_padding``.

Optimisation (§3): Adam (lr 10⁻³), the learning rate multiplied by ``lr_factor`` (½) every
``lr_step_epochs`` (100) epochs; batch 64; at most ``max_epochs`` (300); early stopping after
``early_stopping_patience`` (30) epochs without a lower validation loss. The validation loss is
the objective at the final α (not the warm-up α) with fixed noise ε each epoch, so epochs
compare. ``metrics.csv`` has one row per epoch: train and validation loss, reconstruction term,
KL, −ELBO (α = 1) and teacher-forced token accuracy (non-NULL steps), lr, α, training throughput.

Run folder (``train.runfiles.RunDir``): ``config.yaml`` · ``split.json`` (CSV row indices) ·
``stats.json`` · ``training_strings.txt`` (one per line, for novelty and ICM exclusion) ·
``checkpoints/{best,last}.ckpt`` · ``metrics.csv`` · ``model.pt`` (best weights, grammar text
embedded; ``design.vae_io``) · ``summary.json`` (incl. the reconstruction accuracy of up to
``train.recon_check`` validation strings, §4). Running again on the folder resumes from
``last.ckpt`` (same config; ``max_epochs``/``max_time`` may change).
"""

from __future__ import annotations

import copy
import logging
import math
import time
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from deepatoms.apps.train import _RESUMABLE_KEYS, _load_ckpt_weights, _trainer
from deepatoms.config.files import save_config
from deepatoms.core.errors import ConfigError
from deepatoms.core.files import atomic_write_text, write_json
from deepatoms.core.progress import ProgressBar
from deepatoms.data.splits import load_split, save_split
from deepatoms.data.strings import StringTable, read_string_csv
from deepatoms.design.vae_io import TRAINING_STRINGS, save_grammar_vae
from deepatoms.grammar.cfg import Grammar, load_grammar
from deepatoms.models.grammar_vae import GrammarVAE, token_accuracy, vae_loss
from deepatoms.models.latent_space import LatentSpace, parse_strings
from deepatoms.models.registry import family, family_of, load_preset, load_run_config
from deepatoms.train.runfiles import RunDir, check_run_folder

log = logging.getLogger(__name__)

__all__ = [
    "VAE_DEFAULTS",
    "GrammarVAETask",
    "load_vae_config",
    "load_vae_preset",
    "resolve_vae_split",
    "train_grammar_vae",
    "vae_preset_names",
]

MONITOR = "val_loss"
MODEL_NAME = "grammar-vae"

#: Defaults of a grammar-VAE config (the registry's schema).
VAE_DEFAULTS: dict[str, Any] = family("grammar_vae").schema.defaults()


def vae_preset_names() -> list[str]:
    """Names of the shipped grammar-VAE presets."""
    return family("grammar_vae").presets()


def load_vae_preset(name: str) -> dict:
    """The grammar-VAE preset ``name``, resolved by the registry."""
    cfg = load_preset(name)
    if family_of(cfg).name != "grammar_vae":
        raise ConfigError(
            f"preset {name!r} is not a grammar-VAE preset; choose one of "
            f"{', '.join(vae_preset_names())}"
        )
    return cfg


def load_vae_config(path: str | Path) -> dict:
    """A run's ``config.yaml`` resolved by the registry."""
    return load_run_config(path)


def _count(value: float | int, n: int, key: str) -> int:
    v = float(value)
    if v < 0:
        raise ConfigError(f"{key} must be ≥ 0, got {value}")
    if v < 1:  # a fraction: at least one row when it is > 0
        return max(1, round(v * n)) if v > 0 else 0
    return int(v)


def _cap(idx: np.ndarray, cap: int | None, rng: np.random.Generator) -> np.ndarray:
    if cap is None or len(idx) <= int(cap):
        return idx
    return np.sort(rng.choice(idx, size=int(cap), replace=False))


def resolve_vae_split(table: StringTable, data_cfg: dict, seed: int) -> dict[str, np.ndarray]:
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


class GrammarVAETask(L.LightningModule):
    """Lightning task: the α-weighted negative ELBO on production-index batches (§3)."""

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
        metrics = self._means("val_", self._sums["val"])
        train = self._sums["train"]
        if train[3] > 0:
            metrics.update(self._means("train_", train))
            metrics["strings_per_s"] = float(train[3]) / max(self._t_last - self._t0, 1e-9)
        metrics["lr"] = self._lr
        metrics["alpha"] = self.alpha()
        self.log(MONITOR, metrics.pop(MONITOR), prog_bar=True)
        self.log_dict(metrics)

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.model.parameters(), lr=float(self.cfg["lr"]))
        step = int(self.cfg["lr_step_epochs"] or 0)
        if step <= 0:
            return opt
        sched = torch.optim.lr_scheduler.StepLR(opt, step, gamma=float(self.cfg["lr_factor"]))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}


def _loader(idx: np.ndarray, batch_size: int, shuffle: bool, seed: int) -> DataLoader:
    gen = torch.Generator()
    gen.manual_seed(seed)
    ds = TensorDataset(torch.from_numpy(idx))
    return DataLoader(ds, batch_size=int(batch_size), shuffle=shuffle, generator=gen)


def train_grammar_vae(
    config: dict, data_path: str | Path, out: str | Path, progress: bool = True
) -> dict:
    """Train (or resume) a grammar VAE on the string CSV ``data_path`` in run folder ``out``.

    Returns the run summary (also ``summary.json``): ``best_val_loss`` (nats per string),
    epochs, steps, validation reconstruction accuracy, the model file.
    """
    config = copy.deepcopy(config)
    data_path = Path(data_path)
    run = RunDir(out)
    t_start = time.time()
    tcfg, dcfg = config["train"], config["data"]
    if tcfg.get("num_threads"):
        torch.set_num_threads(int(tcfg["num_threads"]))
    if config["model"].get("name", MODEL_NAME) != MODEL_NAME:
        raise ConfigError(f"model.name must be {MODEL_NAME!r}, got {config['model']['name']!r}")
    grammar = load_grammar(dcfg["grammar"])
    resume = check_run_folder(run, config, load_vae_config, _RESUMABLE_KEYS, log)
    L.seed_everything(tcfg["seed"], workers=True, verbose=False)
    model_cfg = dict(config["model"])
    model_cfg.update(n_rules=grammar.n_rules, max_len=int(dcfg["max_len"]))
    try:
        model = GrammarVAE(model_cfg)
    except ValueError as err:
        raise ConfigError(str(err)) from err

    table = read_string_csv(data_path, dcfg["string_column"], (), dcfg["split_column"])
    seed = int(tcfg["seed"] if dcfg["split_seed"] is None else dcfg["split_seed"])
    if resume and run.split.is_file():
        split = load_split(run.split)
    else:
        split = resolve_vae_split(table, dcfg, seed)
        info = {"dataset": str(data_path.resolve()), "n_rows": len(table.strings), "seed": seed}
        save_split(run.split, split, info)
    if any(len(s) and int(s.max()) >= len(table.strings) for s in split.values()):
        raise ConfigError(f"{run.split} does not match {data_path}: row indices out of range")
    save_config(config, run.config)

    used = np.concatenate([split["train"], split["val"]])
    with ProgressBar("parsing strings", quiet=not progress) as bar:
        parsed = parse_strings(
            grammar,
            [table.strings[i] for i in used],
            int(dcfg["max_len"]),
            where=lambda k: table.where(int(used[k])),
            progress=bar,
        )
    n_tr = len(split["train"])
    idx_train, idx_val = parsed[:n_tr], parsed[n_tr:]
    lengths = (parsed != grammar.null_index).sum(1)
    train_strings = [table.strings[i] for i in split["train"]]
    atomic_write_text(run.root / TRAINING_STRINGS, "\n".join(train_strings) + "\n")
    stats = {
        "grammar": grammar.name,
        "n_rules": grammar.n_rules,
        "n_train": n_tr,
        "n_val": len(idx_val),
        "derivation_length": {"max": int(lengths.max()), "mean": float(lengths.mean())},
    }
    write_json(run.stats, stats)

    task = GrammarVAETask(model, grammar, tcfg)
    trainer = _trainer(config, run, progress, MONITOR)
    train_loader = _loader(idx_train, tcfg["batch_size"], True, int(tcfg["seed"]))
    val_loader = _loader(idx_val, tcfg["eval_batch_size"], False, 0)
    with warnings.catch_warnings():
        for msg in (
            "does not have many workers",
            "max_epochs",
            "LeafSpec",
            "logging interval",
            "exists and is not empty",
        ):
            warnings.filterwarnings("ignore", message=f".*{msg}.*")
        trainer.fit(
            task, train_loader, val_loader, ckpt_path=str(run.last_ckpt) if resume else None
        )

    if run.best_ckpt.is_file():
        _load_ckpt_weights(run.best_ckpt, model)
    model.eval()
    score = trainer.checkpoint_callback.best_model_score
    best_val = float(score) if score is not None else math.nan
    meta = {
        "dataset": str(data_path.resolve()),
        "config": config,
        "stats": stats,
        "best_val_loss": best_val,
        "epochs": trainer.current_epoch,
        "steps": trainer.global_step,
        "split_file": str(run.split.resolve()),
        "training_strings": str((run.root / TRAINING_STRINGS).resolve()),
    }
    save_grammar_vae(run.model, model, grammar, meta)

    from deepatoms.design.vae_metrics import reconstruction_accuracy

    n_check = min(int(tcfg["recon_check"] or 0), len(idx_val))
    recon = None
    if n_check > 0:
        space = LatentSpace(model, grammar, meta)
        check = [table.strings[i] for i in split["val"][:n_check]]
        recon = reconstruction_accuracy(space, check)["accuracy"]
    summary = {
        "run": str(run.root),
        "preset": config.get("name"),
        "model": MODEL_NAME,
        "grammar": grammar.name,
        "n_train": n_tr,
        "n_val": len(idx_val),
        "epochs": trainer.current_epoch,
        "steps": trainer.global_step,
        "best_val_loss": best_val,
        "val_recon_accuracy": recon,
        "val_recon_checked": n_check,
        "final_lr": trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else None,
        "resumed": resume,
        "wall_time_s": round(time.time() - t_start, 1),
        "model_file": str(run.model),
        "interrupted": bool(trainer.interrupted),
    }
    write_json(run.summary, summary)
    return summary
