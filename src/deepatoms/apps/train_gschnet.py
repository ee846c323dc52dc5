"""Train G-SchNet (``specs/gschnet.md`` §6–7, §9) through ``deepatoms train``.

Data: a dataset file of molecules (H, C, N, O, F) with a stored bond graph; molecules are
centred and sorted on the fly when the file is not (``generate.traces.prepare_molecules``).
Split as for property models: ``data.split_column`` (e.g. the preparation's ``split`` column),
whole groups, or random ``data.n_train``/``n_val``/``n_test``; saved in ``split.json``.

Every epoch each training molecule gets a fresh random trace, seeded by (``train.seed``, epoch,
molecule index); all steps of a mini-batch of ``train.batch_size`` molecules (or
``train.draw_random_samples`` steps per molecule) form one flat batch. Validation uses fixed
traces (the same every epoch) of the validation molecules, with the same step selection.

Loss (§5): ``models.gschnet.gschnet_loss`` with ``train.label_width_factor`` (γ = w·Δ) and
``train.loss_weighting`` (``default`` per the authors' code, ``paper`` = per-step 1/i). Validation
loss: the same two terms over the whole validation split (type term averaged over its steps,
distance term over its unmasked node predictions; per-step terms averaged for ``paper``).

Optimisation (§7): Adam (``train.lr``, 1e-4 in the paper preset); the learning rate is halved
(``plateau_factor``) after ``plateau_patience`` epochs without a better validation loss, floored
at ``train.min_lr``; training stops at the end of the first epoch run at lr ≤ ``min_lr`` (1e-6),
after ``max_epochs``, or after ``early_stopping_patience`` epochs without improvement. The model
with the best validation loss is exported to ``model.pt``.

Fine-tuning (§9): ``init`` = a G-SchNet ``model.pt`` with the same model config; its weights are
copied and the optimiser, learning rate and schedule start fresh. Resuming, the run folder and
progress are those of :func:`deepatoms.apps.train.train`.
"""

from __future__ import annotations

import copy
import logging
import math
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader

from deepatoms.apps.train import (
    _RESUMABLE_KEYS,
    _config_split,
    _explicit_split,
    _load_ckpt_weights,
    _trainer,
)
from deepatoms.config.files import save_config
from deepatoms.config.schema import config_diff
from deepatoms.core.errors import ConfigError
from deepatoms.core.files import write_json
from deepatoms.data.dataset import read_dataset
from deepatoms.data.fingerprint import file_fingerprint
from deepatoms.data.graph import Batch
from deepatoms.data.packed import PackedSystems
from deepatoms.data.splits import load_split, save_split
from deepatoms.generate.steps import ALL_PAIRS
from deepatoms.generate.traces import VALIDATION_EPOCH, Molecules, prepare_molecules, training_steps
from deepatoms.models.gschnet import GSchNet, gschnet_loss
from deepatoms.models.loading import load_model
from deepatoms.models.model_file import write_model_file
from deepatoms.models.registry import build_model
from deepatoms.models.registry import load_run_config as load_config
from deepatoms.train.loader import EpochBatchSampler, _IndexArrays
from deepatoms.train.runfiles import RunDir, check_run_folder

log = logging.getLogger(__name__)

__all__ = ["GSchNetTask", "StopAtMinLR", "make_trace_loader", "train_gschnet"]

MONITOR = "val_loss"


class _TraceCollate:
    """Molecule indices → flat Batch of trace steps; the epoch comes from the sampler."""

    def __init__(
        self,
        mols: Molecules,
        sampler: EpochBatchSampler,
        seed: int,
        draw: int,
        dtype: torch.dtype,
        fixed_epoch: int | None,
    ) -> None:
        self.mols, self.sampler, self.seed, self.draw = mols, sampler, seed, draw
        self.dtype, self.fixed_epoch = dtype, fixed_epoch

    def __call__(self, systems: np.ndarray) -> Batch:
        epoch = self.sampler.epoch if self.fixed_epoch is None else self.fixed_epoch
        return training_steps(self.mols, systems, self.seed, epoch, self.draw, self.dtype)


