"""Single-cell and repeated-lattice samples (docs/density_vae.md §2)."""

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from deepatoms.data.voxels.grid import GridSpec, density, species
from deepatoms.data.voxels.samples import (
    max_side_filter,
    random_rotation,
    repeated_lattice,
    single_cell,
)

G = GridSpec()


def _rocksalt(a=5.0):
    return bulk("NaCl", "rocksalt", a=a, cubic=True)  # 8 atoms, cubic cell of side a


def test_random_rotation_is_proper_and_seeded():
    r = random_rotation(np.random.default_rng(5))
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(r) == pytest.approx(1.0)
    np.testing.assert_array_equal(r, random_rotation(np.random.default_rng(5)))
    # uniform on SO(3): E[R] = 0 (mean of 2000 draws close to zero)
    rng = np.random.default_rng(0)
    mean = np.mean([random_rotation(rng) for _ in range(2000)], axis=0)
    assert np.abs(mean).max() < 0.05


def test_single_cell_centres_cell_and_wraps_sites():
    atoms = Atoms("Cu2", scaled_positions=[[0.25, 0.25, 0.25], [1.25, -0.25, 0.5]], cell=[4, 5, 6],
                  pbc=True)  # fmt: skip
    s = single_cell(atoms, G, rotate=False)
    # cell centre (2, 2.5, 3) → (5, 5, 5): fractional (0.25,0.25,0.25) → (4, 3.75, 3.5)
    np.testing.assert_allclose(s.positions, [[4.0, 3.75, 3.5], [4.0, 6.25, 5.0]])
    np.testing.assert_allclose(s.translation, [3.0, 2.5, 2.0])
    assert s.n_dropped == 0 and not s.clipped and s.regime == "single"
    np.testing.assert_array_equal(s.density, density([29, 29], s.positions, G))
    np.testing.assert_array_equal(s.species, species([29, 29], s.positions, G))
    c = single_cell(atoms, G, rotate=False, centre="centroid")
    np.testing.assert_allclose(c.positions.mean(axis=0), [5, 5, 5])


def test_single_cell_drops_and_counts_atoms_outside_the_box():
    # a 12 Å cubic cell: sites at fractional 0.95 land at 5 + 0.45·12 = 10.4 Å (outside)
    atoms = Atoms("OH2", scaled_positions=[[0.5, 0.5, 0.5], [0.95, 0.5, 0.5], [0.5, 0.1, 0.5]],
                  cell=[12, 12, 12], pbc=True)  # fmt: skip
    s = single_cell(atoms, G, rotate=False)
    assert s.n_dropped == 1 and s.clipped
    np.testing.assert_array_equal(s.numbers, [8, 1])
    np.testing.assert_allclose(s.positions, [[5, 5, 5], [5, 0.2, 5]])
    # M is built from the kept atoms only (the paper: M from S's atoms)
    np.testing.assert_array_equal(s.density, density([8, 1], s.positions, G))


def test_single_cell_rotation_accounting_and_reproducibility():
    atoms = bulk("Ti", "hcp", a=2.95, c=4.68) * (2, 2, 2)
    for seed in range(5):
        s = single_cell(atoms, G, np.random.default_rng(seed))
        assert len(s.numbers) + s.n_dropped == len(atoms)
        assert np.all((s.positions >= 0) & (s.positions < G.box))
        # box positions map back onto the (wrapped) sites of the cell
        back = s.to_crystal_frame(s.positions)
        frac = np.linalg.solve(atoms.cell.array.T, back.T).T
        site = np.mod(atoms.get_scaled_positions(), 1.0)
        d = np.abs(frac[:, None, :] - site[None]).max(-1).min(1)
        assert d.max() < 1e-9
        again = single_cell(atoms, G, np.random.default_rng(seed))
        np.testing.assert_array_equal(s.density, again.density)
        np.testing.assert_array_equal(s.rotation, again.rotation)
    a = single_cell(atoms, G, np.random.default_rng(0)).rotation
    b = single_cell(atoms, G, np.random.default_rng(1)).rotation
    assert not np.allclose(a, b)
    with pytest.raises(ValueError, match="needs a numpy Generator"):
        single_cell(atoms, G)


