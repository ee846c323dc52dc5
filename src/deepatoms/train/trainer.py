"""The Lightning ``Trainer`` of every training run, built in one place (:func:`make_trainer`).

Its settings come from the config's ``train`` section: ``max_epochs``, ``max_steps``,
``max_time`` (minutes, counted over all resumed parts of a run), validation every epoch or every
``val_every_steps`` steps, ``gradient_clip``, and the hardware (``accelerator``, ``devices``,
``strategy``, ``precision``). Callbacks: the best checkpoint on the task's monitored metric and the latest one after every
validation (``checkpoints/{best,last}.ckpt``), early stopping after
``early_stopping_patience`` validations without improvement, and the task's own callbacks.
Metrics go to ``metrics.csv`` (appended on resume) and, when the ``tensorboard`` package is
installed, to ``tensorboard/``.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, redirect_stdout
from typing import Any

import lightning as L
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import (
    Callback,
    EarlyStopping,
    ModelCheckpoint,
    Timer,
    TQDMProgressBar,
)

from deepatoms.core.errors import ConfigError
from deepatoms.train.csvlog import AppendingCSVLogger
from deepatoms.train.run_folder import RunFolder

__all__ = ["StopAtMinLR", "make_trainer", "quiet_lightning", "stop_reason"]

# Lightning's start-up banner advertises a cloud logger; keep its warnings, drop the rest.
logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)

#: Lightning warnings that say nothing to a user of these small, single-process loaders.
_NOISE = (
    "does not have many workers",
    "max_epochs",
    "LeafSpec",
    "logging interval",
    "exists and is not empty",
    "Trying to infer the `batch_size`",
    # validation errors are summed over the processes by the tasks themselves (exact sums);
    # training averages per epoch are those of rank 0
    "when logging on epoch level in distributed setting",
)


class StopAtMinLR(Callback):
    """Stop after an epoch trained at a learning rate ≤ ``min_lr`` (Gebauer et al. 2019: stop
    at lr ≤ 10⁻⁶)."""

    def __init__(self, min_lr: float) -> None:
        self.min_lr = float(min_lr)
        self.triggered = False

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        lr = trainer.optimizers[0].param_groups[0]["lr"]
        if self.min_lr > 0 and lr <= self.min_lr * (1 + 1e-9):
            self.triggered = True
            trainer.should_stop = True


class _ValidateAtMaxSteps(Callback):
    """End a run that reaches ``max_steps`` inside an epoch through ``should_stop``, so the
    partial epoch is validated (and checkpointed) like a full one."""

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.max_steps not in (None, -1) and trainer.global_step >= trainer.max_steps:
            trainer.should_stop = True


def make_trainer(
    train_cfg: Mapping,
    run: RunFolder,
    monitor: str,
    callbacks: Sequence[Callback] = (),
    progress: bool = True,
    inference_mode: bool = True,
) -> L.Trainer:
    """The ``Trainer`` of a run in ``run`` that selects and stops on ``monitor`` (lower is
    better). ``inference_mode=False`` keeps autograd on in validation (potentials
    differentiate the energy there)."""
    t = train_cfg
    best = ModelCheckpoint(
        dirpath=run.checkpoints,
        filename="best",
        monitor=monitor,
        mode="min",
        save_top_k=1,
        enable_version_counter=False,
    )
    # Lightning refreshes its own "last" checkpoint only when the monitored metric improves;
    # a separate callback writes last.ckpt after every validation, so a resume loses nothing.
    val_every = t.get("val_every_steps")
    last = ModelCheckpoint(
        dirpath=run.checkpoints,
        filename="last",
        save_top_k=1,
        every_n_train_steps=int(val_every) if val_every else None,
        every_n_epochs=None if val_every else 1,
        enable_version_counter=False,
    )
    stop = _EarlyStopping(
        monitor=monitor,
        mode="min",
        patience=int(t["early_stopping_patience"]),
        check_on_train_epoch_end=False,
    )
    extra = [best, last, stop, _ValidateAtMaxSteps(), *callbacks]
    if progress:
        extra.append(_StderrProgressBar())
    if t.get("max_time") is not None:
        extra.append(Timer(duration={"seconds": round(float(t["max_time"]) * 60)}))
    loggers = [AppendingCSVLogger(run.root)]
    if importlib.util.find_spec("tensorboard") is not None:
        from lightning.pytorch.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(run.root, name="tensorboard", version=""))
    max_steps = t.get("max_steps")
    try:
        return L.Trainer(
            default_root_dir=run.root,
            accelerator=t.get("accelerator", "cpu"),
            devices=t.get("devices", 1),
            strategy=t.get("strategy", "auto"),
            precision=t.get("precision", "32"),
            max_epochs=int(t["max_epochs"]),
            max_steps=-1 if max_steps is None else int(max_steps),
            val_check_interval=val_every if val_every else None,
            check_val_every_n_epoch=None if val_every else 1,
            callbacks=extra,
            logger=loggers,
            enable_progress_bar=progress,
            enable_model_summary=False,
            gradient_clip_val=t.get("gradient_clip"),
            num_sanity_val_steps=0,
            log_every_n_steps=10,
            deterministic=False,
            use_distributed_sampler=False,
            # several GPU processes: BatchNorm (density U-Net) normalises over the whole step's
            # batch, as one process with the total batch would (torch has no CPU SyncBatchNorm)
            sync_batchnorm=_sync_batchnorm(t),
            inference_mode=inference_mode,
        )
    except (MisconfigurationException, ValueError, RuntimeError) as exc:
        raise ConfigError(
            f"the training hardware settings are not usable here (train.accelerator="
            f"{t.get('accelerator')!r}, train.devices={t.get('devices')!r}, train.strategy="
            f"{t.get('strategy')!r}, train.precision={t.get('precision')!r}): {exc}"
        ) from None


def _sync_batchnorm(t: dict) -> bool:
    """Whether BatchNorm statistics are taken over all processes: DDP on GPUs."""
    import torch

    ddp = str(t.get("strategy", "auto")).startswith("ddp")
    acc = str(t.get("accelerator", "cpu"))
    return ddp and (acc in ("gpu", "cuda") or (acc == "auto" and torch.cuda.is_available()))


class _StderrProgressBar(TQDMProgressBar):
    """Lightning's progress bar on stderr (it writes to stdout), so stdout holds only results."""

    def init_train_tqdm(self) -> Any:
        with redirect_stdout(sys.stderr):  # Lightning passes file=sys.stdout
            return super().init_train_tqdm()

    def init_validation_tqdm(self) -> Any:
        with redirect_stdout(sys.stderr):
            return super().init_validation_tqdm()