def make_trace_loader(
    mols: Molecules,
    indices: Sequence[int] | np.ndarray,
    batch_size: int,
    train: bool,
    seed: int = 0,
    draw_random_samples: int = 0,
    dtype: torch.dtype = torch.float32,
) -> DataLoader:
    """DataLoader of flat step batches of ``batch_size`` molecules each.

    ``train``: shuffled molecules and new traces every epoch (Lightning calls ``set_epoch``);
    otherwise fixed order and fixed traces (``VALIDATION_EPOCH``).
    """
    sampler = EpochBatchSampler(indices, batch_size, shuffle=train, seed=seed)
    collate = _TraceCollate(
        mols, sampler, seed, int(draw_random_samples), dtype, None if train else VALIDATION_EPOCH
    )
    return DataLoader(_IndexArrays(), sampler=sampler, batch_size=None, collate_fn=collate)


class GSchNetTask(L.LightningModule):
    """Lightning task: G-SchNet loss on trace batches, Adam with a plateau schedule (§5, §7)."""

    def __init__(self, model: GSchNet, train_cfg: Mapping) -> None:
        super().__init__()
        self.model = model
        self.cfg = dict(train_cfg)
        self.width = float(self.cfg["label_width_factor"])
        self.weighting = str(self.cfg["loss_weighting"])
        self._val = torch.zeros(4, dtype=torch.float64)

    def transfer_batch_to_device(self, batch: Batch, device: torch.device, dataloader_idx: int):
        return batch.to(device)

    def _loss(self, batch: Batch) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        t = batch.targets
        out = self.model(batch, t["next_type"])
        loss = gschnet_loss(
            out,
            t["type_class"],
            t["distance"],
            batch.batch,
            t["placement"],
            self.model.bins,
            self.width,
            self.weighting,
            t["n_placed"],
        )
        return out, loss

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        _, loss = self._loss(batch)
        n = batch.num_systems
        self.log(
            "train_loss", loss["loss"], on_step=True, on_epoch=True, prog_bar=True, batch_size=n
        )
        self.log("train_type_loss", loss["type"], on_epoch=True, on_step=False, batch_size=n)
        self.log("train_dist_loss", loss["distance"], on_epoch=True, on_step=False, batch_size=n)
        self.log("lr", self.trainer.optimizers[0].param_groups[0]["lr"], on_step=True, batch_size=n)
        return loss["loss"]

    def on_validation_epoch_start(self) -> None:
        self._val = torch.zeros(4, dtype=torch.float64)  # Σ type, #steps, Σ dist, #dist terms

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        _, loss = self._loss(batch)
        t = batch.targets
        n_steps = batch.num_systems
        if self.weighting == "default":
            n_dist = int(t["placement"].index_select(0, batch.batch).sum())
        else:
            n_dist = n_steps  # per-step distance terms, averaged over steps
        self._val += torch.tensor(
            [float(loss["type"]) * n_steps, n_steps, float(loss["distance"]) * n_dist, n_dist],
            dtype=torch.float64,
        )

    def on_validation_epoch_end(self) -> None:
        s_type, n_steps, s_dist, n_dist = self._val.tolist()
        type_term = s_type / max(n_steps, 1)
        dist_term = s_dist / max(n_dist, 1)
        self.log("val_loss", type_term + dist_term, prog_bar=True)
        self.log("val_type_loss", type_term)
        self.log("val_dist_loss", dist_term)

    def configure_optimizers(self):
        c = self.cfg
        if c["optimizer"] != "adam" or c["lr_schedule"] != "plateau":
            raise ConfigError(
                "G-SchNet trains with Adam and a plateau schedule (specs/gschnet.md §7): set "
                f"train.optimizer=adam and train.lr_schedule=plateau (got {c['optimizer']!r}, "
                f"{c['lr_schedule']!r})"
            )
        opt = torch.optim.Adam(self.model.parameters(), lr=c["lr"], weight_decay=c["weight_decay"])
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt,
            mode="min",
            factor=c["plateau_factor"],
            patience=c["plateau_patience"],
            min_lr=c["min_lr"],
        )
        return {
            "optimizer": opt,
            "lr_scheduler": {"scheduler": sched, "monitor": MONITOR, "interval": "epoch"},
        }


