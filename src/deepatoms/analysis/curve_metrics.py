"""Energy-curve metrics for models of unstable systems (docs/vimpnn.md §7).

Per-sample errors of a predicted energy ŷ against the label y (eV), each reported as
"mean (std)" over the samples (population std, ddof = 0):

    AE = |ŷ − y| (eV),   SE = (ŷ − y)² (eV²),   RE = |ŷ − y| / |y| (dimensionless)

RE uses the labeller's total energy, so it depends on that labeller's energy zero and is not
comparable across labellers; it is NaN when a label is exactly 0.

Distance to the stable configuration (DSC) of one curve Ê(s) evaluated on a scaling grid
s_1 < … < s_G (Default :func:`dense_grid`: step 0.005 over [0.9, 1.5]):

    s*_pred = argmin_g Ê(s_g),      DSC = |s*_pred − s_eq|

with s_eq = 1 (the known equilibrium; Default) or, as an option, the argmin of the reference
labels on the data grid (:func:`reference_minima`). DSC in Å multiplies by the mean bonded (or
nearest-neighbour) distance at s = 1. Since s*_pred lies on the grid, the DSC of a curve whose true
minimum is s_eq is at most step/2.

Also: MAE per system-size bin (:func:`errors_by_size`) and per label such as the element of a
crystal-growth cluster (:func:`errors_by_label`). Pure numpy; every function works in the units of
its inputs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "dense_grid",
    "dsc",
    "dsc_summary",
    "error_summary",
    "errors_by_label",
    "errors_by_size",
    "mean_std",
    "reference_minima",
]


def _pair(pred: Sequence[float] | np.ndarray, ref: Sequence[float] | np.ndarray):
    p = np.asarray(pred, dtype=np.float64).reshape(-1)
    r = np.asarray(ref, dtype=np.float64).reshape(-1)
    if p.shape != r.shape:
        raise ValueError(f"pred has {p.size} values but ref has {r.size}; pass one per sample")
    return p, r


def mean_std(values: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """(mean, population std) of ``values``; (NaN, NaN) when empty."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if v.size == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std())


def error_summary(
    pred: Sequence[float] | np.ndarray, ref: Sequence[float] | np.ndarray
) -> dict[str, float | int]:
    """MAE, MSE and RE of ``pred`` against ``ref``, each as mean and std over samples.

    Returns ``{"n", "mae", "mae_std", "mse", "mse_std", "re", "re_std"}`` in the input unit
    (eV), its square (eV²) and dimensionless (RE, NaN if a label is 0). Empty input gives NaNs.
    """
    p, r = _pair(pred, ref)
    err = p - r
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(r != 0, np.abs(err) / np.abs(r), np.nan)
    out: dict[str, float | int] = {"n": int(p.size)}
    for name, values in (("mae", np.abs(err)), ("mse", err**2), ("re", rel)):
        out[name], out[f"{name}_std"] = mean_std(values)
    return out


def dense_grid(start: float = 0.9, stop: float = 1.5, step: float = 0.005) -> np.ndarray:
    """Scaling grid start, start + step, … up to ``stop`` (included when on the grid).

    Default: 121 points over [0.9, 1.5] with step 0.005 (docs/vimpnn.md §7). Values are rounded to 12
    decimals so that e.g. s = 1 is exactly 1.0.
    """
    if not step > 0:
        raise ValueError(f"grid step must be > 0, got {step}")
    if not stop > start:
        raise ValueError(f"grid range must have stop > start, got [{start}, {stop}]")
    n = int(np.floor((stop - start) / step + 1e-9)) + 1
    return np.round(start + step * np.arange(n), 12)


def dsc(
    scales_grid: Sequence[float] | np.ndarray,
    predicted_energies: Sequence[float] | np.ndarray,
    s_eq: float | Sequence[float] | np.ndarray = 1.0,
    length: float | Sequence[float] | np.ndarray = 1.0,
) -> np.ndarray:
    """Distance to stable configuration |argmin_s Ê(s) − s_eq| of each curve.

    ``predicted_energies``: [G] for one curve or [C, G] for C curves on ``scales_grid`` [G]
    (eV; any unit). ``s_eq``: scalar or one value per curve [C] (Default 1). ``length``: scalar
    or [C] factor, e.g. the mean bonded distance at s = 1 in Å to get the DSC in Å (Default 1:
    DSC in units of s). Returns [C] (or a 0-d array for one curve). Ties take the smallest s.
    """
    grid = np.asarray(scales_grid, dtype=np.float64).reshape(-1)
    e = np.asarray(predicted_energies, dtype=np.float64)
    single = e.ndim == 1
    e2 = e.reshape(1, -1) if single else e
    if e2.ndim != 2 or e2.shape[1] != grid.size:
        raise ValueError(
            f"predicted_energies must be [G] or [C, G] with G = {grid.size} grid points, "
            f"got shape {e.shape}"
        )
    if grid.size == 0:
        raise ValueError("the scaling grid is empty")
    if not np.all(np.isfinite(e2)):
        bad = np.flatnonzero(~np.all(np.isfinite(e2), axis=1))
        raise ValueError(f"curves {bad[:5].tolist()} hold NaN or infinite energies")
    s_star = grid[np.argmin(e2, axis=1)]
    d = np.abs(s_star - np.asarray(s_eq, dtype=np.float64)) * np.asarray(length, np.float64)
    return d[0] if single else d


