"""Density figures (docs/density_vae.md §1 plot scale, §8 strips and sweeps)."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms

from deepatoms.data.voxels.grid import GridSpec, density
from deepatoms.density.images import (
    atom_arrays,
    density_image,
    plot_density,
    plot_evaluation,
    plot_nn_histogram,
    plot_strip,
    plot_sweep,
)

GRID = GridSpec(n=10, box=10.0, sigma=1.0)
PNG = b"\x89PNG"


def _one_atom(z: int = 8) -> np.ndarray:
    # voxel centre (4 + 0.5)·h along x, y; z exactly at the central slice index 5
    return density([z], [[4.5, 4.5, 5.5]], GRID)


def test_slice_peak_reads_z_and_projection_integrates_to_z():
    m = _one_atom(8)
    sl = density_image(m, GRID, axis=2, mode="slice")
    assert sl.shape == (10, 10)
    assert sl[4, 4] == pytest.approx(8.0, rel=1e-6)  # §1: plot scale makes the peak Z
    proj = density_image(m, GRID, axis=0)
    assert proj.sum() * GRID.h**2 == pytest.approx(8.0, rel=1e-3)  # Σ M h³ = Z
    with pytest.raises(ValueError, match="'projection' or 'slice'"):
        density_image(m, GRID, mode="max")
    with pytest.raises(ValueError, match="3-D array"):
        density_image(m[0], GRID)


def test_atom_arrays_accepts_atoms_objects_and_pairs():
    a = Atoms("OH", positions=[[1, 2, 3], [4, 5, 6]])
    z, p = atom_arrays(a)
    assert z.tolist() == [8, 1] and p[1].tolist() == [4, 5, 6]
    z, p = atom_arrays(([6], [[0.0, 0.0, 1.0]]))
    assert z.tolist() == [6] and p.shape == (1, 3)
    with pytest.raises(TypeError, match=r"ase\.Atoms"):
        atom_arrays("O")


def test_figures_are_written_as_png(tmp_path):
    m = _one_atom(8)
    atoms = ([8], [[4.5, 4.5, 5.5]])
    paths = [
        plot_density(m, GRID, tmp_path / "one.png", atoms=atoms, reference=atoms, title="O"),
        plot_strip([m, 0.5 * m, np.zeros_like(m)], GRID, tmp_path / "strip.png",
                   atoms=[atoms, None, ([], np.zeros((0, 3)))], titles=["A", "mid", "B"]),
        plot_sweep([m, 2 * m], m, [-1.0, 1.0], GRID, tmp_path / "sweep.png", label="z[3]"),
        plot_nn_histogram({"real": [1.0, 2.0, 2.5], "sampled": [], "x": [np.inf]},
                          tmp_path / "nn.png"),
        plot_evaluation([0.1, 0.7], [0.2], [0, 1, -1], [8, 26], [8, 25], tmp_path / "ev.png"),
    ]  # fmt: skip
    for p in paths:
        assert p.read_bytes()[:4] == PNG
    assert sorted(f.name for f in tmp_path.iterdir()) == sorted(p.name for p in paths)
    with pytest.raises(ValueError, match="2 densities but 1 sweep values"):
        plot_sweep([m, m], m, [1.0], GRID, tmp_path / "bad.png")
