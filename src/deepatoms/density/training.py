"""Train the crystal density VAE + U-Net (specs/crystal-density-vae.md §2, §5, §9–10).

A plain PyTorch loop (one optimiser, one backward pass per batch, Eq. 2):

    out   = model(M, γ)                           (U-Net reads gradscale_γ(M̂))
    total = L_RE + β·KL + L_seg                   (``density.model.joint_loss``)

Data: the crystals are filtered by maximum lattice-vector length (``data.max_side``, §1) and
elements (Z ≤ 94, the classes of §4; dropped ids are listed in the summary), split
by group (material id / parent prototype, §2, §9) into train/val/test (``data.split``; the split
is saved in ``split.json`` and reused on resume), then voxelised on the fly
(``density.dataset.DensityDataset``): ``data.rotations_per_crystal`` samples per crystal in the
``data.regime`` (``single`` | ``repeated``). ``data.resample_each_epoch`` draws new rotations every
epoch (seeded by (seed, epoch, sample)); otherwise every epoch sees the same samples, as in the
paper (3 fixed samples per crystal). Validation always uses the fixed samples of epoch 0 and the
model in eval mode (z = μ).

Optional extras, off in the paper preset: ``train.atom_class_weight`` (cross-entropy weight of the
atom classes, §4 "optional class weights") and ``train.seg_input_weight`` w, which adds
w·L_seg(U(M), S), the U-Net applied to the true input density, to the total: the U-Net then
learns to segment clean densities from the first step instead of waiting for the decoder to
produce sharp ones (the paper trains U on M̂ only).

Optimisation (§5): Adam (``train.lr``; paper 10⁻⁵, batch 24), β = ``train.beta``, γ =
``train.gamma``; batches are shuffled by a generator seeded with (seed, epoch). Stopping: after
``train.max_epochs`` epochs, ``train.max_steps`` optimiser steps, ``train.max_time`` minutes, or
``train.early_stopping_patience`` epochs without a lower validation loss (the training loss when
the validation split is empty).

Run folder (``deepatoms.train.runfiles.RunDir``): ``config.yaml`` (resolved), ``split.json``
(crystal indices per part, with ids), ``metrics.csv`` (one row per epoch: loss terms and voxel
species accuracy, all voxels and atom voxels, for train and val), ``checkpoints/last.ckpt``
(model, optimiser, counters and log; plain containers, ``weights_only`` loadable) and
``checkpoints/best.ckpt``, ``model.pt`` (best weights, ``density.model_io``) and
``summary.json`` (with the §7 atom metrics of the best model on the decoded validation samples,
``val_atoms``). A folder holding ``last.ckpt`` is resumed when its config matches (the stopping
limits may change).
"""

from __future__ import annotations

import copy
import csv
import io
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch.utils.data import DataLoader

from deepatoms.config.files import save_config
from deepatoms.config.schema import config_diff
from deepatoms.core.errors import ConfigError
from deepatoms.core.files import atomic_torch_save, atomic_write_text, write_json
from deepatoms.core.progress import ProgressBar
from deepatoms.data.voxels.crystal_sets import CrystalSet
from deepatoms.data.voxels.dataset import MAX_Z, ClassMap, DensityDataset, collate
from deepatoms.data.voxels.grid import GridSpec
from deepatoms.density.metrics import atom_metrics
from deepatoms.density.model_io import save_density_model
from deepatoms.density.recovery import recover_atoms
from deepatoms.models.density_model import (
    DensityVAEModel,
    joint_loss,
    segmentation_loss,
    voxel_accuracy,
)
from deepatoms.models.density_vae import VAE_DEFAULTS
from deepatoms.models.registry import family, family_of, load_preset, resolve_config
from deepatoms.train.runfiles import RunDir, check_run_folder

__all__ = [
    "DENSITY_DEFAULTS",
    "LossStep",
    "density_preset",
    "resolve_density_config",
    "select_crystals",
    "train_density_vae",
]

#: Defaults of a density-VAE config (the registry's schema).
DENSITY_DEFAULTS: dict[str, Any] = family("density_vae").schema.defaults()
_RESUMABLE = {"max_epochs", "max_steps", "max_time", "num_threads", "num_workers"}
_TERMS = ("total", "recon_mse", "kl", "seg_ce", "seg_input_ce", "acc_all", "acc_atom")


def resolve_density_config(config: Mapping) -> dict:
    """``config`` merged over :data:`DENSITY_DEFAULTS` and checked (ConfigError names the key)."""
    cfg = dict(config)
    cfg["model"] = {**(cfg.get("model") or {}), "name": "density_vae"}
    return resolve_config(cfg)