class StopAtMinLR(Callback):
    """Stop after an epoch trained at a learning rate ≤ ``min_lr`` (§7: stop at lr ≤ 10⁻⁶)."""

    def __init__(self, min_lr: float) -> None:
        self.min_lr = float(min_lr)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        lr = trainer.optimizers[0].param_groups[0]["lr"]
        if self.min_lr > 0 and lr <= self.min_lr * (1 + 1e-9):
            trainer.should_stop = True


def _resolve_split(
    run: RunDir,
    config: dict,
    data: PackedSystems,
    data_path: Path,
    split: Mapping | None,
    resume: bool,
) -> dict[str, np.ndarray]:
    """The saved split (resume), an explicit one, or the config's; saved in ``split.json``."""
    if resume and run.split.is_file():
        return load_split(run.split)
    seed = None
    if split is not None:
        split = _explicit_split(split, len(data))
    else:
        d = config["data"]
        seed = config["train"]["seed"] if d["split_seed"] is None else d["split_seed"]
        split = _config_split(data, d, seed, data_path)
    info = {"dataset": str(data_path.resolve()), "n_systems": len(data), "seed": seed}
    save_split(run.split, split, info)
    return split


def _init_from_gschnet(model: GSchNet, path: str | Path) -> dict:
    """Copy every weight of the G-SchNet file ``path`` into ``model`` (same model config)."""
    loaded = load_model(path, expect="gschnet")
    if not isinstance(loaded.model, GSchNet):
        raise ConfigError(f"--init {path} is not a G-SchNet model ({type(loaded.model).__name__})")
    diff = config_diff(loaded.model.config, model.config)
    if diff:
        raise ConfigError(
            f"--init {path}: its model differs from this run's model, so its weights cannot be "
            "loaded:\n  " + "\n  ".join(diff) + "\nUse the same preset (and --set overrides)."
        )
    model.load_state_dict(loaded.model.state_dict())
    return {"model_file": str(Path(path).resolve()), "steps": loaded.meta.get("steps")}


