"""Reconstruction metrics of the density VAE: atoms, counts, species, voxels, NN distances.

docs/density_vae.md §7 (Hoffmann et al. §4.1–4.2, Figs. 3–5). Per sample s with true
atoms T_s and predicted atoms P_s (box frame, Å):

- counts: exact n(P_s) = n(T_s); |Δn| ≤ 1 (the paper's "less than 2 atoms extra or missing");
  |Δn| ≤ 2;
- distances in both directions: d(t) = min_p ‖t − p‖ for every true atom and d(p) = min_t ‖p − t‖
  for every predicted atom (nearest neighbour, not one-to-one, as in the paper); with
  ``hungarian=True`` a one-to-one assignment minimising the summed distance
  (``scipy.optimize.linear_sum_assignment``) instead, atoms left without partner count as
  unmatched. Unmatched atoms (empty side) have d = ∞: they fail every "within" test and make a
  percentile ``None`` when it falls among them. Fractions within 0.5 Å and 0.2 Å, percentiles
  50/75/90 (numpy linear interpolation) over all atoms of all samples;
- species: among predicted atoms whose nearest true atom is within 0.5 Å, the fraction with the
  same Z, the same fraction within 0.33 Å, the fraction with |ΔZ| ≤ 2 and the Pearson
  correlation of (Z_true, Z_pred) over those pairs (``None`` for fewer than two pairs or zero
  variance);
- voxels (:class:`VoxelMetrics`): per-sample MSE of the density (mean and percentiles 5/25/50/
  75/95 over samples) and top-1 species accuracy over all voxels and over atom voxels
  (true class ≠ 0);
- random draws: nearest-neighbour interatomic distances within each structure
  (:func:`nearest_neighbour_distances`) and a histogram comparison
  (:func:`compare_distance_histograms`: normalised histograms, their overlap Σ min(p, q) and
  the 1-D Wasserstein distance in Å).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist
from scipy.stats import wasserstein_distance

__all__ = [
    "PERCENTILES",
    "VoxelMetrics",
    "atom_metrics",
    "compare_distance_histograms",
    "nearest_neighbour_distances",
    "voxel_metrics",
]

#: Percentiles of the distance distributions (§7).
PERCENTILES = (50, 75, 90)
_MSE_PERCENTILES = (5, 25, 50, 75, 95)


def _atoms(item: Any, where: str) -> tuple[np.ndarray, np.ndarray]:
    """(numbers [k], positions [k, 3]) of a (numbers, positions) pair or an object with them."""
    if hasattr(item, "numbers") and hasattr(item, "positions"):
        z, pos = item.numbers, item.positions
    else:
        try:
            z, pos = item
        except (TypeError, ValueError):
            raise TypeError(
                f"{where}: expected (numbers, positions) or an object with .numbers and "
                f".positions, got {type(item).__name__}"
            ) from None
    z = np.asarray(z, dtype=np.int64).reshape(-1)
    pos = np.asarray(pos, dtype=np.float64).reshape(-1, 3)
    if len(z) != len(pos):
        raise ValueError(f"{where}: {len(z)} atomic numbers for {len(pos)} positions")
    return z, pos


def _nearest(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance (Å) and index of the nearest b for each a; ∞ and -1 when b is empty."""
    if len(b) == 0:
        return np.full(len(a), np.inf), np.full(len(a), -1, dtype=np.int64)
    if len(a) == 0:
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    d = cdist(a, b)
    j = d.argmin(axis=1)
    return d[np.arange(len(a)), j], j


