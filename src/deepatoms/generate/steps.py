"""Partial molecules ("steps") of G-SchNet as one flat :class:`Batch` (docs/gschnet.md §2, §6).

Step s holds n_s = 2 + i_s nodes, in this order: the focus token (type ``FOCUS_TOKEN`` = 10) at
the focus position, the origin token (``ORIGIN_TOKEN`` = 11) at the origin position, then its
i_s placed atoms. Every node is connected to every other node of its step (``GraphSpec(kind="all",
cutoff=None)``: all ordered pairs, mirrored order, no cutoff), no periodicity, zero cells.
Training and the sampler build their model inputs here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from deepatoms.data.graph import Batch
from deepatoms.data.neighbors import GraphSpec, build_edges
from deepatoms.models.gschnet import FOCUS_TOKEN, ORIGIN_TOKEN

__all__ = ["ALL_PAIRS", "partial_batch", "steps_batch"]

#: The graph of a partial molecule: all ordered pairs within each step.
ALL_PAIRS = GraphSpec(kind="all", cutoff=None)


def _np(x: object, dtype: type) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def steps_batch(
    numbers: np.ndarray | torch.Tensor,
    positions: np.ndarray | torch.Tensor,
    n_nodes: np.ndarray | torch.Tensor,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> Batch:
    """Batch of steps from flat node arrays: ``numbers`` [N] (tokens included), ``positions``
    [N, 3] (Å) and ``n_nodes`` [S] nodes per step (consecutive); all-pairs edges per step."""
    numbers = _np(numbers, np.int64)
    positions = _np(positions, np.float64).reshape(-1, 3)
    n_nodes = _np(n_nodes, np.int64).reshape(-1)
    if len(numbers) != len(positions) or int(n_nodes.sum()) != len(numbers):
        raise ValueError(
            f"steps_batch: {len(numbers)} numbers, {len(positions)} positions, but n_nodes sums "
            f"to {int(n_nodes.sum())}; give one entry per node"
        )
    n_steps = len(n_nodes)
    offsets = np.concatenate([[0], np.cumsum(n_nodes)])
    cell = np.zeros((n_steps, 3, 3))
    pbc = np.zeros((n_steps, 3), dtype=bool)
    edges = build_edges(positions, offsets, cell, pbc, ALL_PAIRS)
    dtype = dtype or torch.get_default_dtype()
    n_t = torch.from_numpy(n_nodes)
    return Batch(
        numbers=torch.from_numpy(numbers),
        positions=torch.from_numpy(positions).to(dtype),
        cell=torch.zeros((n_steps, 3, 3), dtype=dtype),
        pbc=torch.from_numpy(pbc),
        batch=torch.repeat_interleave(torch.arange(n_steps), n_t),
        n_atoms=n_t,
        edge_index=torch.from_numpy(edges.edge_index),
        edge_shift=torch.zeros((edges.edge_index.shape[1], 3), dtype=dtype),
        mirrored_edges=edges.mirrored,
    ).to(device)


def partial_batch(
    positions_list: Sequence[np.ndarray | torch.Tensor],
    numbers_list: Sequence[np.ndarray | torch.Tensor],
    focus_positions: np.ndarray | torch.Tensor,
    origin_positions: np.ndarray | torch.Tensor,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> Batch:
    """Batch of S partial molecules (module docstring for the node order).

    ``positions_list[s]`` [i_s, 3] (Å) and ``numbers_list[s]`` [i_s] are the placed atoms of step s
    (i_s may be 0); ``focus_positions`` / ``origin_positions`` [S, 3] (Å) place the two tokens.
    """
    n_steps = len(positions_list)
    focus = _np(focus_positions, np.float64).reshape(-1, 3)
    origin = _np(origin_positions, np.float64).reshape(-1, 3)
    if len(numbers_list) != n_steps or len(focus) != n_steps or len(origin) != n_steps:
        raise ValueError(
            f"partial_batch: {n_steps} position arrays, {len(numbers_list)} number arrays, "
            f"{len(focus)} focus and {len(origin)} origin positions; give one of each per step"
        )
    pos_parts, num_parts = [], []
    n_nodes = np.zeros(n_steps, dtype=np.int64)
    for s in range(n_steps):
        p = _np(positions_list[s], np.float64).reshape(-1, 3)
        z = _np(numbers_list[s], np.int64).reshape(-1)
        if len(p) != len(z):
            raise ValueError(f"partial_batch: step {s} has {len(p)} positions but {len(z)} numbers")
        pos_parts += [focus[s : s + 1], origin[s : s + 1], p]
        num_parts += [np.array([FOCUS_TOKEN, ORIGIN_TOKEN], dtype=np.int64), z]
        n_nodes[s] = 2 + len(z)
    if n_steps == 0:
        return steps_batch(np.zeros(0), np.zeros((0, 3)), n_nodes, dtype, device)
    return steps_batch(np.concatenate(num_parts), np.concatenate(pos_parts), n_nodes, dtype, device)
