"""Voronoi quotient graphs (docs/position_free_crystals.md §1)."""

from __future__ import annotations

import numpy as np
import pytest

from deepatoms.data.voronoi import VoronoiEdges, voronoi_edges

FOUR_PI = 4 * np.pi
A_PEROV = 4.116


def bits(e: VoronoiEdges, k: int) -> str:
    return "".join(str(int(b)) for b in e.symmetry[k])


def facet_records(e: VoronoiEdges, atom: int, decimals: int = 6) -> list[tuple]:
    """Sorted (distance, area, Ω, label) of the facets of ``atom``'s cell, rounded for sets."""
    rows = np.flatnonzero(e.edge_index[0] == atom)
    return sorted(
        (
            round(float(e.distance[k]), decimals),
            round(float(e.area[k]), decimals),
            round(float(e.solid_angle[k]), decimals),
            bits(e, k),
        )
        for k in rows
    )


def check_facets(e: VoronoiEdges, atom: int, expected: list[tuple], atol: float = 1e-4) -> None:
    """Compare an atom's facets with expected (distance, area, Ω, label) rows, any order."""
    got = facet_records(e, atom)
    want = sorted(expected)
    assert [g[3] for g in got] == [w[3] for w in want]
    np.testing.assert_allclose([g[:3] for g in got], [w[:3] for w in want], atol=atol)


def edge_set(e: VoronoiEdges) -> set[tuple]:
    return {
        (int(i), int(j), *map(int, s))
        for (i, j), s in zip(e.edge_index.T, e.edge_shift, strict=True)
    }


def check_mirrored(e: VoronoiEdges) -> None:
    """Edge e + E/2 is edge e reversed, with the same facet quantities."""
    n_e = e.num_edges
    assert n_e % 2 == 0
    h = n_e // 2
    np.testing.assert_array_equal(e.edge_index[:, h:], e.edge_index[::-1, :h])
    np.testing.assert_array_equal(e.edge_shift[h:], -e.edge_shift[:h])
    for arr in (e.distance, e.area, e.solid_angle, e.symmetry, e.measures):
        np.testing.assert_array_equal(arr[h:], arr[:h])
    assert len(edge_set(e)) == n_e  # every directed edge (facet seen from one side) exactly once
    assert e.edge_index.dtype == np.int64 and e.edge_shift.dtype == np.int64


