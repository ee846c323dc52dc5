"""Stored per-structure edges give the same batches as edges built per batch."""

from __future__ import annotations

import numpy as np
import torch
from ase.build import bulk

from deepatoms.data.edge_store import attach_edges, precompute_edges
from deepatoms.data.graph import collate
from deepatoms.data.neighbors import GraphSpec
from deepatoms.data.packed import PackedSystems


def _pack() -> PackedSystems:
    structures = []
    for k, (name, kind, a) in enumerate(
        [("Cu", "fcc", 3.6), ("NaCl", "rocksalt", 5.6), ("Fe", "bcc", 2.9), ("Mg", "hcp", 3.2)]
    ):
        atoms = bulk(name, kind, a=a)
        atoms.rattle(0.05, seed=k)
        structures.append(atoms)
    return PackedSystems.from_atoms(structures, {"y": np.arange(4.0)})


def test_gathered_edges_equal_edges_built_per_batch():
    data = _pack()
    spec = GraphSpec("cutoff", 4.0)
    data.edges = precompute_edges(data.positions, data.offsets, data.cell, data.pbc, spec)
    for systems in ([0, 1, 2, 3], [3, 1], [2]):
        stored = collate(data, systems, spec)
        plain = data.subset(systems)
        plain.edges = None
        built = collate(plain, None, spec)
        assert stored.mirrored_edges and built.mirrored_edges

        # same directed edges (as sets of (receiver, sender, shift)) and mirrored halves
        def rows(b):
            return sorted(map(tuple, torch.cat([b.edge_index.T, b.edge_shift.long()], 1).tolist()))

        assert rows(stored) == rows(built)
        half = stored.edge_index.shape[1] // 2
        np.testing.assert_array_equal(
            stored.edge_index[:, half:], stored.edge_index[:, :half].flip(0)
        )
        np.testing.assert_array_equal(stored.edge_shift[half:], -stored.edge_shift[:half])


class _StoredCutoff(GraphSpec):
    """A cutoff graph that asks to be stored, like Voronoi graphs (no Voronoi needed here)."""

    @property
    def precomputed(self) -> bool:
        return True


def test_attach_is_lazy_and_cached():
    data = _pack()
    assert attach_edges(data, GraphSpec("cutoff", 4.0)).edges is None  # built per batch
    spec = _StoredCutoff("cutoff", 4.5)
    first = attach_edges(data, spec).edges
    assert first is not None and len(first) == len(data)
    other = _pack()  # same geometry, another object (e.g. the next CV fold): a cache hit
    assert attach_edges(other, spec).edges is first
    moved = _pack()
    moved.positions = moved.positions + 0.01
    assert attach_edges(moved, spec).edges is not first
