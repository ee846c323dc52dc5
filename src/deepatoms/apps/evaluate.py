"""Evaluate a trained model on a dataset split: MAE and RMSE in target units plus a parity plot."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deepatoms.apps.inference import predict_packed
from deepatoms.apps.references import published_references
from deepatoms.data.dataset import read_dataset
from deepatoms.data.splits import load_split
from deepatoms.models.io import load_model_file
from deepatoms.train.runfiles import RunDir

KCAL = 0.0433641  # eV per kcal/mol


def _locate(run_or_model: Path) -> tuple[Path, Path | None]:
    """(model file, split file or None) for a run folder or a model file."""
    if run_or_model.is_dir():
        run = RunDir(run_or_model)
        if not run.model.is_file():
            raise FileNotFoundError(
                f"{run.root} has no exported model.pt; train it to the end (or resume it) first"
            )
        return run.model, run.split if run.split.is_file() else None
    if run_or_model.is_file():
        split = run_or_model.parent / "split.json"
        return run_or_model, split if split.is_file() else None
    raise FileNotFoundError(f"{run_or_model} is neither a run folder nor a model file")


def evaluate(
    run_or_model: str | Path,
    data_path: str | Path,
    split: str = "test",
    plot: str | Path | None = None,
    batch_size: int = 100,
    progress=None,
) -> dict:
    """Errors of a model on ``split`` (train/val/test, or ``all``) of the dataset ``data_path``.

    Returns a dict with ``mae`` and ``rmse`` in target units (and meV / kcal/mol for eV targets),
    the number of systems, the parity-plot path and the published reference numbers.
    """
    run_or_model = Path(run_or_model)
    model_path, split_path = _locate(run_or_model)
    loaded = load_model_file(model_path)
    data, _ = read_dataset(data_path)
    prop = loaded.property
    if prop not in data.system_props:
        raise ValueError(
            f"the model predicts {prop!r}, which {data_path} does not contain; "
            f"its properties are {sorted(data.system_props)}"
        )
    if split == "all":
        idx = np.arange(len(data))
    else:
        if split_path is None:
            raise ValueError(
                f"no split.json next to {model_path}: pass the run folder, or --split all"
            )
        splits, split_meta = load_split(split_path, with_meta=True)
        if split not in splits:
            raise ValueError(f"unknown split {split!r}; choose one of {sorted(splits)} or all")
        idx = splits[split]
        n_expected = split_meta.get("n_systems")
        if n_expected is not None and int(n_expected) != len(data):
            raise ValueError(
                f"the run's split was made for a dataset of {int(n_expected)} systems, but "
                f"{data_path} has {len(data)}: evaluate on the dataset the run was trained on"
            )
    if len(idx) == 0:
        raise ValueError(f"split {split!r} is empty")
    pred = predict_packed(loaded, data, idx, batch_size, progress)
    ref = data.system_props[prop][idx].astype(np.float64)
    err = pred - ref
    mae, rmse = float(np.mean(np.abs(err))), float(np.sqrt(np.mean(err**2)))
    result = {
        "model": str(model_path),
        "data": str(data_path),
        "split": split,
        "n": len(idx),
        "target": prop,
        "unit": loaded.unit,
        "mae": mae,
        "rmse": rmse,
    }
    if loaded.unit == "eV":
        result.update(
            mae_meV=mae * 1e3,
            rmse_meV=rmse * 1e3,
            mae_kcal_mol=mae / KCAL,
            rmse_kcal_mol=rmse / KCAL,
        )
    family = loaded.model.config.get("name", "")
    result["published"] = published_references(family, prop)
    if plot is None:
        base = run_or_model if run_or_model.is_dir() else model_path.parent
        plot = base / "plots" / f"parity_{split}.png"
    from deepatoms.analysis.plots import plot_parity

    refs = loaded.model.head.atomref.detach().cpu().numpy()
    offset = None
    if np.any(refs != 0):  # show total energies as atomization energies
        sub = data.subset(idx)
        offset = np.add.reduceat(refs[sub.numbers], sub.offsets[:-1]) if len(sub.numbers) else None
    result["plot"] = str(plot_parity(ref, pred, plot, prop, loaded.unit, mae, rmse, offset))
    return result
