"""MPNN (Gilmer et al. 2017) and VIMPNN (Morgan et al.): edge-network messages and a GRU update.

docs/vimpnn.md §1–§5. N atoms, E directed edges, K = ``n_bond_types`` channels, d_msg =
``n_hidden`` (73) per bond type, d_h = state width: d_msg, or K·d_msg for the b variants.

    h_v⁰ = [onehot(Z_v over ``elements``) ‖ Z_v / z_s ‖ 0 …] ∈ R^{d_h}    node features (§1), no embedding
    e_vw = d_vw (Å) or rbf(d_vw), followed by onehot(type_vw) for "distance+bond_type"    (§1)
    A(e_vw) = reshape(MLP(e_vw; e_dim → 128 → 256 → 128 → d_msg·d_h, ReLU), d_msg × d_h)    (§2)
    m_v|k = Σ_{w ∈ N(v), type(vw) = k} A(e_vw) h_w      per-type scatter sums, one message net (§2)
    for t = 1 … T (weights shared across steps, T = 3), update per ``channels`` (§3):
      none:  h_v ← GRU(Σ_{w ∈ N(v)} A(e_vw) h_w, h_v)       one channel (MPNN / no-BT baselines)
      a.i:   h_v ← GRU(Σ_k λ_k ⊙ m_v|k, h_v)               λ_k ∈ R^{d_msg}  (Eq. 4)
      a.ii:  h_v ← GRU(Σ_k λ_k m_v|k, h_v)                 λ_k ∈ R  (VIMPNN)
      b.i:   h_v ← GRU([m_v|1 ‖ … ‖ m_v|K], h_v)            d_h = K·d_msg
      b.ii:  h_v,k ← GRU_s(λ_k m_v|k, h_v,k),  h_v = [h_v,1 ‖ … ‖ h_v,K]   one d_msg-wide GRU_s
             shared by the blocks (Default reading of the text), d_h = K·d_msg
      c:     h_v ← Σ_k GRU_k(m_v|k, h_v)                    one GRU per type  (Eq. 5)
    x_v = [h_vᵀ ‖ h_v⁰] → gated energy readout and auxiliary heads (``gated_readout``, §4)

z_s = ``z_scale`` is 1 in the paper (raw Z). On metal clusters raw Z saturates the GRU: with Cu
(Z = 29) and 12 neighbours its inputs reach |x| ≈ 150–500 in a trained model, all node states
become equal (their spread over nodes 0.002) and the model predicts composition only; with
z_s = 29 the same run learns (validation MAE after 2 epochs on Stable CG 0.46 eV against 1.94
eV after 10 epochs with raw Z, measured). The growth CPU presets use z_s = 29.

λ starts at 1. The GRU is ``torch.nn.GRUCell`` (input first, state second). Reductions: with
K = 1 and λ = 1 every variant computes exactly the function of ``channels="none"`` with the same
A and GRU weights (b.i, b.ii then have d_h = d_msg and c has a single GRU); with λ = 1, a.i equals
a.ii for any K. Baselines (§5): MPNN = ``none`` + ``"distance+bond_type"``; no-BT = ``none`` +
``"distance"``; VIMPNN = ``a.ii`` + ``"distance"`` + all three auxiliary heads.

Computation: sparse edge lists and scatter sums, no dense N × N tensor. A(e) depends only on the
distance and the bond type, which do not change during a forward pass, so the E' × d_msg × d_h
matrices are computed once per forward and reused by the T steps; on mirrored edge lists E' = E/2
(one matrix per unordered pair, see ``EdgeGeometry``) and both directions of a pair share one
batched product A_p · [h_w, h_v]. Forces come by autograd through the distances (periodic edge
vectors include the cell shifts).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from ase.data import chemical_symbols
from torch import nn

from deepatoms.data.graph import Batch
from deepatoms.data.packed import PackedSystems
from deepatoms.models.common import EdgeGeometry, build_rbf
from deepatoms.models.gated_readout import AUX_HEADS, AuxiliaryHeads, GatedReadout
from deepatoms.models.heads import MAX_Z, AtomisticModel, AtomwiseHead
from deepatoms.nn.mlp import mlp
from deepatoms.nn.scatter import scatter_sum

CHANNELS = ("none", "a.i", "a.ii", "b.i", "b.ii", "c")
EDGE_FEATURES = ("distance", "distance+bond_type")
#: Node-feature vocabulary of the paper: H, C, N, O, F, Al, Cu.
DEFAULT_ELEMENTS = (1, 6, 7, 8, 9, 13, 29)


class MPNNRepresentation(nn.Module):
    """Batch → x = [h⁽ᵀ⁾ ‖ h⁰] [N, 2·d_h] (module docstring; options as in :func:`build_mpnn`)."""

    def __init__(
        self, n_hidden: int = 73, n_steps: int = 3, elements: Sequence[int] = DEFAULT_ELEMENTS,
        n_bond_types: int = 1, channels: str = "none", edge_features: str = "distance",
        distance_expansion: dict | None = None, edge_net: Sequence[int] = (128, 256, 128),
        z_scale: float = 1.0,
    ) -> None:  # fmt: skip
        super().__init__()
        if not (isinstance(z_scale, (int, float)) and z_scale > 0):
            raise ValueError(f"z_scale must be a number > 0, got {z_scale!r}")
        self.z_scale = float(z_scale)
        if channels not in CHANNELS:
            raise ValueError(f"channels must be one of {CHANNELS}, got {channels!r}")
        if edge_features not in EDGE_FEATURES:
            raise ValueError(f"edge_features must be one of {EDGE_FEATURES}, got {edge_features!r}")
        _check_int("n_bond_types", n_bond_types, 1)
        _check_int("n_steps", n_steps, 1)
        elements = _check_elements(elements)
        _check_int("n_hidden", n_hidden, len(elements) + 1)
        edge_net = _check_widths("edge_net", edge_net)
        self.channels = channels
        self.edge_features = edge_features
        self.n_bond_types = k = n_bond_types
        self.n_steps = n_steps
        self.n_elements = len(elements)
        self.d_msg = n_hidden
        self.n_state = n_hidden * k if channels in ("b.i", "b.ii") else n_hidden  # d_h
        self.n_atom_basis = 2 * self.n_state  # width of x = [h⁽ᵀ⁾ ‖ h⁰]
        self.n_channels = 1 if channels == "none" else k
        table = torch.full((MAX_Z,), -1, dtype=torch.long)
        table[torch.tensor(elements)] = torch.arange(len(elements))
        self.register_buffer("element_index", table, persistent=False)
        self.elements = elements
        self.rbf = build_rbf(dict(distance_expansion)) if distance_expansion else None
        n_dist = self.rbf.n_rbf if self.rbf is not None else 1
        n_edge = n_dist + (k if edge_features == "distance+bond_type" else 0)
        self.edge_net = mlp([n_edge, *edge_net, self.d_msg * self.n_state], activation="relu")
        d_msg, d_h = self.d_msg, self.n_state
        if channels == "c":
            self.grus = nn.ModuleList(nn.GRUCell(d_msg, d_h) for _ in range(k))
        elif channels == "b.ii":
            self.gru = nn.GRUCell(d_msg, d_msg)
        else:
            self.gru = nn.GRUCell(d_msg * k if channels == "b.i" else d_msg, d_h)
        if channels == "a.i":
            self.lam = nn.Parameter(torch.ones(k, d_msg))
        elif channels in ("a.ii", "b.ii"):
            self.lam = nn.Parameter(torch.ones(k))
        else:
            self.lam = None

    def node_features(self, numbers: torch.Tensor) -> torch.Tensor:
        """h⁰ [N, d_h]: one-hot over ``elements``, then Z, then zeros (model dtype)."""
        idx = self.element_index.index_select(0, numbers.clamp(0, MAX_Z - 1))
        bad = (idx < 0) | (numbers >= MAX_Z)
        if bool(bad.any()):
            z = sorted({int(v) for v in numbers[bad]})
            names = [chemical_symbols[v] if 0 <= v < len(chemical_symbols) else str(v) for v in z]
            raise ValueError(
                f"element(s) {names} (Z = {z}) are not in the model's node-feature vocabulary "
                f"'elements' = {self.elements}; add them to the 'elements' option and retrain"
            )
        dtype = self.edge_net[0].weight.dtype
        h0 = torch.zeros(numbers.shape[0], self.n_state, dtype=dtype, device=numbers.device)
        h0[torch.arange(numbers.shape[0], device=numbers.device), idx] = 1.0
        h0[:, self.n_elements] = numbers.to(dtype) / self.z_scale
        return h0

    def bond_types(self, batch: Batch) -> torch.Tensor:
        """Bond-type id of every directed edge [E] (long), from ``batch.edge_attr["bond_type"]``."""
        n_edges = batch.edge_index.shape[1]
        bt = batch.edge_attr.get("bond_type")
        if bt is None:
            if self.n_bond_types == 1:
                return torch.zeros(n_edges, dtype=torch.long, device=batch.edge_index.device)
            raise ValueError(
                f"the model routes or encodes {self.n_bond_types} bond types but the batch has no "
                "'bond_type' edge attribute: use the dataset's stored bond graph (graph.kind="
                "bonds), or set channels='none' with edge_features='distance' (no-BT baseline)"
            )
        bt = bt.reshape(-1).long()
        if bt.numel() and (int(bt.min()) < 0 or int(bt.max()) >= self.n_bond_types):
            raise ValueError(
                f"bond type ids {int(bt.min())} … {int(bt.max())} are outside 0 … "
                f"{self.n_bond_types - 1}: set n_bond_types to the size of the dataset's "
                "metadata['bond_types'] vocabulary"
            )
        return bt

    def edge_matrices(self, batch: Batch, geom: EdgeGeometry, bt: torch.Tensor | None):
        """A(e) [E', d_msg, d_h], one per evaluated pair (E' = E/2 on mirrored lists)."""
        e = geom.d.unsqueeze(-1) if self.rbf is None else self.rbf(geom.d)
        if self.edge_features == "distance+bond_type":
            onehot = nn.functional.one_hot(bt[: geom.n_pairs], self.n_bond_types)
            e = torch.cat([e, onehot.to(e.dtype)], dim=-1)
        return self.edge_net(e).view(-1, self.d_msg, self.n_state)

    def forward(self, batch: Batch) -> torch.Tensor:
        h0 = self.node_features(batch.numbers)
        n_atoms = h0.shape[0]
        geom = EdgeGeometry(batch)
        uses_types = self.n_channels > 1 or self.edge_features == "distance+bond_type"
        bt = self.bond_types(batch) if uses_types else None
        a = self.edge_matrices(batch, geom, bt)
        receivers, senders = batch.edge_index
        route = receivers * self.n_channels + bt if self.n_channels > 1 else receivers
        h = h0
        for _ in range(self.n_steps):
            msg = _apply_matrices(a, h.index_select(0, senders), geom.half)  # [E, d_msg]
            m = scatter_sum(msg, route, n_atoms * self.n_channels)
            h = self.update(h, m.view(n_atoms, self.n_channels, self.d_msg))
        return torch.cat([h, h0], dim=-1)

    def update(self, h: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """New states [N, d_h] from states h and per-channel messages m [N, C, d_msg] (§3)."""
        ch = self.channels
        if ch == "none":
            return self.gru(m[:, 0], h)
        if ch == "a.i":
            return self.gru((m * self.lam).sum(dim=1), h)
        if ch == "a.ii":
            return self.gru((m * self.lam[:, None]).sum(dim=1), h)
        if ch == "b.i":
            return self.gru(m.reshape(m.shape[0], -1), h)
        if ch == "b.ii":
            blocks = self.gru(
                (m * self.lam[:, None]).reshape(-1, self.d_msg), h.reshape(-1, self.d_msg)
            )
            return blocks.reshape(h.shape)
        out = self.grus[0](m[:, 0], h)  # "c", Eq. 5
        for k in range(1, self.n_bond_types):
            out = out + self.grus[k](m[:, k], h)
        return out


def _apply_matrices(a: torch.Tensor, h_send: torch.Tensor, half: bool) -> torch.Tensor:
    """M_e = A_{pair(e)} h_{sender(e)} [E, d_msg]; a [E', d_msg, d_h], h_send [E, d_h].

    On mirrored lists (``half``) edge e and e + E/2 share A_e: one batched product per pair with
    both sender states (einsum: faster than ``bmm`` on CPU for these 2-column products).
    """
    if not half:
        return torch.einsum("eij,ej->ei", a, h_send)
    n_pairs = a.shape[0]
    both = h_send.view(2, n_pairs, a.shape[2])  # [2, E/2, d_h]
    return torch.einsum("pij,kpj->kpi", a, both).reshape(2 * n_pairs, a.shape[1])


class MPNNModel(AtomisticModel):
    """MPNN/VIMPNN: representation, gated energy readout and optional auxiliary heads.

    ``forward(batch)`` returns ``{property: [B], "contributions": [N], "aux": {head: [B, k]}}``
    (float64; "aux" only with auxiliary heads, in target units). ``aux_weight`` is α of the loss
    L = MSE(E) + α · :meth:`auxiliary_loss`.
    """

    def __init__(
        self,
        representation: MPNNRepresentation,
        head: AtomwiseHead,
        aux: AuxiliaryHeads,
        aux_weight: float,
        property: str,
        config: dict,
    ) -> None:
        super().__init__(representation, head, property, config)
        self.aux = aux
        self.aux_weight = float(aux_weight)

    @property
    def aux_labels(self) -> list[str]:
        """Per-system labels the auxiliary loss needs in ``batch.targets`` (e.g. ``["scale"]``)."""
        return self.aux.labels

    def forward(self, batch: Batch) -> dict:
        x = self.representation(batch)
        y, contrib = self.head(x, batch)
        out = {self.property: y, "contributions": contrib}
        if self.aux.names:
            out["aux"] = self.aux(x, batch)
        return out

    def set_aux_statistics(self, data: PackedSystems) -> None:
        """z-score statistics of every auxiliary target over the training pack ``data``."""
        self.aux.set_statistics(data)

    def auxiliary_loss(self, out: dict, batch: Batch) -> torch.Tensor:
        """Σ_heads MSE(z-scored prediction, z-scored target), float64 (α not applied)."""
        return self.aux.loss(out.get("aux", {}), batch)


def build_mpnn(
    *, property: str, readout: str, config: dict, n_hidden: int, n_steps: int,
    elements: Sequence[int], n_bond_types: int, channels: str, edge_features: str,
    distance_expansion: dict | None, edge_net: Sequence[int], readout_hidden: Sequence[int],
    aux: Sequence[str], aux_weight: float, orbitals: str, scaling_sigma: float, z_scale: float,
) -> MPNNModel:  # fmt: skip
    """Build an MPNN/VIMPNN model (options and defaults: :data:`MPNN_DEFAULTS`, §1–§5).

    n_hidden d_msg (= d_h outside the b variants); n_steps T; elements the node-feature vocabulary
    (atomic numbers); n_bond_types K (size of the dataset's bond vocabulary); channels one of
    :data:`CHANNELS`; edge_features one of :data:`EDGE_FEATURES`; distance_expansion a Gaussian
    basis config (``GaussianRBF`` options, Å) or None for the raw distance; edge_net, readout_hidden
    the hidden widths of A and of i, j; aux a subset of ("atoms", "orbitals", "scaling");
    aux_weight α ≥ 0; orbitals "subshell" | "valence"; scaling_sigma σ_s > 0; z_scale: the
    node feature carries Z / z_scale (1 = the paper's raw Z).
    """
    if not (isinstance(aux_weight, (int, float)) and aux_weight >= 0):
        raise ValueError(f"aux_weight must be a number >= 0, got {aux_weight!r}")
    if isinstance(aux, str):
        raise ValueError(f"aux must be a list of heads from {AUX_HEADS}, got the string {aux!r}")
    readout_hidden = _check_widths("readout_hidden", readout_hidden)
    rep = MPNNRepresentation(
        n_hidden=n_hidden,
        n_steps=n_steps,
        elements=elements,
        n_bond_types=n_bond_types,
        channels=channels,
        edge_features=edge_features,
        distance_expansion=distance_expansion,
        z_scale=z_scale,
        edge_net=edge_net,
    )
    d_h = rep.n_state
    head = AtomwiseHead(
        rep.n_atom_basis, [], readout=readout, net=GatedReadout(d_h, readout_hidden, 1)
    )
    heads = AuxiliaryHeads(d_h, readout_hidden, aux, rep.elements, orbitals, scaling_sigma)
    return MPNNModel(rep, head, heads, aux_weight, property, config)


def _check_int(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_widths(name: str, widths) -> list[int]:
    widths = list(widths)
    if not widths or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in widths):
        raise ValueError(f"{name} must be a non-empty list of positive layer widths, got {widths}")
    return widths


def _check_elements(elements) -> list[int]:
    elements = [int(z) for z in elements]
    if (
        not elements
        or len(set(elements)) != len(elements)
        or not all(1 <= z < MAX_Z for z in elements)
    ):
        raise ValueError(
            f"elements must be distinct atomic numbers 1 … {MAX_Z - 1}, got {elements}"
        )
    return elements


#: Options of the ``mpnn`` family (Gilmer MPNN baseline) with their defaults.
MPNN_DEFAULTS = {
    "n_hidden": 73,
    "n_steps": 3,
    "elements": list(DEFAULT_ELEMENTS),
    "n_bond_types": 1,
    "channels": "none",
    "edge_features": "distance+bond_type",
    "distance_expansion": None,
    "edge_net": [128, 256, 128],
    "readout_hidden": [128, 256, 128],
    "aux": [],
    "aux_weight": 0.3,
    "orbitals": "subshell",
    "scaling_sigma": 0.1,
    "z_scale": 1.0,
}
#: Options of the ``vimpnn`` family: a.ii channels, distance edges, all three auxiliary heads.
VIMPNN_DEFAULTS = {
    **MPNN_DEFAULTS,
    "channels": "a.ii",
    "edge_features": "distance",
    "aux": list(AUX_HEADS),
}
