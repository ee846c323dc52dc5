"""In-memory columnar storage of many atomic systems (the packed layout of docs/architecture.md).

Atoms of all systems are concatenated; ``offsets[k]:offsets[k+1]`` are the atoms of system k.
Positions are in Å, cells are row vectors (l1, l2, l3) in Å. Properties are either per system
(first axis = number of systems) or per atom (first axis = total number of atoms).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from ase import Atoms


@dataclass
class PackedSystems:
    """Columnar arrays for ``len(self)`` systems; see the module docstring for the layout."""

    numbers: np.ndarray  # [N_total] int
    positions: np.ndarray  # [N_total, 3] float64, Å
    offsets: np.ndarray  # [B + 1] int64
    cell: np.ndarray  # [B, 3, 3] float64, Å
    pbc: np.ndarray  # [B, 3] bool
    system_props: dict[str, np.ndarray] = field(default_factory=dict)  # [B, ...]
    atom_props: dict[str, np.ndarray] = field(default_factory=dict)  # [N_total, ...]
    #: precomputed edges (``deepatoms.data.edge_store.StoredEdges``), e.g. Voronoi graphs
    edges: object | None = None

    def __post_init__(self) -> None:
        self.numbers = np.asarray(self.numbers, dtype=np.int64)
        self.positions = np.asarray(self.positions, dtype=np.float64).reshape(-1, 3)
        self.offsets = np.asarray(self.offsets, dtype=np.int64)
        self.cell = np.asarray(self.cell, dtype=np.float64).reshape(-1, 3, 3)
        self.pbc = np.asarray(self.pbc, dtype=bool).reshape(-1, 3)
        n_sys = len(self.offsets) - 1
        n_at = int(self.offsets[-1]) if n_sys >= 0 else 0
        problems = []
        if self.offsets[0] != 0 or np.any(np.diff(self.offsets) < 0):
            problems.append("offsets must start at 0 and be non-decreasing")
        if len(self.numbers) != n_at or len(self.positions) != n_at:
            problems.append(
                f"{len(self.numbers)} numbers / {len(self.positions)} positions, offsets say {n_at}"
            )
        if len(self.cell) != n_sys or len(self.pbc) != n_sys:
            problems.append(
                f"{len(self.cell)} cells / {len(self.pbc)} pbc rows for {n_sys} systems"
            )
        for k, v in self.system_props.items():
            if len(v) != n_sys:
                problems.append(f"system property {k!r} has {len(v)} rows for {n_sys} systems")
        for k, v in self.atom_props.items():
            if len(v) != n_at:
                problems.append(f"atom property {k!r} has {len(v)} rows for {n_at} atoms")
        if self.edges is not None and len(self.edges) != n_sys:
            problems.append(f"stored edges for {len(self.edges)} systems, not {n_sys}")
        if problems:
            raise ValueError("inconsistent packed systems: " + "; ".join(problems))

    # -- size -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def n_atoms(self) -> np.ndarray:
        """Number of atoms per system [B]."""
        return np.diff(self.offsets)

    @property
    def property_names(self) -> list[str]:
        """All property names, per-system first."""
        return [*self.system_props, *self.atom_props]

    # -- construction -----------------------------------------------------------------------
    @classmethod
    def from_atoms(
        cls,
        atoms_list: Sequence[Atoms],
        system_props: Mapping[str, Sequence] | None = None,
        atom_props: Mapping[str, Sequence] | None = None,
    ) -> PackedSystems:
        """Pack ASE ``Atoms``; ``system_props[name][k]`` / ``atom_props[name][k]`` belong to system k."""
        n = np.array([len(a) for a in atoms_list], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(n)])
        if len(atoms_list):
            numbers = np.concatenate([a.numbers for a in atoms_list])
            positions = np.concatenate([a.positions for a in atoms_list])
        else:
            numbers, positions = np.zeros(0, np.int64), np.zeros((0, 3))
        cell = np.array([a.cell.array for a in atoms_list]).reshape(-1, 3, 3)
        pbc = np.array([a.pbc for a in atoms_list], dtype=bool).reshape(-1, 3)
        sp = {k: np.asarray(v) for k, v in (system_props or {}).items()}
        ap = {
            k: np.concatenate([np.asarray(x) for x in v]) if len(v) else np.zeros(0)
            for k, v in (atom_props or {}).items()
        }
        return cls(numbers, positions, offsets, cell, pbc, sp, ap)

    @classmethod
    def concatenate(cls, parts: Iterable[PackedSystems]) -> PackedSystems:
        """Join several packs with the same property names into one."""
        parts = list(parts)
        if not parts:
            raise ValueError("nothing to concatenate")
        names_s, names_a = set(parts[0].system_props), set(parts[0].atom_props)
        for p in parts[1:]:
            if set(p.system_props) != names_s or set(p.atom_props) != names_a:
                raise ValueError(
                    "cannot concatenate packs with different properties: "
                    f"{sorted(names_s | names_a)} vs {sorted(set(p.property_names))}"
                )
        # Stored edges are joined; cached ones (Voronoi) are dropped unless every part has them,
        # but a bond graph cannot be rebuilt, so it may not be lost.
        edges = None
        if all(p.edges is not None for p in parts):
            edges = type(parts[0].edges).concatenate([p.edges for p in parts])
        elif any(p.edges is not None and p.edges.spec.stored_only for p in parts):
            raise ValueError(
                "cannot concatenate packs with and without a stored bond graph: every part needs "
                "its bonds (deepatoms.data.bonds)"
            )
        sizes = [p.n_atoms for p in parts]
        offsets = np.concatenate([[0], np.cumsum(np.concatenate(sizes))])
        return cls(
            np.concatenate([p.numbers for p in parts]),
            np.concatenate([p.positions for p in parts]),
            offsets,
            np.concatenate([p.cell for p in parts]),
            np.concatenate([p.pbc for p in parts]),
            {k: np.concatenate([p.system_props[k] for p in parts]) for k in parts[0].system_props},
            {k: np.concatenate([p.atom_props[k] for p in parts]) for k in parts[0].atom_props},
            edges,
        )

    # -- access -----------------------------------------------------------------------------
    def atom_index(self, systems: np.ndarray) -> np.ndarray:
        """Indices into the atom arrays of the given systems, in order (vectorised)."""
        systems = np.asarray(systems, dtype=np.int64)
        starts = self.offsets[systems]
        counts = self.offsets[systems + 1] - starts
        total = int(counts.sum())
        # position within each system: arange(total) - (start of its block in the output)
        block_start = np.repeat(np.cumsum(counts) - counts, counts)
        return np.repeat(starts, counts) + (np.arange(total) - block_start)

    def subset(self, systems: Sequence[int] | np.ndarray) -> PackedSystems:
        """A new pack holding only ``systems`` (in the given order)."""
        systems = np.asarray(systems, dtype=np.int64)
        if len(systems) and (systems.min() < 0 or systems.max() >= len(self)):
            raise IndexError(f"system index out of range for {len(self)} systems")
        idx = self.atom_index(systems)
        counts = self.offsets[systems + 1] - self.offsets[systems]
        return PackedSystems(
            self.numbers[idx],
            self.positions[idx],
            np.concatenate([[0], np.cumsum(counts)]),
            self.cell[systems],
            self.pbc[systems],
            {k: v[systems] for k, v in self.system_props.items()},
            {k: v[idx] for k, v in self.atom_props.items()},
            self.edges.subset(systems) if self.edges is not None else None,
        )

    def get_atoms(self, k: int) -> Atoms:
        """System ``k`` as ASE ``Atoms`` (properties in ``atoms.info`` / ``atoms.arrays``)."""
        if not 0 <= k < len(self):
            raise IndexError(f"system {k} out of range for {len(self)} systems")
        s, e = self.offsets[k], self.offsets[k + 1]
        atoms = Atoms(
            numbers=self.numbers[s:e],
            positions=self.positions[s:e],
            cell=self.cell[k],
            pbc=self.pbc[k],
        )
        for name, v in self.system_props.items():
            val = v[k]
            atoms.info[name] = val.item() if np.ndim(val) == 0 and not isinstance(val, str) else val
        for name, v in self.atom_props.items():
            atoms.arrays[name] = np.asarray(v[s:e])
        return atoms
