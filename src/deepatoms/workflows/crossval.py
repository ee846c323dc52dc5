"""k-fold cross-validation of a training config (docs/position_free_crystals.md §4, §8).

Each fold i is the test set of one training run; of the remaining systems a seeded subset of
``n_val`` is held out for early stopping and the rest is trained on. The runs are ordinary run
folders ``OUT/fold{i}`` made by :func:`deepatoms.train.fit` with an explicit split, so the
config's ``data.n_train`` / ``data.n_val`` / ``data.n_test`` are **ignored** (the split comes
from the folds). A fold whose run already holds a finished ``model.pt`` is not retrained; an
interrupted run is resumed. Layout of ``OUT``::

    cv_folds.json       the k test folds (deepatoms split format, keys fold0 … fold{k-1})
    fold{i}/            run folder of fold i (config, split.json, checkpoints, model.pt, …)
    predictions.csv     one row per system: index, fold, identifier columns, y_true, y_pred,
                        n_elements (+ the stratify column), values in the target's unit
    cv_summary.json     per-fold and pooled MAE/RMSE, per-subset errors and the bootstrap
                        95th percentile of the pooled MAE, in meV/atom for eV/atom targets
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from deepatoms.analysis.crystal_metrics import (
    arity_labels,
    bootstrap_mae_percentile,
    error_stats,
    n_elements_per_system,
    subset_errors,
)
from deepatoms.config.schema import config_diff
from deepatoms.core.errors import ConfigError
from deepatoms.core.files import atomic_write_text, read_json, write_json
from deepatoms.data.dataset import read_dataset
from deepatoms.data.packed import PackedSystems
from deepatoms.data.splits import load_split, resolve_size, save_split
from deepatoms.models.inference import predict_packed
from deepatoms.models.loading import PROPERTY_FAMILIES, load_model
from deepatoms.models.registry import load_run_config as load_config
from deepatoms.models.registry import resolve_config, schema_of
from deepatoms.train import fit
from deepatoms.train.run_folder import RunFolder

__all__ = ["cross_validate", "fold_split", "kfold_indices", "report_unit"]

log = logging.getLogger(__name__)

# Target units reported ×1000 in the summary (eV → meV).
_MILLI_UNITS = {"eV/atom": "meV/atom", "eV": "meV"}
# String columns copied into predictions.csv must look like identifiers (one short line).
_MAX_ID_CHARS = 100


def kfold_indices(
    n: int, k: int = 5, seed: int = 0, stratify: Sequence | np.ndarray | None = None
) -> list[np.ndarray]:
    """``k`` disjoint folds (sorted int64 index arrays) covering ``range(n)``, seeded.

    Fold sizes differ by at most 1. With ``stratify`` (one class label per system, e.g. an ICSD
    flag), the systems of every class are spread over the folds as evenly as possible: per class,
    the counts in any two folds differ by at most 1 (and fold sizes still differ by at most 1).
    """
    if isinstance(n, bool) or int(n) != n or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    if isinstance(k, bool) or int(k) != k or k < 2:
        raise ValueError(f"k must be an integer >= 2, got {k!r}")
    n, k = int(n), int(k)
    if n < k:
        raise ValueError(f"cannot make {k} folds from {n} systems; use at most {n} folds")
    perm = np.random.default_rng(seed).permutation(n)
    if stratify is not None:
        labels = np.asarray(stratify)
        if labels.shape != (n,):
            raise ValueError(f"stratify has shape {labels.shape}; need one label per system ({n})")
        _, code = np.unique(labels, return_inverse=True)
        # Classes one after the other, each in random order; dealing them round-robin gives every
        # class (a contiguous run) and every fold a balanced share.
        perm = perm[np.argsort(code.reshape(-1)[perm], kind="stable")]
    fold_of = np.empty(n, dtype=np.int64)
    fold_of[perm] = np.arange(n) % k
    order = np.argsort(fold_of, kind="stable")
    bounds = np.cumsum(np.bincount(fold_of, minlength=k))[:-1]
    return [f.astype(np.int64) for f in np.split(order, bounds)]


def fold_split(
    folds: Sequence[np.ndarray], i: int, n_val: int | float = 0.1, seed: int = 0
) -> dict[str, np.ndarray]:
    """Train/val/test indices of fold ``i``: test = ``folds[i]``; val = a seeded random subset of
    the other folds (``n_val`` systems, or that fraction of them); train = the rest (sorted)."""
    if not 0 <= i < len(folds):
        raise ValueError(f"fold {i} does not exist; there are {len(folds)} folds")
    test = np.sort(np.asarray(folds[i], dtype=np.int64))
    rest = np.sort(
        np.concatenate([np.asarray(f, dtype=np.int64) for j, f in enumerate(folds) if j != i])
    )
    nv = resolve_size(n_val, len(rest), "n_val")
    if nv is None or nv < 1 or nv >= len(rest):
        raise ValueError(
            f"n_val={n_val} gives {nv} validation systems out of the {len(rest)} training-part "
            "systems of a fold; need at least 1 and fewer than all of them"
        )
    rng = np.random.default_rng([seed, i])
    val = np.sort(rng.choice(rest, size=nv, replace=False))
    return {"train": np.setdiff1d(rest, val), "val": val, "test": test}


def report_unit(unit: str) -> tuple[str, float]:
    """The unit errors are reported in and the factor from the target unit: eV/atom → meV/atom
    (×1000), eV → meV (×1000), anything else unchanged (×1)."""
    if unit in _MILLI_UNITS:
        return _MILLI_UNITS[unit], 1000.0
    return unit, 1.0


def _check_target(data: PackedSystems, meta: dict, config: dict, path: Path) -> tuple[str, str]:
    from deepatoms.train.tasks.property_setup import check_target

    target = config["data"]["target"]
    unit = check_target(data, meta, target, path, config["data"].get("target_unit"))
    return target, unit


def _column(data: PackedSystems, name: str, path: Path, what: str) -> np.ndarray:
    col = data.system_props.get(name)
    if col is None or col.ndim != 1:
        have = sorted(k for k, v in data.system_props.items() if v.ndim == 1)
        raise ValueError(
            f"{what} column {name!r} is not a per-system property of {path}; "
            f"1-D per-system properties: {', '.join(have) or 'none'}"
        )
    return col


def _id_columns(data: PackedSystems) -> dict[str, np.ndarray]:
    """1-D string columns that look like identifiers (single line, at most 100 characters)."""
    out = {}
    for name, col in data.system_props.items():
        if col.ndim != 1 or col.dtype.kind not in "US" or not len(col):
            continue
        s = col.astype(str)
        if np.char.str_len(s).max() <= _MAX_ID_CHARS and not np.any(np.char.find(s, "\n") >= 0):
            out[name] = s
    return out


def _same_split(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return all(np.array_equal(np.sort(a.get(key, [])), np.sort(b.get(key, []))) for key in b)


def _check_folds(path: Path, folds: list[np.ndarray], meta: dict) -> None:
    """Save the folds, or check that a resumed CV folder was made with the same folds."""
    named = {f"fold{i}": f for i, f in enumerate(folds)}
    if path.is_file():
        saved = load_split(path)
        if len(saved) != len(named) or not _same_split(saved, named):
            raise ValueError(
                f"{path.parent} holds a cross-validation with different folds (other k, seed, "
                "stratify column or dataset); use a new --out folder"
            )
        return
    save_split(path, named, meta)


def _write_predictions(path: Path, columns: dict[str, np.ndarray]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(list(columns))
    cells = [
        [repr(float(x)) for x in col] if col.dtype.kind == "f" else [str(x) for x in col]
        for col in columns.values()
    ]
    w.writerows(zip(*cells, strict=True))
    atomic_write_text(path, buf.getvalue())


def cross_validate(
    config: dict, data_path: str | Path, out_dir: str | Path, k: int = 5, seed: int = 0,
    stratify_column: str | None = None, n_val: int | float = 0.1, progress: bool = True,
    n_bootstrap: int = 10_000, init: str | Path | None = None,
    on_fold: Callable[[dict], None] | None = None,
) -> dict:  # fmt: skip
    """k-fold cross-validation of ``config`` on the dataset ``data_path``; results in ``out_dir``.

    ``seed`` draws the folds and each fold's validation subset (the config's ``train.seed``
    still sets initialisation and shuffling); ``stratify_column`` spreads each of its classes
    evenly over the folds (e.g. the ICSD flag, docs/position_free_crystals.md §4); ``n_val`` systems (count, or fraction
    of the training part: docs/position_free_crystals.md §4 uses 5,000 for OQMD and 10 % for small families) are held out
    of each fold's training part for early stopping. ``data.n_train``/``n_val``/``n_test`` of
    the config are ignored. ``init``: start every fold from this model file (transfer learning).
    ``on_fold(fold_record)`` is called after each fold. Errors are reported in meV/atom for
    eV/atom targets (``unit`` in the result says which). Writes ``predictions.csv`` and
    ``cv_summary.json`` (module docstring) and returns the summary.
    """
    config = resolve_config(config)
    data_path, out = Path(data_path), Path(out_dir)
    data, meta = read_dataset(data_path)
    target, target_unit = _check_target(data, meta, config, data_path)
    unit, scale = report_unit(target_unit)
    strat = _column(data, stratify_column, data_path, "stratify") if stratify_column else None
    n = len(data)
    folds = kfold_indices(n, k, seed, strat)
    splits = [fold_split(folds, i, n_val, seed) for i in range(k)]  # validates n_val up front
    out.mkdir(parents=True, exist_ok=True)
    _check_folds(
        out / "cv_folds.json",
        folds,
        {
            "dataset": str(data_path.resolve()),
            "n_systems": n,
            "k": k,
            "seed": seed,
            "stratify_column": stratify_column,
        },
    )

    y_true = np.asarray(data.system_props[target], dtype=np.float64)
    y_pred = np.full(n, np.nan)
    fold_of = np.full(n, -1, dtype=np.int64)
    records = []
    for i, split in enumerate(splits):
        run, run_summary, trained = _fold_run(out / f"fold{i}", i, split, config, data_path,
                                              progress, init)  # fmt: skip
        loaded = load_model(run.model, expect=PROPERTY_FAMILIES)
        if loaded.property != target:
            raise ValueError(
                f"{run.model} predicts {loaded.property!r}, not the target {target!r}; "
                "use a new --out folder"
            )
        test = split["test"]
        batch = config["train"]["eval_batch_size"]
        y_pred[test] = predict_packed(loaded, data, test, batch_size=batch)
        fold_of[test] = i
        errors = error_stats(y_true[test], y_pred[test], scale)
        record = {
            "fold": i, "n_train": len(split["train"]), "n_val": len(split["val"]),
            "n_test": len(test), **{key: v for key, v in errors.items() if key != "n"},
            "unit": unit, "best_val_mae": run_summary.get("best_val_mae"),
            "epochs": run_summary.get("epochs"), "trained_now": trained, "run": str(run.root),
        }  # fmt: skip
        records.append(record)
        if on_fold is not None:
            on_fold(record)
    n_elements = _n_elements(data)
    columns: dict[str, np.ndarray] = {"index": np.arange(n), "fold": fold_of}
    columns.update(
        {name: col for name, col in _id_columns(data).items() if name != stratify_column}
    )
    columns.update({"y_true": y_true, "y_pred": y_pred, "n_elements": n_elements})
    if strat is not None:
        columns[stratify_column] = strat
    _write_predictions(out / "predictions.csv", columns)
    subsets = {
        "n_elements": subset_errors(y_true, y_pred, arity_labels(n_elements), scale)["subsets"]
    }
    if strat is not None:
        subsets[stratify_column] = subset_errors(y_true, y_pred, strat, scale)["subsets"]
    maes = np.array([r["mae"] for r in records])
    summary = {
        "format": "deepatoms-cv", "dataset": str(data_path.resolve()),
        "preset": config.get("name"), "model": config["model"].get("name"), "target": target,
        "target_unit": target_unit, "unit": unit, "unit_scale": scale, "n_systems": n, "k": k,
        "seed": seed, "n_val": n_val, "stratify_column": stratify_column,
        "init": str(init) if init is not None else None,
        "note": "config data.n_train/n_val/n_test are ignored: the folds set the split",
        "folds": records, "fold_mae_mean": float(maes.mean()),
        "fold_mae_std": float(maes.std(ddof=1)) if k > 1 else 0.0,
        "pooled": _pooled(y_true, y_pred, scale, n_bootstrap, seed), "subsets": subsets,
        "predictions": str(out / "predictions.csv"),
    }  # fmt: skip
    write_json(out / "cv_summary.json", summary)
    return summary


def _fold_run(folder: Path, i: int, split: dict, config: dict, data_path: Path, progress: bool,
              init: str | Path | None) -> tuple[RunFolder, dict, bool]:  # fmt: skip
    """The run of fold ``i``: reused when it finished with the same config and split, else
    trained (or resumed) through the training protocol. (run, its summary, trained now)."""
    run = RunFolder(folder)
    if run.split.is_file() and not _same_split(load_split(run.split), split):
        raise ValueError(
            f"{run.root} was trained on a different split than fold {i} of this "
            "cross-validation; use a new --out folder"
        )
    previous = read_json(run.summary) if run.summary.is_file() else {}
    if run.model.is_file() and not previous.get("interrupted", False):
        resumable = schema_of(config).resumable_keys()
        diff = (
            config_diff(load_config(run.config), config, resumable) if run.config.is_file() else []
        )
        if diff:
            raise ConfigError(
                f"{run.root} was trained with a different config, so it cannot be reused:\n  "
                + "\n  ".join(diff)
                + "\nUse a new --out folder for a different cross-validation."
            )
        log.info("fold %d: reusing the finished run %s", i, run.root)
        return run, previous, False
    log.info("fold %d: training in %s", i, run.root)
    return run, fit(config, data_path, run.root, progress=progress, split=split, init=init), True


def _n_elements(data: PackedSystems) -> np.ndarray:
    """Distinct elements per system (the stored column when there is one)."""
    if "n_elements" in data.system_props and data.system_props["n_elements"].ndim == 1:
        return np.asarray(data.system_props["n_elements"]).astype(np.int64)
    return n_elements_per_system(data.numbers, data.offsets)


def _pooled(y_true: np.ndarray, y_pred: np.ndarray, scale: float, n_bootstrap: int,
            seed: int) -> dict:  # fmt: skip
    """Errors over all folds' predictions with a bootstrap 95th percentile of the MAE."""
    errors = (y_pred - y_true) * scale
    return {
        **error_stats(y_true, y_pred, scale),
        "mae_bootstrap_p95": bootstrap_mae_percentile(errors, n_bootstrap, 95.0, seed),
        "bootstrap": {"n_resamples": int(n_bootstrap), "q": 95.0, "seed": seed},
    }
