"""Train a model: config → split → statistics → Lightning fit → exported ``model.pt``.

Resuming: calling :func:`train` again on a run folder that holds ``checkpoints/last.ckpt``
continues that run (same config, same split); only the stopping limits (``max_epochs``,
``max_steps``, ``max_time``) may change between the calls.
"""

from __future__ import annotations

import copy
import logging
import math
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint

from deepatoms.config.files import save_config
from deepatoms.config.schema import config_diff
from deepatoms.core.errors import ConfigError
from deepatoms.core.files import write_json
from deepatoms.core.progress import ProgressBar
from deepatoms.data.dataset import read_dataset
from deepatoms.data.edge_store import attach_edges
from deepatoms.data.fingerprint import file_fingerprint
from deepatoms.data.neighbors import GraphSpec
from deepatoms.data.packed import PackedSystems
from deepatoms.data.splits import column_split, group_split, load_split, random_split, save_split
from deepatoms.data.stats import atomref_sum, fit_atomrefs, force_rms, target_statistics
from deepatoms.models.heads import AtomisticModel
from deepatoms.models.loading import PROPERTY_FAMILIES, load_model
from deepatoms.models.model_file import write_model_file
from deepatoms.models.registry import build_model, family_of
from deepatoms.models.registry import load_run_config as load_config
from deepatoms.train.csvlog import AppendingCSVLogger
from deepatoms.train.loader import make_loader
from deepatoms.train.runfiles import RunDir, check_run_folder
from deepatoms.train.task import PropertyTask, monitor_metric

log = logging.getLogger(__name__)
# Lightning's start-up banner advertises a cloud logger; keep its warnings, drop the rest.
logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)

# Limits a resumed run may change; everything else must match the saved config.
_RESUMABLE_KEYS = {"max_epochs", "max_steps", "max_time"}
# generative families with their own trainers (string or density data, not a target property)
_OTHER_TRAINERS = {
    "grammar-vae": "`deepatoms vae train --preset NAME --data STRINGS.csv`",
    "density_vae": "`deepatoms crystals train --preset NAME --data CRYSTALS...`",
}


def resolve_readout(config: dict, target: str) -> str:
    """Sum or mean pooling for ``target`` (``data.readout``; ``auto`` uses the preset's table)."""
    readout = config["data"]["readout"]
    if readout == "auto":
        return "mean" if target in config["data"]["mean_readout_targets"] else "sum"
    if readout not in ("sum", "mean"):
        raise ConfigError(f"data.readout must be 'auto', 'sum' or 'mean', got {readout!r}")
    return readout


def resolve_atomrefs(
    config: dict, data: PackedSystems, meta: dict, target: str, train_idx: np.ndarray
) -> tuple[dict[int, float], str]:
    """Per-element references for ``target`` and where they came from (dataset / fit / none)."""
    mode = config["data"]["atomref"]
    table = (meta.get("atomrefs") or {}).get(target)
    if mode == "auto":
        mode = "dataset" if table else "none"
    if mode == "none":
        return {}, "none"
    if mode == "dataset":
        if not table:
            raise ConfigError(
                f"data.atomref=dataset, but the dataset has no atom references for {target!r} "
                f"(it has them for {sorted(meta.get('atomrefs') or {})}); use data.atomref=fit"
            )
        return {int(z): float(v) for z, v in table.items()}, "dataset"
    if mode == "fit":
        sub = data.subset(train_idx)
        refs = fit_atomrefs(sub.numbers, sub.offsets, sub.system_props[target])
        return {int(z): float(v) for z, v in refs.items()}, "fit"
    raise ConfigError(f"data.atomref must be auto, dataset, fit or none, got {mode!r}")


def _check_target(data: PackedSystems, meta: dict, target: str | None, path: Path) -> str:
    if not target:
        raise ConfigError("no target given: pass --target NAME (see `deepatoms data info`)")
    numeric = [
        k
        for k, v in data.system_props.items()
        if np.issubdtype(v.dtype, np.floating) and v.ndim == 1
    ]
    if target not in numeric:
        raise ConfigError(
            f"target {target!r} is not a numeric per-system property of {path}; "
            f"choose one of: {', '.join(sorted(numeric))}"
        )
    return (meta.get("units") or {}).get(target, "")


