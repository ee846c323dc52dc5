"""How well predicted uncertainties match errors (docs/uncertainty.md).

For errors e_i = ŷ_i − y_i and predicted standard deviations σ_i (a committee's spread):

- **Spearman rank correlation** ρ between |e_i| and σ_i: does a larger σ mean a larger error?
  (Musil et al. 2019; Tran et al. 2020);
- **negative log-likelihood** of the errors under N(0, σ_i²), per point:
  NLL = (1/n) Σ_i [ ½ ln(2π σ_i²) + e_i² / (2 σ_i²) ];
- **miscalibration area** (Tran et al. 2020, Sec. 3.2): for each expected proportion p of a
  centred Gaussian interval, the observed fraction of points with |e_i| ≤ σ_i · z_{(1+p)/2};
  the area between that curve and the diagonal over p ∈ [0, 1] (0: calibrated, 0.5: worst);
- **coverage** of the ±1σ and ±2σ intervals (68.3 % and 95.4 % when calibrated).

Points with σ ≤ 0 or non-finite values are left out and counted.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
from scipy import stats

__all__ = ["calibration_curve", "calibration_report", "plot_calibration"]

_P = np.linspace(0.0, 1.0, 101)


def _clean(errors: np.ndarray, std: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    e = np.asarray(errors, dtype=np.float64).reshape(-1)
    s = np.asarray(std, dtype=np.float64).reshape(-1)
    if e.shape != s.shape:
        raise ValueError(f"{e.size} errors but {s.size} standard deviations")
    ok = np.isfinite(e) & np.isfinite(s) & (s > 0)
    return e[ok], s[ok], int((~ok).sum())


def calibration_curve(errors: np.ndarray, std: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(expected proportions p, observed proportions) of centred Gaussian intervals."""
    e, s, _ = _clean(errors, std)
    z = np.abs(e) / s
    half = stats.norm.ppf(0.5 + _P / 2)  # interval half-width in σ for proportion p
    observed = np.array([(z <= h).mean() if len(z) else math.nan for h in half])
    return _P.copy(), observed


def calibration_report(errors: np.ndarray, std: np.ndarray) -> dict[str, Any]:
    """Spearman ρ(|error|, σ), NLL, miscalibration area and ±1σ/±2σ coverage (module
    docstring), with the number of points used and left out."""
    e, s, dropped = _clean(errors, std)
    if len(e) < 2:
        return {"n_calibration": len(e), "n_without_std": dropped}
    p, observed = calibration_curve(e, s)
    rho = stats.spearmanr(np.abs(e), s).statistic if np.ptp(s) > 0 else math.nan
    z = np.abs(e) / s
    return {
        "n_calibration": len(e),
        "n_without_std": dropped,
        "spearman_abs_error_std": float(rho),
        "nll": float(np.mean(0.5 * np.log(2 * np.pi * s**2) + e**2 / (2 * s**2))),
        "miscalibration_area": float(np.trapezoid(np.abs(observed - p), p)),
        "coverage_1sigma": float((z <= 1).mean()),
        "coverage_2sigma": float((z <= 2).mean()),
        "mean_std": float(s.mean()),
        "rmse_over_rms_std": float(np.sqrt((e**2).mean() / (s**2).mean())),
    }


def plot_calibration(errors: np.ndarray, std: np.ndarray, path: str | os.PathLike,
                     unit: str = "", title: str = "") -> str:  # fmt: skip
    """Two panels: observed vs expected interval proportions, and |error| against σ (log-log),
    written to ``path`` (PNG); returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from deepatoms.core.files import atomic_target

    e, s, _ = _clean(errors, std)
    p, observed = calibration_curve(e, s)
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 4))
    a.plot(p, observed, label="committee")
    a.plot([0, 1], [0, 1], "k--", lw=0.8, label="calibrated")
    a.fill_between(p, p, observed, alpha=0.2)
    a.set(xlabel="expected proportion in interval", ylabel="observed proportion",
          title="calibration")  # fmt: skip
    a.legend()
    u = f" ({unit})" if unit else ""
    b.loglog(s, np.maximum(np.abs(e), 1e-12), ".", ms=3, alpha=0.5)
    lo, hi = max(s.min(), 1e-12), s.max()
    b.plot([lo, hi], [lo, hi], "k--", lw=0.8, label="|error| = σ")
    b.set(xlabel=f"σ{u}", ylabel=f"|error|{u}", title=title or "error vs uncertainty")
    b.legend()
    fig.tight_layout()
    with atomic_target(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return str(path)
