"""Training statistics: atom reference energies and target standardisation (vectorised numpy).

Conventions (Schütt 2018 thesis Ch. 3–4; Paper A §5):

- An *atom reference* ``ref(Z)`` is a per-element constant; a system's reference is
  ``Σ_i ref(Z_i)`` over its atoms (:func:`atomref_sum`). References come from a table (e.g. the QM9
  atomref table stored in the dataset metadata) or are fitted by least squares on the
  composition-count matrix (:func:`fit_atomrefs`).
- Sum readout (extensive targets): ``μ̂ = mean((t − ref)/n)``, ``σ̂ = std((t − ref)/n)``; the model
  predicts ``ŷ = σ̂·R + n·μ̂ + ref``.
- Mean readout (intensive targets): ``r = t − ref/n``; ``μ̂ = mean(r)``, ``σ̂ = std(r)``.
- The population standard deviation (``ddof=0``) is the default; ``ddof=1`` gives the sample one.

All functions accept numpy arrays or (CPU) torch tensors and return numpy / Python values. Units
are those of the targets (eV for energies).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

logger = logging.getLogger(__name__)

__all__ = [
    "atomref_sum",
    "atomref_table",
    "fit_atomrefs",
    "force_rms",
    "system_index",
    "target_statistics",
]


def _np(x: Any, name: str, dtype: Any = None) -> np.ndarray:
    """``x`` as a numpy array (torch tensors are detached and moved to the CPU)."""
    if hasattr(x, "detach"):  # torch.Tensor without importing torch
        x = x.detach().cpu().numpy()
    try:
        return np.asarray(x, dtype=dtype)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be array-like of numbers, got {type(x).__name__}") from err


def _check_offsets(numbers: np.ndarray, offsets: np.ndarray) -> None:
    if numbers.ndim != 1:
        raise ValueError(f"numbers must be 1-D [N_atoms], got shape {numbers.shape}")
    if offsets.ndim != 1 or len(offsets) < 1 or offsets[0] != 0 or np.any(np.diff(offsets) < 0):
        raise ValueError("offsets must be 1-D [B+1], start at 0 and be non-decreasing")
    if offsets[-1] != len(numbers):
        raise ValueError(f"offsets end at {offsets[-1]} but there are {len(numbers)} atoms")


def system_index(offsets: np.ndarray) -> np.ndarray:
    """System index of every atom, ``[N_atoms]`` int64, from ``offsets [B+1]`` (empty systems ok)."""
    offsets = _np(offsets, "offsets", np.int64)
    return np.repeat(np.arange(len(offsets) - 1, dtype=np.int64), np.diff(offsets))


def atomref_table(atomrefs: Mapping[int | str, float] | Sequence[float] | np.ndarray) -> np.ndarray:
    """Lookup table ``table[Z] = ref(Z)`` (NaN where no reference is given).

    ``atomrefs`` is a mapping atomic number → value (keys may be strings, as in the JSON metadata of
    a dataset, e.g. ``{"1": -13.61, "6": -1029.8}``) or already a table indexed by Z.
    """
    if isinstance(atomrefs, Mapping):
        try:
            items = {int(z): float(v) for z, v in atomrefs.items()}
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"atom references must map atomic numbers to numbers, got {dict(atomrefs)!r}"
            ) from err
        if any(z < 0 for z in items):
            raise ValueError(f"negative atomic number in atom references {sorted(items)}")
        table = np.full(max(items, default=0) + 1, np.nan)
        for z, v in items.items():
            table[z] = v
        return table
    return _np(atomrefs, "atomrefs", np.float64).reshape(-1)


def atomref_sum(
    numbers: Any,
    offsets: Any,
    atomrefs: Mapping[int | str, float] | Sequence[float] | np.ndarray,
) -> np.ndarray:
    """Per-system reference ``Σ_i ref(Z_i)``, shape ``[B]`` float64, in the unit of ``atomrefs``.

    Vectorised: a lookup table indexed by Z, then ``np.bincount`` over the system index of each atom
    (empty systems get 0). Raises ``ValueError`` naming the elements without a reference.
    """
    numbers = _np(numbers, "numbers", np.int64)
    offsets = _np(offsets, "offsets", np.int64)
    _check_offsets(numbers, offsets)
    table = atomref_table(atomrefs)
    if len(numbers) == 0:
        return np.zeros(len(offsets) - 1)
    if numbers.min() < 0:
        raise ValueError(f"negative atomic number {int(numbers.min())} in numbers")
    present = np.flatnonzero(np.bincount(numbers))  # O(N), faster than np.unique
    missing = present[present >= len(table)]
    inside = present[present < len(table)]
    missing = np.concatenate([inside[np.isnan(table[inside])], missing])
    if len(missing):
        raise ValueError(
            f"no atom reference for atomic number(s) {sorted(int(z) for z in missing)}; "
            f"references are given for {[int(z) for z in np.flatnonzero(~np.isnan(table))]}"
        )
    return np.bincount(system_index(offsets), weights=table[numbers], minlength=len(offsets) - 1)


def fit_atomrefs(
    numbers: Any,
    offsets: Any,
    targets: Any,
    elements: Sequence[int] | None = None,
) -> dict[int, float]:
    """Per-element reference values fitted by linear least squares.

    Builds the composition-count matrix ``C [B, n_elements]`` (``C[k, e]`` = number of atoms of
    element ``e`` in system ``k``) and solves ``min_r ‖C r − t‖²`` with ``np.linalg.lstsq`` (no
    intercept). Where ``C`` is rank deficient (e.g. every system has the same composition ratio),
    the minimum-norm solution is returned and a warning is logged. The result is in the unit of
    ``targets`` (eV for energies).

    Args:
        numbers: atomic numbers ``[N_atoms]``.
        offsets: ``[B+1]`` system boundaries.
        targets: per-system targets ``[B]``.
        elements: elements to fit (default: those present); every atom must be one of them.

    Returns:
        ``{Z: ref(Z)}`` for each element.
    """
    numbers = _np(numbers, "numbers", np.int64)
    offsets = _np(offsets, "offsets", np.int64)
    _check_offsets(numbers, offsets)
    t = _np(targets, "targets", np.float64)
    n_sys = len(offsets) - 1
    if t.shape != (n_sys,):
        raise ValueError(f"targets must have shape [{n_sys}] (one per system), got {t.shape}")
    if not np.all(np.isfinite(t)):
        raise ValueError(f"targets contain {int(np.sum(~np.isfinite(t)))} non-finite values")
    els = np.unique(numbers) if elements is None else np.unique(np.asarray(elements, np.int64))
    if len(els) == 0:
        raise ValueError("no atoms and no elements given: nothing to fit")
    col = np.searchsorted(els, numbers)
    col = np.minimum(col, len(els) - 1)
    bad = els[col] != numbers
    if np.any(bad):
        raise ValueError(
            f"atoms of element(s) {sorted(set(numbers[bad].tolist()))} are not in elements "
            f"{els.tolist()}; add them to `elements`"
        )
    counts = np.bincount(
        system_index(offsets) * len(els) + col, minlength=n_sys * len(els)
    ).reshape(n_sys, len(els))
    sol, _, rank, _ = np.linalg.lstsq(counts.astype(np.float64), t, rcond=None)
    if rank < len(els):
        logger.warning(
            "composition matrix has rank %d < %d elements: atom references are not unique, "
            "returning the minimum-norm least-squares solution",
            rank,
            len(els),
        )
    return {int(z): float(v) for z, v in zip(els, sol, strict=True)}


def target_statistics(
    targets: Any,
    n_atoms: Any,
    readout: Literal["sum", "mean"],
    atomref_per_system: Any = None,
    ddof: int = 0,
) -> tuple[float, float]:
    """Mean and standard deviation for target standardisation (Schütt 2018 thesis Ch. 3–4; Paper A §5).

    - ``readout="sum"``: ``x = (t − ref)/n``; returns ``(mean(x), std(x))`` (per-atom statistics).
    - ``readout="mean"``: ``r = t − ref/n``; returns ``(mean(r), std(r))``.

    ``ref`` is ``atomref_per_system`` (``Σ_i ref(Z_i)`` per system, see :func:`atomref_sum`) or 0.
    ``ddof=0`` is the population standard deviation (default), ``ddof=1`` the sample one. A zero
    (or non-finite) standard deviation is replaced by 1.0 with a ``UserWarning``. The values are
    in the unit of the targets.
    """
    t = _np(targets, "targets", np.float64)
    n = _np(n_atoms, "n_atoms", np.float64)
    if t.ndim != 1:
        raise ValueError(f"targets must be 1-D (one scalar per system), got shape {t.shape}")
    if n.shape != t.shape:
        raise ValueError(f"n_atoms has shape {n.shape} but targets have shape {t.shape}")
    if len(t) == 0:
        raise ValueError("no targets: cannot compute statistics of an empty training set")
    if len(t) <= ddof:
        raise ValueError(f"need more than ddof={ddof} targets, got {len(t)}")
    if not np.all(np.isfinite(t)):
        raise ValueError(f"targets contain {int(np.sum(~np.isfinite(t)))} non-finite values")
    if np.any(n <= 0):
        raise ValueError(
            f"{int(np.sum(n <= 0))} system(s) have no atoms; remove them before computing statistics"
        )
    ref = np.zeros_like(t) if atomref_per_system is None else _np(atomref_per_system, "ref", float)
    if ref.shape != t.shape:
        raise ValueError(f"atomref_per_system has shape {ref.shape}, targets have {t.shape}")
    if readout == "sum":
        x = (t - ref) / n
    elif readout == "mean":
        x = t - ref / n
    else:
        raise ValueError(f"readout must be 'sum' or 'mean', got {readout!r}")
    mean = float(np.mean(x))
    std = float(np.std(x, ddof=ddof))
    if not np.isfinite(std) or std == 0.0:
        msg = (
            f"standard deviation of the {readout}-readout targets is {std}; using 1.0 instead "
            "(all training targets are equal after reference subtraction)"
        )
        warnings.warn(msg, UserWarning, stacklevel=2)
        logger.warning(msg)
        std = 1.0
    return mean, std


def force_rms(forces: Any) -> float:
    """Root-mean-square force component sqrt(mean(F²)) over all atoms and axes (eV/Å).

    Used as the output scale σ̂ of a potential trained on forces: the model's forces are
    σ̂·(−∂R/∂r), so σ̂ sets their initial size (the NequIP/MACE convention).
    """
    f = _np(forces, "forces", np.float64)
    if f.ndim != 2 or f.shape[1] != 3:
        raise ValueError(f"forces must have shape [N_atoms, 3], got {f.shape}")
    if not np.all(np.isfinite(f)):
        raise ValueError(f"forces contain {int(np.sum(~np.isfinite(f)))} non-finite values")
    rms = float(np.sqrt(np.mean(f * f))) if f.size else 0.0
    if not rms > 0:
        raise ValueError("all training forces are zero: cannot scale a potential by them")
    return rms