def _check_forces(data: PackedSystems, config: dict, path: Path) -> str | None:
    """The per-atom force label to train on (``data.forces``), checked against the dataset."""
    name = config["data"]["forces"]
    if not name:
        return None
    arr = data.atom_props.get(name)
    if arr is None:
        have = sorted(k for k, v in data.atom_props.items() if v.ndim == 2 and v.shape[1] == 3)
        raise ConfigError(
            f"data.forces={name!r}, but {path} has no per-atom property of that name; "
            f"per-atom [N,3] properties there: {have or 'none'} (use data.forces=null to train "
            "on energies only)"
        )
    if arr.ndim != 2 or arr.shape[1] != 3 or not np.issubdtype(arr.dtype, np.floating):
        raise ConfigError(
            f"data.forces={name!r} in {path} has shape {arr.shape}; need [N_atoms, 3]"
        )
    return name


def _resolve_scale(config: dict, forces: str | None, std: float, train: PackedSystems) -> float:
    """σ̂ of the output: the energy statistics, or the force RMS for potentials (data.scale)."""
    scale = config["data"]["scale"]
    if scale == "auto":
        scale = "forces" if forces else "energy"
    if scale == "energy":
        return std
    if scale == "forces":
        if not forces:
            raise ConfigError("data.scale=forces needs force labels: set data.forces")
        return force_rms(train.atom_props[forces])
    raise ConfigError(f"data.scale must be auto, energy or forces, got {scale!r}")


def fit_energy_offset(
    model: AtomisticModel, graph: GraphSpec, data: PackedSystems, target: str
) -> float:
    """Refit the integration constant of a force-only potential (ρ = 0, thesis Table 5.6).

    Least squares for a per-atom shift δ (eV) added to the output bias:
    δ = Σ_k n_k r_k / Σ_k n_k², with residuals r_k = E_k − Ê_k over the training systems.
    Updates ``model.head.mean`` in place and returns δ.
    """
    from deepatoms.models.inference import predict_potential

    with torch.no_grad():
        pred = predict_potential(model, graph, data)["energy"]
    n = data.n_atoms.astype(np.float64)
    resid = data.system_props[target] - pred
    delta = float(np.sum(n * resid) / np.sum(n * n))
    with torch.no_grad():
        model.head.mean.add_(delta)
    return delta


def _trainer(config: dict, run: RunDir, progress: bool, monitor: str) -> L.Trainer:
    t = config["train"]
    ckpt = ModelCheckpoint(
        dirpath=run.checkpoints,
        filename="best",
        monitor=monitor,
        mode="min",
        save_last=True,
        save_top_k=1,
        enable_version_counter=False,
    )
    stop = EarlyStopping(monitor=monitor, mode="min", patience=t["early_stopping_patience"])
    max_time = None
    if t["max_time"] is not None:
        minutes = float(t["max_time"])
        max_time = {"seconds": round(minutes * 60)}
    val_every = t["val_every_steps"]
    return L.Trainer(
        default_root_dir=run.root,
        accelerator=t["accelerator"],
        devices=t["devices"],
        max_epochs=t["max_epochs"],
        max_steps=t["max_steps"],
        max_time=max_time,
        val_check_interval=val_every if val_every else None,
        check_val_every_n_epoch=None if val_every else 1,
        callbacks=[ckpt, stop],
        logger=AppendingCSVLogger(run.root),
        enable_progress_bar=progress,
        enable_model_summary=False,
        gradient_clip_val=t["gradient_clip"],
        num_sanity_val_steps=0,
        log_every_n_steps=10,
        deterministic=False,
        use_distributed_sampler=False,
        # Validating a potential differentiates the energy: autograd must stay available.
        inference_mode=monitor != "val_loss",
    )


def _explicit_split(split: Mapping, n: int) -> dict[str, np.ndarray]:
    """Validate user-given split indices: keys train/val/test, in range, disjoint."""
    missing = {"train", "val"} - set(split)
    if missing:
        raise ConfigError(f"an explicit split needs 'train' and 'val' indices; missing {missing}")
    out = {
        k: np.asarray(split.get(k, []), dtype=np.int64).reshape(-1)
        for k in ("train", "val", "test")
    }
    seen = np.concatenate(list(out.values()))
    if len(seen) and (seen.min() < 0 or seen.max() >= n):
        raise ConfigError(f"split indices must lie in 0 … {n - 1} for this dataset of {n} systems")
    if len(np.unique(seen)) != len(seen):
        raise ConfigError("split indices overlap: train, val and test must be disjoint")
    return out


