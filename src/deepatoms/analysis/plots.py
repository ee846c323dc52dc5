"""Plots written by the apps: parity plots and learning curves (PNG, matplotlib Agg backend)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_parity(
    reference: np.ndarray,
    predicted: np.ndarray,
    path: str | Path,
    label: str,
    unit: str,
    mae: float,
    rmse: float,
) -> Path:
    """Scatter of predicted vs reference values with the y = x line and the error metrics."""
    plt = _pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(4.6, 4.4), dpi=130)
    lo = float(min(reference.min(), predicted.min()))
    hi = float(max(reference.max(), predicted.max()))
    pad = 0.03 * (hi - lo or 1.0)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="0.4", lw=1, zorder=1)
    ax.scatter(reference, predicted, s=6, alpha=0.5, lw=0, zorder=2)
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(lo - pad, hi + pad)
    u = f" [{unit}]" if unit else ""
    ax.set_xlabel(f"reference {label}{u}")
    ax.set_ylabel(f"predicted {label}{u}")
    ax.set_title(f"{label}: MAE {mae:.4g}, RMSE {rmse:.4g}{u}  (n={len(reference)})", fontsize=9)
    ax.set_aspect("equal")
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
    return path


def plot_learning_curve(metrics_csv: str | Path, path: str | Path, unit: str = "") -> Path:
    """Validation MAE (and training MAE per epoch) against training step from ``metrics.csv``."""
    metrics_csv = Path(metrics_csv)
    if not metrics_csv.is_file():
        raise FileNotFoundError(f"{metrics_csv} does not exist")
    series: dict[str, list[tuple[float, float]]] = {"val_mae": [], "train_mae_epoch": []}
    with metrics_csv.open() as fh:
        for row in csv.DictReader(fh):
            for key in series:
                v = row.get(key)
                if v not in (None, "") and not math.isnan(float(v)):
                    series[key].append((float(row["step"]), float(v)))
    plt = _pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(5, 3.4), dpi=130)
    for key, pts in series.items():
        if pts:
            x, y = zip(*pts, strict=True)
            ax.plot(x, y, marker="o", ms=2, label=key.replace("_epoch", ""))
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(f"MAE [{unit}]" if unit else "MAE")
    ax.legend()
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
    return path
