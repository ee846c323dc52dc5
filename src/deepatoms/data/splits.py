"""Seeded train/validation/test splits, saved as JSON with the run (docs/architecture.md).

A split is a dict ``{"train", "val", "test"}`` of sorted int64 system indices. It is drawn from one
seeded permutation (``numpy.random.default_rng(seed).permutation(n_total)``): the first ``n_train``
entries are the training set, the next ``n_val`` the validation set and the next ``n_test`` (default:
all the rest) the test set. The three sets are disjoint.

File format (``split.json``)::

    {"format": "deepatoms-split", "version": 1, "meta": {...},
     "sizes": {"train": 110000, ...}, "indices": {"train": [...], "val": [...], "test": [...]}}
"""

from __future__ import annotations

import json
import numbers
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np

from deepatoms.core.files import atomic_write_text

__all__ = [
    "SPLIT_FORMAT",
    "column_split",
    "group_split",
    "load_split",
    "random_split",
    "resolve_size",
    "save_split",
    "saved_split",
]

SPLIT_FORMAT = "deepatoms-split"
_VERSION = 1


def resolve_size(size: int | float | None, n_total: int, name: str) -> int | None:
    """A split size as a count: ints are counts, floats in [0, 1) are fractions of ``n_total``.

    Fractions are rounded to the nearest integer. ``None`` stays ``None`` ("the rest").
    """
    if size is None:
        return None
    if isinstance(size, bool) or not isinstance(size, numbers.Real):
        raise TypeError(f"{name} must be an int count or a float fraction, got {size!r}")
    if size < 0:
        raise ValueError(f"{name} must not be negative, got {size}")
    if isinstance(size, numbers.Integral):
        return int(size)
    if size < 1:
        return round(float(size) * n_total)
    if float(size).is_integer():
        return int(size)
    raise ValueError(
        f"{name}={size}: a float must be a fraction below 1 (e.g. 0.8) or a whole count (e.g. 100)"
    )