def test_repeated_lattice_aligned_counts_and_integral():
    s = repeated_lattice(_rocksalt(5.0), G, aligned=True)
    # lattice coordinates 0, 2.5, 5, 7.5 Å per axis inside [0, 10): 4³ = 64 atoms
    assert len(s.numbers) == 64 and s.n_dropped == 0 and s.regime == "repeated"
    np.testing.assert_array_equal(np.sort(np.unique(s.numbers)), [11, 17])
    np.testing.assert_array_equal(s.rotation, np.eye(3))
    # periodic images within the cut-off contribute: Σ M h³ = Σ Z per cell · 8 cells = 896
    assert s.density.sum() * G.h**3 == pytest.approx(896.0, rel=1e-3)
    np.testing.assert_array_equal(s.species, species(s.numbers, s.positions, G))


def test_repeated_lattice_random_is_a_rotated_shifted_lattice():
    atoms = _rocksalt(5.64)
    s = repeated_lattice(atoms, G, np.random.default_rng(7), aligned=False)
    assert np.all((s.positions >= 0) & (s.positions < G.box))
    back = s.to_crystal_frame(s.positions)
    frac = np.linalg.solve(atoms.cell.array.T, back.T).T
    site = atoms.get_scaled_positions()
    diff = frac[:, None, :] - site[None]
    err = np.abs(diff - np.round(diff)).max(-1).min(1)  # lattice translation of some site
    assert err.max() < 1e-9
    # the box holds ~ volume × number density atoms (1000 Å³ · 8 / 5.64³ = 44.6)
    assert 30 <= len(s.numbers) <= 60
    again = repeated_lattice(atoms, G, np.random.default_rng(7))
    np.testing.assert_array_equal(s.density, again.density)


def test_max_side_filter_and_flat_cells():
    assert max_side_filter(_rocksalt(5.0))
    assert not max_side_filter(_rocksalt(10.0))
    assert max_side_filter(_rocksalt(10.0), limit=10.5)
    with pytest.raises(ValueError, match="no 3-D cell"):
        single_cell(Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]]), G, rotate=False)


def test_brute_force_samples_equal_vectorised():
    atoms = _rocksalt(5.64)
    g = GridSpec(n=16)
    a = single_cell(atoms, g, np.random.default_rng(1))
    b = single_cell(atoms, g, np.random.default_rng(1), brute_force=True)
    np.testing.assert_allclose(a.density, b.density, atol=1e-6)
    np.testing.assert_array_equal(a.species, b.species)
    c = repeated_lattice(atoms, g, np.random.default_rng(1))
    d = repeated_lattice(atoms, g, np.random.default_rng(1), brute_force=True)
    np.testing.assert_allclose(c.density, d.density, atol=1e-5)
    np.testing.assert_array_equal(c.species, d.species)


def test_real_structures_integrate_to_sum_z_for_atoms_away_from_faces():
    # issue acceptance: Σ M h³ = Σ Z within 0.5 % for the atoms inside the box (here: more than
    # 3 Å from every face, so at most 3 × 0.135 % of an atom's Gaussian lies outside)
    from deepatoms.data.voxels.crystal_sets import load_crystals

    crystals = load_crystals(["prototypes"], progress=False).filter_max_side(10.0).atoms[:60]
    total_m = total_z = 0.0
    for k, atoms in enumerate(crystals):
        s = single_cell(atoms, G, np.random.default_rng(k))
        far = np.all((s.positions > 3.0) & (s.positions < G.box - 3.0), axis=1)
        if not far.any():
            continue
        m = density(s.numbers[far], s.positions[far], G).sum() * G.h**3
        assert m == pytest.approx(s.numbers[far].sum(), rel=5e-3)
        total_m, total_z = total_m + m, total_z + s.numbers[far].sum()
    assert total_z > 0 and 0.998 < total_m / total_z <= 1.0
