"""Training task of the crystal density VAE with its attention U-Net (Hoffmann et al. 2019).

One optimiser, one backward pass per batch (Eq. 2 of the paper):

    out   = model(M, γ)                           (the U-Net reads gradscale_γ(M̂))
    total = L_RE + β·KL + L_seg                   (``models.density_model.joint_loss``)

Data: the crystals are filtered by the longest lattice vector (``data.max_side``, §3.1) and by
element (Z ≤ 94, the species classes; dropped ids are listed in the summary), split by group
(material id or parent prototype, so substituted variants of one prototype stay together)
into train/val/test (``data.split``), then voxelised on the fly
(``data.voxels.dataset.DensityDataset``): ``data.rotations_per_crystal`` samples per crystal in
the ``data.regime`` (``single`` | ``repeated``). ``data.resample_each_epoch`` draws new
rotations every epoch (seeded by (seed, epoch, sample)); otherwise every epoch sees the same
samples, as in the paper (3 fixed samples per crystal). Validation always uses the fixed
samples of epoch 0 and the model in eval mode (z = μ).

Optional extras, off in the paper preset (``docs/density_vae.md``): ``train.atom_class_weight``
(cross-entropy weight of the atom classes) and ``train.seg_input_weight`` w, which adds
w·L_seg(U(M), S), the U-Net applied to the true input density, so the U-Net learns to segment
clean densities from the first step instead of waiting for the decoder to produce sharp ones.

Optimisation: Adam (``train.lr``; paper 10⁻⁵, batch 24), β = ``train.beta``, γ =
``train.gamma``. ``metrics.csv`` has one row per epoch with every loss term and the voxel
species accuracy (all voxels and atom voxels) of training and validation. The summary adds the
atom metrics of the best model on the decoded validation samples (``val_atoms``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from deepatoms.config.schema import config_diff
from deepatoms.core.errors import ConfigError
from deepatoms.data.fingerprint import sources_fingerprint
from deepatoms.data.voxels.crystal_sets import CrystalSet, load_crystals, select_crystals
from deepatoms.data.voxels.dataset import ClassMap, DensityDataset, collate
from deepatoms.data.voxels.grid import GridSpec
from deepatoms.density.metrics import atom_metrics
from deepatoms.density.recovery import recover_atoms
from deepatoms.models.density_model import (
    DensityVAEModel,
    joint_loss,
    segmentation_loss,
    voxel_accuracy,
)
from deepatoms.models.density_vae import VAE_DEFAULTS
from deepatoms.models.loading import load_model
from deepatoms.train.data_split import run_split
from deepatoms.train.loader import EpochBatchSampler
from deepatoms.train.tasks.base import Export, Prepared, RunContext, TrainingTask

__all__ = ["INIT_PARTS", "DensityVAETask", "LossStep", "init_density_weights"]

_TERMS = ("total", "recon_mse", "kl", "seg_ce", "seg_input_ce", "acc_all", "acc_atom")
#: What ``--init`` may copy from a density model file.
INIT_PARTS = ("all", "vae", "unet")


def _max_z(batch: Mapping, device: torch.device) -> torch.Tensor:
    return torch.tensor(
        [float(np.max(z)) if len(z) else 1.0 for z, _ in batch["atoms"]], device=device
    )


class LossStep:
    """Forward pass + loss terms (Eq. 2, plus the optional extras) of one collated batch.

    Shared by training, validation and ``benchmarks/density_train_steps.py``; ``config`` is a
    resolved config (its ``train`` section is used). Returns the loss dict and the voxel
    accuracies (all voxels, atom voxels).
    """

    def __init__(self, model: DensityVAEModel, config: Mapping) -> None:
        self.model, self.t = model, config["train"]
        w = float(self.t["atom_class_weight"])
        self.weights = None
        if w != 1.0:
            self.weights = torch.full((model.config["n_classes"],), w)
            self.weights[0] = 1.0

    def __call__(self, batch: Mapping) -> tuple[dict[str, torch.Tensor], tuple[float, float]]:
        device = next(self.model.parameters()).device
        density = batch["density"].to(device)
        classes = batch["classes"].to(device)
        weights = self.weights.to(device) if self.weights is not None else None
        scale = _max_z(batch, device) if self.model.condition == "max_z" else None
        out = self.model(density, gamma=float(self.t["gamma"]), scale=scale)
        loss = joint_loss(
            out,
            density,
            classes,
            float(self.t["beta"]),
            class_weights=weights,
            seg_loss=self.t["seg_loss"],
            recon_reduction=self.t["recon_reduction"],
        )
        w_in = float(self.t["seg_input_weight"])
        if w_in > 0.0:
            logits = self.model.segment(density)
            loss["seg_input_ce"] = segmentation_loss(logits, classes, weights, self.t["seg_loss"])
            loss["total"] = loss["total"] + w_in * loss["seg_input_ce"]
        return loss, voxel_accuracy(out["seg_logits"].detach(), classes)


class _Sums:
    """Sample-weighted running means of the loss terms and accuracies."""

    def __init__(self) -> None:
        self.sums = dict.fromkeys(_TERMS, 0.0)
        self.counts = dict.fromkeys(_TERMS, 0)

    def add(self, loss: Mapping[str, torch.Tensor], acc: tuple[float, float], n: int) -> None:
        vals = {k: float(loss[k].detach()) for k in _TERMS[:5] if k in loss}
        vals["acc_all"], vals["acc_atom"] = acc
        for k, v in vals.items():
            if not math.isnan(v):
                self.sums[k] += v * n
                self.counts[k] += n

    def reduced(self, total: Callable[[torch.Tensor], torch.Tensor]) -> _Sums:
        """These sums with ``total`` (a sum over the processes) applied to sums and counts."""
        t = total(torch.tensor([*(self.sums[k] for k in _TERMS), *(self.counts[k] for k in _TERMS)],
                               dtype=torch.float64))  # fmt: skip
        out = _Sums()
        for i, k in enumerate(_TERMS):
            out.sums[k], out.counts[k] = float(t[i]), round(float(t[len(_TERMS) + i]))
        return out

    def means(self, prefix: str) -> dict[str, float]:
        return {
            f"{prefix}_{k}": self.sums[k] / self.counts[k] if self.counts[k] else float("nan")
            for k in _TERMS
        }


def init_density_weights(
    model: DensityVAEModel, grid: GridSpec, class_map: ClassMap, path: str | Path, part: str
) -> dict:
    """Copy the weights of the density model file ``path`` into ``model`` (warm start).

    ``part``: ``all`` (same model config, grid and classes), ``vae`` (encoder + decoder only;
    same VAE settings and grid: e.g. a new segmentation network on a trained VAE) or ``unet``
    (the U-Net only; same U-Net settings and class map). Returns what was loaded.
    """
    if part not in INIT_PARTS:
        raise ValueError(f"--init-part must be one of {INIT_PARTS}, got {part!r}")
    src = load_model(path, expect="density_vae")
    where = f"--init {path}"
    if src.grid != grid:
        raise ValueError(f"{where}: its grid {src.grid.as_dict()} differs from {grid.as_dict()}")
    if part != "vae" and src.class_map != class_map:
        raise ValueError(
            f"{where}: its {src.class_map.n_classes} species classes differ from this run's "
            f"{class_map.n_classes}; use --init-part vae or the same crystal sources"
        )
    keys = {"all": None, "vae": set(VAE_DEFAULTS) | {"condition"}, "unet": {"unet"}}[part]
    pick = lambda cfg: {k: v for k, v in cfg.items() if keys is None or k in keys}  # noqa: E731
    diff = config_diff(pick(src.model.config), pick(model.config))
    if diff:
        raise ValueError(
            f"{where}: its model differs from this run's ({part} part), so its weights cannot be "
            "loaded:\n  " + "\n  ".join(diff) + "\nUse the same model settings (--set)."
        )
    prefix = {"all": "", "vae": "vae.", "unet": "unet."}[part]
    state = {k: v for k, v in src.model.state_dict().items() if k.startswith(prefix)}
    _, unexpected = model.load_state_dict(state, strict=False)
    if unexpected:
        raise ValueError(f"{where}: tensors {unexpected[:3]} have no place in this model")
    source = Path(src.meta["model_file"]).resolve()
    return {"model_file": str(source), "part": part, "tensors": len(state)}


class DensityVAETask(TrainingTask):
    """The joint VAE + U-Net objective on voxel batches (module docstring)."""

    def __init__(self, model: DensityVAEModel, config: Mapping) -> None:
        super().__init__()
        self.model = model
        self.cfg = dict(config["train"])
        self.resample = bool(config["data"]["resample_each_epoch"])
        self.step_fn = LossStep(model, config)
        self.monitor = "val_total"
        self.rows: list[dict[str, Any]] = []
        self.best_epoch = -1
        self.setup_info: dict[str, Any] = {}
        self._train, self._val = _Sums(), _Sums()
        self._t0 = time.perf_counter()

    # -- the protocol -----------------------------------------------------------------------
    @classmethod
    def prepare(cls, ctx: RunContext) -> Prepared:
        """Crystals → filters → class map → split by group → voxel datasets → model."""
        config, d, t = ctx.config, ctx.config["data"], ctx.train_cfg
        crystals = ctx.data
        if not isinstance(crystals, CrystalSet):
            crystals = load_crystals(list(crystals), seed=ctx.seed, progress=ctx.progress)
        crystals = select_crystals(crystals, d["max_side"])
        if len(crystals) == 0:
            raise ConfigError(
                f"no crystal has all lattice vectors shorter than data.max_side={d['max_side']} "
                "Å and only elements up to Z = 94"
            )
        grid = GridSpec.from_dict(config["grid"])
        class_map = ClassMap.from_mode(d["classes"], crystals)
        meta = {
            "n_crystals": len(crystals),
            "seed": ctx.seed,
            "unit": "crystal (split by group: material id or parent prototype)",
        }

        def make() -> dict[str, np.ndarray]:
            split = crystals.split_by_group(tuple(d["split"]), seed=ctx.seed)
            meta["ids"] = {k: [crystals.ids[i] for i in v] for k, v in split.items()}
            return split

        split = run_split(ctx.run, ctx.resume, len(crystals), make, meta)
        if not len(split["train"]):
            raise ConfigError(
                f"the split {d['split']} leaves no training crystals of {len(crystals)}"
            )
        train_ds = _dataset(crystals.subset(split["train"]), grid, class_map, config, ctx.progress)
        val_ds = None
        if len(split["val"]):
            val_ds = _dataset(crystals.subset(split["val"]), grid, class_map, config, ctx.progress)
        torch.manual_seed(ctx.seed)
        model = DensityVAEModel(config["model"], grid_n=grid.n, n_classes=class_map.n_classes)
        init_info = None
        if ctx.init is not None and not ctx.resume:
            init_info = init_density_weights(model, grid, class_map, ctx.init, ctx.init_part)
        sources = list(dict.fromkeys(crystals.source))
        ctx.write_stats(
            {
                "n_classes": class_map.n_classes,
                "class_map": class_map.to_list(),
                "grid": grid.as_dict(),
                "init": init_info,
                "sources": sources,
            }
        )
        task = cls(model, config)
        if val_ds is None:
            task.monitor = "train_total"
        workers = int(t["num_workers"])
        train_loader = _loader(train_ds, int(t["batch_size"]), ctx.seed, True, workers)
        val_loader = (
            _loader(val_ds, int(t["eval_batch_size"]), ctx.seed, False, workers) if val_ds else None
        )
        task.setup_info = {
            "grid": grid,
            "class_map": class_map,
            "split": split,
            "crystals": crystals,
            "train_ds": train_ds,
            "val_ds": val_ds,
            "val_loader": val_loader,
            "init": init_info,
            "sources": sources,
            "preset": config.get("name"),
            "regime": d["regime"],
        }
        return Prepared(task, train_loader, val_loader)

    def finish(self, trainer: Any) -> dict[str, Any]:
        """The atom metrics of the decoded validation samples and the run's sizes."""
        info = self.setup_info
        crystals = info["crystals"]
        val_atoms = None
        if info["val_loader"] is not None:
            val_atoms = _atom_summary(
                self.model, info["val_loader"], info["grid"], info["class_map"]
            )
        best_row = self.rows[self.best_epoch] if 0 <= self.best_epoch < len(self.rows) else None
        return {
            "regime": info["regime"],
            "init": info["init"],
            "best_epoch": self.best_epoch,
            "best": best_row,
            "last": self.rows[-1] if self.rows else None,
            "val_atoms": val_atoms,
            "n_crystals": {k: len(v) for k, v in info["split"].items()},
            "n_samples": {
                "train": len(info["train_ds"]),
                "val": len(info["val_ds"]) if info["val_ds"] is not None else 0,
            },
            "n_classes": info["class_map"].n_classes,
            "grid": info["grid"].as_dict(),
            "parameters": {
                "encoder": sum(p.numel() for p in self.model.vae.encoder.parameters()),
                "decoder": sum(p.numel() for p in self.model.vae.decoder.parameters()),
                "unet": sum(p.numel() for p in self.model.unet.parameters()),
            },
            "max_side": crystals.notes.get("max_side"),
            "beyond_z94": crystals.notes.get("beyond_z94", []),
        }

    def export(self) -> Export:
        """The grid and the class map travel with the model."""
        info = self.setup_info
        model = self.model.cpu()
        return Export(
            model=model,
            extras={"grid": info["grid"].as_dict(), "class_map": info["class_map"].to_list()},
            units={"length": "Å", "density": "Å⁻³"},
            training_data={
                "sources": info["sources"],
                "fingerprint": sources_fingerprint(info["sources"]),
                "n_systems": len(info["crystals"]),
            },
            meta={
                "preset": info["preset"],
                "regime": info["regime"],
                "best_epoch": self.best_epoch,
                "monitor": self.monitor,
                "train": {
                    k: self.cfg[k] for k in ("beta", "gamma", "lr", "batch_size", "seg_loss")
                },
            },
        )

    # -- Lightning ----------------------------------------------------------------------------
    def on_train_epoch_start(self) -> None:
        self.setup_info["train_ds"].set_epoch(self.current_epoch if self.resample else 0)
        self._train = _Sums()
        self._t0 = time.perf_counter()

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        loss, acc = self.step_fn(batch)
        self._train.add(loss, acc, batch["density"].shape[0])
        self.log("loss", loss["total"], prog_bar=True, logger=False, batch_size=len(batch["atoms"]))
        return loss["total"]

    def on_validation_epoch_start(self) -> None:
        self._val = _Sums()

    def validation_step(self, batch, batch_idx: int) -> None:
        loss, acc = self.step_fn(batch)
        self._val.add(loss, acc, batch["density"].shape[0])

    def on_validation_epoch_end(self) -> None:
        self._log_epoch(with_val=True)

    def on_train_epoch_end(self) -> None:
        if self.setup_info.get("val_ds") is None:
            self._log_epoch(with_val=False)

    def _log_epoch(self, with_val: bool) -> None:
        train = self._train.reduced(self.sum_over_processes)
        row = {"time_s": round(time.perf_counter() - self._t0, 3), **train.means("train")}
        if with_val:
            row.update(self._val.reduced(self.sum_over_processes).means("val"))
        self.rows.append({"epoch": self.current_epoch, "step": self.global_step, **row})
        value = row[self.monitor]
        if self.best_epoch < 0 or value < self.rows[self.best_epoch][self.monitor]:
            self.best_epoch = len(self.rows) - 1
        finite = {k: v for k, v in row.items() if not (isinstance(v, float) and math.isnan(v))}
        self.log_dict(finite, prog_bar=False)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["density_rows"] = {"rows": self.rows, "best_epoch": self.best_epoch}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        saved = checkpoint.get("density_rows") or {}
        self.rows, self.best_epoch = list(saved.get("rows", [])), int(saved.get("best_epoch", -1))

    def configure_optimizers(self):
        return torch.optim.Adam(
            self.model.parameters(),
            lr=float(self.cfg["lr"]),
            weight_decay=float(self.cfg["weight_decay"]),
        )


