"""Density M and species matrix S on the voxel grid (docs/density_vae.md §1)."""

import math

import numpy as np
import pytest

from deepatoms.data.voxels.grid import (
    GridSpec,
    density,
    density_reference,
    distance_to_box,
    plot_scale,
    species,
    species_reference,
)

G30 = GridSpec()


def _point_density(numbers, positions, points, sigma=1.0):
    """Eq. 1 evaluated at arbitrary points [p, 3] (no cut-off)."""
    d2 = ((points[:, None, :] - np.asarray(positions)[None]) ** 2).sum(-1)
    z = np.asarray(numbers, dtype=float)
    return (z * np.exp(-d2 / (2 * sigma**2))).sum(1) / (sigma**3 * (2 * math.pi) ** 1.5)


def test_grid_geometry_and_serialisation():
    g = GridSpec(n=4, box=2.0)
    assert g.h == 0.5
    np.testing.assert_allclose(g.axis(), [0.25, 0.75, 1.25, 1.75])
    c = g.centres()
    assert c.shape == (4, 4, 4, 3)
    np.testing.assert_allclose(c[1, 2, 3], [0.75, 1.25, 1.75])
    assert GridSpec.from_dict(g.as_dict()) == g
    assert G30.cutoff == 4.0
    with pytest.raises(ValueError, match="unknown grid keys"):
        GridSpec.from_dict({"n": 4, "spacing": 1})
    with pytest.raises(ValueError, match="n must be an int"):
        GridSpec(n=1)
    with pytest.raises(ValueError, match="sigma must be a positive number"):
        GridSpec(sigma=0.0)


def test_single_atom_integrates_to_z_and_peaks_at_z():
    # An atom at the voxel centre nearest the box centre: Σ M h³ = Z, peak = 0.063494·Z.
    x = G30.axis()[15]
    m = density([26], [[x, x, x]], G30)
    assert m.dtype == np.float32 and m.shape == (30, 30, 30)
    assert abs(m.sum() * G30.h**3 - 26.0) < 26e-5
    assert m[15, 15, 15] == pytest.approx(0.063494 * 26, rel=1e-5)
    assert m[15, 15, 15] * plot_scale(G30) == pytest.approx(26.0, rel=1e-6)
    assert m.argmax() == np.ravel_multi_index((15, 15, 15), m.shape)


def test_density_matches_brute_force_and_respects_cutoff():
    rng = np.random.default_rng(3)
    z = rng.integers(1, 95, 25)
    pos = rng.uniform(-6.0, 16.0, (25, 3))
    g = GridSpec(n=12, box=10.0)
    np.testing.assert_allclose(density(z, pos, g), density_reference(z, pos, g), atol=1e-6)
    # an atom 4.01 Å from the box face contributes nothing; one 3.99 Å away does
    assert density([8], [[-4.01, 5, 5]], g).max() == 0.0
    assert density([8], [[-3.99, 5, 5]], g).max() > 0.0
    np.testing.assert_allclose(distance_to_box(np.array([[-3, 12, 5], [5, 5, 5]]), 10.0), [
        math.sqrt(13), 0.0])  # fmt: skip


def test_density_of_rotated_atom_equals_rotated_voxel_centres():
    # M of a rotated structure at x equals M of the original at Rᵀ(x − c₀) + c₀.
    angle = 0.7
    rot = np.array(
        [[math.cos(angle), -math.sin(angle), 0], [math.sin(angle), math.cos(angle), 0], [0, 0, 1]]
    )
    c0 = np.full(3, 5.0)
    r = np.array([[6.3, 4.1, 5.7], [3.2, 5.5, 4.4]])
    z = [8, 29]
    m_rot = density(z, (r - c0) @ rot.T + c0, G30).reshape(-1)
    pts = (G30.centres().reshape(-1, 3) - c0) @ rot + c0
    np.testing.assert_allclose(m_rot, _point_density(z, r, pts), rtol=1e-5, atol=1e-7)


def test_species_voxel_counts_at_centre_corner_and_on_average():
    h = G30.h
    # at a voxel centre: offsets with i²+j²+k² ≤ 2.25 → 1 + 6 + 12 = 19 voxels
    s = species([6], [[15.5 * h, 15.5 * h, 15.5 * h]], G30)
    assert s.dtype == np.int16 and (s == 6).sum() == 19 and set(np.unique(s)) == {0, 6}
    # at a voxel corner: the 8 voxels sharing it (next shell at 2.75 h² > 2.25 h²)
    assert (species([6], [[15 * h, 15 * h, 15 * h]], G30) == 6).sum() == 8
    # generic positions: (4/3)π(0.5)³/h³ = 14.137 voxels on average
    rng = np.random.default_rng(0)
    counts = [(species([1], [rng.uniform(3, 7, 3)], G30) > 0).sum() for _ in range(400)]
    assert abs(np.mean(counts) - 4 / 3 * math.pi * 0.125 / h**3) < 0.5


def test_species_nearer_atom_wins_and_matches_brute_force():
    h = G30.h
    # two atoms 0.6 Å apart along x: each voxel goes to the nearer one
    a, b = np.array([15.5 * h, 15.5 * h, 15.5 * h]), np.array([15.5 * h + 0.6, 15.5 * h, 15.5 * h])
    s = species([8, 1], [a, b], G30)
    assert s[15, 15, 15] == 8 and s[17, 15, 15] == 1  # x = 0.667 Å from a, 0.067 Å from b
    assert s[16, 15, 15] == 1  # 0.333 Å from a, 0.267 Å from b
    rng = np.random.default_rng(1)
    for g in (GridSpec(n=30), GridSpec(n=15), GridSpec(n=15, species_nearest_voxel=True)):
        z = rng.integers(1, 95, 60)
        pos = rng.uniform(-0.5, 10.5, (60, 3))
        np.testing.assert_array_equal(species(z, pos, g), species_reference(z, pos, g))


def test_coarse_grid_nearest_voxel_option():
    g = GridSpec(n=15)  # h = 0.667 Å: the half voxel diagonal 0.577 Å exceeds 0.5 Å
    corner = [[7 * g.h + 1e-6] * 3]  # just inside voxel (7, 7, 7), at its corner
    assert (species([3], corner, g) > 0).sum() == 0
    g2 = GridSpec(n=15, species_nearest_voxel=True)
    s = species([3], corner, g2)
    assert (s > 0).sum() == 1 and s[7, 7, 7] == 3  # the voxel containing the atom
    # an atom outside the box (0.63 Å from the nearest centre) claims no voxel
    assert (species([3], [[-0.3, 5, 5]], g2) > 0).sum() == 0


def test_empty_and_bad_inputs():
    assert density([], np.zeros((0, 3)), G30).sum() == 0
    assert species([], [], G30).sum() == 0
    with pytest.raises(ValueError, match="2 atomic numbers for 1 positions"):
        density([1, 2], [[0, 0, 0]], G30)
    with pytest.raises(ValueError, match=r"shape \[n, 3\]"):
        species([1], [[0, 0]], G30)
