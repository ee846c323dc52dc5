"""Evaluate a trained model on a dataset split, and predict for structure files: the functions
behind ``deepatoms evaluate`` and ``deepatoms predict``.

``evaluate``: MAE and RMSE in target units (and meV, kcal/mol for energies) on the run's
train/val/test split or on all systems, component-wise force errors for potentials, parity
plots and the published numbers of the model family. ``predict``: the model's property for
every structure of any ASE-readable files, as rows (and a CSV).
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ase.io
import numpy as np

from deepatoms.analysis.published import published_references
from deepatoms.core.errors import DeepatomsError
from deepatoms.core.files import atomic_write_text
from deepatoms.core.progress import ProgressBar
from deepatoms.core.results import Result
from deepatoms.data.dataset import read_dataset
from deepatoms.data.packed import PackedSystems
from deepatoms.data.splits import saved_split
from deepatoms.models.inference import predict_packed, predict_potential, unseen_elements
from deepatoms.models.loaded import LoadedModel
from deepatoms.models.loading import PROPERTY_FAMILIES, load_model, resolve_model_path

__all__ = ["Evaluation", "Prediction", "evaluate", "force_label", "predict", "read_inputs"]

KCAL = 0.0433641  # eV per kcal/mol


class Evaluation(Result):
    """Errors of a model on a split: ``target``, ``unit``, ``split``, ``n``, ``mae``, ``rmse``
    (target units; ``mae_meV``, ``mae_kcal_mol`` … for eV targets), ``published`` (the papers'
    numbers), ``plot`` (parity plot); for potentials ``forces``, ``force_mae``, ``force_rmse``
    (eV/Å), ``force_mae_kcal_mol`` and ``force_plot``."""


class Prediction(Result):
    """Predictions for structure files: ``property``, ``unit``, ``column`` (CSV header),
    ``rows`` (file, frame, formula, n_atoms, value), ``n``, ``out`` (the CSV, if written) and
    ``warnings``."""


def force_label(
    loaded: LoadedModel, data: PackedSystems, forces: str | None = "auto"
) -> str | None:
    """The per-atom force label to score an energy model against, or None.

    ``"auto"``: the label the model was trained on (``meta.stats.forces``), else ``forces`` when
    the dataset has it and the model predicts an energy in eV; ``None``/``"none"``: no forces.
    """
    if forces is None or forces == "none":
        return None
    if forces != "auto":
        if forces not in data.atom_props:
            raise DeepatomsError(
                f"force label {forces!r} is not in the dataset; per-atom properties: "
                f"{sorted(data.atom_props)}"
            )
        if loaded.unit != "eV":
            raise DeepatomsError(
                f"forces need an energy model in eV; this one predicts {loaded.unit}"
            )
        return forces
    trained = ((loaded.meta or {}).get("stats") or {}).get("forces")
    for name in (trained, "forces"):
        arr = data.atom_props.get(name) if name else None
        if arr is not None and arr.ndim == 2 and arr.shape[1] == 3 and loaded.unit == "eV":
            return name
    return None


def _split_indices(split: str, model: Path, data: PackedSystems, data_path: Path) -> np.ndarray:
    """Indices of ``split`` (the run's ``split.json`` next to ``model``) or of all systems."""
    if split == "all":
        return np.arange(len(data))
    split_path = model.parent / "split.json"
    if not split_path.is_file():
        raise DeepatomsError(f"no split.json next to {model}: pass the run folder, or --split all")
    return saved_split(split_path, split, len(data), str(data_path))


def _errors(pred: np.ndarray, ref: np.ndarray, unit: str, prefix: str = "") -> dict[str, float]:
    err = pred - ref
    mae, rmse = float(np.mean(np.abs(err))), float(np.sqrt(np.mean(err**2)))
    out = {f"{prefix}mae": mae, f"{prefix}rmse": rmse}
    if unit == "eV" and not prefix:
        out.update(mae_meV=mae * 1e3, rmse_meV=rmse * 1e3)
    if unit == "eV" or prefix:
        out.update({f"{prefix}mae_kcal_mol": mae / KCAL, f"{prefix}rmse_kcal_mol": rmse / KCAL})
    return out


def evaluate(
    run_or_model: str | os.PathLike, data_path: str | os.PathLike, split: str = "test",
    plot: str | os.PathLike | None = None, batch_size: int = 100, progress: bool = True,
    forces: str | None = "auto",
) -> Evaluation:  # fmt: skip
    """Errors of a model (run folder or model file) on ``split`` (train/val/test of the run's
    split, or ``all``) of the dataset ``data_path``, with parity plots (default
    ``RUN/plots/parity_<split>.png``). For an energy model on data with force labels
    (:func:`force_label`) the component-wise force errors (eV/Å) are added."""
    if batch_size < 1:
        raise DeepatomsError(f"--batch-size must be at least 1, got {batch_size}")
    model_path = resolve_model_path(run_or_model)
    loaded = load_model(model_path, expect=PROPERTY_FAMILIES)
    data_path = Path(data_path)
    data, _ = read_dataset(data_path)
    prop = loaded.property
    if prop not in data.system_props:
        raise DeepatomsError(
            f"the model predicts {prop!r}, which {data_path} does not contain; "
            f"its properties are {sorted(data.system_props)}"
        )
    idx = _split_indices(split, model_path, data, data_path)
    flabel = force_label(loaded, data, forces)
    with ProgressBar("evaluating", quiet=not progress) as bar:
        if flabel:
            pot = predict_potential(loaded.model, loaded.graph, data, idx, batch_size, False, bar)
            pred = pot["energy"]
        else:
            pred = predict_packed(loaded, data, idx, batch_size, bar)
    ref = data.system_props[prop][idx].astype(np.float64)
    result = Evaluation(model=str(model_path), data=str(data_path), split=split, n=len(idx),
                        target=prop, unit=loaded.unit, **_errors(pred, ref, loaded.unit))  # fmt: skip
    result["published"] = published_references(loaded.model.config.get("name", ""), prop)
    plot = Path(plot) if plot is not None else model_path.parent / "plots" / f"parity_{split}.png"
    result["plot"] = str(_parity(loaded, data.subset(idx), ref, pred, plot, result))
    if flabel:
        f_ref = data.subset(idx).atom_props[flabel].astype(np.float64).reshape(-1)
        f_pred = pot["forces"].reshape(-1)
        f_err = _errors(f_pred, f_ref, "eV/Å", prefix="force_")
        result.update(forces=flabel, force_unit="eV/Å", **f_err)
        f_plot = plot.with_name(plot.stem + "_forces.png")
        from deepatoms.analysis.plots import plot_parity

        result["force_plot"] = str(plot_parity(f_ref, f_pred, f_plot, "force component", "eV/Å",
                                               f_err["force_mae"], f_err["force_rmse"], None))  # fmt: skip
    return result


def _parity(loaded: LoadedModel, sub: PackedSystems, ref: np.ndarray, pred: np.ndarray,
            path: Path, res: Evaluation) -> Path:  # fmt: skip
    """Parity plot of the target (total energies shown as atomization energies)."""
    from deepatoms.analysis.plots import plot_parity

    refs = loaded.model.head.atomref.detach().cpu().numpy()
    offset = None
    if np.any(refs != 0) and len(sub.numbers):
        offset = np.add.reduceat(refs[sub.numbers], sub.offsets[:-1])
    return plot_parity(ref, pred, path, res.target, res.unit, res.mae, res.rmse, offset)


def read_inputs(paths: Sequence[Any]) -> tuple[list, list[tuple[str, int]]]:
    """All structures of ``paths`` (every frame of each file; an ``ase.Atoms`` item is taken as
    it is) and their (file, frame index) labels (``("<atoms>", i)`` for the i-th ``Atoms``)."""
    atoms_list, labels = [], []
    n_given = 0
    for p in paths:
        if isinstance(p, ase.Atoms):
            if len(p) == 0:
                raise DeepatomsError(f"structure {n_given} of the given Atoms has no atoms")
            atoms_list.append(p)
            labels.append(("<atoms>", n_given))
            n_given += 1
            continue
        p = Path(p)
        if not p.is_file():
            raise FileNotFoundError(f"input file {p} does not exist")
        try:
            frames = ase.io.read(p, index=":")
        except Exception as exc:
            raise DeepatomsError(
                f"cannot read structures from {p}: {type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(frames, list):
            frames = [frames]
        for k, a in enumerate(frames):
            if len(a) == 0:
                raise DeepatomsError(f"{p}, frame {k}: structure has no atoms")
            atoms_list.append(a)
            labels.append((str(p), k))
    if not atoms_list:
        raise DeepatomsError("no structures found in the input files")
    return atoms_list, labels


def predict(
    model: str | os.PathLike | LoadedModel,
    inputs: Sequence[str | os.PathLike | ase.Atoms] | ase.Atoms,
    out: str | os.PathLike | None = None,
    batch_size: int = 100,
    progress: bool = True,
) -> Prediction:
    """The model's property (a run folder, model file or loaded model) for every structure of
    ``inputs``: ASE-readable files (every frame) and/or ``ase.Atoms``. Keys: ``predicted`` (one per
    structure, in the model's unit), ``rows`` (file, frame, formula, n_atoms, value), ``property``,
    ``unit``. Writes the rows as a CSV to ``out`` when given, replacing an earlier CSV of that
    name (a note says so) but never one of the inputs."""
    if isinstance(inputs, ase.Atoms):
        inputs = [inputs]
    if batch_size < 1:
        raise DeepatomsError(f"--batch-size must be at least 1, got {batch_size}")
    notes = []
    if out is not None:
        _check_csv_output(Path(out), inputs)
        if Path(out).exists():
            notes.append(f"replaced the existing {out}")
    loaded = (
        model if isinstance(model, LoadedModel) else load_model(model, expect=PROPERTY_FAMILIES)
    )
    atoms_list, labels = read_inputs(list(inputs))
    data = PackedSystems.from_atoms(atoms_list)
    warnings = []
    unseen = unseen_elements(loaded, data.numbers)
    if unseen:
        warnings.append(
            f"elements with atomic numbers {unseen} never occurred in the training data; "
            "predictions for structures containing them are unreliable"
        )
    with ProgressBar("predicting", quiet=not progress) as bar:
        values = predict_packed(loaded, data, None, batch_size, bar)
    col = f"{loaded.property} [{loaded.unit}]" if loaded.unit else loaded.property
    rows: list[dict[str, Any]] = [
        {"file": f, "frame": k, "formula": a.get_chemical_formula(), "n_atoms": len(a),
         col: float(v)}
        for (f, k), a, v in zip(labels, atoms_list, values, strict=True)
    ]  # fmt: skip
    if out is not None:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(out, buf.getvalue())
    return Prediction(model=loaded.meta.get("model_file"), property=loaded.property,
                      unit=loaded.unit, column=col, n=len(rows), predicted=np.asarray(values),
                      out=str(out) if out is not None else None, rows=rows, warnings=warnings,
                      notes=notes)  # fmt: skip


def _check_csv_output(out: Path, inputs: Sequence[str | os.PathLike]) -> None:
    """Never write over an input; the output must be a CSV file name."""
    if any(not isinstance(p, ase.Atoms) and Path(p).resolve() == out.resolve() for p in inputs):
        raise DeepatomsError(f"--out {out} is one of the input files; choose another output name")
    if out.is_dir():
        raise DeepatomsError(f"--out {out} is a folder; give a CSV file name")