def _split_column(data: PackedSystems, name: str, key: str, path: Path) -> np.ndarray:
    col = data.system_props.get(name)
    if col is None:
        raise ConfigError(
            f"{key}={name!r}, but {path} has no per-system column of that name; "
            f"columns: {', '.join(sorted(data.system_props))}"
        )
    return col


def _config_split(data: PackedSystems, d: dict, seed: int, path: Path) -> dict[str, np.ndarray]:
    """The split the config asks for: a label column, whole groups drawn at random, or random."""
    if d["split_column"] and d["group_by"]:
        raise ConfigError("set data.split_column or data.group_by, not both")
    if d["split_column"]:
        col = _split_column(data, d["split_column"], "data.split_column", path)
        try:
            return column_split(col, f"column {d['split_column']!r} of {path}")
        except ValueError as err:
            raise ConfigError(str(err)) from err
    if d["group_by"]:
        col = _split_column(data, d["group_by"], "data.group_by", path)
        return group_split(col, d["n_train"], d["n_val"], d["n_test"], seed=seed)
    return random_split(len(data), d["n_train"], d["n_val"], d["n_test"], seed=seed)


def _resolve_bond_types(model_cfg: dict, meta: dict, path: Path) -> list[str] | None:
    """Fill ``n_bond_types: auto`` from the dataset's bond vocabulary; return the vocabulary."""
    vocab = meta.get("bond_types")
    if model_cfg.get("n_bond_types") == "auto":
        if not vocab:
            raise ConfigError(
                f"model.n_bond_types=auto, but {path} records no bond vocabulary "
                "(metadata 'bond_types'); make it with `deepatoms datagen scaled|crystal|growth` "
                "or set model.n_bond_types=1"
            )
        model_cfg["n_bond_types"] = len(vocab)
    return list(vocab) if vocab else None


def _init_from(model: AtomisticModel, path: str | Path) -> dict:
    """Copy every weight and buffer of the model file ``path`` into ``model`` (fine-tuning)."""
    loaded = load_model(path, expect=PROPERTY_FAMILIES)
    src_cfg = {k: v for k, v in loaded.model.config.items() if k not in ("property", "readout")}
    dst_cfg = {k: v for k, v in model.config.items() if k not in ("property", "readout")}
    if src_cfg != dst_cfg:
        diff = config_diff(src_cfg, dst_cfg)
        raise ConfigError(
            f"--init {path}: its model differs from this run's model, so its weights cannot be "
            "loaded:\n  " + "\n  ".join(diff) + "\nUse the same preset (and --set overrides)."
        )
    if loaded.model.head.readout != model.head.readout:
        raise ConfigError(
            f"--init {path}: readout {loaded.model.head.readout!r} differs from this run's "
            f"{model.head.readout!r}"
        )
    model.load_state_dict(loaded.model.state_dict())
    return {"model_file": str(Path(path).resolve()), "property": loaded.property}


def _load_ckpt_weights(path: Path, model: AtomisticModel) -> None:
    state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    model.load_state_dict({k.removeprefix("model."): v for k, v in state.items()})


def _potential_val_errors(
    model: AtomisticModel,
    graph: GraphSpec,
    data: PackedSystems,
    val_idx: np.ndarray,
    target: str,
    forces: str,
) -> dict[str, float]:
    """Energy and component-wise force MAE/RMSE of the final model on the validation split."""
    from deepatoms.models.inference import predict_potential

    val = data.subset(val_idx)
    pred = predict_potential(model, graph, val)
    de = pred["energy"] - val.system_props[target]
    df = pred["forces"] - val.atom_props[forces]
    return {
        "val_energy_mae": float(np.abs(de).mean()),
        "val_energy_rmse": float(np.sqrt(np.mean(de**2))),
        "val_force_mae": float(np.abs(df).mean()),
        "val_force_rmse": float(np.sqrt(np.mean(df**2))),
    }


