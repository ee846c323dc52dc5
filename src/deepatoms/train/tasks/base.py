"""What a model family plugs into the training protocol (:func:`deepatoms.train.fit`).

A family's task is a ``LightningModule`` (:class:`TrainingTask`) with four more duties:

1. :meth:`TrainingTask.prepare` (a classmethod) reads the run's data, makes or reloads the
   split (``split.json``), computes what the model needs from the training data (statistics,
   vocabularies; ``stats.json``), builds the model (or starts it from ``--init``) and returns the
   task with its data loaders (:class:`Prepared`);
2. :attr:`TrainingTask.monitor`: the validation metric that selects the best checkpoint and
   stops early (lower is better), and :meth:`TrainingTask.callbacks` for anything else;
3. :meth:`TrainingTask.finish`, called with the best weights loaded: final numbers for the
   run summary (e.g. force errors of a potential, reconstruction accuracy of a VAE);
4. :meth:`TrainingTask.export`: what the model file holds besides the weights (:class:`Export`).

The protocol owns everything else: the run folder, resuming, the ``Trainer``, checkpoints,
logging, the model file and ``summary.json``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch import nn
from torch.utils.data import DataLoader

from deepatoms.core.files import write_json
from deepatoms.models.registry import Family, ModelKind
from deepatoms.train.run_folder import RunFolder

__all__ = ["Export", "Prepared", "RunContext", "TrainingTask"]


@dataclass
class RunContext:
    """What the protocol hands a task to set a run up."""

    config: dict[str, Any]
    family: Family
    kind: ModelKind
    data: Any  # a dataset file, a CSV of strings, crystal sources or a CrystalSet
    run: RunFolder
    resume: bool
    progress: bool = True
    split: Mapping[str, Any] | None = None  # explicit indices (cross-validation folds)
    init: Path | None = None  # a model file to start from (fine-tuning)
    init_part: str = "all"

    @property
    def train_cfg(self) -> dict[str, Any]:
        """The ``train`` section of the config."""
        return self.config["train"]

    @property
    def seed(self) -> int:
        """``train.seed``."""
        return int(self.config["train"]["seed"])

    def write_stats(self, stats: Mapping[str, Any]) -> None:
        """Write ``stats.json`` (what the model learnt from the training data besides weights);
        only on rank 0 of a multi-process run."""
        from deepatoms.train.run_folder import process_rank

        if process_rank() == 0:
            write_json(self.run.stats, stats)


@dataclass
class Prepared:
    """A task ready to fit, with its data."""

    task: TrainingTask
    train_loader: DataLoader
    val_loader: DataLoader | None


@dataclass
class Export:
    """What goes into the model file besides ``model``'s config and weights."""

    model: nn.Module
    extras: dict[str, Any] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    target: dict[str, Any] | None = None
    normalisation: dict[str, Any] = field(default_factory=dict)
    training_data: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


class TrainingTask(L.LightningModule):
    """Base of the family tasks (module docstring); subclasses hold the model as ``model``."""

    #: The logged validation metric that selects the best model and stops early.
    monitor: str = "val_loss"
    #: Keep autograd on during validation (potentials differentiate the energy there).
    grad_in_validation: bool = False
    #: Draw ``plots/learning_curve.png`` from ``metrics.csv`` after training.
    learning_curve: bool = False
    #: The unit of the monitored metric, for the run summary and plots.
    unit: str = ""

    model: nn.Module

    def sum_over_processes(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` (running sums, on the CPU) summed over the processes of a multi-process run
        (each process saw its share of the batches); ``t`` itself in one process."""
        trainer = getattr(self, "_trainer", None)
        if trainer is None or trainer.world_size <= 1:
            return t
        return trainer.strategy.reduce(t.to(self.device), reduce_op="sum").to("cpu", t.dtype)

    @classmethod
    def prepare(cls, ctx: RunContext) -> Prepared:
        """Read the data, split it, build the model: the task and its loaders."""
        raise NotImplementedError

    def callbacks(self) -> list[Callback]:
        """Callbacks of this family besides checkpoints and early stopping."""
        return []

    def load_weights(self, checkpoint: Path) -> None:
        """Load the model weights of a Lightning checkpoint (e.g. ``best.ckpt``)."""
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
        own = {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}
        self.model.load_state_dict(own)

    def finish(self, trainer: L.Trainer) -> dict[str, Any]:
        """Entries of the run summary computed with the best weights loaded."""
        return {}

    def export(self) -> Export:
        """The model and what its file needs besides the weights."""
        raise NotImplementedError

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int):
        """Batches of packed systems move with their own ``to``; others as Lightning does."""
        if hasattr(batch, "to") and not isinstance(batch, torch.Tensor):
            return batch.to(device)
        return super().transfer_batch_to_device(batch, device, dataloader_idx)