def perovskite() -> tuple[np.ndarray, np.ndarray]:
    frac = np.array([[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    return A_PEROV * frac, A_PEROV * np.eye(3)


def hcp() -> tuple[np.ndarray, np.ndarray]:
    cell = np.array([[1, 0, 0], [-0.5, np.sqrt(3) / 2, 0], [0, 0, np.sqrt(8 / 3)]])
    return np.array([[1 / 3, 2 / 3, 0.25], [2 / 3, 1 / 3, 0.75]]) @ cell, cell


def rattled(seed: int = 0, scale: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    pos, cell = perovskite()
    cell = cell + rng.normal(scale=0.2, size=(3, 3))
    return pos + rng.normal(scale=scale, size=pos.shape), cell


def bond_vectors(e: VoronoiEdges, pos: np.ndarray, cell: np.ndarray) -> np.ndarray:
    i, j = e.edge_index
    return pos[j] - pos[i] + e.edge_shift @ cell


# -- spec worked examples -------------------------------------------------------------------------
def test_simple_cubic():
    a = 2.5
    e = voronoi_edges(np.zeros((1, 3)), a * np.eye(3))
    assert e.num_edges == 6 and e.n_facets_per_atom().tolist() == [6]
    np.testing.assert_allclose(e.solid_angle, 2 * np.pi / 3, atol=1e-9)
    np.testing.assert_allclose(e.area, a * a, atol=1e-9)
    np.testing.assert_allclose(e.distance, a, atol=1e-12)
    assert {bits(e, k) for k in range(6)} == {"101011010"}
    assert {tuple(s) for s in np.abs(e.edge_shift)} == {(1, 0, 0), (0, 1, 0), (0, 0, 1)}
    check_mirrored(e)


def test_bcc_hexagons_and_squares_and_solid_angle_cutoff():
    a = 3.3
    pos = a * np.array([[0, 0, 0], [0.5, 0.5, 0.5]])
    e = voronoi_edges(pos, a * np.eye(3))
    assert e.n_facets_per_atom().tolist() == [14, 14]
    # truncated octahedron: hexagons 3√3/16 a² (0.3248 a²), squares a²/8 (0.1250 a²)
    hexagon = (
        round(np.sqrt(3) / 2 * a, 4),
        round(3 * np.sqrt(3) / 16 * a * a, 4),
        1.2368,
        "110111101",
    )
    square = (round(a, 4), round(a * a / 8, 4), 0.4454, "101011010")
    for atom in (0, 1):
        check_facets(e, atom, [hexagon] * 8 + [square] * 6)
    # hexagons connect the two atoms, squares connect each atom to its own images
    hexes = e.solid_angle > 1.0
    assert np.all(e.edge_index[0, hexes] != e.edge_index[1, hexes])
    assert np.all(e.edge_index[0, ~hexes] == e.edge_index[1, ~hexes])
    check_mirrored(e)
    for cut in (0.45, 0.8, 1.2):  # any cut between 0.4454 and 1.2368 sr keeps only the hexagons
        kept = voronoi_edges(pos, a * np.eye(3), omega_cut=cut)
        assert kept.n_facets_per_atom().tolist() == [8, 8]
        np.testing.assert_allclose(kept.solid_angle, 1.2368, atol=1e-4)
        check_mirrored(kept)
    assert voronoi_edges(pos, a * np.eye(3), omega_cut=0.2).n_facets_per_atom().tolist() == [14, 14]


def test_fcc_primitive_twelve_self_loops():
    a = 3.6
    cell = 0.5 * a * np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0.0]])
    e = voronoi_edges(np.zeros((1, 3)), cell)
    assert e.num_edges == 12 and np.all(e.edge_index == 0)
    assert len({tuple(s) for s in e.edge_shift}) == 12
    np.testing.assert_allclose(e.solid_angle, np.pi / 3, atol=1e-9)
    np.testing.assert_allclose(e.area, 0.1768 * a * a, rtol=2e-4)
    np.testing.assert_allclose(e.distance, a / np.sqrt(2), atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(e.edge_shift @ cell, axis=1), a / np.sqrt(2))
    assert {bits(e, k) for k in range(12)} == {"100011000"}
    np.testing.assert_allclose(e.measures[0], [1, 1, 0.5443, 0.7071, 0.5443] * 2, atol=1e-3)
    check_mirrored(e)


def test_ideal_hcp_trapezoids_and_rhombi():
    pos, cell = hcp()
    e = voronoi_edges(pos, cell)
    assert e.n_facets_per_atom().tolist() == [12, 12]
    np.testing.assert_allclose(e.solid_angle, np.pi / 3, atol=1e-9)
    np.testing.assert_allclose(e.area, 0.3536, atol=1e-4)
    np.testing.assert_allclose(e.distance, 1.0, atol=1e-12)
    trapezoid = [1, 0.7105, 0.7342, 0.5696, 0.5625, 1, 0.7105, 0.7342, 0.5696, 0.5625]
    for atom in (0, 1):
        rows = np.flatnonzero(e.edge_index[0] == atom)
        own = rows[e.edge_index[1, rows] == atom]  # in-plane neighbours: the atom's own images
        other = rows[e.edge_index[1, rows] != atom]
        assert len(own) == 6 and len(other) == 6
        assert {bits(e, k) for k in own} == {"000010000"}
        assert {bits(e, k) for k in other} == {"100011000"}
        np.testing.assert_allclose(e.measures[own], np.tile(trapezoid, (6, 1)), atol=1e-3)
        assert np.all(e.edge_shift[own, 2] == 0)  # in the basal plane
    check_mirrored(e)


def test_fcc_and_hcp_differ_only_with_labels():
    fcc = voronoi_edges(np.zeros((1, 3)), 0.5 * np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0.0]]))
    hcp_e = voronoi_edges(*hcp())
    assert set(fcc.n_facets_per_atom()) == set(hcp_e.n_facets_per_atom()) == {12}
    assert {bits(fcc, k) for k in range(fcc.num_edges)} == {"100011000"}
    assert {bits(hcp_e, k) for k in range(hcp_e.num_edges)} == {"100011000", "000010000"}


