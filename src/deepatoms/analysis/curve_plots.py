"""Figures of the energy-curve analysis (docs/vimpnn.md §9), PNG via matplotlib Agg.

* :func:`plot_energy_curves` — reference labels E(s) against the dense model curves Ê(s) of one
  base structure, each model's argmin s* marked, s_eq as a dashed line;
* :func:`plot_error_vs_size` — MAE (± std) per system size, one line per model;
* :func:`plot_contributions` — normalised per-node contributions c_v / Σ_u |c_u| while one atom
  moves from 0.8 to 1.6 times its stable distance to the centroid: heatmap and lines, the
  moving atom highlighted.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from deepatoms.analysis.plots import pyplot, save_figure

__all__ = ["plot_contributions", "plot_energy_curves", "plot_error_vs_size"]


def _prepare(path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def plot_energy_curves(
    path: str | Path, grid: np.ndarray, curves: Mapping[str, np.ndarray],
    reference: tuple[np.ndarray, np.ndarray] | None = None, s_eq: float | None = 1.0,
    title: str = "", unit: str = "eV",
) -> Path:  # fmt: skip
    """Energy against scaling s for one structure: labelled points and model curves on ``grid``.

    ``curves``: {model name: Ê [G]} (legend entries); ``reference``: (s [n], E [n]) labels.
    Each model's minimum on the grid is marked with a star.
    """
    plt = pyplot()
    path = _prepare(path)
    fig, ax = plt.subplots(figsize=(5.2, 3.8), dpi=130)
    if reference is not None and len(reference[0]):
        s, e = reference
        many = len(s) > 200
        ax.plot(
            s,
            e,
            "o" if not many else ".",
            color="k",
            ms=4 if not many else 1.5,
            label="reference",
            zorder=3,
        )
    for i, (name, e_hat) in enumerate(curves.items()):
        color = f"C{i}"
        ax.plot(grid, e_hat, color=color, lw=1.4, label=name, zorder=2)
        k = int(np.argmin(e_hat))
        ax.plot(
            grid[k],
            e_hat[k],
            "*",
            color=color,
            ms=11,
            mec="k",
            mew=0.5,
            zorder=4,
            label=f"{name} min s={grid[k]:.3f}",
        )
    if s_eq is not None:
        ax.axvline(s_eq, color="0.5", ls="--", lw=1, zorder=1)
    ax.set_xlabel("scaling factor s")
    ax.set_ylabel(f"energy [{unit}]" if unit else "energy")
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_error_vs_size(
    path: str | Path, by_size: Mapping[str, Mapping[str, np.ndarray]], unit: str = "eV"
) -> Path:
    """MAE against system size (atoms) per model; ``by_size[name]`` is the dict returned by
    :func:`deepatoms.analysis.curve_metrics.errors_by_size` (bins drawn at their centres)."""
    plt = pyplot()
    path = _prepare(path)
    fig, ax = plt.subplots(figsize=(5.2, 3.6), dpi=130)
    for i, (name, t) in enumerate(by_size.items()):
        x = (np.asarray(t["lo"], float) + np.asarray(t["hi"], float)) / 2
        mae, std = np.asarray(t["mae"], float), np.asarray(t["mae_std"], float)
        ax.plot(x, mae, "o-", ms=3, color=f"C{i}", label=name)
        ax.fill_between(x, np.maximum(mae - std, 0), mae + std, color=f"C{i}", alpha=0.15, lw=0)
    ax.set_xlabel("system size [atoms]")
    ax.set_ylabel(f"MAE [{unit}]" if unit else "MAE")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_contributions(
    path: str | Path, factor: np.ndarray, normalised: np.ndarray, atom_index: int,
    energy: np.ndarray | None = None, title: str = "", unit: str = "eV",
) -> Path:  # fmt: skip
    """Heatmap (atom × displacement factor) and lines of normalised contributions [F, N]; the
    moving atom ``atom_index`` drawn thick; the model energy on a twin axis when given."""
    plt = pyplot()
    path = _prepare(path)
    c = np.asarray(normalised, dtype=np.float64)
    f = np.asarray(factor, dtype=np.float64)
    fig, (axh, axl) = plt.subplots(1, 2, figsize=(10, 3.8), dpi=130)
    lim = float(np.abs(c).max()) or 1.0
    lo = 0.0 if c.min() >= 0 else -lim
    im = axh.imshow(
        c.T,
        aspect="auto",
        origin="lower",
        extent=(f[0], f[-1], -0.5, c.shape[1] - 0.5),
        cmap="viridis" if lo == 0 else "coolwarm",
        vmin=lo,
        vmax=lim,
        interpolation="nearest",
    )
    axh.axhline(atom_index, color="w", lw=0.6, ls=":")
    axh.set_xlabel("displacement factor (× stable distance to centroid)")
    axh.set_ylabel("atom")
    fig.colorbar(im, ax=axh, label="normalised contribution")
    for v in range(c.shape[1]):
        moving = v == atom_index
        axl.plot(
            f,
            c[:, v],
            color="C3" if moving else "0.6",
            lw=2.0 if moving else 0.7,
            label=f"moving atom {v}" if moving else None,
            zorder=3 if moving else 2,
        )
    axl.axvline(1.0, color="0.5", ls="--", lw=1)
    axl.set_xlabel("displacement factor")
    axl.set_ylabel("normalised contribution")
    if energy is not None:
        ax2 = axl.twinx()
        ax2.plot(f, energy, color="C0", lw=1, ls="-.", label="energy")
        ax2.set_ylabel(f"energy [{unit}]" if unit else "energy", color="C0")
    axl.legend(fontsize=8, loc="upper left")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)
