"""Figures of crystal densities: projections or slices with atoms, strips, sweeps, histograms.

docs/density_vae.md §1 (plot scaling), §7 (nearest-neighbour histogram) and §8
(interpolation strips, single-dimension sweeps with difference maps); Hoffmann et al. Figs. 6–12.

A density M [n,n,n] (raw Eq. 1 values, Å⁻³ weighted by Z) is shown either as

- a **projection** along one axis, P = Σ_k M_ijk · h (units Z·Å⁻²), so every atom of the cell is
  visible whatever its depth, or
- a **slice** through the box centre multiplied by the plot scale σ³(2π)^{3/2} (§1), so an isolated
  atom's peak reads Z.

Atoms are drawn at their positions projected onto the same plane (Å, box frame): recovered atoms as
filled dots in Jmol colours labelled with the element, true (reference) atoms as open circles.
Difference maps (§8) use a diverging colour map symmetric about zero. Every figure is written
atomically (matplotlib Agg backend, temporary file then rename).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deepatoms.analysis.plots import pyplot, save_figure

__all__ = [
    "atom_arrays",
    "density_image",
    "plot_density",
    "plot_evaluation",
    "plot_nn_histogram",
    "plot_panels",
    "plot_strip",
    "plot_sweep",
]

_AXES = "xyz"


def atom_arrays(atoms: Any) -> tuple[np.ndarray, np.ndarray]:
    """(numbers [N] int, positions [N,3] Å) of an ``ase.Atoms``, a recovered-atoms object or a pair.

    Accepts anything with ``numbers`` and ``positions`` attributes (``ase.Atoms``, the recovery's
    ``RecoveredAtoms``, ``VoxelSample``) or a ``(numbers, positions)`` tuple.
    """
    if isinstance(atoms, tuple) and len(atoms) == 2:
        numbers, positions = atoms
    elif hasattr(atoms, "numbers") and hasattr(atoms, "positions"):
        numbers, positions = atoms.numbers, atoms.positions
    else:
        raise TypeError(
            f"cannot read atoms from a {type(atoms).__name__}; give an ase.Atoms, an object with "
            "numbers and positions, or a (numbers, positions) pair"
        )
    numbers = np.asarray(numbers, dtype=np.int64).reshape(-1)
    positions = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    if len(numbers) != len(positions):
        raise ValueError(f"{len(numbers)} atomic numbers but {len(positions)} positions")
    return numbers, positions


def density_image(density: np.ndarray, grid, axis: int = 2, mode: str = "projection") -> np.ndarray:
    """2-D image of ``density`` [n,n,n] seen along ``axis`` (0 = x, 1 = y, 2 = z).

    ``mode="projection"``: Σ along the axis × h (Z·Å⁻²). ``mode="slice"``: the central plane
    (index n // 2) × σ³(2π)^{3/2}, so an isolated atom peaks at Z. Rows of the result run along the
    first remaining axis, columns along the second (transpose it for ``imshow``).
    """
    from deepatoms.data.voxels.grid import plot_scale

    density = np.asarray(density, dtype=np.float64)
    if density.ndim != 3:
        raise ValueError(f"density must be a 3-D array [n,n,n], got shape {density.shape}")
    if axis not in (0, 1, 2):
        raise ValueError(f"axis must be 0, 1 or 2 (x, y, z), got {axis}")
    if mode == "projection":
        return density.sum(axis=axis) * grid.h
    if mode == "slice":
        return np.take(density, density.shape[axis] // 2, axis=axis) * plot_scale(grid)
    raise ValueError(f"mode must be 'projection' or 'slice', got {mode!r}")


def _draw(
    ax, image, grid, axis, atoms, reference, cmap, vmin, vmax, title, first_column,
):  # fmt: skip
    """One panel: the image over [0, box]² with atoms projected onto the plane."""
    from ase.data import chemical_symbols
    from ase.data.colors import jmol_colors

    p, q = (a for a in range(3) if a != axis)
    box = grid.box
    im = ax.imshow(
        image.T, origin="lower", extent=(0, box, 0, box), cmap=cmap, vmin=vmin, vmax=vmax
    )
    if reference is not None:
        _, pos = atom_arrays(reference)
        ax.scatter(pos[:, p], pos[:, q], s=46, facecolors="none", edgecolors="0.6", linewidths=1.0)
    if atoms is not None:
        numbers, pos = atom_arrays(atoms)
        colours = jmol_colors[np.clip(numbers, 0, len(jmol_colors) - 1)]
        ax.scatter(pos[:, p], pos[:, q], s=14, c=colours, edgecolors="k", linewidths=0.4)
        for z, r in zip(numbers, pos, strict=True):
            ax.annotate(
                chemical_symbols[z] if 0 < z < len(chemical_symbols) else "?",
                (r[p], r[q]), xytext=(2, 2), textcoords="offset points", fontsize=6,
                color="k" if cmap == "RdBu_r" else "w",
            )  # fmt: skip
    ax.set_xlim(0, box)
    ax.set_ylim(0, box)
    ax.set_xlabel(f"{_AXES[p]} [Å]", fontsize=7)
    if first_column:
        ax.set_ylabel(f"{_AXES[q]} [Å]", fontsize=7)
    ax.tick_params(labelsize=6)
    if title:
        ax.set_title(title, fontsize=8)
    return im


def plot_panels(
    rows: Sequence[Sequence[np.ndarray]], grid, path: str | Path,
    atoms: Sequence[Sequence[Any]] | None = None, reference: Sequence[Sequence[Any]] | None = None,
    titles: Sequence[Sequence[str]] | None = None, row_labels: Sequence[str] | None = None,
    diverging_rows: Sequence[int] = (), axis: int | Sequence[int] = 2, mode: str = "projection",
    suptitle: str = "",
) -> Path:  # fmt: skip
    """A table of density panels (one row per list in ``rows``), written as PNG to ``path``.

    ``atoms``, ``reference`` and ``titles`` follow the nesting of ``rows`` (None entries allowed);
    ``axis`` is the viewing axis of every panel or one per column.
    Ordinary rows share one colour scale from 0; rows listed in ``diverging_rows`` (difference
    maps) share a symmetric blue–red scale. Returns the path.
    """
    plt = pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not rows or not all(len(r) for r in rows):
        raise ValueError("plot_panels needs at least one non-empty row of densities")
    n_cols = max(len(r) for r in rows)
    col_axis = [axis] * n_cols if isinstance(axis, int) else list(axis)
    if len(col_axis) != n_cols:
        raise ValueError(f"{len(col_axis)} viewing axes for {n_cols} columns")
    images = [
        [density_image(d, grid, col_axis[j], mode) for j, d in enumerate(row)] for row in rows
    ]
    plain = [im for i, row in enumerate(images) if i not in diverging_rows for im in row]
    vmax = max((float(im.max()) for im in plain), default=1.0) or 1.0
    diff = [im for i, row in enumerate(images) if i in diverging_rows for im in row]
    dmax = max((float(np.abs(im).max()) for im in diff), default=1.0) or 1.0
    fig, axes = plt.subplots(
        len(rows), n_cols, figsize=(2.2 * n_cols + 0.9, 2.3 * len(rows) + 0.5), dpi=130,
        squeeze=False, layout="constrained",
    )  # fmt: skip
    unit = "Z·Å⁻²" if mode == "projection" else "Z (plot scale)"
    for i, row in enumerate(images):
        div = i in diverging_rows
        im = None
        for j in range(n_cols):
            ax = axes[i][j]
            if j >= len(row):
                ax.axis("off")
                continue
            im = _draw(
                ax, row[j], grid, col_axis[j],
                atoms[i][j] if atoms is not None and j < len(atoms[i]) else None,
                reference[i][j] if reference is not None and j < len(reference[i]) else None,
                "RdBu_r" if div else "magma", -dmax if div else 0.0, dmax if div else vmax,
                titles[i][j] if titles is not None and j < len(titles[i]) else "",
                j == 0 or not isinstance(axis, int),
            )  # fmt: skip
        if row_labels is not None and i < len(row_labels):
            axes[i][0].set_ylabel(f"{row_labels[i]}\n{axes[i][0].get_ylabel()}", fontsize=7)
        if im is not None:
            cb = fig.colorbar(im, ax=list(axes[i]), shrink=0.85, pad=0.01)
            cb.set_label(("Δ " if div else "") + unit, fontsize=7)
            cb.ax.tick_params(labelsize=6)
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    return save_figure(fig, path)


def plot_density(
    density: np.ndarray, grid, path: str | Path, atoms: Any = None, reference: Any = None,
    title: str = "", mode: str = "projection",
) -> Path:  # fmt: skip
    """One density seen along x, y and z (three panels) with its atoms; PNG at ``path``."""
    return plot_panels(
        [[density] * 3], grid, path, atoms=[[atoms] * 3], reference=[[reference] * 3],
        titles=[[f"along {a}" for a in _AXES]], axis=(0, 1, 2), mode=mode, suptitle=title,
    )  # fmt: skip


def plot_strip(
    densities: Sequence[np.ndarray], grid, path: str | Path, atoms: Sequence[Any] | None = None,
    titles: Sequence[str] | None = None, axis: int = 2, mode: str = "projection",
    suptitle: str = "",
) -> Path:  # fmt: skip
    """A row of densities (e.g. an interpolation A → B, §8) with their recovered atoms."""
    return plot_panels(
        [list(densities)], grid, path, atoms=None if atoms is None else [list(atoms)],
        titles=None if titles is None else [list(titles)], axis=axis, mode=mode,
        suptitle=suptitle,
    )  # fmt: skip


def plot_sweep(
    densities: Sequence[np.ndarray], reference: np.ndarray, values: Sequence[float], grid,
    path: str | Path, atoms: Sequence[Any] | None = None, label: str = "z", axis: int = 2,
    mode: str = "projection",
) -> Path:  # fmt: skip
    """A latent sweep (§8): decodes for each value (top) and their difference to ``reference``.

    ``reference`` is the unaltered decode; the bottom row shows M(value) − M(reference).
    """
    if len(densities) != len(values):
        raise ValueError(f"{len(densities)} densities but {len(values)} sweep values")
    diffs = [np.asarray(d, np.float64) - np.asarray(reference, np.float64) for d in densities]
    titles = [f"{label} = {v:.3g}" for v in values]
    return plot_panels(
        [list(densities), diffs], grid, path,
        atoms=None if atoms is None else [list(atoms), list(atoms)],
        titles=[titles, [f"Δ at {t}" for t in titles]], row_labels=["decoded", "difference"],
        diverging_rows=(1,), axis=axis, mode=mode,
    )  # fmt: skip


def plot_nn_histogram(
    distances: dict[str, np.ndarray],
    path: str | Path,
    bins: int = 40,
    max_distance: float | None = None,
    title: str = "nearest-neighbour distances",
) -> Path:
    """Normalised histograms of nearest-neighbour distances (Å), one per named set (§7)."""
    plt = pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {k: np.asarray(v, dtype=np.float64).reshape(-1) for k, v in distances.items()}
    finite = np.concatenate([a[np.isfinite(a)] for a in arrays.values()] + [np.zeros(0)])
    hi = max_distance or (float(finite.max()) if finite.size else 1.0) or 1.0
    edges = np.linspace(0.0, hi, bins + 1)
    fig, ax = plt.subplots(figsize=(4.6, 3.2), dpi=130)
    for name, a in arrays.items():
        a = a[np.isfinite(a)]
        if a.size:
            ax.hist(
                a, bins=edges, density=True, histtype="step", lw=1.4, label=f"{name} (n={a.size})"
            )
    ax.set_xlabel("nearest-neighbour distance [Å]")
    ax.set_ylabel("density")
    ax.set_title(title, fontsize=9)
    if any(a.size for a in arrays.values()):
        ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_evaluation(
    true_to_pred: np.ndarray, pred_to_true: np.ndarray, count_errors: np.ndarray,
    z_true: np.ndarray, z_pred: np.ndarray, path: str | Path, title: str = "",
) -> Path:  # fmt: skip
    """Evaluation summary (§7): distance histograms both ways, Δn histogram and a Z parity plot.

    Distances in Å (true → nearest predicted, predicted → nearest true); ``count_errors`` are
    n_pred − n_true per sample; ``z_true``/``z_pred`` the atomic numbers of matched pairs.
    """
    plt = pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (a1, a2, a3) = plt.subplots(1, 3, figsize=(11.0, 3.3), dpi=130)
    for name, d in (("true → predicted", true_to_pred), ("predicted → true", pred_to_true)):
        d = np.asarray(d, np.float64)
        d = d[np.isfinite(d)]
        if d.size:
            a1.hist(np.minimum(d, 3.0), bins=np.linspace(0, 3.0, 31), histtype="step", lw=1.4,
                    label=f"{name} (n={d.size})")  # fmt: skip
    a1.axvline(0.5, color="0.5", ls="--", lw=0.8)
    a1.set_xlabel("distance to nearest atom [Å] (clipped at 3)")
    a1.set_ylabel("atoms")
    if a1.get_legend_handles_labels()[0]:
        a1.legend(fontsize=6)
    dn = np.asarray(count_errors, dtype=np.int64)
    lo, hi = (int(dn.min()), int(dn.max())) if dn.size else (0, 0)
    a2.hist(dn, bins=np.arange(lo - 0.5, hi + 1.5), color="C0", alpha=0.8)
    a2.set_xlabel("n_predicted − n_true")
    a2.set_ylabel("samples")
    zt, zp = np.asarray(z_true, np.float64), np.asarray(z_pred, np.float64)
    if zt.size:
        top = float(max(zt.max(), zp.max())) + 2
        a3.plot([0, top], [0, top], color="0.5", lw=0.8)
        a3.scatter(zt, zp, s=6, alpha=0.4, lw=0)
    a3.set_xlabel("true Z")
    a3.set_ylabel("predicted Z (nearest, ≤ 0.5 Å)")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)
