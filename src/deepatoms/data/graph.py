"""The ``Batch``: flat tensors for many systems, without padding (docs/architecture.md)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields

import numpy as np
import torch
from ase import Atoms

from deepatoms.data.neighbors import GraphSpec, build_edges
from deepatoms.data.packed import PackedSystems


@dataclass
class Batch:
    """Many systems as flat tensors.

    Shapes: ``numbers [N]``, ``positions [N,3]`` (Å), ``cell [B,3,3]`` (Å, rows are lattice vectors),
    ``pbc [B,3]``, ``batch [N]`` (system index of each atom), ``n_atoms [B]``,
    ``edge_index [2,E]`` as (receiver i, sender j), ``edge_shift [E,3]`` integer cell offsets
    (stored in the float dtype of the positions), ``targets`` per-system [B, ...] or per-atom [N, ...].
    ``mirrored_edges`` says that edge e + E/2 is edge e reversed (see ``neighbors``).
    ``edge_attr`` holds per-edge inputs besides geometry, e.g. Voronoi facet ``symmetry`` [E, 9].
    """

    numbers: torch.Tensor
    positions: torch.Tensor
    cell: torch.Tensor
    pbc: torch.Tensor
    batch: torch.Tensor
    n_atoms: torch.Tensor
    edge_index: torch.Tensor
    edge_shift: torch.Tensor
    targets: dict[str, torch.Tensor] = field(default_factory=dict)
    mirrored_edges: bool = False
    edge_attr: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def num_systems(self) -> int:
        """Number of systems B."""
        return int(self.n_atoms.shape[0])

    @property
    def num_atoms(self) -> int:
        """Total number of atoms N."""
        return int(self.numbers.shape[0])

    def to(
        self, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> Batch:
        """Move to ``device``; cast floating tensors to ``dtype`` when given."""

        def conv(t: torch.Tensor, cast: bool = True) -> torch.Tensor:
            if cast and dtype is not None and t.is_floating_point():
                return t.to(device=device, dtype=dtype)
            return t.to(device=device)

        kw = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, torch.Tensor):
                kw[f.name] = conv(v)
            elif isinstance(v, dict):  # labels keep their dtype; edge attributes are inputs
                cast = f.name == "edge_attr"
                kw[f.name] = {k: conv(t, cast=cast) for k, t in v.items()}
            else:
                kw[f.name] = v
        return Batch(**kw)

    def edge_vectors(self) -> torch.Tensor:
        """r_ij = r_j − r_i + S·cell [E,3] in Å, differentiable w.r.t. positions and cell."""
        i, j = self.edge_index
        vec = self.positions.index_select(0, j) - self.positions.index_select(0, i)
        if self.cell.abs().sum() > 0 and bool(self.edge_shift.any()):
            if self.cell.shape[0] == 1:  # one system (e.g. a calculator call): one matmul
                return vec + self.edge_shift @ self.cell[0]
            cell_of_edge = self.cell.index_select(0, self.batch.index_select(0, i))
            vec = vec + torch.einsum("ek,ekl->el", self.edge_shift, cell_of_edge)
        return vec

    def distances(self) -> torch.Tensor:
        """|r_ij| [E] in Å."""
        return torch.linalg.vector_norm(self.edge_vectors(), dim=-1)

    @classmethod
    def from_atoms(
        cls,
        atoms: Atoms | Sequence[Atoms],
        graph: GraphSpec,
        dtype: torch.dtype | None = None,
    ) -> Batch:
        """Build a batch from ASE ``Atoms`` (no targets)."""
        if isinstance(atoms, Atoms):
            atoms = [atoms]
        return collate(PackedSystems.from_atoms(list(atoms)), None, graph, dtype=dtype, targets=())


def collate(
    data: PackedSystems,
    systems: Sequence[int] | np.ndarray | None,
    graph: GraphSpec,
    dtype: torch.dtype | None = None,
    targets: Sequence[str] | None = None,
) -> Batch:
    """Gather ``systems`` of a pack into a :class:`Batch` and build its neighbour list.

    ``targets``: property names to copy into ``batch.targets`` (default: all; kept in their stored
    dtype, float64 for labels). Vectorised over
    systems; the only per-system loop is one vesin call per periodic system.
    """
    dtype = dtype or torch.get_default_dtype()
    if systems is not None:
        data = data.subset(systems)
    stored = data.edges
    if stored is not None and getattr(stored, "spec", None) == graph:
        edges = stored.gather(data.offsets)
    else:
        edges = build_edges(data.positions, data.offsets, data.cell, data.pbc, graph)
    n_atoms = data.n_atoms
    names = data.property_names if targets is None else list(targets)
    tgt = {}
    for name in names:
        if name in data.system_props:
            arr = data.system_props[name]
        elif name in data.atom_props:
            arr = data.atom_props[name]
        else:
            raise KeyError(f"target {name!r} is not in the data; available: {data.property_names}")
        # Labels stay float64 whatever the model dtype: they are compared, never fed forward.
        tgt[name] = torch.from_numpy(np.ascontiguousarray(arr))
    return Batch(
        numbers=torch.from_numpy(data.numbers),
        positions=torch.from_numpy(data.positions).to(dtype),
        cell=torch.from_numpy(data.cell).to(dtype),
        pbc=torch.from_numpy(data.pbc),
        batch=torch.repeat_interleave(torch.arange(len(n_atoms)), torch.from_numpy(n_atoms)),
        n_atoms=torch.from_numpy(n_atoms),
        edge_index=torch.from_numpy(edges.edge_index),
        edge_shift=torch.from_numpy(edges.edge_shift).to(dtype),
        targets=tgt,
        mirrored_edges=edges.mirrored,
        edge_attr={
            k: torch.from_numpy(np.ascontiguousarray(v)).to(dtype) for k, v in edges.attrs.items()
        },
    )