class _EarlyStopping(EarlyStopping):
    """Early stopping whose patience is the configured one also after a resume (Lightning
    restores the saved patience), so raising ``train.early_stopping_patience`` continues a run
    that stopped early; a stop that already happened is forgotten then."""

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        patience = self.patience
        super().load_state_dict(state_dict)
        if patience != self.patience:
            self.patience = patience
            self.stopped_epoch = 0


def check_hardware(t: Mapping) -> None:
    """Refuse ``train.accelerator`` gpu/cuda/mps on a machine without one, before any work."""
    import torch

    acc = str(t.get("accelerator", "cpu"))
    missing = (acc in ("gpu", "cuda") and not torch.cuda.is_available()) or (
        acc == "mps" and not torch.backends.mps.is_available()
    )
    if missing:
        raise ConfigError(
            f"train.accelerator={acc!r}, but this machine has no such device; use "
            "train.accelerator=cpu (or auto, which picks a GPU when there is one)"
        )


@contextmanager
def quiet_lightning() -> Iterator[None]:
    """Silence Lightning's warnings about small single-process runs while fitting."""
    with warnings.catch_warnings():
        for msg in _NOISE:
            warnings.filterwarnings("ignore", message=f".*{msg}.*")
        yield


def stop_reason(trainer: L.Trainer) -> str:
    """Why a finished fit stopped: ``interrupted``, ``min_lr``, ``early_stopping`` (with its
    patience), ``max_time``, ``max_steps`` or ``max_epochs``."""
    if trainer.interrupted:
        return "interrupted"
    for cb in trainer.callbacks:
        if isinstance(cb, StopAtMinLR) and cb.triggered:
            return "min_lr"
    for cb in trainer.callbacks:
        if isinstance(cb, EarlyStopping) and cb.stopped_epoch > 0:
            return f"early_stopping (patience {cb.patience})"
    for cb in trainer.callbacks:
        if isinstance(cb, Timer) and cb.time_remaining() is not None and cb.time_remaining() <= 0:
            return "max_time"
    if trainer.max_steps not in (None, -1) and trainer.global_step >= trainer.max_steps:
        return "max_steps"
    return "max_epochs"
