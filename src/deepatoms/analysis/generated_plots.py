"""Figures of the generated-molecule evaluation (docs/gschnet.md §11), PNG via matplotlib Agg.

* :func:`plot_distributions` — pair-distance and bonded-angle densities, generated vs QM9, one
  panel per distribution with its W₁ and total-variation distance;
* :func:`plot_statistics` — mean atoms, bonds and rings per molecule, generated vs QM9 (bars);
* :func:`plot_histograms` — overlaid value histograms (gaps in eV, RMSDs in Å) with an optional
  threshold line.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from deepatoms.analysis.plots import pyplot, save_figure

__all__ = ["plot_distributions", "plot_histograms", "plot_statistics"]


def _prepare(path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def plot_distributions(path: str | Path, panels: Mapping[str, Mapping[str, Any]]) -> Path:
    """Densities of generated vs reference samples, one panel per entry of ``panels``:
    ``{title: {"centres", "generated", "reference", "w1", "tv", "unit"}}`` (as returned by
    ``generated_eval.distribution_distance`` plus the unit of x)."""
    plt = pyplot()
    path = _prepare(path)
    n = max(1, len(panels))
    cols = 2 if n > 1 else 1
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5.0 * cols, 3.4 * rows), dpi=120, squeeze=False)
    for ax, (title, d) in zip(axes.ravel(), panels.items(), strict=False):
        x = np.asarray(d["centres"])
        ax.plot(x, d["reference"], color="k", lw=1.2, label=f"QM9 (n={d.get('n_reference', 0)})")
        ax.plot(
            x, d["generated"], color="C1", lw=1.2, label=f"generated (n={d.get('n_generated', 0)})"
        )
        support = np.flatnonzero((np.asarray(d["reference"]) + np.asarray(d["generated"])) > 0)
        if len(support):
            pad = 2 * (x[1] - x[0]) if len(x) > 1 else 0.0
            ax.set_xlim(x[support[0]] - pad, x[support[-1]] + pad)
        ax.set_title(f"{title}: W1 = {d['w1']:.3g} {d.get('unit', '')}, TV = {d['tv']:.3f}")
        ax.set_xlabel(d.get("unit", ""))
        ax.set_ylabel(f"density (1/{d.get('unit', '')})")
        ax.legend(fontsize=8)
    for ax in axes.ravel()[len(panels) :]:
        ax.set_visible(False)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_statistics(
    path: str | Path, generated: Mapping[str, float], reference: Mapping[str, float]
) -> Path:
    """Grouped bars of per-molecule means (atoms C N O F H, bonds B1–B3, rings R3–R6)."""
    plt = pyplot()
    path = _prepare(path)
    keys = ["C", "N", "O", "F", "H", "B1", "B2", "B3", "R3", "R4", "R5", "R6"]
    x = np.arange(len(keys))
    fig, ax = plt.subplots(figsize=(7.5, 3.4), dpi=120)
    ax.bar(x - 0.2, [reference.get(k, 0.0) for k in keys], 0.4, color="0.4", label="QM9")
    ax.bar(x + 0.2, [generated.get(k, 0.0) for k in keys], 0.4, color="C1", label="generated")
    ax.set_xticks(x, keys)
    ax.set_ylabel("mean per molecule")
    ax.set_yscale("symlog", linthresh=0.1)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_histograms(
    path: str | Path,
    samples: Mapping[str, np.ndarray],
    xlabel: str,
    threshold: float | None = None,
    bins: int = 40,
) -> Path:
    """Overlaid normalised histograms of several samples (legend = keys with their sizes) and an
    optional vertical threshold line."""
    plt = pyplot()
    path = _prepare(path)
    fig, ax = plt.subplots(figsize=(5.2, 3.6), dpi=120)
    finite = {k: np.asarray(v, float)[np.isfinite(v)] for k, v in samples.items()}
    every = np.concatenate([v for v in finite.values() if len(v)] or [np.zeros(1)])
    edges = np.histogram_bin_edges(every, bins=bins)
    for i, (name, v) in enumerate(finite.items()):
        if len(v):
            ax.hist(
                v,
                bins=edges,
                density=True,
                histtype="step",
                lw=1.4,
                color=f"C{i}",
                label=f"{name} (n={len(v)})",
            )
    if threshold is not None:
        ax.axvline(threshold, color="k", ls="--", lw=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)