def density_preset(name: str) -> dict:
    """The density-VAE preset ``name`` (``base`` inheritance resolved by the registry)."""
    cfg = load_preset(name)
    if family_of(cfg).name != "density_vae":
        raise ConfigError(
            f"preset {name!r} is not a density VAE preset (model.name density_vae); density VAE "
            f"presets: {', '.join(family('density_vae').presets())}"
        )
    return cfg


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.accelerator=cuda but no CUDA device is available; use cpu or auto")
    if name not in ("cpu", "cuda"):
        raise ConfigError(f"train.accelerator must be auto, cpu or cuda, got {name!r}")
    return torch.device(name)


class _Epochs:
    """Shuffled batches of sample indices, seeded by (seed, epoch)."""

    def __init__(self, n: int, batch_size: int, seed: int, shuffle: bool) -> None:
        self.n, self.bs, self.seed, self.shuffle, self.epoch = n, batch_size, seed, shuffle, 0

    def __iter__(self):
        order = np.arange(self.n)
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(self.n)
        for i in range(0, self.n, self.bs):
            yield order[i : i + self.bs].tolist()

    def __len__(self) -> int:
        return math.ceil(self.n / self.bs)


def _loader(ds: DensityDataset, batch_size: int, seed: int, shuffle: bool, workers: int):
    sampler = _Epochs(len(ds), batch_size, seed, shuffle)
    loader = DataLoader(ds, batch_sampler=sampler, collate_fn=collate, num_workers=workers)
    return loader, sampler


def _max_z(batch: Mapping, device: torch.device) -> torch.Tensor:
    return torch.tensor(
        [float(np.max(z)) if len(z) else 1.0 for z, _ in batch["atoms"]], device=device
    )


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

    def means(self, prefix: str) -> dict[str, float]:
        return {
            f"{prefix}_{k}": self.sums[k] / self.counts[k] if self.counts[k] else float("nan")
            for k in _TERMS
        }


class LossStep:
    """Forward pass + loss terms (Eq. 2, plus the optional extras) of one collated batch.

    Shared by training, validation and ``benchmarks/density_train_steps.py``; ``config`` is a
    resolved config (its ``train`` section). Returns the loss dict and the voxel accuracies.
    """

    def __init__(self, model: DensityVAEModel, config: Mapping, device: torch.device) -> None:
        self.model, self.t, self.device = model, config["train"], device
        w = float(self.t["atom_class_weight"])
        n = model.config["n_classes"]
        self.weights = None
        if w != 1.0:
            self.weights = torch.full((n,), w, device=device)
            self.weights[0] = 1.0

    def __call__(self, batch: Mapping) -> tuple[dict[str, torch.Tensor], tuple[float, float]]:
        density = batch["density"].to(self.device)
        classes = batch["classes"].to(self.device)
        scale = None
        if self.model.condition == "max_z":
            scale = _max_z(batch, self.device)
        out = self.model(density, gamma=float(self.t["gamma"]), scale=scale)
        loss = joint_loss(
            out,
            density,
            classes,
            float(self.t["beta"]),
            class_weights=self.weights,
            seg_loss=self.t["seg_loss"],
            recon_reduction=self.t["recon_reduction"],
        )
        w_in = float(self.t["seg_input_weight"])
        if w_in > 0.0:
            logits = self.model.segment(density)
            loss["seg_input_ce"] = segmentation_loss(
                logits, classes, self.weights, self.t["seg_loss"]
            )
            loss["total"] = loss["total"] + w_in * loss["seg_input_ce"]
        return loss, voxel_accuracy(out["seg_logits"].detach(), classes)


@torch.no_grad()
def _validate(step: LossStep, loader: DataLoader) -> _Sums:
    step.model.eval()
    sums = _Sums()
    for batch in loader:
        loss, acc = step(batch)
        sums.add(loss, acc, batch["density"].shape[0])
    return sums


@torch.no_grad()
def _atom_summary(
    model: DensityVAEModel, loader: DataLoader, grid: GridSpec, class_map: ClassMap
) -> dict:
    """§6–7 atom metrics of the decoded validation samples (z = μ → M̂ → U-Net → atoms)."""
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


def _write_metrics(path: Path, rows: list[dict]) -> None:
    if not rows:
        return
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def _saved_config(path: Path) -> dict:
    """A run's ``config.yaml`` resolved like a new config (for the resume check)."""
    return resolve_density_config(yaml.safe_load(path.read_text()) or {})


def _split(crystals: CrystalSet, config: dict, run: RunDir, resume: bool) -> dict[str, np.ndarray]:
    from deepatoms.data.splits import load_split, save_split

    if resume and run.split.is_file():
        split = load_split(run.split)
        top = max((int(v.max()) for v in split.values() if len(v)), default=-1)
        if top >= len(crystals):
            raise ConfigError(
                f"{run.split} indexes crystal {top} but only {len(crystals)} crystals were given; "
                "resume with the same --data sources"
            )
        return split
    split = crystals.split_by_group(tuple(config["data"]["split"]), seed=config["train"]["seed"])
    meta = {
        "n_crystals": len(crystals),
        "seed": config["train"]["seed"],
        "unit": "crystal (split by group: material id or parent prototype)",
        "ids": {k: [crystals.ids[i] for i in v] for k, v in split.items()},
    }
    save_split(run.split, split, meta)
    return split


