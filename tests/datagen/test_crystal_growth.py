"""Infinite Crystal and Crystal Growth generators (docs/vimpnn.md §8): EMT minimum at s = 1,
training points, 12 metallic edges per atom, growth on vacant fcc sites, stable vs unstable."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from deepatoms.data.dataset import read_dataset
from deepatoms.data.scaling import scale_atoms
from deepatoms.datagen.growth import (
    FCC_NEIGHBOURS,
    SEED_SITES,
    base_clusters,
    generate_growth,
    grow_sites,
)
from deepatoms.datagen.infinite_crystal import (
    _emt_energy_per_atom,
    emt_lattice_constant,
    generate_infinite_crystal,
    training_indices,
)


def test_emt_lattice_constant_is_the_minimum():
    res = emt_lattice_constant("Cu")
    a0 = res["a"]
    assert 3.55 < a0 < 3.62
    e0 = _emt_energy_per_atom("Cu", a0)
    assert e0 == pytest.approx(res["energy_per_atom"])
    assert e0 < _emt_energy_per_atom("Cu", a0 - 1e-3) and e0 < _emt_energy_per_atom("Cu", a0 + 1e-3)


def test_training_points_nearest_the_coarse_grid():
    np.testing.assert_array_equal(training_indices(61, 8), [0, 9, 17, 26, 34, 43, 51, 60])
    grid = np.linspace(0.9, 1.5, 20000)
    idx = training_indices(20000, 8)
    target = np.linspace(0.9, 1.5, 8)
    np.testing.assert_array_equal(idx, [np.argmin(abs(grid - t)) for t in target])


@pytest.fixture(scope="module")
def crystal(tmp_path_factory):
    out = tmp_path_factory.mktemp("cr") / "crystal.h5"
    summary = generate_infinite_crystal(out, points=61, train_points=8, seed=2)
    return summary, *read_dataset(out)


def test_crystal_curves_have_their_minimum_at_s1_and_8_training_points(crystal):
    summary, data, meta = crystal
    sp = data.system_props
    assert summary["complete"] and len(data) == 122 and np.all(data.n_atoms == 4)
    grid = np.linspace(0.9, 1.5, 61)
    for group, el in enumerate(["Al", "Cu"]):
        mine = sp["group"] == group
        assert set(sp["element"][mine]) == {el}
        np.testing.assert_array_equal(sp["scale"][mine], grid)
        assert sp["scale"][mine][np.argmin(sp["energy"][mine])] == pytest.approx(1.0)
        train = sp["scale"][mine][sp["split"][mine] == "train"]
        np.testing.assert_allclose(train, grid[[0, 9, 17, 26, 34, 43, 51, 60]])
        assert (sp["split"][mine] == "val").sum() == 26 and (
            sp["split"][mine] == "test"
        ).sum() == 27
        a0 = summary["lattice_constants"][el]
        np.testing.assert_allclose(sp["lattice_constant"][mine], grid * a0)
        np.testing.assert_allclose(data.cell[mine][:, 0, 0], grid * a0)
    assert meta["bond_types"] == ["metallic"]
    assert meta["provenance"]["lattice_constants"]["Al"]["a"] == summary["lattice_constants"]["Al"]
    assert np.abs(data.atom_props["forces"]).max() < 1e-10  # zero by symmetry


def test_crystal_cells_have_12_edges_per_atom(crystal, tmp_path):
    _, data, _ = crystal
    e = data.edges
    assert np.all(np.diff(e.offsets) == 48)
    for k in (0, 60, 61):
        block = e.edge_index[0, e.offsets[k] : e.offsets[k + 1]]
        np.testing.assert_array_equal(np.bincount(block), [12] * 4)
    summary = generate_infinite_crystal(
        tmp_path / "prim.h5",
        elements=["Cu"],
        points=5,
        train_points=2,
        cell="primitive",
        lattice="fixed",
    )
    prim, _ = read_dataset(tmp_path / "prim.h5")
    assert summary["lattice_constants"] == {"Cu": 3.61}
    assert np.all(prim.n_atoms == 1) and np.all(np.diff(prim.edges.offsets) == 12)


def test_growth_adds_atoms_on_vacant_fcc_sites_next_to_the_cluster():
    assert len(SEED_SITES) == 14 and len({tuple(s) for s in SEED_SITES.tolist()}) == 14
    assert len(FCC_NEIGHBOURS) == 12 and np.all(np.abs(FCC_NEIGHBOURS).sum(1) == 2)
    sites = grow_sites(100, np.random.default_rng(3))
    assert sites.shape == (114, 3)
    np.testing.assert_array_equal(sites[:14], SEED_SITES)
    assert np.all(sites.sum(1) % 2 == 0)  # fcc lattice sites
    assert len({tuple(s) for s in sites.tolist()}) == 114  # no duplicates
    a = 4.0
    for k in range(14, 114):
        d = np.linalg.norm((sites[:k] - sites[k]) * a / 2, axis=1)
        assert d.min() == pytest.approx(a / np.sqrt(2))  # ≥ 1 nearest neighbour, no overlap


def test_base_clusters_are_consecutive_prefixes_of_each_run():
    bases = base_clusters(["Al", "Cu"], runs=2, steps=10, min_atoms=16, max_atoms=20, seed=0)
    assert len(bases) == 2 * 2 * 5
    assert [b["group"] for b in bases] == list(range(20))
    first = bases[:5]
    assert [len(b["sites"]) for b in first] == [16, 17, 18, 19, 20]
    for small, big in itertools.pairwise(first):
        np.testing.assert_array_equal(big["sites"][:-1], small["sites"])
    again = base_clusters(["Cu"], runs=1, steps=10, min_atoms=16, max_atoms=20, seed=0)
    np.testing.assert_array_equal(again[0]["sites"], bases[10]["sites"])  # same run, same sites


@pytest.fixture(scope="module")
def growth_sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("cg")
    kw = {"elements": ["Al", "Cu"], "runs": 2, "steps": 5, "min_atoms": 15, "max_atoms": 19}
    stable = generate_growth(root / "stable.h5", **kw)
    unstable = generate_growth(
        root / "unstable.h5", unstable=True, unstable_runs=1, scales="0.9,1.2", **kw
    )
    return (
        (stable, *read_dataset(root / "stable.h5")),
        (unstable, *read_dataset(root / "unstable.h5")),
    )


def test_stable_growth_set(growth_sets):
    (summary, data, meta), _ = growth_sets
    sp = data.system_props
    assert summary["n_bases"] == len(data) == 2 * 2 * 5
    np.testing.assert_array_equal(data.n_atoms, [15, 16, 17, 18, 19] * 4)
    np.testing.assert_array_equal(sp["group"], np.arange(20))
    np.testing.assert_array_equal(sp["run"], [0] * 5 + [1] * 5 + [0] * 5 + [1] * 5)
    np.testing.assert_array_equal(sp["scale"], np.ones(20))
    assert sorted(np.unique(sp["split"], return_counts=True)[1].tolist()) == [4, 4, 12]
    assert np.all(np.isfinite(sp["energy"])) and not np.any(data.pbc)
    # bonds: the nearest-neighbour shell at a/√2
    a0 = summary["lattice_constants"]["Al"]
    e = data.edges
    for k in (0, 4):
        pos = data.get_atoms(k).positions
        ei = e.edge_index[:, e.offsets[k] : e.offsets[k + 1]]
        np.testing.assert_allclose(np.linalg.norm(pos[ei[0]] - pos[ei[1]], axis=1), a0 / 2**0.5)
        d = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
        assert ei.shape[1] == int(np.sum(np.isclose(d, a0 / 2**0.5)))
    assert meta["bond_types"] == ["metallic"]


def test_unstable_clusters_are_the_stable_ones_of_the_first_runs(growth_sets):
    (_, stable, _), (summary, data, _) = growth_sets
    sp = data.system_props
    assert summary["n_bases"] == 2 * 5 and len(data) == 20
    assert np.all(sp["run"] == 0)
    np.testing.assert_array_equal(sp["scale"], [0.9, 1.2] * 10)
    for k in range(len(data)):
        base = stable.get_atoms(int(sp["group"][k]))
        back = scale_atoms(data.get_atoms(k), 1 / sp["scale"][k])
        np.testing.assert_allclose(back.positions, base.positions, atol=1e-10)
        ks = int(sp["group"][k])
        e, es = data.edges, stable.edges
        np.testing.assert_array_equal(
            e.edge_index[:, e.offsets[k] : e.offsets[k + 1]],
            es.edge_index[:, es.offsets[ks] : es.offsets[ks + 1]],
        )
    # all scalings of one base cluster in one part
    for g in np.unique(sp["group"]):
        assert len(set(sp["split"][sp["group"] == g])) == 1


def test_growth_split_by_run(tmp_path):
    generate_growth(tmp_path / "byrun.h5", elements=["Cu"], runs=5, steps=2, split_by="run")
    data, _ = read_dataset(tmp_path / "byrun.h5")
    sp = data.system_props
    for run in range(5):
        assert len(set(sp["split"][sp["run"] == run])) == 1
    assert sorted(set(sp["split"])) == ["test", "train", "val"]