def test_cubic_basno3():
    pos, cell = perovskite()
    e = voronoi_edges(pos, cell)
    assert e.n_atoms == 5 and e.num_edges == 60
    assert e.n_facets_per_atom().tolist() == [12, 6, 14, 14, 14]
    ba_o = (2.9105, 2.9949, 1.0472, "100011000")
    sn_o = (2.058, 4.2354, 2.0944, "101011010")
    o_o = (2.9105, 1.4974, 0.5236, "000010000")
    check_facets(e, 0, [ba_o] * 12, atol=1e-3)  # spec values have 4 significant digits
    check_facets(e, 1, [sn_o] * 6, atol=1e-3)
    for o in (2, 3, 4):
        check_facets(e, o, [sn_o] * 2 + [o_o] * 8 + [ba_o] * 4, atol=1e-3)
    species = np.array(["Ba", "Sn", "O", "O", "O"])
    pairs = {tuple(sorted(species[list(ij)])) for ij in e.edge_index.T}
    assert pairs == {("Ba", "O"), ("O", "Sn"), ("O", "O")}
    check_mirrored(e)


# -- general properties ----------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_solid_angles_sum_to_four_pi(seed):
    pos, cell = rattled(seed)
    e = voronoi_edges(pos, cell, omega_cut=0.0)
    sums = np.bincount(e.edge_index[0], weights=e.solid_angle, minlength=e.n_atoms)
    np.testing.assert_allclose(sums, FOUR_PI, atol=1e-6)
    check_mirrored(e)
    # each facet lies in the half-space beyond the bisecting plane, so it subtends less than 2π
    assert np.all(e.solid_angle < 2 * np.pi) and np.all(e.area > 0)
    np.testing.assert_allclose(e.distance, np.linalg.norm(bond_vectors(e, pos, cell), axis=1))


def test_solid_angle_filter_is_applied_and_symmetric():
    pos, cell = rattled(3, scale=0.3)
    full = voronoi_edges(pos, cell, omega_cut=0.0)
    cut = voronoi_edges(pos, cell, omega_cut=0.2)
    assert np.any(full.solid_angle < 0.2), "the test structure should have small facets"
    assert np.all(cut.solid_angle >= 0.2)
    big = {
        (int(i), int(j), *map(int, s))
        for (i, j), s, om in zip(full.edge_index.T, full.edge_shift, full.solid_angle, strict=True)
        if om >= 0.2
    }
    assert edge_set(cut) == big
    check_mirrored(cut)


def test_invariance_under_rotation_translation_and_scaling():
    pos, cell = rattled(4)
    ref = voronoi_edges(pos, cell)
    rng = np.random.default_rng(4)
    rot, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    for p2, c2, scale in (
        (pos @ rot.T, cell @ rot.T, 1.0),
        (pos + np.array([0.3, -1.7, 2.2]), cell, 1.0),
        (2.5 * pos, 2.5 * cell, 2.5),
    ):
        e = voronoi_edges(p2, c2)
        assert edge_set(e) == edge_set(ref)
        order_ref = np.lexsort(np.vstack([ref.edge_shift.T, ref.edge_index])[::-1])
        order = np.lexsort(np.vstack([e.edge_shift.T, e.edge_index])[::-1])
        np.testing.assert_array_equal(e.symmetry[order], ref.symmetry[order_ref])
        np.testing.assert_allclose(e.measures[order], ref.measures[order_ref], atol=1e-9)
        np.testing.assert_allclose(e.solid_angle[order], ref.solid_angle[order_ref], atol=1e-9)
        np.testing.assert_allclose(e.distance[order], scale * ref.distance[order_ref], rtol=1e-9)
        np.testing.assert_allclose(e.area[order], scale**2 * ref.area[order_ref], rtol=1e-8)


def test_supercell_is_eightfold_cover():
    pos, cell = rattled(5)
    n = len(pos)
    ref = voronoi_edges(pos, cell)
    tiles = np.array([(a, b, c) for a in range(2) for b in range(2) for c in range(2)])
    super_pos = np.concatenate([pos + t @ cell for t in tiles])  # atom t·n + i is a copy of i
    sup = voronoi_edges(super_pos, 2 * cell)
    assert sup.num_edges == 8 * ref.num_edges
    for t in range(8):
        for i in range(n):
            assert facet_records(sup, t * n + i) == facet_records(ref, i)
    # senders map back to the same original atoms with the same bond vectors
    vec_ref = {
        (int(i), int(j), *np.round(v, 6))
        for (i, j), v in zip(ref.edge_index.T, bond_vectors(ref, pos, cell), strict=True)
    }
    vec_sup = {
        (int(i) % n, int(j) % n, *np.round(v, 6))
        for (i, j), v in zip(sup.edge_index.T, bond_vectors(sup, super_pos, 2 * cell), strict=True)
    }
    assert vec_sup == vec_ref
    check_mirrored(sup)