def select_crystals(crystals: CrystalSet, config: Mapping) -> CrystalSet:
    """The crystals a run trains, validates and tests on, in the order ``split.json`` indexes.

    Keeps crystals whose lattice vectors are all shorter than ``data.max_side`` (Å, §1) and
    whose elements have a class (Z ≤ 94, §4); the reports are in ``notes["max_side"]`` and
    ``notes["beyond_z94"]`` (dropped ids). Use it to map a run's split back onto its sources.
    """
    crystals = crystals.filter_max_side(float(config["data"]["max_side"]))
    keep = [k for k, a in enumerate(crystals.atoms) if int(np.max(a.numbers)) <= MAX_Z]
    dropped = [crystals.ids[k] for k in sorted(set(range(len(crystals))) - set(keep))]
    out = crystals.subset(keep)
    out.notes["beyond_z94"] = dropped
    return out


INIT_PARTS = ("all", "vae", "unet")


def init_density_weights(
    model: DensityVAEModel, grid: GridSpec, class_map: ClassMap, path: str | Path, part: str
) -> dict:
    """Copy the weights of the density model file ``path`` into ``model`` (warm start).

    ``part``: ``all`` (same model config, grid and classes), ``vae`` (encoder + decoder only; same
    VAE settings and grid: e.g. a new segmentation network on a trained VAE) or ``unet`` (the U-Net
    only; same U-Net settings and class map). Returns what was loaded, for the run summary.
    """
    from deepatoms.density.model_io import load_density_model

    if part not in INIT_PARTS:
        raise ValueError(f"--init-part must be one of {INIT_PARTS}, got {part!r}")
    src = load_density_model(path)
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
    assert not unexpected, unexpected  # same config ⇒ same names
    return {"model_file": str(Path(path).resolve()), "part": part, "tensors": len(state)}