def _dataset(
    crystals: CrystalSet, grid: GridSpec, class_map: ClassMap, config: Mapping, progress: bool
) -> DensityDataset:
    d = config["data"]
    return DensityDataset(
        crystals,
        grid,
        class_map,
        regime=d["regime"],
        rotations_per_crystal=d["rotations_per_crystal"],
        seed=int(config["train"]["seed"]),
        rotate=d["rotate"],
        centre=d["centre"],
        aligned_first=d["aligned_first"],
        cache=d["cache"],
        progress=progress,
    )


def _loader(ds: DensityDataset, batch_size: int, seed: int, shuffle: bool, workers: int):
    sampler = EpochBatchSampler(np.arange(len(ds)), batch_size, shuffle, seed)
    return DataLoader(ds, batch_sampler=sampler, collate_fn=collate, num_workers=workers)


@torch.no_grad()
def _atom_summary(
    model: DensityVAEModel, loader: DataLoader, grid: GridSpec, class_map: ClassMap
) -> dict:
    """Atom metrics of the decoded validation samples (z = μ → M̂ → U-Net → atoms)."""
    device = next(model.parameters()).device
    model.eval()
    true, pred = [], []
    for batch in loader:
        density = batch["density"].to(device)
        scale = _max_z(batch, device) if model.condition == "max_z" else None
        logits = model(density, scale=scale)["seg_logits"]
        pred += recover_atoms(logits, grid, class_map)
        true += batch["atoms"]
    return atom_metrics(true, pred)