def test_skewed_cell_gives_same_graph():
    a = 3.6
    cell = 0.5 * a * np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0.0]])
    skew = np.array([[1, 0, 0], [3, 1, 0], [-2, 4, 1]]) @ cell  # same lattice, unimodular change
    e = voronoi_edges(np.array([[0.1, 0.2, 0.3]]), skew)
    assert e.num_edges == 12 and np.all(e.edge_index == 0)
    vecs = e.edge_shift @ skew
    ref = voronoi_edges(np.zeros((1, 3)), cell)
    assert {tuple(v) for v in np.round(vecs, 6)} == {
        tuple(v) for v in np.round(ref.edge_shift @ cell, 6)
    }
    np.testing.assert_allclose(e.area, 0.1768 * a * a, rtol=2e-4)


def test_positions_outside_the_cell_keep_their_shifts_consistent():
    pos, cell = rattled(6)
    moved = pos + np.array([[2, -1, 0], [0, 0, 3], [1, 1, 1], [0, 0, 0], [-3, 0, 2]]) @ cell
    e = voronoi_edges(moved, cell)
    ref = voronoi_edges(pos, cell)
    vec = np.round(bond_vectors(e, moved, cell), 6)
    vec_ref = np.round(bond_vectors(ref, pos, cell), 6)
    assert {(int(i), int(j), *v) for (i, j), v in zip(e.edge_index.T, vec, strict=True)} == {
        (int(i), int(j), *v) for (i, j), v in zip(ref.edge_index.T, vec_ref, strict=True)
    }


def test_cut_above_every_facet_gives_empty_graph():
    e = voronoi_edges(np.zeros((1, 3)), np.eye(3), omega_cut=2.1)  # sc facets have Ω = 2.0944
    assert e.edge_index.shape == (2, 0) and e.edge_shift.shape == (0, 3)
    assert e.symmetry.shape == (0, 9) and e.measures.shape == (0, 10)
    assert e.n_facets_per_atom().tolist() == [0]


def test_symmetry_off_gives_zeros_and_same_edges():
    pos, cell = perovskite()
    e = voronoi_edges(pos, cell, symmetry=False)
    assert e.symmetry.shape == (60, 9) and e.measures.shape == (60, 10)
    assert not e.symmetry.any() and not e.measures.any()
    assert edge_set(e) == edge_set(voronoi_edges(pos, cell))


def test_matches_pymatgen_voronoinn_on_rattled_structures():
    pmg = pytest.importorskip("pymatgen.core")
    from pymatgen.analysis.local_env import VoronoiNN

    for seed in (0, 1):
        pos, cell = rattled(seed, scale=0.2)
        s = pmg.Structure(
            pmg.Lattice(cell), ["Ba", "Sn", "O", "O", "O"], pos, coords_are_cartesian=True
        )
        vnn = VoronoiNN(tol=0, cutoff=12.0, allow_pathological=True, compute_adj_neighbors=False)
        e = voronoi_edges(s.cart_coords, s.lattice.matrix, omega_cut=0.0)
        frac = s.frac_coords
        for i in range(len(s)):
            poly = vnn.get_voronoi_polyhedra(s, i)
            facets = [f for f in poly.values() if f["area"] > 1e-6]
            rows = np.flatnonzero((e.edge_index[0] == i) & (e.area > 1e-6))
            assert len(facets) == len(rows) >= 6
            theirs = {}
            for f in facets:
                j = int(f["site"].index)
                shift = tuple(np.round(f["site"].frac_coords - frac[j]).astype(int))
                theirs[(j, *shift)] = (f["area"], f["solid_angle"])
            ours = {
                (int(e.edge_index[1, k]), *map(int, e.edge_shift[k])): (e.area[k], e.solid_angle[k])
                for k in rows
            }
            assert set(ours) == set(theirs)
            for key, (area, omega) in ours.items():
                assert area == pytest.approx(theirs[key][0], rel=1e-6, abs=1e-9)
                assert omega == pytest.approx(theirs[key][1], rel=1e-6, abs=1e-9)