def train(
    config: dict,
    data_path: str | Path,
    out: str | Path,
    progress: bool = True,
    split: Mapping[str, Sequence[int] | np.ndarray] | None = None,
    init: str | Path | None = None,
) -> dict:
    """Train (or resume) a run in folder ``out`` on the dataset file ``data_path``.

    ``split``: explicit ``{"train", "val", "test"}`` index arrays (cross-validation) instead of
    the config's random split; saved in the run like a random one. ``init``: a ``model.pt`` to
    start from (fine-tuning, Paper B §VI.G): same model config and element embedding; every
    weight is taken from it, the output statistics (mean, scale, atom references) too unless
    ``train.init_statistics`` is ``refit`` (then they come from this training set, for a target
    with another reference), and the optimiser starts fresh. Returns the run summary (also written to ``summary.json``), with
    validation MAE/RMSE in the target's units and the path of the exported model file.
    """
    if config["model"].get("name") == "gschnet":  # generative: traces, not a target property
        from deepatoms.apps.train_gschnet import train_gschnet

        return train_gschnet(config, data_path, out, progress, init, split)
    other = _OTHER_TRAINERS.get(str(config["model"].get("name")))
    if other is not None:
        raise ConfigError(
            f"model {config['model']['name']!r} is not trained by `deepatoms train`; use {other}"
        )
    config = copy.deepcopy(config)
    data_path = Path(data_path)
    run = RunDir(out)
    t0 = time.time()
    tcfg = config["train"]
    if tcfg["num_threads"]:
        torch.set_num_threads(int(tcfg["num_threads"]))
    dtype = {"float32": torch.float32, "float64": torch.float64}.get(tcfg["dtype"])
    if dtype is None:
        raise ConfigError(f"train.dtype must be float32 or float64, got {tcfg['dtype']!r}")

    resume = check_run_folder(run, config, load_config, _RESUMABLE_KEYS, log)

    data, meta = read_dataset(data_path)
    target = config["data"]["target"]
    unit = _check_target(data, meta, target, data_path)
    forces = _check_forces(data, config, data_path)
    monitor = monitor_metric(forces)
    L.seed_everything(tcfg["seed"], workers=True, verbose=False)

    if resume and run.split.is_file():
        split = load_split(run.split)
    elif split is not None:
        split = _explicit_split(split, len(data))
        save_split(
            run.split,
            split,
            {"dataset": str(data_path.resolve()), "n_systems": len(data), "seed": None},
        )
    else:
        d = config["data"]
        split_seed = tcfg["seed"] if d["split_seed"] is None else d["split_seed"]
        split = _config_split(data, d, split_seed, data_path)
        save_split(
            run.split,
            split,
            {"dataset": str(data_path.resolve()), "n_systems": len(data), "seed": split_seed},
        )
    if len(split["val"]) == 0:
        raise ConfigError("the validation split is empty; set --n-val to at least 1")
    save_config(config, run.config)

    readout = resolve_readout(config, target)
    atomrefs, atomref_source = resolve_atomrefs(config, data, meta, target, split["train"])
    tr = data.subset(split["train"])
    ref_sum = atomref_sum(tr.numbers, tr.offsets, atomrefs) if atomrefs else None
    mean, std = target_statistics(
        tr.system_props[target], tr.n_atoms, readout, ref_sum, ddof=config["data"]["std_ddof"]
    )
    if forces and readout != "sum":
        raise ConfigError("training on forces needs a sum readout of the energy (data.readout=sum)")
    std = _resolve_scale(config, forces, std, tr)
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
    write_json(run.stats, stats)

    model_cfg = {**config["model"], "property": target, "readout": readout}
    bond_types = _resolve_bond_types(model_cfg, meta, data_path)
    model = build_model(model_cfg)
    model.head.set_statistics(mean, std, atomrefs)
    aux_labels = list(getattr(model, "aux_labels", []))
    missing = [k for k in aux_labels if k not in data.system_props]
    if missing:
        raise ConfigError(
            f"the model's auxiliary heads need the per-system label(s) {missing}, which "
            f"{data_path} lacks; drop those heads (model.aux) or use data with them"
        )
    if hasattr(model, "set_aux_statistics"):
        model.set_aux_statistics(tr)
    if init is not None:
        init_info = _init_from(model, init)
        mode = tcfg["init_statistics"]
        if mode == "refit":  # new target statistics (e.g. another energy reference)
            model.head.set_statistics(mean, std, atomrefs)
            if hasattr(model, "set_aux_statistics"):
                model.set_aux_statistics(tr)
        elif mode != "keep":
            raise ConfigError(f"train.init_statistics must be 'keep' or 'refit', got {mode!r}")
        stats["init"] = {**init_info, "statistics": mode}
        write_json(run.stats, stats)
    model.to(dtype)
    graph = GraphSpec.from_config(config["graph"])
    if graph.precomputed:
        with ProgressBar(f"{graph.kind} graphs", quiet=not progress) as tick:
            attach_edges(data, graph, tick)

    bs, ebs, seed = tcfg["batch_size"], tcfg["eval_batch_size"], tcfg["seed"]
    labels = ([target, forces] if forces else [target]) + aux_labels
    train_loader = make_loader(data, split["train"], graph, labels, bs, True, seed, dtype)
    val_loader = make_loader(data, split["val"], graph, labels, ebs, False, seed, dtype)

    task = PropertyTask(model, target, tcfg, forces=forces)
    trainer = _trainer(config, run, progress, monitor)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*max_epochs.*")
        warnings.filterwarnings("ignore", message=".*LeafSpec.*")
        trainer.fit(
            task, train_loader, val_loader, ckpt_path=str(run.last_ckpt) if resume else None
        )

    best = run.best_ckpt if run.best_ckpt.is_file() else None
    if best is not None:
        _load_ckpt_weights(best, model)
    ckpt_cb = trainer.checkpoint_callback
    best_val = float(ckpt_cb.best_model_score) if ckpt_cb.best_model_score is not None else math.nan
    potential = {}
    if forces:
        if float(tcfg["rho"]) == 0.0:
            potential["energy_offset_fit"] = fit_energy_offset(model, graph, tr, target)
        potential.update(_potential_val_errors(model, graph, data, split["val"], target, forces))
    summary = {
        "run": str(run.root),
        "preset": config.get("name"),
        "model": config["model"]["name"],
        "target": target,
        "unit": unit,
        "readout": readout,
        "n_train": len(split["train"]),
        "n_val": len(split["val"]),
        "n_test": len(split["test"]),
        "epochs": trainer.current_epoch,
        "steps": trainer.global_step,
        f"best_val_{monitor.removeprefix('val_')}": best_val,
        **potential,
        "forces": forces,
        "resumed": resume,
        "wall_time_s": round(time.time() - t0, 1),
        "model_file": str(run.model),
        "interrupted": bool(trainer.interrupted),
    }
    meta_out = {
        "dataset": str(data_path.resolve()),
        "dataset_source": meta.get("source", ""),
        "stats": stats,
        "elements": sorted(int(z) for z in np.unique(tr.numbers)),
        "bond_types": bond_types,
        "config": config,
        f"best_val_{monitor.removeprefix('val_')}": best_val,
        "forces": forces,
        "rho": float(tcfg["rho"]) if forces else None,
        "steps": trainer.global_step,
    }
    write_model_file(
        run.model,
        model,
        family_of(config).name,
        extras={
            "graph": graph.to_config(),
            "elements": meta_out["elements"],
            "bond_types": bond_types,
        },
        units={"target": unit, "length": "Å"},
        target={"name": target, "unit": unit, "readout": readout, "forces": forces},
        normalisation={k: stats[k] for k in ("mean", "std", "atomrefs", "atomref_source")},
        training_data={
            "path": str(data_path.resolve()),
            "source": meta.get("source", ""),
            "fingerprint": file_fingerprint(data_path),
            "n_systems": len(data),
        },
        run_config=config,
        meta=meta_out,
    )
    write_json(run.summary, summary)
    try:
        from deepatoms.analysis.plots import plot_learning_curve

        plot_learning_curve(run.metrics, run.plots / "learning_curve.png", unit)
    except FileNotFoundError:
        pass
    return summary


__all__ = ["fit_energy_offset", "resolve_atomrefs", "resolve_readout", "train"]
