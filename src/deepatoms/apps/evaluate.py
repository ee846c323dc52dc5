"""Evaluate a trained model on a dataset split: MAE and RMSE in target units plus a parity plot."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deepatoms.analysis.published import published_references
from deepatoms.data.dataset import read_dataset
from deepatoms.data.splits import load_split
from deepatoms.models.inference import predict_packed, predict_potential
from deepatoms.models.loading import PROPERTY_FAMILIES, load_model
from deepatoms.train.run_folder import RunFolder as RunDir

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


def force_label(loaded, data, forces: str | None = "auto") -> str | None:
    """The per-atom force label to score an energy model against, or None.

    ``"auto"``: the label the model was trained on (``meta.stats.forces``), else ``forces`` when
    the dataset has it and the model predicts an energy in eV; ``None``/``"none"``: no forces.
    """
    if forces is None or forces == "none":
        return None
    if forces != "auto":
        if forces not in data.atom_props:
            raise ValueError(
                f"force label {forces!r} is not in the dataset; per-atom properties: "
                f"{sorted(data.atom_props)}"
            )
        if loaded.unit != "eV":
            raise ValueError(f"forces need an energy model in eV; this one predicts {loaded.unit}")
        return forces
    trained = ((loaded.meta or {}).get("stats") or {}).get("forces")
    for name in (trained, "forces"):
        arr = data.atom_props.get(name) if name else None
        if arr is not None and arr.ndim == 2 and arr.shape[1] == 3 and loaded.unit == "eV":
            return name
    return None


def evaluate(
    run_or_model: str | Path,
    data_path: str | Path,
    split: str = "test",
    plot: str | Path | None = None,
    batch_size: int = 100,
    progress=None,
    forces: str | None = "auto",
) -> dict:
    """Errors of a model on ``split`` (train/val/test, or ``all``) of the dataset ``data_path``.

    Returns a dict with ``mae`` and ``rmse`` in target units (and meV / kcal/mol for eV targets),
    the number of systems, the parity-plot path and the published reference numbers. For an
    energy model and a dataset with force labels (see :func:`force_label`) it also returns the
    component-wise force ``force_mae``/``force_rmse`` in eV/Å (and kcal/mol/Å) and a force
    parity plot.
    """
    run_or_model = Path(run_or_model)
    model_path, split_path = _locate(run_or_model)
    loaded = load_model(model_path, expect=PROPERTY_FAMILIES)
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
    flabel = force_label(loaded, data, forces)
    if flabel:
        pot = predict_potential(loaded.model, loaded.graph, data, idx, batch_size, False, progress)
        pred = pot["energy"]
    else:
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
    if flabel:
        f_ref = data.subset(idx).atom_props[flabel].astype(np.float64).reshape(-1)
        f_err = pot["forces"].reshape(-1) - f_ref
        f_mae, f_rmse = float(np.mean(np.abs(f_err))), float(np.sqrt(np.mean(f_err**2)))
        f_plot = Path(plot).with_name(Path(plot).stem + "_forces.png")
        result.update(
            forces=flabel,
            force_unit="eV/Å",
            force_mae=f_mae,
            force_rmse=f_rmse,
            force_mae_kcal_mol=f_mae / KCAL,
            force_rmse_kcal_mol=f_rmse / KCAL,
            force_plot=str(
                plot_parity(
                    f_ref,
                    pot["forces"].reshape(-1),
                    f_plot,
                    "force component",
                    "eV/Å",
                    f_mae,
                    f_rmse,
                    None,
                )
            ),
        )
    return result