def pymatgen_facets(pos: np.ndarray, cell: np.ndarray, atom: int) -> dict:
    """(sender, shift) → (area Å², Ω sr) of one atom's facets from pymatgen's VoronoiNN."""
    pmg = pytest.importorskip("pymatgen.core")
    from pymatgen.analysis.local_env import VoronoiNN

    s = pmg.Structure(pmg.Lattice(cell), ["Si"] * len(pos), pos, coords_are_cartesian=True)
    vnn = VoronoiNN(tol=0, cutoff=25.0, allow_pathological=True, compute_adj_neighbors=False)
    out = {}
    for f in vnn.get_voronoi_polyhedra(s, atom).values():
        if f["area"] > 1e-6:
            j = int(f["site"].index)
            shift = np.round(f["site"].frac_coords - s.frac_coords[j]).astype(int)
            out[(j, *map(int, shift))] = (f["area"], f["solid_angle"])
    return out


def test_radius_growth_is_certified(monkeypatch):
    import deepatoms.data.voronoi as vmod

    radii = []
    images = vmod._images

    def recording(pos, lat, volume, radius):
        radii.append(radius)
        return images(pos, lat, volume, radius)

    monkeypatch.setattr(vmod, "_images", recording)
    cell = np.diag([9.0, 10.0, 11.0]) + 0.5 * np.eye(3)[[1, 2, 0]]
    pos = np.array([[1.0, 1.0, 1.0], [2.1, 1.2, 0.9]])  # a dimer in a large box: long cells
    e = voronoi_edges(pos, cell, omega_cut=0.0)
    assert len(radii) >= 2 and radii[-1] > radii[0]  # the first radius was not enough
    sums = np.bincount(e.edge_index[0], weights=e.solid_angle, minlength=2)
    np.testing.assert_allclose(sums, FOUR_PI, atol=1e-6)
    for atom in (0, 1):
        theirs = pymatgen_facets(pos, cell, atom)
        rows = np.flatnonzero((e.edge_index[0] == atom) & (e.area > 1e-6))
        ours = {(int(e.edge_index[1, k]), *map(int, e.edge_shift[k])): k for k in rows}
        assert set(ours) == set(theirs)
        for key, k in ours.items():
            np.testing.assert_allclose([e.area[k], e.solid_angle[k]], theirs[key], rtol=1e-6)


def test_invalid_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match=r"\[n, 3\]"):
        voronoi_edges(np.zeros((3, 2)), np.eye(3))
    with pytest.raises(ValueError, match="zero volume"):
        voronoi_edges(np.zeros((1, 3)), np.diag([1.0, 1.0, 0.0]))
    with pytest.raises(ValueError, match="coincides"):
        voronoi_edges(np.array([[0.1, 0.1, 0.1], [0.1, 0.1, 0.1]]), np.eye(3))
    with pytest.raises(ValueError, match="omega_cut"):
        voronoi_edges(np.zeros((1, 3)), np.eye(3), omega_cut=-1.0)
    with pytest.raises(ValueError, match=r"\[3, 3\]"):
        voronoi_edges(np.zeros((1, 3)), np.eye(2))


def test_layered_cell_with_vacuum_grows_past_a_flat_image_set():
    """A sheet with 20 Å of vacuum: the first image radius holds only in-plane images (a flat
    point set Qhull rejects); the radius must grow instead of failing (an MP-20 structure did)."""
    cell = np.array([[2.5, 0.0, 0.0], [-1.25, 2.5 * np.sqrt(3) / 2, 0.0], [0.0, 0.0, 20.0]])
    pos = np.array([[0.0, 0.0, 5.0], [0.0, 1.4434, 5.0]])  # two atoms in one plane
    edges = voronoi_edges(pos, cell, omega_cut=0.0)
    omega = np.bincount(edges.edge_index[0], weights=edges.solid_angle, minlength=2)
    np.testing.assert_allclose(omega, 4 * np.pi, rtol=1e-6)
    assert (edges.edge_shift[:, 2] != 0).any()  # the images across the vacuum bound the cells
