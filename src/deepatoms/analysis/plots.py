"""Plots written by the apps: parity plots and learning curves (PNG, matplotlib Agg backend)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np


def pyplot():
    """matplotlib.pyplot with the non-interactive Agg backend (safe without a display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path) -> Path:
    """Write the figure atomically (temporary file, then rename) and close it."""
    import matplotlib.pyplot as plt

    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
    return path


def plot_parity(
    reference: np.ndarray, predicted: np.ndarray, path: str | Path, label: str, unit: str,
    mae: float, rmse: float, offset: np.ndarray | None = None,
) -> Path:  # fmt: skip
    """Parity plot (predicted vs reference, y = x line) next to a histogram of the errors.

    ``offset`` (e.g. Σ_i E_ref(Z_i) per system) is subtracted from both axes, so total energies
    are shown as atomization energies, where the errors are visible.
    """
    plt = pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    x, y = np.asarray(reference, float), np.asarray(predicted, float)
    name = label
    if offset is not None:
        x, y = x - offset, y - offset
        name = f"{label} − Σ atom refs"
    u = f" [{unit}]" if unit else ""
    fig, (ax, axh) = plt.subplots(1, 2, figsize=(8.6, 4.0), dpi=130)
    lo, hi = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
    pad = 0.03 * (hi - lo or 1.0)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="0.4", lw=1, zorder=1)
    ax.scatter(x, y, s=6, alpha=0.5, lw=0, zorder=2)
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_xlabel(f"reference {name}{u}")
    ax.set_ylabel(f"predicted {name}{u}")
    ax.set_aspect("equal")
    axh.hist(y - x, bins=60, color="C0", alpha=0.8)
    axh.set_xlabel(f"error (predicted − reference){u}")
    axh.set_ylabel("systems")
    fig.suptitle(f"{label}: MAE {mae:.4g}, RMSE {rmse:.4g}{u}  (n={len(x)})", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


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
    plt = pyplot()
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
    return save_figure(fig, path)
