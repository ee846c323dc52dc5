"""k-nearest-neighbour crystal graphs (Paper A, K = 24; docs/property_models.md §7)."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk, molecule

from deepatoms.data.neighbors import GraphSpec, build_edges

KNN = GraphSpec("knn", None, k=24)


def _edges(atoms, spec=KNN):
    return build_edges(
        atoms.positions, np.array([0, len(atoms)]), atoms.cell.array[None], atoms.pbc[None], spec
    )


def _neighbour_distances(atoms, spec=KNN) -> list[np.ndarray]:
    el = _edges(atoms, spec)
    i, j = el.edge_index
    vec = atoms.positions[j] - atoms.positions[i] + el.edge_shift @ atoms.cell.array
    d = np.linalg.norm(vec, axis=1)
    return [np.sort(d[i == a]) for a in range(len(atoms))]


def test_fcc_includes_the_whole_tied_shell():
    """fcc shells: 12, 6, 24 neighbours; K = 24 ends inside the third shell, so all 42 count."""
    d = _neighbour_distances(bulk("Cu", "fcc", a=3.6))
    assert len(d[0]) == 12 + 6 + 24
    a = 3.6
    np.testing.assert_allclose(d[0][:12], a / np.sqrt(2))
    np.testing.assert_allclose(d[0][12:18], a)
    np.testing.assert_allclose(d[0][18:], a * np.sqrt(1.5))
    strict = _neighbour_distances(
        bulk("Cu", "fcc", a=3.6), GraphSpec("knn", None, k=24, knn_strict=True)
    )
    assert len(strict[0]) == 24


def test_graph_is_independent_of_the_unit_cell():
    """Primitive, cubic and 2x2x1 cells give every atom the same neighbour distances."""
    prim = bulk("NaCl", "rocksalt", a=5.6)
    ref = _neighbour_distances(prim)
    for atoms in (bulk("NaCl", "rocksalt", a=5.6, cubic=True), prim.repeat((2, 2, 1))):
        for a, d in zip(atoms.numbers, _neighbour_distances(atoms), strict=True):
            k = 0 if a == prim.numbers[0] else 1
            np.testing.assert_allclose(d, ref[k], atol=1e-9)


def test_rattled_crystal_gets_the_k_nearest_and_their_ties():
    """k nearest by brute force over images; more only for exact ties (an atom's own images at
    ±n are always equidistant)."""
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2)
    atoms.rattle(0.05, seed=1)
    el = _edges(atoms)
    assert not el.mirrored
    counts = np.bincount(el.edge_index[0], minlength=len(atoms))
    assert (counts >= 24).all()
    # no non-neighbour is closer than the farthest chosen neighbour (brute force over images)
    i, j = el.edge_index
    cell = atoms.cell.array
    d = np.linalg.norm(atoms.positions[j] - atoms.positions[i] + el.edge_shift @ cell, axis=1)
    shifts = np.array(np.meshgrid(*[range(-2, 3)] * 3)).reshape(3, -1).T
    for a in range(len(atoms)):
        all_d = np.linalg.norm(
            atoms.positions[None, :, :] + (shifts @ cell)[:, None, :] - atoms.positions[a], axis=2
        ).ravel()
        all_d = np.sort(all_d[all_d > 1e-9])
        mine = np.sort(d[i == a])
        np.testing.assert_allclose(mine[:24], all_d[:24], atol=1e-9)
        assert (mine[24:] <= all_d[23] + 1e-4).all()


def test_molecules_get_their_nearest_atoms():
    water = molecule("CH3OH")
    strict = _edges(water, GraphSpec("knn", None, k=3, knn_strict=True))
    assert (np.bincount(strict.edge_index[0], minlength=len(water)) == 3).all()
    el = _edges(water, GraphSpec("knn", None, k=3))  # methyl H's tie: one atom gets 4
    counts = np.bincount(el.edge_index[0], minlength=len(water))
    assert (counts >= 3).all() and counts.sum() > 3 * len(water)
    small = _edges(water, GraphSpec("knn", None, k=50))  # fewer atoms than k: all others
    assert (np.bincount(small.edge_index[0]) == len(water) - 1).all()


def test_bad_k_is_refused():
    with pytest.raises(ValueError, match="k >= 1"):
        GraphSpec("knn", None, k=0)