def random_split(
    n_total: int,
    n_train: int | float,
    n_val: int | float,
    n_test: int | float | None = None,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Seeded random split of ``range(n_total)`` into disjoint ``train``/``val``/``test`` indices.

    Sizes are counts, or fractions of ``n_total`` when given as floats below 1. ``n_test=None``
    makes the test set the remainder. Raises ``ValueError`` saying the sizes when they exceed
    ``n_total``. Each index array is sorted (int64).
    """
    if isinstance(n_total, bool) or not isinstance(n_total, numbers.Integral) or n_total < 0:
        raise ValueError(f"n_total must be a non-negative int, got {n_total!r}")
    n_total = int(n_total)
    tr = resolve_size(n_train, n_total, "n_train")
    va = resolve_size(n_val, n_total, "n_val")
    te = resolve_size(n_test, n_total, "n_test")
    assert tr is not None and va is not None
    used = tr + va + (te or 0)
    if used > n_total:
        raise ValueError(
            f"split sizes train={tr} + val={va}"
            + (f" + test={te}" if te is not None else "")
            + f" = {used} exceed the {n_total} systems available; reduce them"
        )
    if te is None:
        te = n_total - tr - va
    perm = np.random.default_rng(seed).permutation(n_total)
    cuts = np.cumsum([tr, va, te])
    return {
        "train": np.sort(perm[: cuts[0]]).astype(np.int64),
        "val": np.sort(perm[cuts[0] : cuts[1]]).astype(np.int64),
        "test": np.sort(perm[cuts[1] : cuts[2]]).astype(np.int64),
    }


def group_split(
    groups: np.ndarray,
    n_train: int | float,
    n_val: int | float,
    n_test: int | float | None = None,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Seeded split that keeps every group whole (e.g. all scalings of one molecule).

    ``groups`` [n_systems] labels each system; the sizes count (or are fractions of) *groups*,
    drawn as in :func:`random_split` over the sorted unique labels. Returns system indices.
    """
    groups = np.asarray(groups)
    labels, inverse = np.unique(groups, return_inverse=True)
    by_group = random_split(len(labels), n_train, n_val, n_test, seed=seed)
    return {k: np.flatnonzero(np.isin(inverse, v)).astype(np.int64) for k, v in by_group.items()}


def column_split(values: np.ndarray, where: str = "the split column") -> dict[str, np.ndarray]:
    """Split given by a per-system column of "train" / "val" / "test" labels (e.g. a generator's
    recommended split); any other label is an error naming it."""
    values = np.asarray(values).astype(str)
    bad = sorted(set(np.unique(values)) - {"train", "val", "test"})
    if bad:
        raise ValueError(f"{where} holds labels {bad}; only 'train', 'val' and 'test' are allowed")
    return {k: np.flatnonzero(values == k).astype(np.int64) for k in ("train", "val", "test")}


def save_split(
    path: str | os.PathLike,
    split: Mapping[str, Any],
    meta: Mapping[str, Any] | None = None,
) -> None:
    """Write ``split`` ({name: indices}) and ``meta`` (e.g. dataset, n_systems, seed) as JSON.

    The write is atomic (temporary file in the same folder, then ``os.replace``).
    """
    path = Path(path)
    indices: dict[str, list[int]] = {}
    for name, idx in split.items():
        arr = np.asarray(idx)
        if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
            raise ValueError(f"split {name!r} must be a 1-D array of integer indices, got {arr!r}")
        if arr.size and arr.min() < 0:
            raise ValueError(f"split {name!r} holds negative indices")
        indices[str(name)] = arr.astype(np.int64).tolist()
    doc = {
        "format": SPLIT_FORMAT,
        "version": _VERSION,
        "meta": dict(meta or {}),
        "sizes": {k: len(v) for k, v in indices.items()},
        "indices": indices,
    }
    try:
        text = json.dumps(doc, default=lambda o: o.item() if isinstance(o, np.generic) else str(o))
    except (TypeError, ValueError) as err:
        raise ValueError(f"split metadata for '{path}' is not JSON serialisable: {err}") from err
    atomic_write_text(path, text)


@overload
def load_split(
    path: str | os.PathLike, with_meta: Literal[False] = ...
) -> dict[str, np.ndarray]: ...
@overload
def load_split(
    path: str | os.PathLike, with_meta: Literal[True]
) -> tuple[dict[str, np.ndarray], dict[str, Any]]: ...
def load_split(
    path: str | os.PathLike, with_meta: bool = False
) -> dict[str, np.ndarray] | tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a split written by :func:`save_split`: ``{name: int64 indices}`` (and its meta)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"split file '{path}' does not exist")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"split file '{path}' is not valid JSON: {err}") from err
    if not isinstance(doc, dict) or doc.get("format") != SPLIT_FORMAT or "indices" not in doc:
        raise ValueError(
            f"'{path}' is not a deepatoms split file (expected 'format': {SPLIT_FORMAT!r} and "
            "'indices'); write it with deepatoms.data.splits.save_split"
        )
    split = {k: np.asarray(v, dtype=np.int64).reshape(-1) for k, v in doc["indices"].items()}
    return (split, dict(doc.get("meta") or {})) if with_meta else split


def saved_split(
    path: str | os.PathLike, name: str, n_systems: int | None = None, data: str = "the data",
    fingerprint: str | None = None,
) -> np.ndarray:  # fmt: skip
    """Indices of the split ``name`` in the split file ``path``, checked against the dataset
    (``data``, ``n_systems`` systems, content ``fingerprint``) it is applied to: the split must
    exist, be non-empty and have been made for that dataset (same size; same fingerprint when
    both are known)."""
    splits, meta = load_split(path, with_meta=True)
    if name not in splits:
        raise ValueError(f"unknown split {name!r} in {path}; choose one of {sorted(splits)} or all")
    saved_fp = meta.get("dataset_fingerprint")
    if fingerprint is not None and saved_fp is not None and saved_fp != fingerprint:
        raise ValueError(
            f"{path} was made for {meta.get('dataset', 'another dataset')}, and {data} holds "
            "different data (its fingerprint differs), so the split's indices would pick other "
            "systems; evaluate on the dataset the run was trained on, or use --split all"
        )
    n_expected = meta.get("n_systems")
    if n_systems is not None and n_expected is not None and int(n_expected) != n_systems:
        raise ValueError(
            f"{path} was made for a dataset of {int(n_expected)} systems, but {data} has "
            f"{n_systems}: use the dataset the run was trained on"
        )
    if len(splits[name]) == 0:
        raise ValueError(f"split {name!r} in {path} is empty")
    return splits[name]
