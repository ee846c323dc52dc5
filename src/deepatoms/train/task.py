"""Lightning task for property training: squared loss, MAE/RMSE, Adam/SGD and schedules.

Loss (Schütt 2018 thesis Ch. 4; Paper A §5): mean squared error between predicted and reference
target, in target units. Learning rate (thesis Ch. 4, Paper A §5):
lr(s) = lr₀ · decay^(s / decay_steps), continuous by default, ``floor`` of the exponent when
``lr_staircase``; or a plateau schedule on the validation MAE.
"""

from __future__ import annotations

import lightning as L
import torch

from deepatoms.data.graph import Batch
from deepatoms.models.heads import AtomisticModel
from deepatoms.train.metrics import ErrorAccumulator


class PropertyTask(L.LightningModule):
    """Trains an :class:`AtomisticModel` on one per-system target."""

    def __init__(self, model: AtomisticModel, target: str, train_cfg: dict) -> None:
        super().__init__()
        self.model = model
        self.target = target
        self.cfg = dict(train_cfg)
        self.val_errors = ErrorAccumulator()

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        return self.model(batch)

    def transfer_batch_to_device(self, batch: Batch, device: torch.device, dataloader_idx: int):
        return batch.to(device)

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        pred = self.model(batch)[self.target]
        ref = batch.targets[self.target]
        loss = torch.mean((pred - ref) ** 2)
        n = batch.num_systems
        self.log("train_loss", loss, prog_bar=False, on_step=True, on_epoch=True, batch_size=n)
        self.log("train_mae", (pred - ref).abs().mean(), prog_bar=True, on_epoch=True, batch_size=n)
        self.log("lr", self.trainer.optimizers[0].param_groups[0]["lr"], on_step=True, batch_size=n)
        return loss

    def on_validation_epoch_start(self) -> None:
        self.val_errors.reset()

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        pred = self.model(batch)[self.target]
        self.val_errors.update(pred, batch.targets[self.target])

    def on_validation_epoch_end(self) -> None:
        # Exact split-wide MAE/RMSE (sums over all batches), logged once per validation.
        self.log("val_mae", self.val_errors.mae, prog_bar=True)
        self.log("val_rmse", self.val_errors.rmse)
        self.log("val_loss", self.val_errors.rmse**2)

    def configure_optimizers(self):
        c = self.cfg
        params = self.model.parameters()
        if c["optimizer"] == "adam":
            opt = torch.optim.Adam(params, lr=c["lr"], weight_decay=c["weight_decay"])
        elif c["optimizer"] == "sgd":
            opt = torch.optim.SGD(
                params, lr=c["lr"], momentum=c["momentum"], weight_decay=c["weight_decay"]
            )
        else:
            raise ValueError(f"train.optimizer must be 'adam' or 'sgd', got {c['optimizer']!r}")
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
        if schedule == "plateau":
            sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
                opt,
                mode="min",
                factor=c["plateau_factor"],
                patience=c["plateau_patience"],
                min_lr=c["min_lr"],
            )
            interval = "step" if c.get("val_every_steps") else "epoch"
            return {
                "optimizer": opt,
                "lr_scheduler": {
                    "scheduler": sched,
                    "monitor": "val_mae",
                    "interval": interval,
                    "frequency": c.get("val_every_steps") or 1,
                },
            }
        raise ValueError(
            f"train.lr_schedule must be 'exponential', 'plateau' or 'none', got {schedule!r}"
        )
