"""Neighbour lists for batches of systems.

Edges are directed (receiver i, sender j): messages flow j → i and the edge vector is
r_ij = r_j − r_i + S·cell with an integer cell shift S (docs/architecture.md).

Builders (cutoff and k-nearest graphs: Schütt 2018 thesis Ch. 4, Paper A; Voronoi: Paper B):

* molecules (no periodic axis): all ordered pairs i ≠ j, optionally within a cutoff;
* periodic systems: all pairs and images within a cutoff, through ``vesin``;
* k nearest neighbours (molecules and crystals; Paper A), through ``vesin`` with a growing radius;
* Voronoi facets of periodic crystals (Paper B; ``deepatoms.data.voronoi``), with per-edge
  attributes (``EdgeList.attrs``);
* ``bonds``: a fixed bond graph stored with the data (VIMPNN, Morgan et al. 2020), perceived
  once at the equilibrium geometry and kept under scaling. It cannot be built from positions
  here: datasets carry it (``PackedSystems.edges``), written by ``deepatoms.data.bonds``.

Self-pairs (i, i, S = 0) are never produced; images of an atom itself (S ≠ 0) are ordinary
neighbours. Every builder but k-nearest returns a *mirrored* list: the second half of the edges is the
first half with receiver and sender swapped and the shift negated. Models whose filters depend
only on |r_ij| use this to evaluate each filter once per pair.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import vesin

GRAPH_KINDS = ("all", "cutoff", "knn", "voronoi", "bonds")


@dataclass(frozen=True)
class GraphSpec:
    """How edges are built.

    ``kind``:

    * ``"all"``: all pairs for molecules (periodic systems then need ``cutoff``);
    * ``"cutoff"``: pairs with d ≤ ``cutoff`` Å;
    * ``"knn"``: the ``k`` nearest neighbours of every atom (Paper A: K = 24), found within a
      radius that grows until every atom has k (``cutoff`` is the first radius, optional), plus
      every neighbour tied with the k-th within 1e-4 Å (cell-choice invariant; ``knn_strict``:
      exactly k); not mirrored, since j ∈ kNN(i) does not imply i ∈ kNN(j);
    * ``"voronoi"``: one edge per shared Voronoi facet of a periodic structure with solid angle
      ≥ ``omega_cut`` sr (Paper B), carrying the distance (Å), the facet's area (Å²), solid
      angle (sr) and 9-bit symmetry label as edge attributes (``deepatoms.data.voronoi``);
    * ``"bonds"``: the bond graph stored in the dataset, with an integer ``bond_type`` edge
      attribute indexing the dataset's ``metadata["bond_types"]`` (``cutoff`` is ignored).
    """

    kind: str = "cutoff"
    cutoff: float | None = 5.0
    k: int = 24
    knn_strict: bool = False
    omega_cut: float = 0.2

    def __post_init__(self) -> None:
        if self.kind == "bonds":  # topology comes from the data, not from a radius
            object.__setattr__(self, "cutoff", None)
        if self.kind not in GRAPH_KINDS:
            raise ValueError(f"unknown graph kind {self.kind!r}; choose one of {GRAPH_KINDS}")
        if self.kind == "cutoff" and (self.cutoff is None or self.cutoff <= 0):
            raise ValueError(f"graph kind 'cutoff' needs a cutoff > 0 Å, got {self.cutoff}")
        if self.kind == "knn" and self.k < 1:
            raise ValueError(f"graph kind 'knn' needs k >= 1 neighbours, got {self.k}")
        if self.kind == "voronoi" and not 0 <= self.omega_cut < 4 * np.pi:
            raise ValueError(f"omega_cut must be a solid angle in [0, 4π) sr, got {self.omega_cut}")

    @property
    def mirrored(self) -> bool:
        """Whether the builder returns mirrored lists (edge e + E/2 is edge e reversed)."""
        return self.kind != "knn"

    @property
    def precomputed(self) -> bool:
        """Whether edges are computed once per structure and stored (Voronoi, bonds)."""
        return self.kind in ("voronoi", "bonds")

    @property
    def stored_only(self) -> bool:
        """Whether the edges must come with the data (a fixed bond graph)."""
        return self.kind == "bonds"

    @classmethod
    def from_config(cls, cfg: dict | None) -> GraphSpec:
        """Build from a config mapping such as ``{"kind": "cutoff", "cutoff": 5.0}``."""
        cfg = dict(cfg or {})
        allowed = {"kind", "cutoff", "k", "knn_strict", "omega_cut"}
        unknown = set(cfg) - allowed
        if unknown:
            raise ValueError(f"unknown graph options {sorted(unknown)}; allowed: {sorted(allowed)}")
        return cls(**cfg)

    def to_config(self) -> dict:
        """Plain-dict form for configs and model files."""
        cfg: dict = {"kind": self.kind, "cutoff": self.cutoff}
        if self.kind == "knn":
            cfg["k"] = self.k
            cfg["knn_strict"] = self.knn_strict
        if self.kind == "voronoi":
            cfg["omega_cut"] = self.omega_cut
        return cfg


@dataclass
class EdgeList:
    """Edges of a packed batch: ``edge_index`` [2, E] (receiver, sender; global atom indices),
    ``edge_shift`` [E, 3] integer cell offsets, ``mirrored`` (edge e + E/2 is edge e reversed)
    and per-edge ``attrs`` (e.g. Voronoi facet ``area`` [E], ``solid_angle`` [E], ``symmetry``
    [E, 9])."""

    edge_index: np.ndarray
    edge_shift: np.ndarray
    mirrored: bool
    attrs: dict[str, np.ndarray]

    @classmethod
    def from_halves(
        cls,
        i: np.ndarray,
        j: np.ndarray,
        shift: np.ndarray,
        attrs: dict[str, np.ndarray] | None = None,
    ) -> EdgeList:
        """Mirrored list from one direction of every pair (attributes equal both ways)."""
        return cls(
            np.stack([np.concatenate([i, j]), np.concatenate([j, i])]),
            np.concatenate([shift, -shift]),
            True,
            {k: np.concatenate([v, v]) for k, v in (attrs or {}).items()},
        )


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


def periodic_half_pairs(
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


KNN_TIE_TOL = 1e-4  # Å: neighbours this close to the k-th distance count as tied


def _knn_select(
    i: np.ndarray, j: np.ndarray, shift: np.ndarray, d: np.ndarray, n: int, k: int, strict: bool,
) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], float]:  # fmt: skip
    """Keep the k nearest senders of every receiver (full candidate lists, sorted here).

    Default: every neighbour within ``KNN_TIE_TOL`` of the k-th distance is kept too, so the
    graph does not depend on the choice of unit cell (the in-degree may exceed k in symmetric
    crystals). ``strict``: exactly k, ties broken by sender index and shift. Also returns the
    largest distance any receiver needs (to check that the search radius covered the ties).
    """
    order = np.lexsort((shift[:, 2], shift[:, 1], shift[:, 0], j, d, i))
    i, j, shift, d = i[order], j[order], shift[order], d[order]
    start = np.searchsorted(i, np.arange(n))
    count = np.diff(np.append(start, len(i)))
    rank = np.arange(len(i)) - start[i]
    kth = np.where(count >= k, d[np.minimum(start + k - 1, len(d) - 1)], np.inf)
    keep = rank < k if strict else (rank < k) | (d <= kth[i] + KNN_TIE_TOL)
    needed = float(np.max(kth[count >= k], initial=0.0)) + KNN_TIE_TOL
    return (i[keep], j[keep], shift[keep]), needed


def _periodic_knn(
    positions: np.ndarray,
    cell: np.ndarray,
    pbc: np.ndarray,
    k: int,
    r0: float | None,
    strict: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """k nearest neighbours of every atom of one periodic system (full list, vesin).

    The search radius starts at ``r0`` (default: the radius of a sphere holding 1.5 k atoms at
    the system's density) and grows by 1.5x until every atom has k neighbours and all ties at
    the k-th distance lie inside it.
    """
    n = len(positions)
    volume = abs(np.linalg.det(cell))
    r = r0 or (1.5 * k * volume / n * 3 / (4 * np.pi)) ** (1 / 3)
    for _ in range(30):
        nl = vesin.NeighborList(cutoff=float(r), full_list=True)
        i, j, s, d = nl.compute(
            points=positions, box=cell, periodic=[bool(p) for p in pbc], quantities="ijSd"
        )
        i, j, s = i.astype(np.int64), j.astype(np.int64), s.astype(np.int64)
        not_self = ~((i == j) & np.all(s == 0, axis=1))
        i, j, s, d = i[not_self], j[not_self], s[not_self], d[not_self]
        if np.bincount(i, minlength=n).min() >= k:
            picked, needed = _knn_select(i, j, s, d, n, k, strict)
            if needed <= r:
                return picked
        r *= 1.5
    raise ValueError(f"could not find {k} neighbours per atom within {r:.1f} Å")


def build_edges(
    positions: np.ndarray,
    offsets: np.ndarray,
    cell: np.ndarray,
    pbc: np.ndarray,
    spec: GraphSpec,
) -> EdgeList:
    """Edge list of a packed batch (see :class:`EdgeList`); mirrored except for ``knn``."""
    if spec.stored_only:
        raise ValueError(
            "graph kind 'bonds' uses the bond graph stored with the data, and these systems have "
            "none: make the dataset with `deepatoms datagen scaled|crystal|growth`, or add bonds "
            "with deepatoms.data.bonds.pack_with_bonds (ASE Atoms) or attach_bonds (a pack)"
        )
    if spec.kind == "knn":
        return _knn_edges(positions, offsets, cell, pbc, spec)
    if spec.kind == "voronoi":
        return _voronoi_edges(positions, offsets, cell, pbc, spec)
    ei, es = _pair_edges(positions, offsets, cell, pbc, spec)
    return EdgeList(ei, es, True, {})


def _knn_edges(
    positions: np.ndarray, offsets: np.ndarray, cell: np.ndarray, pbc: np.ndarray, spec: GraphSpec
) -> EdgeList:
    periodic = np.any(pbc, axis=1)
    parts = []
    mol = np.flatnonzero(~periodic)
    if len(mol):  # molecules: the k nearest among all other atoms of the molecule
        hi, hj = _molecule_half_pairs(positions, offsets, mol, None)
        i, j = np.concatenate([hi, hj]), np.concatenate([hj, hi])
        d = np.linalg.norm(positions[j] - positions[i], axis=1)
        zero = np.zeros((len(i), 3), np.int64)
        parts.append(_knn_select(i, j, zero, d, len(positions), spec.k, spec.knn_strict)[0])
    for sys_k in np.flatnonzero(periodic):
        s, e = offsets[sys_k], offsets[sys_k + 1]
        if e > s:
            i, j, sh = _periodic_knn(
                positions[s:e], cell[sys_k], pbc[sys_k], spec.k, spec.cutoff, spec.knn_strict
            )
            parts.append((i + s, j + s, sh))
    if not parts:
        return EdgeList(np.zeros((2, 0), np.int64), np.zeros((0, 3), np.int64), False, {})
    i = np.concatenate([p[0] for p in parts])
    j = np.concatenate([p[1] for p in parts])
    sh = np.concatenate([p[2] for p in parts])
    return EdgeList(np.stack([i, j]), sh, False, {})


def _voronoi_edges(
    positions: np.ndarray, offsets: np.ndarray, cell: np.ndarray, pbc: np.ndarray, spec: GraphSpec
) -> EdgeList:
    from deepatoms.data.voronoi import voronoi_edges

    halves = []
    for sys_k in range(len(offsets) - 1):
        if not np.all(pbc[sys_k]):
            raise ValueError(
                f"system {sys_k} is not 3-D periodic: Voronoi graphs need a periodic crystal "
                "(pbc all True); use graph kind 'cutoff' or 'knn' for molecules and slabs"
            )
        s, e = offsets[sys_k], offsets[sys_k + 1]
        vor = voronoi_edges(positions[s:e], cell[sys_k], omega_cut=spec.omega_cut)
        h = vor.edge_index.shape[1] // 2
        halves.append(
            (
                vor.edge_index[0, :h] + s,
                vor.edge_index[1, :h] + s,
                vor.edge_shift[:h],
                {name: getattr(vor, name)[:h] for name in VORONOI_ATTRS},
            )
        )
    return EdgeList.from_halves(
        np.concatenate([x[0] for x in halves]),
        np.concatenate([x[1] for x in halves]),
        np.concatenate([x[2] for x in halves]).astype(np.int64),
        {name: np.concatenate([x[3][name] for x in halves]) for name in VORONOI_ATTRS},
    )


#: Per-edge attributes of Voronoi graphs (``deepatoms.data.voronoi.VoronoiEdges`` fields).
VORONOI_ATTRS = ("distance", "area", "solid_angle", "symmetry")


def _pair_edges(
    positions: np.ndarray,
    offsets: np.ndarray,
    cell: np.ndarray,
    pbc: np.ndarray,
    spec: GraphSpec,
) -> tuple[np.ndarray, np.ndarray]:
    """Mirrored all-pairs or cutoff edge list: ``edge_index`` [2, E], ``edge_shift`` [E, 3]."""
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
        pi, pj, ps = periodic_half_pairs(positions[s:e], cell[k], pbc[k], spec.cutoff)
        i_parts.append(pi + s)
        j_parts.append(pj + s)
        s_parts.append(ps)

    i = np.concatenate(i_parts)
    j = np.concatenate(j_parts)
    shift = np.concatenate(s_parts)
    edge_index = np.stack([np.concatenate([i, j]), np.concatenate([j, i])])
    edge_shift = np.concatenate([shift, -shift])
    return edge_index, edge_shift
