"""Training task of property models and potentials (SchNet, DTNN, NMP-edge, MPNN/VIMPNN).

Loss (Schütt 2018 thesis Ch. 4; Jørgensen et al. 2018, Paper A §5): mean squared error between
predicted and reference target, in target units. With a force label the loss is thesis Eq. 5.7
(``deepatoms.train.losses``): the forces come from
:func:`deepatoms.models.potential.compute_potential` with double back-propagation, and force
metrics are component-wise MAE/RMSE (the MD17 convention).

Auxiliary heads (VIMPNN, Morgan et al. 2020): a model with ``auxiliary_loss`` adds
α Σ_k MSE(aux_k) on z-scored auxiliary targets, L = MSE(E) + α Σ_k MSE(aux_k),
α = ``model.aux_weight``.

The validation metric that selects the best model and drives stopping and plateaus is the
target's MAE (``val_mae``), or for potentials ``val_loss`` (Eq. 5.7 over the whole validation
split, weighing energy and force errors as training does).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepatoms.core.errors import ConfigError
from deepatoms.core.progress import ProgressBar
from deepatoms.data.dataset import read_dataset
from deepatoms.data.edge_store import attach_edges
from deepatoms.data.fingerprint import file_fingerprint
from deepatoms.data.graph import Batch
from deepatoms.data.neighbors import GraphSpec
from deepatoms.data.stats import atomref_sum, target_statistics
from deepatoms.models.heads import AtomisticModel
from deepatoms.models.potential import compute_potential
from deepatoms.models.registry import build_model
from deepatoms.train.data_split import dataset_split
from deepatoms.train.loader import make_loader
from deepatoms.train.losses import energy_force_loss, force_term_weight, per_system_force_error
from deepatoms.train.metrics import ErrorAccumulator
from deepatoms.train.optim import configure_optimisation
from deepatoms.train.tasks import property_setup as setup
from deepatoms.train.tasks.base import Export, Prepared, RunContext, TrainingTask

__all__ = ["PropertyTask", "monitor_metric"]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def monitor_metric(forces: str | None) -> str:
    """``val_mae`` for property training, ``val_loss`` (Eq. 5.7) when forces are trained."""
    return "val_loss" if forces else "val_mae"


class PropertyTask(TrainingTask):
    """Trains an :class:`AtomisticModel` on one per-system target, optionally with forces.

    ``forces``: name of the per-atom force label [N,3] (eV/Å); then ``target`` is the energy and
    the loss is Eq. 5.7 with ``train_cfg["rho"]`` and ``train_cfg["force_weight"]``.
    """

    learning_curve = True

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
        self.monitor = monitor_metric(forces)
        self.grad_in_validation = bool(forces)
        # models with auxiliary heads (VIMPNN) provide their loss on z-scored targets
        self._has_aux = callable(getattr(model, "auxiliary_loss", None))
        self.val_errors = ErrorAccumulator()
        self.val_force_errors = ErrorAccumulator()
        self._val_force_term = 0.0
        self.setup_info: dict[str, Any] = {}

    # -- the protocol -----------------------------------------------------------------------
    @classmethod
    def prepare(cls, ctx: RunContext) -> Prepared:
        """Dataset → split → statistics → model (module docstring of ``property_setup``)."""
        config, tcfg = ctx.config, ctx.train_cfg
        path = Path(ctx.data)
        data, meta = read_dataset(path)
        target = config["data"]["target"]
        unit = setup.check_target(data, meta, target, path, config["data"].get("target_unit"))
        forces = setup.check_forces(data, config, path, unit, meta)
        fingerprint = file_fingerprint(path)
        split = dataset_split(ctx, data, path, fingerprint)
        readout = setup.resolve_readout(config, target)
        if forces and readout != "sum":
            raise ConfigError(
                "training on forces needs a sum readout of the energy (data.readout=sum)"
            )
        atomrefs, atomref_source = setup.resolve_atomrefs(
            config, data, meta, target, split["train"]
        )
        tr = data.subset(split["train"])
        ref_sum = atomref_sum(tr.numbers, tr.offsets, atomrefs) if atomrefs else None
        mean, std = target_statistics(
            tr.system_props[target], tr.n_atoms, readout, ref_sum, ddof=config["data"]["std_ddof"]
        )
        std = setup.resolve_scale(config, forces, std, tr)
        stats = {
            "target": target,
            "unit": unit,
            "readout": readout,
            "mean": mean,
            "std": std,
            "atomref_source": atomref_source,
            "atomrefs": {str(z): v for z, v in atomrefs.items()},
            "n_train": len(split["train"]),
            "forces": forces,
        }
        model_cfg = {**config["model"], "property": target, "readout": readout}
        bond_types = setup.resolve_bond_types(model_cfg, meta, path)
        model = build_model(model_cfg)
        model.head.set_statistics(mean, std, atomrefs)
        aux_labels = list(getattr(model, "aux_labels", []))
        missing = [k for k in aux_labels if k not in data.system_props]
        if missing:
            raise ConfigError(
                f"the model's auxiliary heads need the per-system label(s) {missing}, which "
                f"{path} lacks; drop those heads (model.aux) or use data with them"
            )
        if hasattr(model, "set_aux_statistics"):
            model.set_aux_statistics(tr)
        if ctx.init is not None and not ctx.resume:
            stats["init"] = _init(model, ctx.init, tcfg, (target, unit), (mean, std, atomrefs), tr)
        ctx.write_stats(stats)
        dtype = _DTYPES[tcfg["dtype"]]
        model.to(dtype)
        graph = GraphSpec.from_config(config["graph"])
        if graph.precomputed:
            with ProgressBar(f"{graph.kind} graphs", quiet=not ctx.progress) as tick:
                attach_edges(data, graph, tick)
        labels = ([target, forces] if forces else [target]) + aux_labels
        bs, ebs = tcfg["batch_size"], tcfg["eval_batch_size"]
        train_loader = make_loader(data, split["train"], graph, labels, bs, True, ctx.seed, dtype)
        val_loader = make_loader(data, split["val"], graph, labels, ebs, False, ctx.seed, dtype)
        task = cls(model, target, tcfg, forces=forces)
        task.unit = unit
        task.setup_info = {
            "data": data,
            "meta": meta,
            "path": path,
            "split": split,
            "graph": graph,
            "stats": stats,
            "bond_types": bond_types,
            "train": tr,
            "fingerprint": fingerprint,
        }
        return Prepared(task, train_loader, val_loader)

    def finish(self, trainer: Any) -> dict[str, Any]:
        """Split sizes and, for potentials, the energy offset (ρ = 0) and validation errors."""
        info = self.setup_info
        split, stats = info["split"], info["stats"]
        out: dict[str, Any] = {
            "target": self.target,
            "unit": self.unit,
            "readout": stats["readout"],
            "n_train": len(split["train"]),
            "n_val": len(split["val"]),
            "n_test": len(split["test"]),
            "forces": self.forces,
        }
        if "init" in stats:
            out["init"] = stats["init"]
        if self.forces:
            if self.rho == 0.0:
                out["energy_offset_fit"] = setup.fit_energy_offset(
                    self.model, info["graph"], info["train"], self.target
                )
            val = info["data"].subset(split["val"])
            out.update(
                setup.potential_val_errors(self.model, info["graph"], val, self.target, self.forces)
            )
        self._final = out
        return out

    def export(self) -> Export:
        """Graph, elements and bond vocabulary; target with its unit and normalisation."""
        info = self.setup_info
        stats, path = info["stats"], info["path"]
        elements = sorted(int(z) for z in np.unique(info["train"].numbers))
        potential = {k: v for k, v in self._final.items() if k.startswith(("val_", "energy_"))}
        meta = {
            "dataset": str(path.resolve()),
            "dataset_source": info["meta"].get("source", ""),
            "stats": stats,
            "elements": elements,
            "bond_types": info["bond_types"],
            "forces": self.forces,
            "rho": self.rho if self.forces else None,
            **potential,
        }
        return Export(
            model=self.model,
            extras={
                "graph": info["graph"].to_config(),
                "elements": elements,
                "bond_types": info["bond_types"],
            },
            units={"target": self.unit, "length": "Å"},
            target={
                "name": self.target,
                "unit": self.unit,
                "readout": stats["readout"],
                "forces": self.forces,
            },
            normalisation={k: stats[k] for k in ("mean", "std", "atomrefs", "atomref_source")},
            training_data=_training_data(
                path, info["meta"], len(info["data"]), info["fingerprint"]
            ),
            meta=meta,
        )

    # -- Lightning ----------------------------------------------------------------------------
    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        return self.model(batch)

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
        # Exact split-wide MAE/RMSE (sums over all batches and, under DDP, all processes),
        # logged once per validation.
        if self.trainer.world_size > 1:
            self._reduce_over_processes()
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

    def _reduce_over_processes(self) -> None:
        """Sum the validation errors of every process (each validated its own batches)."""

        def total(t: torch.Tensor) -> torch.Tensor:
            return self.trainer.strategy.reduce(t.to(self.device), reduce_op="sum").cpu()

        self.val_errors.all_reduce(total)
        self.val_force_errors.all_reduce(total)
        term = torch.tensor([self._val_force_term], dtype=torch.float64)
        self._val_force_term = float(total(term)[0])

    def configure_optimizers(self):
        return configure_optimisation(
            self.model.parameters(),
            self.cfg,
            self.monitor,
            lambda: int(self.trainer.estimated_stepping_batches),
        )


def _init(
    model, path, tcfg: dict, target: tuple[str, str], statistics: tuple, tr: Any,
) -> dict:  # fmt: skip
    """Fine-tuning: weights from ``path`` after checking that its elements cover the training
    data and that it learned the same target in the same unit (``train.init_force`` skips the
    checks, with warnings in the result); output statistics kept or refitted
    (``train.init_statistics``)."""
    info = setup.init_from(model, path, exclude=("property", "readout"))
    problems = setup.init_mismatch(info, tr.numbers, *target)
    if problems and not tcfg.get("init_force"):
        raise ConfigError(
            f"--init {path}: " + "; ".join(problems) + ". Fine-tuning from it would start far "
            "from the answer; start from a matching model, or pass --force to fine-tune anyway "
            "(with --refit-statistics to refit the output statistics on this data)"
        )
    mode = tcfg["init_statistics"]
    if mode == "refit":  # new target statistics (e.g. another energy reference)
        model.head.set_statistics(*statistics)
        if hasattr(model, "set_aux_statistics"):
            model.set_aux_statistics(tr)
    return {**info, "statistics": mode, "warnings": problems}


def _training_data(path: Path, meta: dict, n: int, fingerprint: str) -> dict[str, Any]:
    """Where the training data came from, for the model file."""
    return {
        "path": str(path.resolve()),
        "source": meta.get("source", ""),
        "fingerprint": fingerprint,
        "n_systems": n,
        "units": copy.deepcopy(meta.get("units") or {}),
    }