def train_gschnet(
    config: dict,
    data_path: str | Path,
    out: str | Path,
    progress: bool = True,
    init: str | Path | None = None,
    split: Mapping[str, Sequence[int] | np.ndarray] | None = None,
) -> dict:
    """Train (or resume) a G-SchNet run in folder ``out`` on the dataset ``data_path``.

    ``init``: a G-SchNet ``model.pt`` to fine-tune (weights copied, optimiser reset);
    ``split``: explicit ``{"train", "val"[, "test"]}`` molecule indices. Returns the run summary
    (also ``summary.json``): ``best_val_loss`` (nats), epochs, steps, the exported model file.
    """
    config = copy.deepcopy(config)
    data_path = Path(data_path)
    run = RunDir(out)
    t0 = time.time()
    tcfg = config["train"]
    if tcfg.get("num_threads"):
        torch.set_num_threads(int(tcfg["num_threads"]))
    dtype = {"float32": torch.float32, "float64": torch.float64}.get(tcfg["dtype"])
    if dtype is None:
        raise ConfigError(f"train.dtype must be float32 or float64, got {tcfg['dtype']!r}")
    missing = {"draw_random_samples", "label_width_factor", "loss_weighting"} - set(tcfg)
    if missing:
        raise ConfigError(
            f"the config lacks G-SchNet training keys train.{sorted(missing)}; "
            "start from a gschnet preset (deepatoms presets)"
        )
    resume = check_run_folder(run, config, load_config, _RESUMABLE_KEYS, log)

    data, meta = read_dataset(data_path)
    try:
        mols = prepare_molecules(data, str(data_path))
    except ValueError as err:
        raise ConfigError(str(err)) from err
    if mols.n_recentred or mols.n_reordered:
        log.warning(
            "%s: centred %d and re-sorted %d molecules on the fly (specs/gschnet.md §6)",
            data_path,
            mols.n_recentred,
            mols.n_reordered,
        )
    L.seed_everything(tcfg["seed"], workers=True, verbose=False)
    split = _resolve_split(run, config, data, data_path, split, resume)
    if len(split["val"]) == 0 or len(split["train"]) == 0:
        raise ConfigError("the training and validation splits must both be non-empty")
    save_config(config, run.config)

    model = build_model(config["model"])
    if not isinstance(model, GSchNet):
        raise ConfigError(f"model.name must be 'gschnet', got {config['model'].get('name')!r}")
    stats = {
        "n_train": len(split["train"]),
        "n_recentred": mols.n_recentred,
        "n_reordered": mols.n_reordered,
    }
    if init is not None:
        stats["init"] = _init_from_gschnet(model, init)
    write_json(run.stats, stats)
    model.to(dtype)

    seed, draw = tcfg["seed"], int(tcfg["draw_random_samples"])
    bs, ebs = tcfg["batch_size"], tcfg["eval_batch_size"]
    train_loader = make_trace_loader(mols, split["train"], bs, True, seed, draw, dtype)
    val_loader = make_trace_loader(mols, split["val"], ebs, False, seed, draw, dtype)
    task = GSchNetTask(model, tcfg)
    trainer = _trainer(config, run, progress, MONITOR)
    trainer.callbacks.append(StopAtMinLR(tcfg["min_lr"]))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*max_epochs.*")
        warnings.filterwarnings("ignore", message=".*LeafSpec.*")
        warnings.filterwarnings("ignore", message=".*logging interval.*")
        trainer.fit(
            task, train_loader, val_loader, ckpt_path=str(run.last_ckpt) if resume else None
        )

    if run.best_ckpt.is_file():
        _load_ckpt_weights(run.best_ckpt, model)
    score = trainer.checkpoint_callback.best_model_score
    best_val = float(score) if score is not None else math.nan
    summary = {
        "run": str(run.root),
        "preset": config.get("name"),
        "model": "gschnet",
        "target": None,
        "unit": "nats",
        "n_train": len(split["train"]),
        "n_val": len(split["val"]),
        "n_test": len(split["test"]),
        "epochs": trainer.current_epoch,
        "steps": trainer.global_step,
        "best_val_loss": best_val,
        "final_lr": trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else None,
        "resumed": resume,
        "init": stats.get("init"),
        "wall_time_s": round(time.time() - t0, 1),
        "model_file": str(run.model),
        "interrupted": bool(trainer.interrupted),
    }
    meta_out = {
        "dataset": str(data_path.resolve()),
        "dataset_source": meta.get("source", ""),
        "stats": stats,
        "elements": sorted(int(z) for z in np.unique(mols.numbers)),
        "config": config,
        "best_val_loss": best_val,
        "steps": trainer.global_step,
        "split_file": str(run.split.resolve()),
    }
    write_model_file(
        run.model,
        model,
        "gschnet",
        extras={"graph": ALL_PAIRS.to_config(), "elements": meta_out["elements"]},
        units={"length": "Å"},
        training_data={
            "path": str(data_path.resolve()),
            "source": meta.get("source", ""),
            "fingerprint": file_fingerprint(data_path),
            "n_systems": len(data),
        },
        run_config=config,
        meta=meta_out,
    )
    write_json(run.summary, summary)
    return summary
