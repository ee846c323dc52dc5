"""Edges computed once per structure and kept with the data (Voronoi graphs).

Distance-cutoff and k-nearest lists are cheap and built per batch. A periodic Voronoi
tessellation with facet symmetry labels costs milliseconds per structure, so training and
prediction on Voronoi graphs compute every structure's edges once (:func:`precompute_edges`)
and batches gather them (:meth:`StoredEdges.gather`), keeping the batch-level mirrored order
(all first halves, then all second halves).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from deepatoms.data.neighbors import EdgeList, GraphSpec, build_edges
from deepatoms.data.packed import PackedSystems

#: Structures per call of the edge builder while precomputing (bounds the work per progress tick).
CHUNK = 64


@dataclass
class StoredEdges:
    """Per-system mirrored edge lists (local atom indices) for a pack of systems.

    System k owns the edges ``offsets[k]:offsets[k+1]`` of ``edge_index`` [2, E] (local
    receiver, sender), ``edge_shift`` [E, 3] and ``attrs``; within a system the first half is
    one direction of every pair and the second half its mirror.
    """

    spec: GraphSpec
    offsets: np.ndarray
    edge_index: np.ndarray
    edge_shift: np.ndarray
    attrs: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def subset(self, systems: Sequence[int] | np.ndarray) -> StoredEdges:
        """Edges of ``systems`` (in that order)."""
        systems = np.asarray(systems, dtype=np.int64)
        idx = self._edge_index_of(systems)
        counts = self.offsets[systems + 1] - self.offsets[systems]
        return StoredEdges(
            self.spec,
            np.concatenate([[0], np.cumsum(counts)]),
            self.edge_index[:, idx],
            self.edge_shift[idx],
            {k: v[idx] for k, v in self.attrs.items()},
        )

    @classmethod
    def concatenate(cls, parts: Sequence[StoredEdges]) -> StoredEdges:
        """Join the edges of several packs (same graph spec and attribute names), in order."""
        parts = list(parts)
        if not parts:
            raise ValueError("nothing to concatenate")
        spec, names = parts[0].spec, set(parts[0].attrs)
        for p in parts[1:]:
            if p.spec != spec or set(p.attrs) != names:
                raise ValueError(
                    f"cannot join stored edges of graph {p.spec} (attributes {sorted(p.attrs)}) "
                    f"with {spec} ({sorted(names)})"
                )
        counts = np.concatenate([np.diff(p.offsets) for p in parts])
        return cls(
            spec,
            np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
            np.concatenate([p.edge_index for p in parts], axis=1),
            np.concatenate([p.edge_shift for p in parts]),
            {k: np.concatenate([p.attrs[k] for p in parts]) for k in parts[0].attrs},
        )

    def _edge_index_of(self, systems: np.ndarray) -> np.ndarray:
        starts = self.offsets[systems]
        counts = self.offsets[systems + 1] - starts
        block = np.repeat(np.cumsum(counts) - counts, counts)
        return np.repeat(starts, counts) + (np.arange(int(counts.sum())) - block)

    def gather(self, atom_offsets: np.ndarray) -> EdgeList:
        """The mirrored batch edge list of all systems, atoms numbered by ``atom_offsets``."""
        counts = np.diff(self.offsets)
        half = counts // 2
        base = np.repeat(atom_offsets[:-1], counts)  # atom offset of each edge's system
        pos = np.arange(len(base)) - np.repeat(self.offsets[:-1], counts)  # index within system
        first = pos < np.repeat(half, counts)
        ei = self.edge_index + base
        order = np.concatenate([np.flatnonzero(first), np.flatnonzero(~first)])
        return EdgeList(
            ei[:, order],
            self.edge_shift[order],
            True,
            {k: v[order] for k, v in self.attrs.items()},
        )


def precompute_edges(
    positions: np.ndarray,
    offsets: np.ndarray,
    cell: np.ndarray,
    pbc: np.ndarray,
    spec: GraphSpec,
    progress: Callable[[int, int], None] | None = None,
) -> StoredEdges:
    """Build and store the edges of every system of a pack (see :class:`StoredEdges`).

    ``progress(done, total)`` is called after each chunk of structures.
    """
    n_sys = len(offsets) - 1
    idx_parts, shift_parts, counts = [], [], []
    attr_parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, n_sys, CHUNK):
        stop = min(start + CHUNK, n_sys)
        for k in range(start, stop):
            s, e = offsets[k], offsets[k + 1]
            el = build_edges(
                positions[s:e], np.array([0, e - s]), cell[k : k + 1], pbc[k : k + 1], spec
            )
            if not el.mirrored:
                raise ValueError(f"graph kind {spec.kind!r} is not mirrored; nothing to store")
            idx_parts.append(el.edge_index)
            shift_parts.append(el.edge_shift)
            counts.append(el.edge_index.shape[1])
            for name, v in el.attrs.items():
                attr_parts.setdefault(name, []).append(v)
        if progress is not None:
            progress(stop, n_sys)
    if not counts:
        return StoredEdges(spec, np.zeros(1, np.int64), np.zeros((2, 0), np.int64),
                           np.zeros((0, 3), np.int64), {})  # fmt: skip
    return StoredEdges(
        spec,
        np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        np.concatenate(idx_parts, axis=1),
        np.concatenate(shift_parts).astype(np.int64),
        {k: np.concatenate(v) for k, v in attr_parts.items()},
    )


def attach_edges(
    data: PackedSystems, spec: GraphSpec, progress: Callable[[int, int], None] | None = None
) -> PackedSystems:
    """``data`` with its edges precomputed when ``spec`` is worth it (Voronoi), else as is.

    Returns the same object (edges stored in ``data.edges``); nothing is recomputed when edges
    for the same ``spec`` are already attached.
    """
    if not spec.precomputed:
        return data
    if data.edges is not None and getattr(data.edges, "spec", None) == spec:
        return data
    if spec.stored_only:
        have = getattr(data.edges, "spec", None)
        raise ValueError(
            f"graph kind {spec.kind!r} needs the bond graph stored with the data, but "
            + ("the data has none" if have is None else f"the data stores a {have.kind!r} graph")
            + ": make the dataset with `deepatoms datagen scaled|crystal|growth` (or "
            "deepatoms.data.bonds), or train with another graph kind (--set graph.kind=cutoff)"
        )
    key = (spec, _fingerprint(data))
    if key not in _CACHE:
        edges = precompute_edges(data.positions, data.offsets, data.cell, data.pbc, spec, progress)
        while len(_CACHE) >= CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = edges
    data.edges = _CACHE[key]
    return data


#: Stored edges of the last few packs, reused within a process (e.g. the folds of a
#: cross-validation read the same dataset again and again).
CACHE_SIZE = 4
_CACHE: dict[tuple, StoredEdges] = {}


def _fingerprint(data: PackedSystems) -> str:
    """Digest of everything the edges depend on (geometry, not species or labels)."""
    h = hashlib.blake2b(digest_size=16)
    for arr in (data.offsets, data.positions, data.cell, data.pbc):
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


__all__ = ["StoredEdges", "attach_edges", "precompute_edges"]