def dsc_summary(values: Sequence[float] | np.ndarray) -> dict[str, float | int]:
    """``{"n", "dsc", "dsc_std"}``: mean and population std of per-curve DSC values."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    m, s = mean_std(v)
    return {"n": int(v.size), "dsc": m, "dsc_std": s}


def reference_minima(
    groups: Sequence[int] | np.ndarray,
    scales: Sequence[float] | np.ndarray,
    energies: Sequence[float] | np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Per group, the scale of its lowest labelled energy: ``(group_ids sorted, s_min)``.

    The "reference" choice of s_eq for the DSC (docs/vimpnn.md §7 option). Ties take the smallest s.
    """
    g = np.asarray(groups).reshape(-1)
    s, e = _pair(scales, energies)
    if g.size != s.size:
        raise ValueError(f"groups has {g.size} entries for {s.size} labelled points")
    if g.size == 0:
        return g, s
    order = np.lexsort((s, e, g))  # by group, then energy, then scale
    ids, first = np.unique(g[order], return_index=True)
    return ids, s[order][first]


def errors_by_size(
    n_atoms: Sequence[int] | np.ndarray,
    pred: Sequence[float] | np.ndarray,
    ref: Sequence[float] | np.ndarray,
    bins: Sequence[float] | np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """MAE (mean and std of |ŷ − y|) per system-size bin.

    ``bins=None``: one bin per distinct atom count (``lo == hi`` = that count); else increasing
    edges b_0 < … < b_k giving the bins [b_i, b_{i+1}) (the last one closed), ``lo``/``hi`` =
    the edges; sizes outside them are ignored. Empty bins are left out. Returns arrays ``lo``,
    ``hi``, ``n``, ``mae`` and ``mae_std`` (input unit).
    """
    p, r = _pair(pred, ref)
    n = np.asarray(n_atoms, dtype=np.int64).reshape(-1)
    if n.size != p.size:
        raise ValueError(f"n_atoms has {n.size} entries for {p.size} samples")
    ae = np.abs(p - r)
    if bins is None:
        lo, k = np.unique(n, return_inverse=True)
        lo = hi = lo.astype(np.float64)
        inside = np.ones(n.size, dtype=bool)
    else:
        edges = np.asarray(bins, dtype=np.float64).reshape(-1)
        if edges.size < 2 or np.any(np.diff(edges) <= 0):
            raise ValueError(f"bins must be at least two increasing edges, got {edges.tolist()}")
        lo, hi = edges[:-1], edges[1:]
        k = np.searchsorted(edges, n, side="right") - 1
        k[n == edges[-1]] = len(lo) - 1
        inside = (k >= 0) & (k < len(lo))
    k = k.reshape(-1)[inside]
    counts = np.bincount(k, minlength=len(lo))
    sums = np.bincount(k, weights=ae[inside], minlength=len(lo))
    squares = np.bincount(k, weights=ae[inside] ** 2, minlength=len(lo))
    keep = counts > 0
    c = counts[keep]
    mae = sums[keep] / c
    return {
        "lo": lo[keep],
        "hi": hi[keep],
        "n": c.astype(np.int64),
        "mae": mae,
        "mae_std": np.sqrt(np.maximum(squares[keep] / c - mae**2, 0.0)),
    }


def errors_by_label(
    labels: Sequence | np.ndarray,
    pred: Sequence[float] | np.ndarray,
    ref: Sequence[float] | np.ndarray,
) -> dict[str, dict[str, float | int]]:
    """:func:`error_summary` per distinct label (e.g. the element "Al"/"Cu"), labels sorted."""
    p, r = _pair(pred, ref)
    lab = np.asarray(labels).reshape(-1).astype(str)
    if lab.size != p.size:
        raise ValueError(f"labels has {lab.size} entries for {p.size} samples")
    return {name: error_summary(p[lab == name], r[lab == name]) for name in np.unique(lab)}
