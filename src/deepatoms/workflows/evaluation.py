"""Evaluate a trained model on a dataset split, and predict for structure files: the functions
behind ``deepatoms evaluate`` and ``deepatoms predict``.

``evaluate``: MAE and RMSE in target units (and meV, kcal/mol for energies) on the run's
train/val/test split or on all systems, component-wise force errors for potentials, parity
plots and the published numbers of the model family. ``predict``: the model's property for
every structure of any ASE-readable files, as rows (and a CSV).
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ase.io
import numpy as np

from deepatoms.analysis.published import published_references
from deepatoms.core.device import resolve_device
from deepatoms.core.errors import DeepatomsError
from deepatoms.core.files import atomic_write_text, check_input_file, check_new_file
from deepatoms.core.progress import ProgressBar
from deepatoms.core.results import Result
from deepatoms.data.dataset import read_dataset
from deepatoms.data.packed import PackedSystems
from deepatoms.data.splits import saved_split
from deepatoms.data.validate import check_atoms, packed_problems, raise_problems
from deepatoms.distribute.chunks import (
    ChunkStore,
    MemoryStore,
    chunk_ranges,
    load_arrays,
    parts_folder,
    save_arrays,
)
from deepatoms.distribute.cluster import on_cluster
from deepatoms.distribute.engine import chunk_size, run_chunks
from deepatoms.models.committee import committee_info, force_deviation, member_std
from deepatoms.models.inference import (
    is_potential,
    predict_members,
    predict_packed,
    predict_potential,
    predict_with_std,
    unseen_elements,
)
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
    from deepatoms.data.fingerprint import file_fingerprint

    if split == "all":
        return np.arange(len(data))
    split_path = model.parent / "split.json"
    if not split_path.is_file():
        raise DeepatomsError(f"no split.json next to {model}: pass the run folder, or --split all")
    return saved_split(split_path, split, len(data), str(data_path), file_fingerprint(data_path))


def run_dataset(model: Path) -> Path:
    """The dataset a run was trained on (recorded in its ``split.json``), for ``evaluate RUN``
    without ``--data``."""
    from deepatoms.data.splits import load_split

    split_path = model.parent / "split.json"
    if not split_path.is_file():
        raise DeepatomsError(
            f"{model} has no split.json beside it to name its dataset; pass --data"
        )
    _, meta = load_split(split_path, with_meta=True)
    path = meta.get("dataset")
    if not path or not Path(path).is_file():
        raise DeepatomsError(
            f"the dataset the run was trained on ({path or 'not recorded'}) is not there any "
            "more; pass --data FILE.h5"
        )
    return Path(path)


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
    run_or_model: str | os.PathLike, data_path: str | os.PathLike | None = None,
    split: str = "test",
    plot: str | os.PathLike | None = None, batch_size: int = 100, progress: bool = True,
    forces: str | None = "auto", device: str = "cpu",
) -> Evaluation:  # fmt: skip
    """Errors of a model (run folder or model file) on ``split`` (train/val/test of the run's
    split, or ``all``) of the dataset ``data_path`` (default: the run's own dataset), with parity plots (default
    ``RUN/plots/parity_<split>.png``). For an energy model on data with force labels
    (:func:`force_label`) the component-wise force errors (eV/Å) are added. ``device``: torch
    device (cpu, cuda)."""
    if batch_size < 1:
        raise DeepatomsError(f"--batch-size must be at least 1, got {batch_size}")
    model_path = resolve_model_path(run_or_model)
    dev = resolve_device(device)
    loaded = load_model(model_path, expect=PROPERTY_FAMILIES)
    loaded.model.to(dev)
    data_path = Path(data_path) if data_path is not None else run_dataset(model_path)
    data, _ = read_dataset(data_path)
    prop = loaded.property
    if prop not in data.system_props:
        raise DeepatomsError(
            f"the model predicts {prop!r}, which {data_path} does not contain; "
            f"its properties are {sorted(data.system_props)}"
        )
    idx = _split_indices(split, model_path, data, data_path)
    flabel = force_label(loaded, data, forces)
    sub = data.subset(idx)
    with ProgressBar("checking structures", quiet=not progress) as bar:
        problems = packed_problems(sub, [prop] + ([flabel] if flabel else []), progress=bar)
    raise_problems({int(idx[k]): why for k, why in problems.items()}, data_path,
                   hint="; remove them from the dataset")  # fmt: skip
    info = committee_info(loaded)
    members = f_members = None
    with ProgressBar("evaluating", quiet=not progress) as bar:
        if flabel:
            pot = predict_potential(loaded.model, loaded.graph, data, idx, batch_size, False, bar)
            pred = pot["energy"]
            if info is not None:
                members, f_members = pot["members"]["energy"], pot["members"]["forces"]
        elif info is not None:
            members = predict_members(loaded.graph, loaded.model, data, idx, batch_size, bar)
            pred = members.mean(0)
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
                                               f_err["force_mae"], f_err["force_rmse"], None,
                                               counted="force components"))  # fmt: skip
    if members is not None:
        result["uncertainty"] = _uncertainty(members, pred - ref, info, loaded.unit, plot,
                                             f_members, data.subset(idx), flabel)  # fmt: skip
    return result


def _uncertainty(members: np.ndarray, errors: np.ndarray, info: dict, unit: str, plot: Path,
                 f_members: np.ndarray | None, sub: PackedSystems,
                 flabel: str | None) -> dict[str, Any]:  # fmt: skip
    """A committee's uncertainty on the evaluated systems: mean σ, calibration of σ against the
    errors (:func:`deepatoms.analysis.calibration.calibration_report`) with its plot and, for
    potentials, the per-atom force deviation against the per-atom force error."""
    from deepatoms.analysis.calibration import calibration_report, plot_calibration

    std = member_std(members, info["variance_scale"])
    out: dict[str, Any] = {**info, "unit": unit, "std": std,
                           **calibration_report(errors, std)}  # fmt: skip
    out["plot"] = plot_calibration(errors, std, plot.with_name(plot.stem + "_calibration.png"),
                                   unit)  # fmt: skip
    if f_members is not None and flabel:
        dev = force_deviation(f_members)
        f_err = np.linalg.norm(f_members.mean(0) - sub.atom_props[flabel].astype(np.float64),
                               axis=1)  # fmt: skip
        from scipy.stats import spearmanr

        out["forces"] = {
            "unit": "eV/Å",
            "mean_force_deviation": float(dev.mean()),
            "max_force_deviation": float(dev.max()) if len(dev) else None,
            "spearman_force_error_deviation": float(spearmanr(f_err, dev).statistic)
            if len(dev) > 1 and np.ptp(dev) > 0 else None,
        }  # fmt: skip
    return out


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
            check_atoms(p, f"structure {n_given} of the given Atoms")
            atoms_list.append(p)
            labels.append(("<atoms>", n_given))
            n_given += 1
            continue
        p = check_input_file(p, "input file")
        try:
            frames = ase.io.read(p, index=":")
        except Exception as exc:
            raise DeepatomsError(
                f"cannot read structures from {p}: {type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(frames, list):
            frames = [frames]
        for k, a in enumerate(frames):
            check_atoms(a, f"{p}, frame {k}")
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
    overwrite: bool = False,
    device: str = "cpu",
    workers: int = 1,
    scheduler: str | None = None,
    chunk: int = 10_000,
) -> Prediction:
    """The model's property (a run folder, model file or loaded model) for every structure of
    ``inputs``: ASE-readable files (every frame) and/or ``ase.Atoms``.

    Keys: ``predicted`` (one per structure, in the model's unit), ``rows`` (file, frame,
    formula, n_atoms, value), ``property``, ``unit``; for potentials (energy models in eV
    trained on forces) also ``forces`` (one [n_atoms, 3] array per structure, eV/Å) and, when
    every structure is
    3-D periodic, ``stress`` ([n, 6] Voigt, eV/Å³). ``out``: a CSV of the rows (potentials:
    forces in ``<out stem>_forces.csv``, one row per atom) or an extxyz/xyz file of the
    structures with the predictions attached. An existing output is replaced only with
    ``overwrite``, and never one of the inputs. ``device``: torch device (cpu, cuda). A
    committee model adds ``std`` (per structure, the model's unit) and, for potentials,
    ``max_force_deviation`` (per structure, eV/Å); the CSV gets the same columns.

    The structures are predicted in chunks of at most ``chunk``, on ``workers`` local Dask
    processes or the cluster at ``scheduler`` when given; with ``out`` (and a model file),
    finished chunks wait in ``OUT.parts`` and the same call after a kill continues from them."""
    if isinstance(inputs, ase.Atoms):
        inputs = [inputs]
    if batch_size < 1:
        raise DeepatomsError(f"--batch-size must be at least 1, got {batch_size}")
    kind = _output_kind(out, inputs, overwrite) if out is not None else None
    dev = resolve_device(device)
    loaded = (
        model if isinstance(model, LoadedModel) else load_model(model, expect=PROPERTY_FAMILIES)
    )
    loaded.model.to(dev)
    atoms_list, labels = read_inputs(list(inputs))
    data = PackedSystems.from_atoms(atoms_list)
    warnings = []
    unseen = unseen_elements(loaded, data.numbers)
    if unseen:
        warnings.append(
            f"elements with atomic numbers {unseen} never occurred in the training data; "
            "predictions for structures containing them are unreliable"
        )
    potential = is_potential(loaded)
    periodic = bool(len(data) and data.pbc.all())
    forces: list[np.ndarray] | None = None
    stress = None
    store = _prediction_store(model, loaded, inputs, out, len(data), overwrite)
    with (
        on_cluster(workers, scheduler, progress) as cluster,
        ProgressBar("predicting", quiet=not progress) as bar,
    ):
        size = chunk_size(chunk, len(data), cluster)
        run_chunks(_predict_systems, range(len(data)), chunk_ranges(store.missing(), size), store,
                   cluster, args=(loaded, data, batch_size, potential, periodic), progress=bar,
                   name="predict")  # fmt: skip
    parts = [r for _, _, r in store.results()]
    values = np.concatenate([r["values"] for r in parts])
    std = np.concatenate([r["std"] for r in parts]) if "std" in parts[0] else None
    deviation = None
    if "force_deviation" in parts[0]:
        per_atom = np.split(np.concatenate([r["force_deviation"] for r in parts]),
                            data.offsets[1:-1])  # fmt: skip
        deviation = np.array([d.max() if len(d) else 0.0 for d in per_atom])
    if potential:
        forces = np.split(np.concatenate([r["forces"] for r in parts]), data.offsets[1:-1])
        if periodic:
            stress = np.concatenate([r["stress"] for r in parts])
    col = f"{loaded.property} [{loaded.unit}]" if loaded.unit else loaded.property
    rows: list[dict[str, Any]] = [
        {"file": f, "frame": k, "formula": a.get_chemical_formula(), "n_atoms": len(a),
         col: float(v)}
        for (f, k), a, v in zip(labels, atoms_list, values, strict=True)
    ]  # fmt: skip
    std_col = f"{loaded.property} std [{loaded.unit}]" if loaded.unit else f"{loaded.property} std"
    for n, row in enumerate(rows):
        if std is not None:
            row[std_col] = float(std[n])
        if deviation is not None:
            row["max force deviation [eV/Å]"] = float(deviation[n])
    written = []
    if kind == "csv":
        written = _write_prediction_csv(Path(out), rows, labels, atoms_list, forces, overwrite)
    elif kind == "structures":
        written = [_write_prediction_structures(Path(out), loaded.property, atoms_list, values,
                                                forces, stress)]  # fmt: skip
    store.remove()
    result = Prediction(model=loaded.meta.get("model_file"), property=loaded.property,
                        unit=loaded.unit, column=col, n=len(rows), predicted=np.asarray(values),
                        out=str(out) if out is not None else None, written=written, rows=rows,
                        warnings=warnings, notes=[])  # fmt: skip
    if forces is not None:
        result.update(forces=forces, force_unit="eV/Å")
    if stress is not None:
        result.update(stress=stress, stress_unit="eV/Å^3")
    if std is not None:
        result.update(std=std, committee=committee_info(loaded))
    if deviation is not None:
        result.update(max_force_deviation=deviation)
    return result


def _predict_systems(
    indices: range, loaded: LoadedModel, data: PackedSystems, batch_size: int, potential: bool,
    periodic: bool, on_item: Any = None,
) -> dict[str, np.ndarray]:  # fmt: skip
    """A chunk task: ``values`` (model unit) of systems ``indices`` of ``data`` and, for
    potentials, ``forces`` (eV/Å, per atom) and ``stress`` (eV/Å³, periodic cells); for a
    committee also ``std`` (model unit) and, for potentials, the per-atom ``force_deviation``
    (eV/Å, :func:`deepatoms.models.committee.force_deviation`)."""
    sub = data.subset(np.arange(indices.start, indices.stop))

    def bar(done: int, _total: int) -> None:
        if on_item is not None:
            on_item(done)

    info = committee_info(loaded)
    if not potential:
        values, std = predict_with_std(loaded, sub, None, batch_size, bar)
        return {"values": values} if std is None else {"values": values, "std": std}
    pot = predict_potential(loaded.model, loaded.graph, sub, None, batch_size, periodic, bar)
    out = {"values": np.asarray(pot["energy"]), "forces": np.asarray(pot["forces"])}
    if periodic:
        out["stress"] = np.asarray(pot["stress"])
    if info is not None:
        m = pot["members"]
        out["std"] = member_std(m["energy"], info["variance_scale"])
        out["force_deviation"] = force_deviation(m["forces"])  # per atom, eV/Å
    return out


def _prediction_store(model: Any, loaded: LoadedModel, inputs: Sequence[Any],
                      out: str | os.PathLike | None, n: int, overwrite: bool) -> ChunkStore:  # fmt: skip
    """Where finished chunks wait: ``OUT.parts`` for a model file and input files with an
    output, else memory (nothing to continue from)."""
    if (
        out is None
        or isinstance(model, LoadedModel)
        or any(isinstance(p, ase.Atoms) for p in inputs)
    ):
        return MemoryStore(n)
    path = resolve_model_path(model)
    files = [Path(p).resolve() for p in inputs]
    settings = {
        "model": str(path.resolve()), "model_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "inputs": [[str(f), f.stat().st_size, f.stat().st_mtime_ns] for f in files],
    }  # fmt: skip
    return ChunkStore(parts_folder(out), job="deepatoms predict", n_items=n, settings=settings,
                      save=save_arrays, load=load_arrays, overwrite=overwrite)  # fmt: skip


def _output_kind(out: str | os.PathLike, inputs: Sequence[Any], overwrite: bool) -> str:
    """``csv`` or ``structures`` for the output name; refuses inputs, folders and, without
    ``overwrite``, existing files (the forces CSV of a potential is checked when written)."""
    out = Path(out)
    _check_csv_output(out, inputs)
    check_new_file(out, overwrite)
    suffix = out.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".extxyz", ".xyz"):
        return "structures"
    raise DeepatomsError(
        f"--out {out}: give a .csv (a table of predictions) or an .extxyz file (the structures "
        "with their predicted energy, forces and stress)"
    )


def _write_prediction_csv(out: Path, rows: list[dict], labels: list, atoms_list: list,
                          forces: list[np.ndarray] | None, overwrite: bool) -> list[str]:  # fmt: skip
    """The table of predictions, and for potentials the forces, one row per atom."""
    written = []
    if forces is not None:
        fpath = out.with_name(out.stem + "_forces.csv")
        check_new_file(fpath, overwrite)
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["file", "frame", "atom", "symbol", "fx [eV/Å]", "fy [eV/Å]",
                         "fz [eV/Å]"])  # fmt: skip
        for (f, k), a, frc in zip(labels, atoms_list, forces, strict=True):
            for i, (sym, v) in enumerate(zip(a.get_chemical_symbols(), frc, strict=True)):
                writer.writerow([f, k, i, sym, *(f"{x:.8g}" for x in v)])
        atomic_write_text(fpath, buf.getvalue())
        written.append(str(fpath))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out, buf.getvalue())
    return [str(out), *written]


def _write_prediction_structures(out: Path, prop: str, atoms_list: list, values: np.ndarray,
                                 forces: list[np.ndarray] | None, stress: Any) -> str:  # fmt: skip
    """The structures with their predictions (a single-point calculator for potentials)."""
    from ase.calculators.singlepoint import SinglePointCalculator

    from deepatoms.data.structure_files import write_structures

    images = []
    for k, (a, v) in enumerate(zip(atoms_list, values, strict=True)):
        b = a.copy()
        b.calc = None
        if forces is not None:
            extra = {"stress": stress[k]} if stress is not None else {}
            b.calc = SinglePointCalculator(b, energy=float(v), forces=forces[k], **extra)
        else:
            b.info[f"predicted_{prop}"] = float(v)
        images.append(b)
    write_structures(out, images)
    return str(out)


def _check_csv_output(out: Path, inputs: Sequence[str | os.PathLike]) -> None:
    """Never write over an input; the output must be a CSV file name."""
    if any(not isinstance(p, ase.Atoms) and Path(p).resolve() == out.resolve() for p in inputs):
        raise DeepatomsError(f"--out {out} is one of the input files; choose another output name")
    if out.is_dir():
        raise DeepatomsError(f"--out {out} is a folder; give a CSV file name")
