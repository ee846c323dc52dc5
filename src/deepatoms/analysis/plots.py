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
    mae: float, rmse: float, offset: np.ndarray | None = None, counted: str = "systems",
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
    err = y - x
    axh.hist(err, bins=60 if np.ptp(err) > 1e-12 * max(1.0, np.abs(err).max()) else 1, color="C0",
             alpha=0.8)  # fmt: skip
    axh.set_xlabel(f"error (predicted − reference){u}")
    axh.set_ylabel(counted)
    fig.suptitle(f"{label}: MAE {mae:.4g}, RMSE {rmse:.4g}{u}  (n={len(x)})", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_learning_curve(metrics_csv: str | Path, path: str | Path, unit: str = "") -> Path:
    """Validation MAE (and training MAE per epoch) against training step from ``metrics.csv``;
    when forces were trained, the force MAE (``unit``/Å) in a second panel."""
    metrics_csv = Path(metrics_csv)
    if not metrics_csv.is_file():
        raise FileNotFoundError(f"{metrics_csv} does not exist")
    series: dict[str, list[tuple[float, float]]] = {
        "val_mae": [], "train_mae_epoch": [], "val_force_mae": [], "train_force_mae_epoch": [],
    }  # fmt: skip
    with metrics_csv.open() as fh:
        for row in csv.DictReader(fh):
            for key in series:
                v = row.get(key)
                if v not in (None, "") and not math.isnan(float(v)):
                    series[key].append((float(row["step"]), float(v)))
    plt = pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    forces = bool(series["val_force_mae"] or series["train_force_mae_epoch"])
    fig, axes = plt.subplots(1, 2 if forces else 1, figsize=(9.6 if forces else 5, 3.4), dpi=130,
                             squeeze=False)  # fmt: skip
    panels = [(axes[0, 0], ("val_mae", "train_mae_epoch"), "energy MAE" if forces else "MAE",
               unit)]  # fmt: skip
    if forces:
        f_unit = f"{unit}/Å" if unit else ""
        panels.append((axes[0, 1], ("val_force_mae", "train_force_mae_epoch"), "force MAE", f_unit))
    for ax, keys, name, u in panels:
        for key in keys:
            if series[key]:
                x, y = zip(*series[key], strict=True)
                ax.plot(x, y, marker="o", ms=2, label=key.replace("_epoch", ""))
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel(f"{name} [{u}]" if u else name)
        ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)
