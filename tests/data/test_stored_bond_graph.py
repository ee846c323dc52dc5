"""A fixed bond graph travels with the data: storage, subsets, joins, batches and clear errors."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import molecule

from deepatoms.data.dataset import append_dataset, read_dataset, write_dataset
from deepatoms.data.edge_store import StoredEdges, attach_edges
from deepatoms.data.graph import collate
from deepatoms.data.neighbors import GraphSpec, build_edges
from deepatoms.data.packed import PackedSystems

BONDS = GraphSpec(kind="bonds")
META = {"units": {"energy": "eV"}, "source": "test", "provenance": {}, "bond_types": ["a", "b"]}


def _pack() -> PackedSystems:
    """Water (2 O–H bonds, type 0) and methane (4 C–H bonds, type 1)."""
    pack = PackedSystems.from_atoms([molecule("H2O"), molecule("CH4")], {"energy": [1.0, 2.0]})
    halves = [([0, 0], [1, 2], 0), ([0, 0, 0, 0], [1, 2, 3, 4], 1)]
    idx, types, offsets = [], [], [0]
    for i, j, t in halves:
        idx.append(np.array([i + j, j + i]))
        types.append(np.full(2 * len(i), t, np.int8))
        offsets.append(offsets[-1] + 2 * len(i))
    pack.edges = StoredEdges(
        BONDS,
        np.array(offsets),
        np.concatenate(idx, axis=1),
        np.zeros((offsets[-1], 3), np.int64),
        {"bond_type": np.concatenate(types)},
    )
    return pack


def test_bonds_spec_ignores_cutoff_and_round_trips():
    spec = GraphSpec.from_config({"kind": "bonds", "cutoff": 4.0})
    assert spec.cutoff is None and spec == BONDS
    assert GraphSpec.from_config(spec.to_config()) == spec
    assert spec.precomputed and spec.stored_only


def test_dataset_file_keeps_the_bond_graph(tmp_path):
    path = tmp_path / "bonds.h5"
    write_dataset(path, _pack(), META)
    data, meta = read_dataset(path)
    assert meta["bond_types"] == ["a", "b"]
    assert data.edges.spec == BONDS
    np.testing.assert_array_equal(data.edges.offsets, [0, 4, 12])
    np.testing.assert_array_equal(data.edges.attrs["bond_type"], [0] * 4 + [1] * 8)
    # appending joins the graphs, with local indices per system
    append_dataset(path, _pack())
    data, _ = read_dataset(path)
    assert len(data) == 4
    np.testing.assert_array_equal(data.edges.offsets, [0, 4, 12, 16, 24])


def test_batches_gather_bonds_with_global_indices_and_types():
    batch = collate(_pack(), [1, 0], BONDS)
    # methane first (atoms 0–4), water second (atoms 5–7); first halves, then mirrors
    np.testing.assert_array_equal(
        batch.edge_index.numpy(),
        [[0, 0, 0, 0, 5, 5, 1, 2, 3, 4, 6, 7], [1, 2, 3, 4, 6, 7, 0, 0, 0, 0, 5, 5]],
    )
    assert batch.mirrored_edges
    np.testing.assert_array_equal(
        batch.edge_attr["bond_type"].long().numpy(), [1] * 4 + [0] * 2 + [1] * 4 + [0] * 2
    )
    # only the bonded distances, identical under scaling of the topology
    d = batch.distances().numpy()
    assert np.all((d > 0.9) & (d < 1.2))


def test_missing_bond_graph_is_a_clear_error():
    plain = PackedSystems.from_atoms([molecule("H2O")])
    with pytest.raises(ValueError, match="datagen scaled"):
        collate(plain, None, BONDS)
    with pytest.raises(ValueError, match="datagen scaled"):
        build_edges(plain.positions, plain.offsets, plain.cell, plain.pbc, BONDS)
    with pytest.raises(ValueError, match="has none"):
        attach_edges(plain, BONDS)


def test_cannot_join_packs_with_and_without_bonds():
    with pytest.raises(ValueError, match="stored bond graph"):
        PackedSystems.concatenate(
            [_pack(), PackedSystems.from_atoms([molecule("H2O")], {"energy": [0.0]})]
        )