def _assignment(t: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One-to-one matching: (d_true [nt], d_pred [np], true index of each pred [np], -1 = none)."""
    d_t, d_p = np.full(len(t), np.inf), np.full(len(p), np.inf)
    partner = np.full(len(p), -1, dtype=np.int64)
    if len(t) and len(p):
        d = cdist(t, p)
        rows, cols = linear_sum_assignment(d)
        d_t[rows] = d[rows, cols]
        d_p[cols] = d[rows, cols]
        partner[cols] = rows
    return d_t, d_p, partner


def _percentiles(d: np.ndarray, qs: Sequence[float]) -> dict[str, float | None]:
    if len(d) == 0:
        return {f"p{q}": None for q in qs}
    big = 1e12
    vals = np.percentile(np.where(np.isfinite(d), d, big), qs)
    return {f"p{q}": (float(v) if v < big / 10 else None) for q, v in zip(qs, vals, strict=True)}


def _fraction(mask: np.ndarray) -> float | None:
    return float(mask.mean()) if len(mask) else None


def _pearson(a: np.ndarray, b: np.ndarray) -> float | None:
    if len(a) < 2 or a.std() == 0 or b.std() == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def atom_metrics(
    true_list: Sequence[Any],
    pred_list: Sequence[Any],
    hungarian: bool = False,
    within: Sequence[float] = (0.5, 0.2),
    species_cutoffs: Sequence[float] = (0.5, 0.33),
) -> dict[str, Any]:
    """Atom-level metrics over samples (module docstring).

    Args:
        true_list, pred_list: per sample, ``(numbers, positions Å)`` or objects with
            ``.numbers``/``.positions`` (e.g. :class:`~deepatoms.density.recovery.RecoveredAtoms`).
        hungarian: one-to-one matching instead of nearest neighbours.
        within: distance thresholds (Å) of the "fraction within" metrics.
        species_cutoffs: match radii (Å) of the species metrics; the first also selects the
            pairs of ``species_within_2z`` and ``z_pearson``.

    Returns:
        ``n_samples``, ``n_true_atoms``, ``n_pred_atoms``; ``count_exact``,
        ``count_within_1``, ``count_within_2`` (fractions of samples); per direction
        ``true_to_pred`` / ``pred_to_true``: ``within_<d>`` fractions and ``p50``/``p75``/``p90``
        (Å); ``species_exact_<r>`` and ``n_matched_<r>`` per cut-off, ``species_within_2z``,
        ``z_pearson``. Fractions over zero items are ``None``.
    """
    if len(true_list) != len(pred_list):
        raise ValueError(
            f"atom_metrics: {len(true_list)} true samples but {len(pred_list)} predictions"
        )
    d_true, d_pred, z_true_of_pred, z_pred = [], [], [], []
    n_true, n_pred = [], []
    for s, (ti, pi) in enumerate(zip(true_list, pred_list, strict=True)):
        zt, xt = _atoms(ti, f"true sample {s}")
        zp, xp = _atoms(pi, f"predicted sample {s}")
        n_true.append(len(zt))
        n_pred.append(len(zp))
        if hungarian:
            dt, dp, partner = _assignment(xt, xp)
        else:
            dt, _ = _nearest(xt, xp)
            dp, partner = _nearest(xp, xt)
        d_true.append(dt)
        d_pred.append(dp)
        z_pred.append(zp)
        z_true_of_pred.append(np.where(partner >= 0, zt[np.maximum(partner, 0)], -1))
    cat = lambda xs: np.concatenate(xs) if xs else np.zeros(0)  # noqa: E731
    dt, dp = cat(d_true), cat(d_pred)
    zp, zt = cat(z_pred).astype(np.int64), cat(z_true_of_pred).astype(np.int64)
    dn = np.abs(np.array(n_pred) - np.array(n_true))
    out: dict[str, Any] = {
        "n_samples": len(n_true),
        "n_true_atoms": int(sum(n_true)),
        "n_pred_atoms": int(sum(n_pred)),
        "count_exact": _fraction(dn == 0),
        "count_within_1": _fraction(dn <= 1),
        "count_within_2": _fraction(dn <= 2),
        "matching": "hungarian" if hungarian else "nearest",
    }
    for name, d in (("true_to_pred", dt), ("pred_to_true", dp)):
        block: dict[str, float | None] = {f"within_{w:g}": _fraction(d <= w) for w in within}
        block.update(_percentiles(d, PERCENTILES))
        out[name] = block
    for r in species_cutoffs:
        sel = dp <= r
        out[f"n_matched_{r:g}"] = int(sel.sum())
        out[f"species_exact_{r:g}"] = _fraction(zp[sel] == zt[sel])
    sel = dp <= species_cutoffs[0]
    out["species_within_2z"] = _fraction(np.abs(zp[sel] - zt[sel]) <= 2)
    out["z_pearson"] = _pearson(zt[sel].astype(float), zp[sel].astype(float))
    return out


def _np(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


class VoxelMetrics:
    """Accumulates voxel MSE and top-1 species accuracy over batches (module docstring)."""

    def __init__(self) -> None:
        self.mse: list[np.ndarray] = []
        self.correct = self.total = self.atom_correct = self.atom_total = 0

    def update(
        self,
        density_true: Any,
        density_pred: Any,
        classes_true: Any | None = None,
        pred: Any | None = None,
    ) -> None:
        """Add a batch: densities ``[B, (1,) n, n, n]``; true classes ``[B, n, n, n]`` and
        predicted logits ``[B, C, n, n, n]`` or classes ``[B, n, n, n]`` (optional)."""
        t, p = _np(density_true).astype(np.float64), _np(density_pred).astype(np.float64)
        if t.shape != p.shape:
            raise ValueError(f"voxel metrics: true density {t.shape} vs predicted {p.shape}")
        b = t.shape[0]
        self.mse.append(((t - p) ** 2).reshape(b, -1).mean(axis=1))
        if classes_true is None and pred is None:
            return
        if classes_true is None or pred is None:
            raise ValueError("voxel metrics: give both the true classes and the prediction")
        ct, cp = _np(classes_true), _np(pred)
        if np.issubdtype(cp.dtype, np.floating):
            cp = cp.argmax(axis=1)
        if ct.shape != cp.shape:
            raise ValueError(f"voxel metrics: true classes {ct.shape} vs predicted {cp.shape}")
        hit, atom = ct == cp, ct != 0
        self.correct += int(hit.sum())
        self.total += int(hit.size)
        self.atom_correct += int((hit & atom).sum())
        self.atom_total += int(atom.sum())

    def result(self) -> dict[str, Any]:
        """``mse_mean``, ``mse_p5`` … ``mse_p95`` (over samples), ``n_samples``,
        ``species_accuracy`` and ``species_accuracy_atoms`` (``None`` without voxels)."""
        mse = np.concatenate(self.mse) if self.mse else np.zeros(0)
        out: dict[str, Any] = {
            "n_samples": len(mse),
            "mse_mean": float(mse.mean()) if len(mse) else None,
        }
        for q in _MSE_PERCENTILES:
            out[f"mse_p{q}"] = float(np.percentile(mse, q)) if len(mse) else None
        out["species_accuracy"] = self.correct / self.total if self.total else None
        out["species_accuracy_atoms"] = (
            self.atom_correct / self.atom_total if self.atom_total else None
        )
        return out


def voxel_metrics(
    density_true: Any, density_pred: Any, classes_true: Any = None, pred: Any = None
) -> dict[str, Any]:
    """One-batch :class:`VoxelMetrics` result (see :meth:`VoxelMetrics.update`)."""
    m = VoxelMetrics()
    m.update(density_true, density_pred, classes_true, pred)
    return m.result()


def nearest_neighbour_distances(structures: Sequence[Any]) -> np.ndarray:
    """Distance (Å) from every atom to the nearest other atom of its structure (non-periodic,
    box frame), concatenated over ``structures`` ((numbers, positions) pairs or objects with
    ``.numbers``/``.positions``); structures with fewer than two atoms add nothing."""
    out = []
    for s, item in enumerate(structures):
        _, pos = _atoms(item, f"structure {s}")
        if len(pos) < 2:
            continue
        d = cdist(pos, pos)
        np.fill_diagonal(d, np.inf)
        out.append(d.min(axis=1))
    return np.concatenate(out) if out else np.zeros(0)


def compare_distance_histograms(
    a: np.ndarray, b: np.ndarray, bins: int = 60, max_distance: float = 6.0
) -> dict[str, Any]:
    """Histograms of two distance samples (Å) on ``bins`` equal bins over [0, max_distance]
    (normalised to sum 1 over the range), their overlap Σ min(p, q) (1 = identical) and the
    Wasserstein distance (Å) of the raw samples (``None`` when one is empty)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    edges = np.linspace(0.0, max_distance, bins + 1)
    ha = np.histogram(a, edges)[0].astype(np.float64)
    hb = np.histogram(b, edges)[0].astype(np.float64)
    pa = ha / ha.sum() if ha.sum() else ha
    pb = hb / hb.sum() if hb.sum() else hb
    empty = len(a) == 0 or len(b) == 0
    return {
        "edges": edges.tolist(),
        "hist_a": pa.tolist(),
        "hist_b": pb.tolist(),
        "n_a": len(a),
        "n_b": len(b),
        "overlap": None if empty else float(np.minimum(pa, pb).sum()),
        "wasserstein": None if empty else float(wasserstein_distance(a, b)),
    }