def train_density_vae(
    config: Mapping,
    crystals: CrystalSet,
    out: str | Path,
    progress: bool = True,
    init: str | Path | None = None,
    init_part: str = "all",
) -> dict:
    """Train (or resume) a density VAE + U-Net on ``crystals`` in run folder ``out``.

    ``config``: a resolved or partial config (:func:`density_preset`, ``--set`` overrides).
    ``init``: a density ``model.pt`` to start from (:func:`init_density_weights` with
    ``init_part``; ignored when the run resumes, the optimiser always starts fresh).
    Returns the run summary (also ``summary.json``): epochs, steps, best and last validation
    terms, stop reason, split sizes, parameter counts and the path of ``model.pt``.
    """
    t_start = time.time()
    config = resolve_density_config(copy.deepcopy(dict(config)))
    d, t = config["data"], config["train"]
    run = RunDir(out)
    resume = check_run_folder(run, config, _saved_config, _RESUMABLE, new_out="a new --out")
    if t["num_threads"]:
        torch.set_num_threads(int(t["num_threads"]))
    device = _device(t["accelerator"])
    grid = GridSpec.from_dict(config["grid"])

    crystals = select_crystals(crystals, config)
    if len(crystals) == 0:
        raise ValueError(
            f"no crystal has all lattice vectors shorter than data.max_side={d['max_side']} Å "
            "and only elements up to Z = 94"
        )
    class_map = ClassMap.from_mode(d["classes"], crystals)
    run.root.mkdir(parents=True, exist_ok=True)
    save_config(config, run.config)
    split = _split(crystals, config, run, resume)
    if not len(split["train"]):
        raise ValueError(f"the split {d['split']} leaves no training crystals of {len(crystals)}")

    def dataset(part: str) -> DensityDataset:
        return DensityDataset(
            crystals.subset(split[part]),
            grid,
            class_map,
            regime=d["regime"],
            rotations_per_crystal=d["rotations_per_crystal"],
            seed=t["seed"],
            rotate=d["rotate"],
            centre=d["centre"],
            aligned_first=d["aligned_first"],
            cache=d["cache"],
            progress=progress,
        )

    train_ds = dataset("train")
    val_ds = dataset("val") if len(split["val"]) else None
    workers = int(t["num_workers"])
    train_loader, sampler = _loader(train_ds, int(t["batch_size"]), t["seed"], True, workers)
    val_loader = (
        _loader(val_ds, int(t["eval_batch_size"]), t["seed"], False, workers)[0]
        if val_ds is not None
        else None
    )

    torch.manual_seed(int(t["seed"]))
    model = DensityVAEModel(config["model"], grid_n=grid.n, n_classes=class_map.n_classes)
    model.to(device)
    opt = torch.optim.Adam(
        model.parameters(), lr=float(t["lr"]), weight_decay=float(t["weight_decay"])
    )
    state = {"epoch": 0, "step": 0, "best": math.inf, "best_epoch": -1, "bad": 0, "rows": []}
    init_info = None
    if init is not None and not resume:
        init_info = init_density_weights(model, grid, class_map, init, init_part)
    if resume:
        ckpt = torch.load(run.last_ckpt, map_location=device, weights_only=True)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        state = ckpt["state"]
        torch.set_rng_state(ckpt["rng"])
    step_fn = LossStep(model, config, device)
    max_steps = t["max_steps"]
    deadline = t_start + 60.0 * float(t["max_time"]) if t["max_time"] else math.inf
    monitor = "val_total" if val_loader is not None else "train_total"
    reason = "max_epochs"

    while state["epoch"] < int(t["max_epochs"]):
        epoch = state["epoch"]
        if state["bad"] >= int(t["early_stopping_patience"]):
            reason = "early_stopping"
            break
        if max_steps is not None and state["step"] >= int(max_steps):
            reason = "max_steps"
            break
        if time.time() >= deadline:
            reason = "max_time"
            break
        train_ds.set_epoch(epoch if d["resample_each_epoch"] else 0)
        sampler.epoch = epoch
        model.train()
        sums = _Sums()
        t0 = time.time()
        with ProgressBar(f"epoch {epoch + 1}/{t['max_epochs']}", quiet=not progress) as bar:
            for i, batch in enumerate(train_loader):
                loss, acc = step_fn(batch)
                opt.zero_grad(set_to_none=True)
                loss["total"].backward()
                opt.step()
                state["step"] += 1
                sums.add(loss, acc, batch["density"].shape[0])
                bar(i + 1, len(sampler))
                if max_steps is not None and state["step"] >= int(max_steps):
                    break
                if time.time() >= deadline:
                    break
        row = {"epoch": epoch, "step": state["step"], "time_s": round(time.time() - t0, 3)}
        row.update(sums.means("train"))
        if val_loader is not None:
            row.update(_validate(step_fn, val_loader).means("val"))
        state["rows"].append(row)
        state["epoch"] = epoch + 1
        if row[monitor] < state["best"]:
            state.update(best=row[monitor], best_epoch=epoch, bad=0)
            atomic_torch_save({"model": _state(model), "epoch": epoch}, run.best_ckpt)
        else:
            state["bad"] += 1
        ckpt = {
            "model": _state(model),
            "optimizer": opt.state_dict(),
            "state": state,
            "rng": torch.get_rng_state(),
        }
        atomic_torch_save(ckpt, run.last_ckpt)
        _write_metrics(run.metrics, state["rows"])

    if state["best_epoch"] < 0:
        raise RuntimeError(f"{run.root}: no epoch finished (limits too small?)")
    best = torch.load(run.best_ckpt, map_location="cpu", weights_only=True)
    model.load_state_dict(best["model"])
    meta = {
        "preset": config["name"],
        "regime": d["regime"],
        "best_epoch": state["best_epoch"],
        "monitor": monitor,
        "best_value": state["best"],
        "train": {k: t[k] for k in ("beta", "gamma", "lr", "batch_size", "seg_loss")},
    }
    val_atoms = _atom_summary(model, val_loader, grid, class_map) if val_loader else None
    save_density_model(run.model, model.cpu(), grid, class_map, meta)
    best_row = state["rows"][state["best_epoch"]]
    summary = {
        "run": str(run.root),
        "model": str(run.model),
        "resumed": resume,
        "init": init_info,
        "stopped": reason,
        "epochs": state["epoch"],
        "steps": state["step"],
        "best_epoch": state["best_epoch"],
        "monitor": monitor,
        "best": best_row,
        "val_atoms": val_atoms,
        "last": state["rows"][-1],
        "n_crystals": {k: len(v) for k, v in split.items()},
        "n_samples": {"train": len(train_ds), "val": len(val_ds) if val_ds else 0},
        "n_classes": class_map.n_classes,
        "grid": grid.as_dict(),
        "parameters": {
            "encoder": sum(p.numel() for p in model.vae.encoder.parameters()),
            "decoder": sum(p.numel() for p in model.vae.decoder.parameters()),
            "unet": sum(p.numel() for p in model.unet.parameters()),
        },
        "max_side": crystals.notes.get("max_side"),
        "beyond_z94": crystals.notes["beyond_z94"],
        "wall_s": round(time.time() - t_start, 2),
    }
    write_json(run.summary, summary)
    return summary
