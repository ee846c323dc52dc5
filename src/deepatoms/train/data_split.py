"""Which systems a run trains, validates and tests on, saved in ``split.json`` once.

A split comes from (first match): the run's saved ``split.json`` when it is resumed; indices the
caller gives (cross-validation folds); or the config: a per-system label column
(``data.split_column``), a random split that keeps groups whole (``data.group_by``), or a
seeded random split of ``data.n_train``/``n_val``/``n_test`` systems (counts or fractions).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from deepatoms.core.errors import ConfigError
from deepatoms.data.packed import PackedSystems
from deepatoms.data.splits import column_split, group_split, load_split, random_split, save_split
from deepatoms.train.run_folder import RunFolder, process_rank

if TYPE_CHECKING:  # pragma: no cover
    from deepatoms.train.tasks.base import RunContext

__all__ = ["config_split", "dataset_split", "explicit_split", "run_split"]

Split = dict[str, np.ndarray]


def explicit_split(split: Mapping, n: int) -> Split:
    """User-given split indices, checked: keys train/val(/test), in range, disjoint. With
    ``split["bootstrap"]`` true the training indices may repeat (a bootstrap resample; a
    committee member's training set)."""
    missing = {"train", "val"} - set(split)
    if missing:
        raise ConfigError(f"an explicit split needs 'train' and 'val' indices; missing {missing}")
    out = {
        k: np.asarray(split.get(k, []), dtype=np.int64).reshape(-1)
        for k in ("train", "val", "test")
    }
    train = np.unique(out["train"]) if split.get("bootstrap") else out["train"]
    seen = np.concatenate([train, out["val"], out["test"]])
    if len(seen) and (seen.min() < 0 or seen.max() >= n):
        raise ConfigError(f"split indices must lie in 0 … {n - 1} for this dataset of {n} systems")
    if len(np.unique(seen)) != len(seen):
        raise ConfigError("split indices overlap: train, val and test must be disjoint")
    return out


def _column(data: PackedSystems, name: str, key: str, path: Path) -> np.ndarray:
    col = data.system_props.get(name)
    if col is None:
        raise ConfigError(
            f"{key}={name!r}, but {path} has no per-system column of that name; "
            f"columns: {', '.join(sorted(data.system_props))}"
        )
    return col


def config_split(data: PackedSystems, d: Mapping[str, Any], seed: int, path: Path) -> Split:
    """The split the ``data`` section asks for: a label column, whole groups drawn at random,
    or random."""
    if d["split_column"] and d["group_by"]:
        raise ConfigError("set data.split_column or data.group_by, not both")
    if d["split_column"]:
        col = _column(data, d["split_column"], "data.split_column", path)
        try:
            return column_split(col, f"column {d['split_column']!r} of {path}")
        except ValueError as err:
            raise ConfigError(str(err)) from err
    if d["group_by"]:
        col = _column(data, d["group_by"], "data.group_by", path)
        return group_split(col, d["n_train"], d["n_val"], d["n_test"], seed=seed)
    return random_split(len(data), d["n_train"], d["n_val"], d["n_test"], seed=seed)


def run_split(
    run: RunFolder, resume: bool, n: int, make: Callable[[], Split], meta: Mapping[str, Any]
) -> Split:
    """The saved split of a resumed run, else ``make()`` saved to ``split.json`` with ``meta``.

    ``n``: the number of items the indices refer to; a saved split that does not fit raises
    ConfigError (the data changed since the run started).
    """
    if resume and run.split.is_file():
        split = load_split(run.split)
        top = max((int(v.max()) for v in split.values() if len(v)), default=-1)
        if top >= n:
            raise ConfigError(
                f"{run.split} indexes item {top}, but the data has only {n}; resume with the "
                "data the run was started with"
            )
        return split
    split = make()
    if process_rank() == 0:  # the other processes of a DDP run compute the same split
        save_split(run.split, split, meta)
    return split


def dataset_split(ctx: RunContext, data: PackedSystems, path: Path, fingerprint: str) -> Split:
    """The split of a run on a dataset file: saved (resume), explicit (``ctx.split``) or from
    the config; saved with the dataset's path, size and fingerprint. Training and validation
    parts must not be empty."""
    d = ctx.config["data"]
    seed = ctx.seed if d["split_seed"] is None else d["split_seed"]
    meta: dict[str, Any] = {"dataset": str(path.resolve()), "n_systems": len(data),
                            "dataset_fingerprint": fingerprint}  # fmt: skip
    if ctx.split is not None:
        explicit = ctx.split
        split = run_split(ctx.run, ctx.resume, len(data),
                          lambda: explicit_split(explicit, len(data)), {**meta, "seed": None})  # fmt: skip
    else:
        split = run_split(ctx.run, ctx.resume, len(data),
                          lambda: config_split(data, d, seed, path), {**meta, "seed": seed})  # fmt: skip
    if len(split["val"]) == 0:
        raise ConfigError("the validation split is empty; set --n-val to at least 1")
    if len(split["train"]) == 0:
        raise ConfigError("the training split is empty; set --n-train to at least 1")
    return split
