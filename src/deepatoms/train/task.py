"""Lightning task for property and potential training: losses, MAE/RMSE, Adam/SGD and schedules.

Loss (Schütt 2018 thesis Ch. 4; Paper A §5): mean squared error between predicted and reference
target, in target units. With a force label the loss is thesis Eq. 5.7 (see ``losses``), and the
forces come from :func:`deepatoms.models.potential.compute_potential` with double
back-propagation. Force metrics are component-wise MAE/RMSE (the MD17 convention).

Auxiliary heads (VIMPNN, ``specs/vimpnn.md`` §4): a model with ``auxiliary_loss`` adds
α Σ_k MSE(aux_k) on z-scored auxiliary targets, L = MSE(E) + α Σ_k MSE(aux_k), α = ``model.aux_weight``.

Learning rate (thesis Ch. 4, Paper A §5): lr(s) = lr₀ · decay^(s / decay_steps), continuous by
default, ``floor`` of the exponent when ``lr_staircase``; or a plateau schedule on the validation
MAE; or ``linear`` (nmp_qc MPNN code, ``specs/vimpnn.md`` §6): lr₀ until a fraction w₀ of all
training steps, then linear to lr₀ · decay at w₁, constant after (w = ``lr_linear_window``).
"""

from __future__ import annotations

import lightning as L
import torch

from deepatoms.data.graph import Batch
from deepatoms.models.heads import AtomisticModel
from deepatoms.models.potential import compute_potential
from deepatoms.train.losses import energy_force_loss, force_term_weight, per_system_force_error
from deepatoms.train.metrics import ErrorAccumulator


def linear_decay_factor(step: int, total: int, decay: float, window: tuple[float, float]) -> float:
    """lr/lr₀ of the nmp_qc schedule: 1 before w₀·total, ``decay`` after w₁·total, linear between."""
    w0, w1 = window
    if not 0 <= w0 < w1 <= 1:
        raise ValueError(
            f"train.lr_linear_window must be [w0, w1] with 0 <= w0 < w1 <= 1, got {window}"
        )
    frac = step / max(total, 1)
    if frac <= w0:
        return 1.0
    if frac >= w1:
        return float(decay)
    return 1.0 + (float(decay) - 1.0) * (frac - w0) / (w1 - w0)


def monitor_metric(forces: str | None) -> str:
    """The validation metric that selects the best model and drives stopping and plateaus.

    ``val_mae`` of the target for property training; ``val_loss`` (Eq. 5.7 over the whole
    validation split) when forces are trained, since it weighs energy and force errors as training
    does.
    """
    return "val_loss" if forces else "val_mae"


class PropertyTask(L.LightningModule):
    """Trains an :class:`AtomisticModel` on one per-system target, optionally with forces.

    ``forces``: name of the per-atom force label [N,3] (eV/Å); then ``target`` is the energy and
    the loss is Eq. 5.7 with ``train_cfg["rho"]`` and ``train_cfg["force_weight"]``.
    """

    def __init__(
        self, model: AtomisticModel, target: str, train_cfg: dict, forces: str | None = None
    ) -> None:
        super().__init__()
        self.model = model
        self.target = target
        self.forces = forces
        self.cfg = dict(train_cfg)
        self.rho = float(self.cfg.get("rho", 0.01))
        self.force_weight = str(self.cfg.get("force_weight", "1"))
        if forces:
            self._w = force_term_weight(self.rho, self.force_weight)
        # models with auxiliary heads (VIMPNN) provide their loss on z-scored targets
        self._has_aux = callable(getattr(model, "auxiliary_loss", None))
        self.val_errors = ErrorAccumulator()
        self.val_force_errors = ErrorAccumulator()
        self._val_force_term = 0.0

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        return self.model(batch)

    def transfer_batch_to_device(self, batch: Batch, device: torch.device, dataloader_idx: int):
        return batch.to(device)

    def _predict(self, batch: Batch, create_graph: bool) -> dict[str, torch.Tensor]:
        if self.forces:
            return compute_potential(self.model, batch, forces=True, create_graph=create_graph)
        return self.model(batch)

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        out = self._predict(batch, create_graph=True)
        pred, ref = out[self.target], batch.targets[self.target]
        f_pred = out.get("forces") if self.forces else None
        f_ref = batch.targets[self.forces] if self.forces else None
        loss = energy_force_loss(
            pred, ref, f_pred, f_ref, batch.batch, batch.n_atoms, self.rho, self.force_weight
        )
        n = batch.num_systems
        if self._has_aux and out.get("aux"):
            aux = self.model.auxiliary_loss(out, batch)
            self.log("train_aux_loss", aux, on_step=False, on_epoch=True, batch_size=n)
            loss = loss + self.model.aux_weight * aux
        self.log("train_loss", loss, prog_bar=False, on_step=True, on_epoch=True, batch_size=n)
        self.log("train_mae", (pred - ref).abs().mean(), prog_bar=True, on_epoch=True, batch_size=n)
        if self.forces:
            f_mae = (f_pred.detach() - f_ref.to(f_pred.dtype)).abs().mean()
            self.log("train_force_mae", f_mae, prog_bar=True, on_epoch=True, batch_size=n)
        self.log("lr", self.trainer.optimizers[0].param_groups[0]["lr"], on_step=True, batch_size=n)
        return loss

    def on_validation_epoch_start(self) -> None:
        self.val_errors.reset()
        self.val_force_errors.reset()
        self._val_force_term = 0.0

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        out = self._predict(batch, create_graph=False)
        self.val_errors.update(out[self.target], batch.targets[self.target])
        if self.forces:
            f_pred, f_ref = out["forces"].detach(), batch.targets[self.forces]
            self.val_force_errors.update(f_pred, f_ref)
            per_sys = per_system_force_error(f_pred, f_ref, batch.batch, batch.n_atoms)
            self._val_force_term += float(per_sys.double().sum())

    def on_validation_epoch_end(self) -> None:
        # Exact split-wide MAE/RMSE (sums over all batches), logged once per validation.
        self.log("val_mae", self.val_errors.mae, prog_bar=True)
        self.log("val_rmse", self.val_errors.rmse)
        if not self.forces:
            self.log("val_loss", self.val_errors.rmse**2)
            return
        n_sys = max(self.val_errors.count, 1)
        loss = self.rho * self.val_errors.rmse**2 + self._w * self._val_force_term / n_sys
        self.log("val_loss", loss, prog_bar=True)
        self.log("val_force_mae", self.val_force_errors.mae, prog_bar=True)
        self.log("val_force_rmse", self.val_force_errors.rmse)

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
        if schedule == "linear":
            total = int(self.trainer.estimated_stepping_batches)
            window = tuple(float(w) for w in c["lr_linear_window"])
            decay = c["lr_decay"]
            linear_decay_factor(0, total, decay, window)  # validate before training starts
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
            interval = "step" if c.get("val_every_steps") else "epoch"
            return {
                "optimizer": opt,
                "lr_scheduler": {
                    "scheduler": sched,
                    "monitor": monitor_metric(self.forces),
                    "interval": interval,
                    "frequency": c.get("val_every_steps") or 1,
                },
            }
        raise ValueError(
            "train.lr_schedule must be 'exponential', 'plateau', 'linear' or 'none', "
            f"got {schedule!r}"
        )
