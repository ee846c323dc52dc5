"""Optimisers and learning-rate schedules of the ``train`` section.

- ``optimizer``: ``adam`` or ``sgd`` (momentum ``momentum``), both with ``weight_decay``;
- ``lr_schedule`` (Schütt 2018 thesis Ch. 4; Jørgensen et al. 2018, Paper A §5):
  ``exponential`` lr(s) = lr₀ · decay^(s / decay_steps) (``floor`` of the exponent when
  ``lr_staircase``), floored at ``min_lr``; ``plateau``: × ``plateau_factor`` after
  ``plateau_patience`` validations without improvement of the monitored metric; ``linear`` (the
  nmp_qc MPNN schedule of Gilmer et al. 2017 used by Morgan et al. 2020): lr₀ until a fraction
  w₀ of all steps, then linear to lr₀ · decay at w₁, constant after; ``none``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch

from deepatoms.core.errors import ConfigError

__all__ = ["configure_optimisation", "linear_decay_factor"]


def linear_decay_factor(step: int, total: int, decay: float, window: tuple[float, float]) -> float:
    """lr/lr₀ of the linear schedule: 1 before w₀·total, ``decay`` after w₁·total, linear between."""
    w0, w1 = window
    if not 0 <= w0 < w1 <= 1:
        raise ConfigError(
            f"train.lr_linear_window must be [w0, w1] with 0 <= w0 < w1 <= 1, got {list(window)}"
        )
    frac = step / max(total, 1)
    if frac <= w0:
        return 1.0
    if frac >= w1:
        return float(decay)
    return 1.0 + (float(decay) - 1.0) * (frac - w0) / (w1 - w0)


def configure_optimisation(
    params: Iterable[torch.nn.Parameter],
    c: Mapping[str, Any],
    monitor: str,
    total_steps: Callable[[], int],
) -> Any:
    """What ``LightningModule.configure_optimizers`` returns for the ``train`` section ``c``.

    ``monitor``: the metric a plateau schedule watches; ``total_steps()``: the run's estimated
    number of optimiser steps (asked only by the linear schedule).
    """
    if c["optimizer"] == "adam":
        opt = torch.optim.Adam(params, lr=c["lr"], weight_decay=c["weight_decay"])
    elif c["optimizer"] == "sgd":
        opt = torch.optim.SGD(
            params, lr=c["lr"], momentum=c["momentum"], weight_decay=c["weight_decay"]
        )
    else:
        raise ConfigError(f"train.optimizer must be 'adam' or 'sgd', got {c['optimizer']!r}")
    schedule = c["lr_schedule"]
    if schedule in (None, "none"):
        return opt
    if schedule == "exponential":
        decay, steps, stair = c["lr_decay"], c["lr_decay_steps"], c["lr_staircase"]
        lr0, min_lr = c["lr"], c["min_lr"]

        def factor(step: int) -> float:
            e = step // steps if stair else step / steps
            return max(decay**e, min_lr / lr0 if lr0 else 0.0)

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
    if schedule == "linear":
        window = tuple(float(w) for w in c["lr_linear_window"])
        decay, total = c["lr_decay"], int(total_steps())
        linear_decay_factor(0, total, decay, window)  # check before training starts
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda step: linear_decay_factor(step, total, decay, window)
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
    if schedule == "plateau":
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt,
            mode="min",
            factor=c["plateau_factor"],
            patience=c["plateau_patience"],
            min_lr=c["min_lr"],
        )
        every = c.get("val_every_steps")
        return {
            "optimizer": opt,
            "lr_scheduler": {
                "scheduler": sched,
                "monitor": monitor,
                "interval": "step" if every else "epoch",
                "frequency": every or 1,
            },
        }
    raise ConfigError(
        f"train.lr_schedule must be 'exponential', 'plateau', 'linear' or 'none', got {schedule!r}"
    )
