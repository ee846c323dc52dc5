"""Pieces shared by the distance-based representations: embeddings and filter evaluation."""

from __future__ import annotations

import torch
from torch import nn

from deepatoms.data.graph import Batch
from deepatoms.models.heads import MAX_Z
from deepatoms.nn.radial import GaussianRBF


def build_rbf(cfg: dict) -> GaussianRBF:
    """Gaussian basis from a config such as ``{"n_rbf": 20, "stop": 5.0}`` (see ``GaussianRBF``)."""
    allowed = {"n_rbf", "start", "spacing", "stop", "gamma", "sigma"}
    unknown = set(cfg) - allowed
    if unknown:
        raise ValueError(f"unknown rbf option(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    return GaussianRBF(**cfg)


def atom_embedding(n_features: int) -> nn.Embedding:
    """Trainable element embedding A[Z, :] for Z = 0 … 118 (row 0 unused)."""
    return nn.Embedding(MAX_Z, n_features, padding_idx=0)


class EdgeGeometry:
    """Distances of a batch, evaluated once per unordered pair when the edges are mirrored.

    ``half`` is True when edge e + E/2 is edge e reversed; then ``d`` holds the first E/2 distances
    and :meth:`expand` copies per-pair edge tensors to all E directed edges.
    """

    def __init__(self, batch: Batch, use_mirror: bool = True) -> None:
        vec = batch.edge_vectors()
        n_edges = vec.shape[0]
        self.half = use_mirror and batch.mirrored_edges and n_edges % 2 == 0
        if self.half:
            vec = vec[: n_edges // 2]
        self.d = torch.linalg.vector_norm(vec, dim=-1)
        self.n_edges = n_edges
        self.n_pairs = self.d.shape[0]

    def expand(self, t: torch.Tensor) -> torch.Tensor:
        """Per-pair tensor [E/2, ...] → per-directed-edge tensor [E, ...] (no-op if not mirrored)."""
        return torch.cat([t, t], dim=0) if self.half else t

    def multiply(self, edge_t: torch.Tensor, pair_t: torch.Tensor) -> torch.Tensor:
        """``edge_t [E, ...] * expand(pair_t)`` without materialising the expanded copy.

        Both halves of the mirrored edge list share the pair tensor, so a broadcast over a
        leading axis of 2 replaces the concatenation (one fewer E×F tensor, forward and backward).
        """
        if not self.half:
            return edge_t * pair_t
        shape = edge_t.shape
        return (edge_t.reshape(2, shape[0] // 2, *shape[1:]) * pair_t).reshape(shape)
