"""The one training protocol: :func:`fit` trains (or resumes) any family's model in a run folder.

1. The config is checked against its family's schema (``deepatoms.models.registry``).
2. The run folder (:mod:`deepatoms.train.run_folder`) is created, or resumed when it holds
   ``checkpoints/last.ckpt`` and the same config (only stopping limits, threads and hardware
   may change).
3. The family's task (``deepatoms.train.tasks``) reads the data, makes or reloads the split,
   computes statistics and builds the model (or starts it from ``init``).
4. The config snapshot is written, and one Lightning ``Trainer`` (:func:`make_trainer`) fits
   the task with checkpoints, early stopping and logging.
5. The best weights are reloaded, the task computes its final numbers, and the model file
   (``model.pt``, or ``model_file``) and ``summary.json`` are written, with the reason the run
   stopped.

If the set-up of a new run fails (a wrong target, an empty split), the files it had written
are removed again, so the folder can be reused.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import torch

from deepatoms.config.files import save_config
from deepatoms.core.errors import ConfigError
from deepatoms.core.files import write_json
from deepatoms.core.results import Result
from deepatoms.models.model_file import write_model_file
from deepatoms.models.registry import family_of, model_kind, resolve_config, schema_of
from deepatoms.train.run_folder import RunFolder, check_resume, process_rank
from deepatoms.train.tasks import task_class
from deepatoms.train.tasks.base import RunContext, TrainingTask
from deepatoms.train.trainer import check_hardware, make_trainer, quiet_lightning, stop_reason

__all__ = ["TrainResult", "fit"]

log = logging.getLogger(__name__)


class TrainResult(Result):
    """The summary of a training run (also ``RUN/summary.json``).

    Keys of every family: ``run`` (folder), ``preset``, ``family``, ``model`` (model name),
    ``model_file``, ``resumed``, ``epochs``, ``steps``, ``stopped`` (why training ended),
    ``monitor`` (the metric that picked the best model), ``best_val_<metric>`` (its best value),
    ``wall_time_s`` and ``interrupted``; family-specific keys follow (e.g. ``target``, ``unit``,
    ``n_train``; ``val_force_mae`` of potentials, in eV/Å).
    """


def fit(
    config: Mapping[str, Any], data: Any, out_dir: str | os.PathLike, *,
    split: Mapping[str, Any] | None = None, init: str | os.PathLike | None = None,
    init_part: str = "all", progress: bool = True, model_file: str | os.PathLike | None = None,
) -> TrainResult:  # fmt: skip
    """Train (or resume) the model of ``config`` on ``data`` in the run folder ``out_dir``.

    ``data``: a dataset file (property models, potentials, G-SchNet), a CSV of strings (grammar
    VAE), crystal sources or a ``CrystalSet`` (density VAE). ``split``: explicit
    ``{"train", "val", "test"}`` indices instead of the config's split (cross-validation).
    ``init``: a model file to start from (fine-tuning; ``init_part`` picks the part of a density
    VAE). ``model_file``: where to write the model (default ``out_dir/model.pt``).
    Returns the run summary (:class:`TrainResult`).
    """
    t0 = time.time()
    config = resolve_config(config)
    kind = model_kind(config["model"]["name"])
    family = family_of(config)
    check_hardware(config["train"])
    run = RunFolder(out_dir)
    resume = check_resume(run, config, schema_of(config).resumable_keys())
    resume_from: Path | None = None
    if resume:
        finished = _finished_run(run, config)
        if finished is not None:
            return finished
        resume_from = _check_checkpoint(run)
    tcfg = config["train"]
    if tcfg.get("num_threads"):
        torch.set_num_threads(int(tcfg["num_threads"]))
    L.seed_everything(int(tcfg["seed"]), workers=True, verbose=False)
    ctx = RunContext(
        config=config,
        family=family,
        kind=kind,
        data=data,
        run=run,
        resume=resume,
        progress=progress,
        split=split,
        init=Path(init) if init is not None else None,
        init_part=init_part,
    )
    with _cleanup_on_failure(run, resume):
        prepared = task_class(kind.task).prepare(ctx)
        if process_rank() == 0:
            save_config(config, run.config)
    task = prepared.task
    trainer = make_trainer(
        tcfg, run, task.monitor, task.callbacks(), progress, not task.grad_in_validation
    )
    with quiet_lightning():
        trainer.fit(
            task,
            prepared.train_loader,
            prepared.val_loader,
            ckpt_path=str(resume_from) if resume else None,
        )
    if trainer.global_rank != 0:  # the other processes of a DDP run: rank 0 reports
        return TrainResult(run=str(run.root), rank=trainer.global_rank, resumed=resume)
    if run.best_ckpt.is_file():
        task.load_weights(run.best_ckpt)
    task.model.eval()
    summary = _summary(config, family.name, run, trainer, task, resume, model_file)
    summary.update(task.finish(trainer))
    export = task.export()
    write_model_file(
        summary["model_file"],
        export.model,
        family.name,
        extras=export.extras,
        units=export.units,
        target=export.target,
        normalisation=export.normalisation,
        training_data=export.training_data,
        run_config=config,
        meta={
            **export.meta,
            "config": config,
            "steps": trainer.global_step,
            summary["best_key"]: summary[summary["best_key"]],
        },
    )
    summary.pop("best_key")
    summary["wall_time_s"] = round(time.time() - t0, 1)
    write_json(run.summary, summary)
    if task.learning_curve:
        _plot_learning_curve(run, task.unit)
    return summary


def _summary(
    config: dict, family: str, run: RunFolder, trainer: L.Trainer, task: TrainingTask, resume: bool,
    model_file: str | os.PathLike | None,
) -> TrainResult:  # fmt: skip
    score = trainer.checkpoint_callback.best_model_score
    best_key = f"best_val_{task.monitor.removeprefix('val_')}"
    return TrainResult(
        run=str(run.root),
        preset=config.get("name"),
        family=family,
        model=config["model"]["name"],
        model_file=str(model_file if model_file is not None else run.model),
        resumed=resume,
        epochs=trainer.current_epoch,
        steps=trainer.global_step,
        stopped=stop_reason(trainer),
        monitor=task.monitor,
        **{best_key: float(score) if score is not None else float("nan")},
        best_key=best_key,
        final_lr=trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else None,
        interrupted=bool(trainer.interrupted),
    )


#: The stopping limits: raising one continues a finished run.
_LIMITS = ("max_epochs", "max_steps", "max_time", "early_stopping_patience")


def _finished_run(run: RunFolder, config: dict) -> TrainResult | None:
    """The summary of a run in ``run`` that already finished under the same stopping limits
    (``already_finished`` and a ``note`` saying why it stopped and how to continue), or None
    when there is something left to train."""
    from deepatoms.core.files import read_json
    from deepatoms.models.registry import load_run_config

    if not run.summary.is_file() or process_rank() != 0:
        return None  # the other processes of a DDP run follow rank 0, which chose to train
    try:
        old = read_json(run.summary)
        saved = load_run_config(run.config)["train"]
    except (ValueError, KeyError, FileNotFoundError):
        return None
    if not Path(old.get("model_file") or run.model).is_file():
        return None
    new = config["train"]

    def extended(key: str) -> bool:
        a, b = saved.get(key), new.get(key)
        unlimited = (None, -1)
        if a == b:
            return False
        if b in unlimited:
            return a not in unlimited
        return a not in unlimited and b > a

    if any(extended(k) for k in _LIMITS):
        return None
    why = old.get("stopped", "unknown")
    how = {
        "max_epochs": f"raise --max-epochs (was {saved.get('max_epochs')})",
        "max_steps": f"raise train.max_steps (was {saved.get('max_steps')})",
        "max_time": f"raise --max-time (was {saved.get('max_time')} min)",
        "min_lr": "lower train.min_lr",
    }.get(why.split(" ")[0], "raise train.early_stopping_patience "
          f"(was {saved.get('early_stopping_patience')}) or --max-epochs")  # fmt: skip
    note = (f"{run.root} already finished ({why} after {old.get('epochs')} epochs); nothing "
            f"was trained. To train on, {how}; to start again, use a new --out folder")  # fmt: skip
    return TrainResult(**{**old, "resumed": True, "already_finished": True, "note": note})


def _read_checkpoint(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # torch raises several types for damaged files
        return exc


def _check_checkpoint(run: RunFolder) -> Path:
    """The checkpoint to resume from: ``last.ckpt``, or ``best.ckpt`` with a warning when the
    last one is damaged (e.g. truncated by a full disk); refuses checkpoints this protocol did
    not write."""
    path = run.last_ckpt
    ckpt = _read_checkpoint(path)
    if isinstance(ckpt, Exception):
        best = _read_checkpoint(run.best_ckpt) if run.best_ckpt.is_file() else None
        if not isinstance(best, dict) or "state_dict" not in best:
            raise ConfigError(
                f"{run.last_ckpt} cannot be read ({type(ckpt).__name__}) and there is no "
                "readable best.ckpt; start a new run with a new --out folder, or move the "
                "checkpoints folder away"
            )
        log.warning("warning: %s cannot be read (%s); resuming from %s (the epochs after the "
                    "best one are trained again)", path, type(ckpt).__name__, run.best_ckpt)  # fmt: skip
        path, ckpt = run.best_ckpt, best
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise ConfigError(
            f"{run.last_ckpt} was written by an earlier deepatoms whose checkpoints of this "
            f"model cannot be resumed; its model.pt still loads. Start a new run (a new --out "
            f"folder), with --init {run.model} to continue from its weights"
        )
    return path


class _cleanup_on_failure:
    """Remove what a failed set-up of a new run wrote (and the folder, if it made it)."""

    def __init__(self, run: RunFolder, resume: bool) -> None:
        self.run, self.resume = run, resume
        self.existed = run.root.exists()
        self.before = set(os.listdir(run.root)) if self.existed else set()

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None or self.resume:
            return False
        if not self.existed:
            shutil.rmtree(self.run.root, ignore_errors=True)
            return False
        for name in set(os.listdir(self.run.root)) - self.before:
            path = self.run.root / name
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
        return False


def _plot_learning_curve(run: RunFolder, unit: str) -> None:
    from deepatoms.analysis.plots import plot_learning_curve

    if run.metrics.is_file():
        plot_learning_curve(run.metrics, run.plots / "learning_curve.png", unit)
