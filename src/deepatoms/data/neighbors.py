"""Neighbour lists for batches of systems.

Edges are directed (receiver i, sender j): messages flow j → i and the edge vector is
r_ij = r_j − r_i + S·cell with an integer cell shift S (DESIGN.md, core types).

Builders (``specs/property-models.md`` §7):

* molecules (no periodic axis): all ordered pairs i ≠ j, optionally within a cutoff;
* periodic systems: all pairs and images within a cutoff, through ``vesin``.

Self-pairs (i, i, S = 0) are never produced; images of an atom itself (S ≠ 0) are ordinary
neighbours. Every builder here returns a *mirrored* list: the second half of the edges is the
first half with receiver and sender swapped and the shift negated. Models whose filters depend
only on |r_ij| use this to evaluate each filter once per pair.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import vesin


@dataclass(frozen=True)
class GraphSpec:
    """How edges are built.

    ``kind``: ``"all"`` (all pairs for molecules; periodic systems then need ``cutoff``) or
    ``"cutoff"`` (pairs with d ≤ ``cutoff`` Å). Crystal builders (k-nearest, Voronoi) plug in here.
    """

    kind: str = "cutoff"
    cutoff: float | None = 5.0

    def __post_init__(self) -> None:
        if self.kind not in ("all", "cutoff"):
            raise ValueError(f"unknown graph kind {self.kind!r}; choose 'all' or 'cutoff'")
        if self.kind == "cutoff" and (self.cutoff is None or self.cutoff <= 0):
            raise ValueError(f"graph kind 'cutoff' needs a cutoff > 0 Å, got {self.cutoff}")

    @classmethod
    def from_config(cls, cfg: dict | None) -> GraphSpec:
        """Build from a config mapping such as ``{"kind": "cutoff", "cutoff": 5.0}``."""
        cfg = dict(cfg or {})
        unknown = set(cfg) - {"kind", "cutoff"}
        if unknown:
            raise ValueError(f"unknown graph options {sorted(unknown)}; allowed: kind, cutoff")
        return cls(**cfg)

    def to_config(self) -> dict:
        """Plain-dict form for configs and model files."""
        return {"kind": self.kind, "cutoff": self.cutoff}


def _molecule_half_pairs(
    positions: np.ndarray, offsets: np.ndarray, systems: np.ndarray, cutoff: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs i < j within each non-periodic system (global atom indices), vectorised over systems."""
    if len(systems) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    n = offsets[systems + 1] - offsets[systems]
    n_max = int(n.max())
    ti, tj = np.triu_indices(n_max, k=1)
    valid = tj[None, :] < n[:, None]  # [S, P]
    sys_k, pair_k = np.nonzero(valid)
    start = offsets[systems][sys_k]
    i = start + ti[pair_k]
    j = start + tj[pair_k]
    if cutoff is not None and len(i):
        d2 = np.sum((positions[j] - positions[i]) ** 2, axis=1)
        keep = d2 <= cutoff * cutoff
        i, j = i[keep], j[keep]
    return i, j


def _periodic_half_pairs(
    positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray, cutoff: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Half neighbour list (each pair once) of one periodic system through vesin."""
    nl = vesin.NeighborList(cutoff=float(cutoff), full_list=False)
    i, j, s = nl.compute(
        points=positions, box=cell, periodic=[bool(p) for p in pbc], quantities="ijS"
    )
    i = i.astype(np.int64)
    j = j.astype(np.int64)
    s = s.astype(np.int64)
    not_self = ~((i == j) & np.all(s == 0, axis=1))
    return i[not_self], j[not_self], s[not_self]


def build_edges(
    positions: np.ndarray,
    offsets: np.ndarray,
    cell: np.ndarray,
    pbc: np.ndarray,
    spec: GraphSpec,
) -> tuple[np.ndarray, np.ndarray]:
    """Mirrored edge list for a packed batch.

    Returns ``edge_index`` [2, E] (receiver, sender; global atom indices) and ``edge_shift`` [E, 3]
    (integer cell offsets). Edge ``e + E/2`` is edge ``e`` reversed.
    """
    periodic = np.any(pbc, axis=1)
    mol = np.flatnonzero(~periodic)
    cutoff = spec.cutoff if spec.kind == "cutoff" else None
    i_parts, j_parts, s_parts = [], [], []

    mi, mj = _molecule_half_pairs(positions, offsets, mol, cutoff)
    i_parts.append(mi)
    j_parts.append(mj)
    s_parts.append(np.zeros((len(mi), 3), np.int64))

    per = np.flatnonzero(periodic)
    if len(per) and spec.cutoff is None:
        raise ValueError(
            f"periodic systems need a cutoff radius, but the graph is {spec}; "
            "set graph.cutoff (e.g. --set graph.cutoff=5.0)"
        )
    for k in per:  # one vesin call per periodic system; vectorised inside
        s, e = offsets[k], offsets[k + 1]
        if e - s == 0:
            continue
        if abs(np.linalg.det(cell[k])) < 1e-12:
            raise ValueError(
                f"system {k} is periodic but its cell has zero volume: {cell[k].tolist()}"
            )
        pi, pj, ps = _periodic_half_pairs(positions[s:e], cell[k], pbc[k], spec.cutoff)
        i_parts.append(pi + s)
        j_parts.append(pj + s)
        s_parts.append(ps)

    i = np.concatenate(i_parts)
    j = np.concatenate(j_parts)
    shift = np.concatenate(s_parts)
    edge_index = np.stack([np.concatenate([i, j]), np.concatenate([j, i])])
    edge_shift = np.concatenate([shift, -shift])
    return edge_index, edge_shift
