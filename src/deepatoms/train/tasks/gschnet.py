"""Training task of G-SchNet (Gebauer, Gastegger & Schütt 2019; docs/gschnet.md §5–7).

Data: a dataset file of molecules (H, C, N, O, F) with a stored bond graph; molecules are
centred and sorted on the fly when the file is not (``generate.traces.prepare_molecules``).
Split as for property models: ``data.split_column`` (e.g. the ``split`` column of
``deepatoms data qm9-generative``), whole groups, or random ``data.n_train``/``n_val``/``n_test``.

Every epoch each training molecule gets a fresh random trace, seeded by (``train.seed``, epoch,
molecule index); all steps of a mini-batch of ``train.batch_size`` molecules (or
``train.draw_random_samples`` steps per molecule) form one flat batch. Validation uses fixed
traces (the same every epoch) of the validation molecules, with the same step selection.

Loss (Gebauer et al. 2019, §3): ``models.gschnet.gschnet_loss`` with
``train.label_width_factor`` (γ = w·Δ) and ``train.loss_weighting`` (``default``, as in the
authors' code; ``paper``: per-step 1/i). Validation loss: the same two terms over the whole
validation split (type term averaged over its steps, distance term over its unmasked node
predictions; per-step terms averaged for ``paper``).

Optimisation: Adam (``train.lr``; 1e-4 in the paper preset) with the learning rate halved
(``plateau_factor``) after ``plateau_patience`` epochs without a better validation loss, floored
at ``train.min_lr``; training stops at the end of the first epoch run at lr ≤ ``min_lr``
(10⁻⁶), after ``max_epochs``, or after ``early_stopping_patience`` epochs without improvement.

Fine-tuning (``--init``, the biased generation of §4 of the paper): the weights of a G-SchNet
model file with the same model config; optimiser, learning rate and schedule start fresh.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from deepatoms.core.errors import ConfigError
from deepatoms.data.dataset import read_dataset
from deepatoms.data.fingerprint import file_fingerprint
from deepatoms.data.graph import Batch
from deepatoms.generate.steps import ALL_PAIRS
from deepatoms.generate.traces import VALIDATION_EPOCH, Molecules, prepare_molecules, training_steps
from deepatoms.models.gschnet import GSchNet, gschnet_loss
from deepatoms.models.registry import build_model
from deepatoms.train.data_split import dataset_split
from deepatoms.train.loader import EpochBatchSampler, _IndexArrays
from deepatoms.train.optim import configure_optimisation
from deepatoms.train.tasks.base import Export, Prepared, RunContext, TrainingTask
from deepatoms.train.tasks.property_setup import init_from
from deepatoms.train.trainer import StopAtMinLR

log = logging.getLogger(__name__)

__all__ = ["GSchNetTask", "make_trace_loader"]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


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
    mols: Molecules, indices: Sequence[int] | np.ndarray, batch_size: int, train: bool,
    seed: int = 0, draw_random_samples: int = 0, dtype: torch.dtype = torch.float32,
) -> DataLoader:  # fmt: skip
    """DataLoader of flat step batches of ``batch_size`` molecules each.

    ``train``: shuffled molecules and new traces every epoch (Lightning calls ``set_epoch``);
    otherwise fixed order and fixed traces (``VALIDATION_EPOCH``).
    """
    sampler = EpochBatchSampler(indices, batch_size, shuffle=train, seed=seed)
    collate = _TraceCollate(
        mols, sampler, seed, int(draw_random_samples), dtype, None if train else VALIDATION_EPOCH
    )
    return DataLoader(_IndexArrays(), sampler=sampler, batch_size=None, collate_fn=collate)


class GSchNetTask(TrainingTask):
    """G-SchNet loss on trace batches, Adam with a plateau schedule (module docstring)."""

    monitor = "val_loss"
    unit = "nats"

    def __init__(self, model: GSchNet, train_cfg: Mapping) -> None:
        super().__init__()
        self.model = model
        self.cfg = dict(train_cfg)
        self.width = float(self.cfg["label_width_factor"])
        self.weighting = str(self.cfg["loss_weighting"])
        self._val = torch.zeros(4, dtype=torch.float64)
        self.setup_info: dict[str, Any] = {}

    # -- the protocol -----------------------------------------------------------------------
    @classmethod
    def prepare(cls, ctx: RunContext) -> Prepared:
        """Molecules (centred and sorted) → split → model (or ``--init``) → trace loaders."""
        tcfg, path = ctx.train_cfg, Path(ctx.data)
        if ctx.config["train"]["optimizer"] != "adam" or tcfg["lr_schedule"] != "plateau":
            raise ConfigError(
                "G-SchNet trains with Adam and a plateau schedule (Gebauer et al. 2019): set "
                f"train.optimizer=adam and train.lr_schedule=plateau (got {tcfg['optimizer']!r}, "
                f"{tcfg['lr_schedule']!r})"
            )
        data, meta = read_dataset(path)
        try:
            mols = prepare_molecules(data, str(path))
        except ValueError as err:
            raise ConfigError(str(err)) from err
        if mols.n_recentred or mols.n_reordered:
            log.warning(
                "%s: centred %d and re-sorted %d molecules on the fly",
                path,
                mols.n_recentred,
                mols.n_reordered,
            )
        fingerprint = file_fingerprint(path)
        split = dataset_split(ctx, data, path, fingerprint)
        model = build_model(ctx.config["model"])
        stats: dict[str, Any] = {
            "n_train": len(split["train"]),
            "n_recentred": mols.n_recentred,
            "n_reordered": mols.n_reordered,
        }
        if ctx.init is not None and not ctx.resume:
            stats["init"] = init_from(model, ctx.init, expect="gschnet")
        ctx.write_stats(stats)
        dtype = _DTYPES[tcfg["dtype"]]
        model.to(dtype)
        seed, draw = ctx.seed, int(tcfg["draw_random_samples"])
        bs, ebs = tcfg["batch_size"], tcfg["eval_batch_size"]
        train_loader = make_trace_loader(mols, split["train"], bs, True, seed, draw, dtype)
        val_loader = make_trace_loader(mols, split["val"], ebs, False, seed, draw, dtype)
        task = cls(model, tcfg)
        task.setup_info = {
            "split": split,
            "stats": stats,
            "mols": mols,
            "path": path,
            "meta": meta,
            "n": len(data),
            "fingerprint": fingerprint,
            "split_file": str(ctx.run.split.resolve()),
        }
        return Prepared(task, train_loader, val_loader)

    def callbacks(self) -> list:
        """Stop at the learning-rate floor (Gebauer et al. 2019)."""
        return [StopAtMinLR(self.cfg["min_lr"])]

    def finish(self, trainer: Any) -> dict[str, Any]:
        """Split sizes and the fine-tuning source, if any."""
        split = self.setup_info["split"]
        return {
            "target": None,
            "unit": "nats",
            "n_train": len(split["train"]),
            "n_val": len(split["val"]),
            "n_test": len(split["test"]),
            "init": self.setup_info["stats"].get("init"),
        }

    def export(self) -> Export:
        """The all-pairs graph of partial molecules and the elements of the training data."""
        info = self.setup_info
        elements = sorted(int(z) for z in np.unique(info["mols"].numbers))
        return Export(
            model=self.model,
            extras={"graph": ALL_PAIRS.to_config(), "elements": elements},
            units={"length": "Å"},
            training_data={
                "path": str(info["path"].resolve()),
                "source": info["meta"].get("source", ""),
                "fingerprint": info["fingerprint"],
                "n_systems": info["n"],
            },
            meta={
                "dataset": str(info["path"].resolve()),
                "stats": info["stats"],
                "elements": elements,
                "split_file": info["split_file"],
            },
        )

    # -- Lightning ----------------------------------------------------------------------------
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
        s_type, n_steps, s_dist, n_dist = self.sum_over_processes(self._val).tolist()
        type_term = s_type / max(n_steps, 1)
        dist_term = s_dist / max(n_dist, 1)
        self.log("val_loss", type_term + dist_term, prog_bar=True)
        self.log("val_type_loss", type_term)
        self.log("val_dist_loss", dist_term)

    def configure_optimizers(self):
        """Adam with a plateau schedule checked after every validation (Gebauer et al. 2019)."""
        c = {**self.cfg, "optimizer": "adam", "lr_schedule": "plateau", "val_every_steps": None}
        return configure_optimisation(self.model.parameters(), c, self.monitor, lambda: 0)
