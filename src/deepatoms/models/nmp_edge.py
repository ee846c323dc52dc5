"""NMP-edge: SchNet-like message passing with an edge-update network.

Jørgensen et al., Paper A ("Neural message passing with edge updates for predicting properties
of molecules and materials", 2018; docs/references.md). g = ssp, C = node width.

    h_i⁽⁰⁾ = ℓ(Z_i)                                             node embedding ∈ R^C
    ε_ij = exp(−(d_ij − μ_k)² / (2σ²)),  μ_k = 0.1 k Å, k = 0…150  edge input (Eq. 5; σ = 0.1 Å,
           or exp(−(d_ij − μ_k)²/Δ), γ = 1/Δ = 10 Å⁻², with ``rbf_width="paper_a"``)
    e_ij⁽⁰⁾ = E₀(h_i⁽⁰⁾, h_j⁽⁰⁾, ε_ij)                               initial edge update (Eq. 6)
    for t = 0 … T−1:
      M_t(h_j, e_ij) = (W₁ h_j⁽ᵗ⁾) ⊙ g(W₃ g(W₂ e_ij⁽ᵗ⁾ + b₂) + b₃)      message (Eq. 8), W₁ without bias
      m_i = AGG_{j ∈ N(i)} M_t(h_j, e_ij) · f_c(d_ij)              AGG = sum (molecules) or mean
      h_i⁽ᵗ⁺¹⁾ = h_i⁽ᵗ⁾ + W₅ g(W₄ m_i + b₄) + b₅                     residual node update (Eq. 9)
      e_ij⁽ᵗ⁺¹⁾ = E_{t+1}(h_i⁽ᵗ⁺¹⁾, h_j⁽ᵗ⁺¹⁾, e_ij⁽ᵗ⁾)                    edge update (Eq. 7), skipped
                                                                  after the last step
    y = Σ_i W₇ g(W₆ h_i⁽ᵀ⁾)  or its mean                           readout (Eq. 10), ``AtomwiseHead``

Edge-update network (authors' public code): E_t(h_i, h_j, e) = W_E2 g(W_E1 [h_i; h_j; e] + b_E1) + b_E2
with hidden width C and output width C/2, linear output. Options: output width C (Paper B) and
an ssp on the output (the text's g(W_E2 g(W_E1 ·))). The concatenation is ordered (receiver,
sender, edge), so e_ij ≠ e_ji after the first update even though ε_ij = ε_ji.

Edge inputs ε_ij (Paper B §IV, ``edge_input``): ``"dist"`` the Gaussians above (needs relaxed
positions); ``"sym"`` the 9-bit point-group label [C2, C3, C4, C6, D1, D2, D3, D4, D6] of the shared
Voronoi facet (``batch.edge_attr["symmetry"]``); ``"none"`` nothing, so E₀ sees [h_i; h_j] only;
``"sym+dist"`` both. With ``"sym"`` and ``"none"`` the model never reads positions: on a Voronoi
graph it predicts from the prototype's topology (and facet labels) alone.

``use_edge_updates=False`` keeps e_ij⁽ᵗ⁾ = ε_ij for every t: the message is then SchNet's
continuous-filter convolution (W₁ h_j) ⊙ W⁽ᵗ⁾(d_ij), the SchNet baseline of Paper A.

No cutoff function by default (f_c ≡ 1); ``cutoff_fn`` multiplies every message by f_c(d_ij).
Weights are not shared across steps. Initialisation (the authors' public code; docs/property_models.md §6): Glorot-uniform
weights, zero biases, no bias on W₁, embedding N(0, variance 1/√C), i.e. std C^(−1/4).

Readout (registered head defaults): W₆ of width C/2 with ssp, then W₇ → 1, per-atom scale/shift
(Paper A §5 normalisation, see ``heads``). The authors' code uses Glorot-uniform weights on every
layer, and the authors' readout has no zero initialisation, so W₇ is Glorot-initialised (unlike
SchNet and DTNN): an untrained model does not predict exactly n·μ. ``head={"zero_init_last": True}``
gives the zero-initialised variant.

Computation: [h_i; h_j; e] W_E1ᵀ = h_i W_rᵀ + h_j W_sᵀ + e W_eᵀ with W_E1 = [W_r | W_s | W_e], so
the node parts are evaluated once per atom and gathered, never per edge. ε_ij, its E₀ term
ε W_eᵀ and (without edge updates) the filters depend only on d_ij: on mirrored edge lists they
are computed once per unordered pair. Edge states after an update are direction-dependent and
are kept for all E directed edges.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from deepatoms.data.graph import Batch
from deepatoms.models.common import EdgeGeometry, atom_embedding, build_rbf
from deepatoms.nn.activations import shifted_softplus
from deepatoms.nn.cutoff import build_cutoff
from deepatoms.nn.mlp import Dense
from deepatoms.nn.radial import GaussianRBF
from deepatoms.nn.scatter import check_aggregation, scatter_reduce, segment_counts


class EdgeUpdate(nn.Module):
    """E_t(h_i, h_j, e_ij) = W_E2 g(W_E1 [h_i; h_j; e_ij] + b_E1) + b_E2 (Paper A Eqs. 6–7).

    ``l1`` is the dense layer on the concatenation (in-width 2C + edge-in width); it is applied
    by splitting its weight into receiver, sender and edge blocks.
    """

    def __init__(
        self, n_node: int, n_edge_in: int, n_edge_out: int, out_activation: str | None
    ) -> None:
        super().__init__()
        self.n_node = n_node
        self.l1 = Dense(2 * n_node + n_edge_in, n_node)  # W_E1, b_E1 (hidden width C)
        self.l2 = Dense(n_node, n_edge_out, activation=out_activation)  # W_E2, b_E2

    def edge_term(self, e: torch.Tensor) -> torch.Tensor:
        """e W_eᵀ (no bias) [E', C]: the edge block of the first layer."""
        return e @ self.l1.weight[:, 2 * self.n_node :].T

    def forward(
        self, h: torch.Tensor, edge_term: torch.Tensor, edge_index: torch.Tensor
    ) -> torch.Tensor:
        """New edge states [E, n_edge_out] from node states ``h`` and ``edge_term(e)`` [E, C]."""
        receivers, senders = edge_index
        w = self.l1.weight
        hr = h @ w[:, : self.n_node].T  # receiver block, per atom
        hs = h @ w[:, self.n_node : 2 * self.n_node].T  # sender block, per atom
        z = hr.index_select(0, receivers) + hs.index_select(0, senders) + edge_term + self.l1.bias
        return self.l2(shifted_softplus(z))


class MessageBlock(nn.Module):
    """One message-passing step: message (Eq. 8), aggregation and node update (Eq. 9)."""

    def __init__(self, n_node: int, n_edge: int) -> None:
        super().__init__()
        self.lin_node = Dense(n_node, n_node, bias=False)  # W₁
        self.filter1 = Dense(n_edge, n_node, activation="ssp")  # W₂, b₂
        self.filter2 = Dense(n_node, n_node, activation="ssp")  # W₃, b₃
        self.update1 = Dense(n_node, n_node, activation="ssp")  # W₄, b₄
        self.update2 = Dense(n_node, n_node)  # W₅, b₅

    def filter(self, e: torch.Tensor) -> torch.Tensor:
        """g(W₃ g(W₂ e + b₂) + b₃) [E', C]."""
        return self.filter2(self.filter1(e))

    def forward(
        self,
        h: torch.Tensor,
        gate: torch.Tensor,
        edge_index: torch.Tensor,
        aggregation: str,
        in_degree: torch.Tensor | None,
    ) -> torch.Tensor:
        """Return the node-state update W₅ g(W₄ m_i + b₄) + b₅ given per-edge gates [E, C]."""
        receivers, senders = edge_index
        msg = self.lin_node(h).index_select(0, senders) * gate  # Eq. 8
        m = scatter_reduce(msg, receivers, h.shape[0], aggregation, in_degree)
        return self.update2(self.update1(m))  # Eq. 9 (residual added by the caller)


class NMPEdge(nn.Module):
    """NMP-edge representation: Batch → node states h⁽ᵀ⁾ [N, C].

    Args:
        n_atom_basis: C, node state width (64 for QM9, 256 for materials).
        n_interactions: T, number of message-passing steps (3).
        rbf: Gaussian basis config (``GaussianRBF`` options), distances in Å. Default 151 centres
            0 … 15 Å every 0.1 Å with σ = 0.1 Å (γ = 50 Å⁻²).
        rbf_width: ``"sigma"`` (default: the width in ``rbf``, σ = Δ unless given) or
            ``"paper_a"`` (Paper A Eq. 5: exp(−(d − μ_k)²/Δ), γ = 1/Δ = 10 Å⁻² for Δ = 0.1 Å).
        use_edge_updates: False gives the SchNet baseline of Paper A (e_ij = ε_ij for all t).
        edge_width: width of the edge states (default C/2, authors' code; C as in Paper B).
        edge_activation: activation on the edge-update output layer (None: linear, authors'
            code; ``"ssp"`` as written in the text).
        cutoff_fn: ``"cosine"``, ``"hard"`` or None (default, no cutoff function);
            ``cutoff``: its radius in Å.
        aggregation: ``"sum"`` (molecules) or ``"mean"`` (materials).
        edge_input: ``"dist"`` (default), ``"sym"``, ``"none"`` or ``"sym+dist"`` (see above).
    """

    #: Output network of the family (``"half"``: one hidden layer of width F // 2).
    HEAD_DEFAULTS: ClassVar[dict] = {"hidden": "half", "activation": "ssp", "zero_init_last": False}

    def __init__(
        self, n_atom_basis: int = 64, n_interactions: int = 3, rbf: dict | None = None,
        rbf_width: str = "sigma", use_edge_updates: bool = True, edge_width: int | None = None,
        edge_activation: str | None = None, cutoff_fn: str | None = None,
        cutoff: float | None = None, aggregation: str = "sum", edge_input: str = "dist",
    ) -> None:  # fmt: skip
        super().__init__()
        check_aggregation(aggregation)
        if edge_input not in EDGE_INPUTS:
            raise ValueError(f"edge_input must be one of {EDGE_INPUTS}, got {edge_input!r}")
        self.edge_input = edge_input
        self.uses_distances = "dist" in edge_input or cutoff_fn is not None
        if not self.uses_distances and not use_edge_updates:
            raise ValueError(
                f"edge_input={edge_input!r} without edge updates gives every edge the same "
                "filter; use use_edge_updates=True or edge_input='dist'"
            )
        if n_interactions < 1:
            raise ValueError(f"n_interactions must be >= 1, got {n_interactions}")
        c = n_atom_basis
        self.n_atom_basis = c
        self.aggregation = aggregation
        self.use_edge_updates = use_edge_updates
        self.embedding = atom_embedding(c)
        with torch.no_grad():  # N(0, variance 1/√C) as in the authors' code
            nn.init.normal_(self.embedding.weight, std=c**-0.25)
            self.embedding.weight[0].zero_()
        self.rbf = _build_edge_rbf(rbf, rbf_width)
        self.cutoff_fn = build_cutoff(cutoff_fn, cutoff)
        n_rbf = {"dist": self.rbf.n_rbf, "sym": N_SYMMETRY, "none": 0}.get(
            edge_input, self.rbf.n_rbf + N_SYMMETRY
        )
        if use_edge_updates:
            self.edge_width = edge_width if edge_width is not None else c // 2
            if self.edge_width < 1:
                raise ValueError(f"edge_width must be >= 1, got {self.edge_width}")
            # E₀ … E_{T−1}: the initial update and one after every step but the last.
            self.edge_updates = nn.ModuleList(
                EdgeUpdate(
                    c, n_rbf if t == 0 else self.edge_width, self.edge_width, edge_activation
                )
                for t in range(n_interactions)
            )
            n_edge = self.edge_width
        else:
            self.edge_width = n_rbf
            self.edge_updates = nn.ModuleList()
            n_edge = n_rbf
        self.blocks = nn.ModuleList(MessageBlock(c, n_edge) for _ in range(n_interactions))

    def forward(self, batch: Batch) -> torch.Tensor:
        h, _ = self._propagate(batch, len(self.blocks))
        return h

    def edge_states(self, batch: Batch, steps: int = 0) -> torch.Tensor:
        """Edge states e⁽ᵗ⁾ [E, edge width] after ``steps`` < T message-passing steps.

        ``steps = 0`` gives e⁽⁰⁾ = E₀(h⁽⁰⁾, h⁽⁰⁾, ε); without edge updates it is ε itself. For
        analysis (Paper A Figs. 2–3) and tests.
        """
        if not 0 <= steps < len(self.blocks):
            raise ValueError(f"steps must be in 0 … {len(self.blocks) - 1}, got {steps}")
        _, e = self._propagate(batch, steps)
        return e

    def _propagate(self, batch: Batch, n_steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Run ``n_steps`` steps; return node states h and the current edge states [E, ·]."""
        geom = EdgeGeometry(batch) if self.uses_distances else _Topology(batch)
        eps = self._edge_input(batch, geom)  # ε_ij, once per pair on mirrored lists
        fcut = None
        if self.cutoff_fn is not None:
            fcut = geom.expand(self.cutoff_fn(geom.d)).unsqueeze(-1)
        edge_index = batch.edge_index
        in_degree = None
        if self.aggregation == "mean":
            in_degree = segment_counts(edge_index[0], batch.num_atoms, eps.dtype)
        h = self.embedding(batch.numbers)
        if self.use_edge_updates:  # Eq. 6; the ε block of E₀ is evaluated per pair
            e0 = self.edge_updates[0]
            e = e0(h, geom.expand(e0.edge_term(eps)), edge_index)
        else:
            e = None
        n_total = len(self.blocks)
        for t in range(n_steps):
            block = self.blocks[t]
            if e is not None:
                gate = block.filter(e)
            else:  # SchNet baseline: filters depend on d_ij only
                gate = geom.expand(block.filter(eps))
            if fcut is not None:
                gate = gate * fcut
            h = h + block(h, gate, edge_index, self.aggregation, in_degree)  # Eq. 9
            if e is not None and t < n_total - 1:  # Eq. 7; the last update is never used
                upd = self.edge_updates[t + 1]
                e = upd(h, upd.edge_term(e), edge_index)
        if e is None:
            e = geom.expand(eps)
        return h, e

    def _edge_input(self, batch: Batch, geom: EdgeGeometry | _Topology) -> torch.Tensor:
        """ε per evaluated pair [E' , width] for the configured ``edge_input``."""
        parts = []
        if "sym" in self.edge_input:
            sym = batch.edge_attr.get("symmetry")
            if sym is None:
                raise ValueError(
                    f"edge_input={self.edge_input!r} needs facet symmetry labels: train and "
                    "predict on a Voronoi graph (graph.kind=voronoi)"
                )
            parts.append(sym[: geom.n_pairs].to(self.embedding.weight.dtype))
        if "dist" in self.edge_input:
            parts.append(self.rbf(geom.d))
        if not parts:  # "none": an empty edge input
            w = self.embedding.weight
            return w.new_zeros(geom.n_pairs, 0)
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)


#: Edge-input modes of Paper B §IV (plus the concatenation as an extension).
EDGE_INPUTS = ("dist", "sym", "none", "sym+dist")
N_SYMMETRY = 9  # C2, C3, C4, C6, D1, D2, D3, D4, D6


class _Topology:
    """The pair bookkeeping of :class:`EdgeGeometry` without reading positions."""

    def __init__(self, batch: Batch) -> None:
        n_edges = batch.edge_index.shape[1]
        self.half = batch.mirrored_edges and n_edges % 2 == 0
        self.n_pairs = n_edges // 2 if self.half else n_edges

    def expand(self, t: torch.Tensor) -> torch.Tensor:
        """Per-pair tensor → per-directed-edge tensor (see ``EdgeGeometry.expand``)."""
        return torch.cat([t, t], dim=0) if self.half else t


def _build_edge_rbf(cfg: dict | None, width: str) -> GaussianRBF:
    """ε_ij basis: 151 Gaussians on 0 … 15 Å; σ form (σ = Δ) or Paper A's γ = 1/Δ."""
    cfg = dict(cfg) if cfg is not None else {"n_rbf": 151, "start": 0.0, "spacing": 0.1}
    if width == "sigma":  # σ from the config, σ = Δ when not given (GaussianRBF default)
        return build_rbf(cfg)
    if width == "paper_a":
        if "sigma" in cfg or "gamma" in cfg:
            raise ValueError(
                "rbf_width='paper_a' sets the width γ = 1/Δ itself; drop 'sigma'/'gamma' from rbf"
            )
        cfg["gamma"] = 1.0 / _spacing(cfg)
        return build_rbf(cfg)
    raise ValueError(f"rbf_width must be 'sigma' or 'paper_a', got {width!r}")


def _spacing(cfg: dict) -> float:
    """Centre spacing Δ (Å) of an rbf config, as ``GaussianRBF`` computes it."""
    if cfg.get("spacing") is not None:
        return float(cfg["spacing"])
    if cfg.get("stop") is None or "n_rbf" not in cfg:
        raise ValueError("rbf config needs 'n_rbf' and 'spacing' or 'stop' to place the centres")
    return (float(cfg["stop"]) - float(cfg.get("start", 0.0))) / max(int(cfg["n_rbf"]) - 1, 1)
