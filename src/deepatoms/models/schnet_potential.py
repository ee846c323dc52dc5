"""Energy, forces and stress of a trained SchNet with a hand-derived backward pass (inference).

:func:`deepatoms.models.potential.compute_potential` differentiates any model with autograd. For
SchNet at run time (MD, relaxation) most of the cost of a small molecule is per-operation
overhead: recording the graph, the autograd engine and ~100 small kernels. This module evaluates
the same function and its exact gradient in ``torch.inference_mode`` with the backward pass
written out (reverse-mode by hand, one matmul per dense layer), the filters of all interaction
blocks in one batched matmul, and no gradient for the first block's input (the embedding does not
depend on positions). It is a faster evaluation of the same model, never a different one: the
tests compare it with autograd to float round-off for every supported configuration.

Forward (Schütt 2018 thesis Eqs. 4.4–4.7, notation of ``models/schnet.py``), per pair p = (i, j)
with v_p = r_j − r_i + S_p·cell and d_p = |v_p|:

    ê_pk = exp(−γ (d_p − μ_k)²)                        a1 = ê W₁ᵀ + b₁,  w = g(ssp(a1) W₂ᵀ + b₂)·f_c(d)
    x⁽⁰⁾ = A[Z]     per block: y = x W_inᵀ,  m_i = Σ_j y_j ∘ w_ij,  a3 = m W_outᵀ + b_out,
                    x ← x + ssp(a3) W_dᵀ + b_d
    E = Σ_i (σ·o(x_i⁽ᵀ⁾) + μ + E_ref(Z_i))

Backward (adjoints ḡ = ∂E/∂·, ssp' = sigmoid):

    x̄⁽ᵀ⁾ = σ ∂o/∂x          per block, last to first:
        m̄ = ((x̄ W_d) ∘ sigmoid(a3)) W_out,   w̄_ij += m̄_i ∘ y_j,   x̄ ← x̄ + (Σ_i m̄_i ∘ w_ij) W_in
    filter:  ā2 = w̄ f_c ∘ g'(a2),  ā1 = (ā2 W₂) ∘ sigmoid(a1),  ē = ā1 W₁,  f̄_c = Σ_f w̄ ∘ g(a2)
    d̄_p = −2γ Σ_k ē_pk ê_pk (d_p − μ_k) + f̄_c f_c'(d_p),   v̄_p = d̄_p v_p / d_p
    F_i = −∂E/∂r_i = Σ_{p: i_p = i} v̄_p − Σ_{p: j_p = i} v̄_p
    σ = (1/V) sym(Σ_p v_p ⊗ v̄_p)      (virial; equal to the strain derivative of compute_potential)
"""

from __future__ import annotations

import math

import torch
from torch import nn

from deepatoms.data.graph import Batch
from deepatoms.models.heads import AtomisticModel
from deepatoms.models.schnet import SchNet
from deepatoms.nn.activations import ShiftedSoftplus
from deepatoms.nn.cutoff import CosineCutoff, HardCutoff
from deepatoms.nn.mlp import Dense

_LN2 = math.log(2.0)
_ACTIVATIONS = {ShiftedSoftplus: "ssp", nn.Tanh: "tanh", nn.SiLU: "silu", nn.ReLU: "relu"}


def _act_name(module: nn.Module) -> str | None:
    """Name of a supported activation module (``identity`` for none), or None if unsupported."""
    if isinstance(module, nn.Identity):
        return "identity"
    return _ACTIVATIONS.get(type(module))


def _act(name: str, a: torch.Tensor) -> torch.Tensor:
    """Activation value at pre-activation ``a`` (``softplus``: ssp with its −ln 2 folded away)."""
    if name == "ssp":
        return nn.functional.softplus(a) - _LN2
    if name == "softplus":
        return nn.functional.softplus(a)
    if name == "tanh":
        return torch.tanh(a)
    if name == "silu":
        return nn.functional.silu(a)
    if name == "relu":
        return torch.relu(a)
    return a


def _act_grad(name: str, a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """g ∘ act'(a): the adjoint of the pre-activation from that of the activation."""
    if name in ("ssp", "softplus"):  # sigmoid; aten's fused kernel beats sigmoid and mul ~5x
        return torch.ops.aten.softplus_backward(g, a, 1.0, 20.0)
    if name == "tanh":
        t = torch.tanh(a)
        return g * (1.0 - t * t)
    if name == "silu":
        s = torch.sigmoid(a)
        return g * (s * (1.0 + a * (1.0 - s)))
    if name == "relu":
        return g * (a > 0).to(g.dtype)
    return g


def _fold_ssp(act: str | None, next_weight: torch.Tensor, next_bias: torch.Tensor):
    """ssp(a) W'ᵀ + b' = softplus(a) W'ᵀ + (b' − ln 2 · Σ_k W'_{:,k}): one subtraction less."""
    if act == "ssp":
        return "softplus", next_bias - _LN2 * next_weight.sum(1)
    return act, next_bias


def _frozen(t: torch.Tensor) -> torch.Tensor:
    return t.detach().clone()


class SchNetPotential:
    """Analytic energy (eV), forces (eV/Å) and stress (eV/Å³) of one trained SchNet energy model.

    Build with :meth:`from_model`, which returns None for models it does not cover (then use
    ``compute_potential``). It takes a snapshot of the model's parameters (device and dtype
    included): rebuild it after training or casting the model. Call it like
    ``compute_potential(model, batch, forces=..., stress=...)``; the results are the same.
    """

    def __init__(self, model: AtomisticModel) -> None:
        rep: SchNet = model.representation
        head = model.head
        self.property = model.property
        self.aggregation = rep.aggregation
        self.embedding = _frozen(rep.embedding.weight)
        self.gamma = rep.rbf.gamma
        self.centers = _frozen(rep.rbf.centers).to(self.embedding.dtype)
        cut = rep.cutoff_fn
        self.cutoff_kind = (
            "cosine" if isinstance(cut, CosineCutoff) else "hard" if cut is not None else None
        )
        self.cutoff = cut.cutoff if cut is not None else math.inf
        # Distinct filter networks (shared filters: one), each evaluated on contiguous [P, F]
        # tensors (element-wise kernels on column slices of a [P, U·F] tensor run 3x slower).
        nets: list[nn.Module] = []
        self.filter_of_block: list[int] = []
        for block in rep.interactions:
            ids = [k for k, net in enumerate(nets) if net is block.filter_net]
            if not ids:
                nets.append(block.filter_net)
                ids = [len(nets) - 1]
            self.filter_of_block.append(ids[0])
        self.filter_act = _act_name(nets[0].l2.activation)
        self.filters = []
        for n in nets:
            _, b2 = _fold_ssp("ssp", n.l2.weight, n.l2.bias)
            w1, w2 = _frozen(n.l1.weight), _frozen(n.l2.weight)
            self.filters.append((w1, w1.t(), _frozen(n.l1.bias), w2, w2.t(), _frozen(b2)))
        self.blocks = []
        for b in rep.interactions:
            _, b_d = _fold_ssp("ssp", b.dense.weight, b.dense.bias)
            w_in, w_out, w_d = (
                _frozen(b.in2f.weight),
                _frozen(b.f2out.weight),
                _frozen(b.dense.weight),
            )
            self.blocks.append(
                (
                    w_in,
                    w_in.t(),
                    w_out,
                    w_out.t(),
                    _frozen(b.f2out.bias),
                    w_d,
                    w_d.t(),
                    _frozen(b_d),
                )
            )
        layers = list(head.net)
        self.head_layers = []
        for k, d in enumerate(layers):
            act = _act_name(d.activation)
            bias = _frozen(d.bias)
            if k > 0 and self.head_layers[-1][3] == "softplus":
                bias = _frozen(_fold_ssp("ssp", d.weight, d.bias)[1])
            if k + 1 < len(layers):
                act = _fold_ssp(act, layers[k + 1].weight, layers[k + 1].bias)[0]
            w = _frozen(d.weight)
            self.head_layers.append((w, w.t(), bias, act))
        self.std, self.mean = float(head.std), float(head.mean)
        self.atomref = _frozen(head.atomref)

    @classmethod
    def supports(cls, model: nn.Module) -> bool:
        """True when ``model`` is a SchNet energy model whose every piece this module covers."""
        rep = getattr(model, "representation", None)
        head = getattr(model, "head", None)
        if not (isinstance(model, AtomisticModel) and type(rep) is SchNet):
            return False
        if head.readout != "sum" or rep.aggregation not in ("sum", "mean"):
            return False
        if rep.cutoff_fn is not None and not isinstance(rep.cutoff_fn, CosineCutoff | HardCutoff):
            return False
        for block in rep.interactions:
            f = block.filter_net
            if _act_name(f.l1.activation) != "ssp" or _act_name(f.l2.activation) not in (
                "ssp",
                "identity",
            ):
                return False
            if _act_name(block.f2out.activation) != "ssp" or _act_name(
                block.dense.activation
            ) not in ("identity",):
                return False
            if block.in2f.bias is not None or _act_name(block.in2f.activation) != "identity":
                return False
        return all(
            isinstance(d, Dense) and d.bias is not None and _act_name(d.activation) is not None
            for d in head.net
        )

    @classmethod
    def from_model(cls, model: nn.Module) -> SchNetPotential | None:
        """The analytic potential of ``model``, or None if ``model`` is not a covered SchNet."""
        return cls(model) if cls.supports(model) else None

    # -- evaluation -------------------------------------------------------------------------
    def __call__(
        self, batch: Batch, *, forces: bool = True, stress: bool = False
    ) -> dict[str, torch.Tensor]:
        """Energy [B], contributions [N], forces [N,3] and stress [B,3,3] (as compute_potential)."""
        with torch.inference_mode():
            return self._evaluate(batch, forces or stress, stress)

    @staticmethod
    def _pair_vectors(batch: Batch, n_pairs: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Receivers i and vectors v = r_j − r_i + S·cell [P,3] of the first ``n_pairs`` edges."""
        i, j = batch.edge_index[:, :n_pairs]
        pos = batch.positions
        vec = pos.index_select(0, j) - pos.index_select(0, i)
        if batch.num_systems == 1:  # one system (a calculator call): no test, one fused op
            return i, torch.addmm(vec, batch.edge_shift[:n_pairs], batch.cell[0].to(vec.dtype))
        return i, batch.edge_vectors()[:n_pairs]

    def _evaluate(self, batch: Batch, grads: bool, stress: bool) -> dict[str, torch.Tensor]:
        ei = batch.edge_index
        n_edges = ei.shape[1]
        mirrored = batch.mirrored_edges and n_edges % 2 == 0
        reps = 2 if mirrored else 1  # directed edges per evaluated pair
        n_pairs = n_edges // reps
        recv, send = ei[0], ei[1]
        pos = batch.positions
        i_p, vec = self._pair_vectors(batch, n_pairs)
        d = torch.linalg.vector_norm(vec, dim=1)  # [P]
        diff = d.unsqueeze(1) - self.centers
        rbf = torch.exp(diff.square().mul_(-self.gamma))  # [P, K]
        if self.cutoff_kind is not None:
            half_inside = (d <= self.cutoff).to(d.dtype).mul_(0.5)
            if self.cutoff_kind == "cosine":
                arg = d * (math.pi / self.cutoff)
                fc = torch.cos(arg).add_(1.0).mul_(half_inside)
            else:
                fc = half_inside * 2.0
            fc_col = fc.unsqueeze(1)
        # Filters (Fig. 4.2); the −ln 2 of the first ssp is folded into the second layer's bias.
        filt = []
        for _, w1_t, b1, _, w2_t, b2 in self.filters:
            a1 = torch.addmm(b1, rbf, w1_t)  # [P, F]
            a2 = torch.addmm(b2, nn.functional.softplus(a1), w2_t)
            h2 = _act(self.filter_act, a2)
            filt.append((a1, a2, h2, h2 * fc_col if self.cutoff_kind is not None else h2))

        n = batch.num_atoms
        inv_deg = None
        if self.aggregation == "mean":
            deg = torch.zeros(n, dtype=pos.dtype, device=pos.device)
            deg.index_add_(0, recv, torch.ones_like(recv, dtype=pos.dtype))
            inv_deg = (1.0 / deg.clamp(min=1.0)).unsqueeze(1)
        x = self.embedding.index_select(0, batch.numbers)
        saved = []
        for t, (_, w_in_t, _, w_out_t, b_out, _, w_d_t, b_d) in enumerate(self.blocks):
            wt = filt[self.filter_of_block[t]][3]
            y = torch.mm(x, w_in_t)
            f = y.shape[1]  # explicit sizes: no edges (a lone atom) is valid
            msg = y.index_select(0, send).view(reps, n_pairs, f).mul_(wt).view(n_edges, f)
            m = x.new_zeros(n, msg.shape[1]).index_add_(0, recv, msg)
            del msg
            if inv_deg is not None:
                m = m * inv_deg
            a3 = torch.addmm(b_out, m, w_out_t)
            x = torch.addmm(b_d, nn.functional.softplus(a3), w_d_t).add_(x)
            saved.append((y, a3))  # y [N, F], not y_j [E, F]: re-gathered when needed
        pre = []
        h = x
        for _, weight_t, bias, act in self.head_layers:
            a = torch.addmm(bias, h, weight_t)
            pre.append(a)
            h = _act(act, a)
        raw = h.squeeze(1)
        contrib = (raw * self.std + self.mean).double() + self.atomref.index_select(
            0, batch.numbers
        )
        energy = contrib.new_zeros(batch.num_systems).index_add_(0, batch.batch, contrib)
        out = {self.property: energy, "contributions": contrib, "energy": energy}
        if not grads:
            return out

        # Reverse pass. ∂E/∂raw_i = σ.
        g = torch.full_like(raw, self.std).unsqueeze(1)
        for (weight, _, _, act), a in zip(reversed(self.head_layers), reversed(pre), strict=True):
            g = torch.mm(_act_grad(act, a, g), weight)
        gw: list[torch.Tensor | None] = [None] * len(filt)  # ∂E/∂w per filter network, [P, F]
        for t in range(len(self.blocks) - 1, -1, -1):
            w_in, _, w_out, _, _, w_d, _, _ = self.blocks[t]
            y, a3 = saved[t]
            u = self.filter_of_block[t]
            gm = torch.mm(_act_grad("softplus", a3, torch.mm(g, w_d)), w_out)
            if inv_deg is not None:
                gm = gm * inv_deg
            gmsg = gm.index_select(0, recv).view(reps, n_pairs, gm.shape[1])
            y_send = y.index_select(0, send).view(reps, n_pairs, y.shape[1])
            if reps == 2:
                gw_t = torch.addcmul(gmsg[0] * y_send[0], gmsg[1], y_send[1])
            else:
                gw_t = gmsg[0] * y_send[0]
            gw[u] = gw_t if gw[u] is None else gw[u].add_(gw_t)
            if t > 0:  # the embedding does not depend on positions
                g_edge = torch.mul(gmsg, filt[u][3], out=y_send).view(n_edges, y.shape[1])
                g = torch.zeros_like(g).index_add_(0, send, g_edge).mm(w_in).add_(g)
            del gmsg, y_send
        # Filter networks, then the distance.
        gfc = None
        grbf = None
        for (w1, _, _, w2, _, _), (a1, a2, h2, _), gw_u in zip(self.filters, filt, gw, strict=True):
            if gw_u is None:
                continue
            if self.cutoff_kind is not None:
                gfc_u = (gw_u * h2).sum(1)
                gfc = gfc_u if gfc is None else gfc.add_(gfc_u)
                gw_u.mul_(fc_col)
            gh1 = torch.mm(_act_grad(self.filter_act, a2, gw_u), w2)
            ga1 = _act_grad("softplus", a1, gh1)
            grbf = torch.mm(ga1, w1) if grbf is None else grbf.addmm_(ga1, w1)
        gd = (grbf * rbf * diff).sum(1).mul_(-2.0 * self.gamma)
        if self.cutoff_kind == "cosine":  # f_c' = −(π / 2r_c) sin(π d / r_c) inside r_c
            gd = gd - gfc * torch.sin(arg).mul_(half_inside * (math.pi / self.cutoff))
        gvec = vec * (gd / d).unsqueeze(1)  # ∂E/∂v_p, [P, 3]
        j_p = send[:n_pairs]
        f = torch.zeros_like(pos).index_add_(0, i_p, gvec).index_add_(0, j_p, gvec, alpha=-1)
        out["forces"] = f
        if stress:
            out["stress"] = self._virial_stress(batch, vec, gvec, i_p)
        return out

    @staticmethod
    def _virial_stress(
        batch: Batch, vec: torch.Tensor, gvec: torch.Tensor, i_p: torch.Tensor
    ) -> torch.Tensor:
        """σ = sym(Σ_p v_p ⊗ ∂E/∂v_p) / V per system [B,3,3]; NaN for non-periodic systems."""
        if batch.num_systems == 1:
            w = (vec.t() @ gvec).unsqueeze(0)
        else:
            outer = (vec.unsqueeze(2) * gvec.unsqueeze(1)).reshape(-1, 9)
            sys_of_pair = batch.batch.index_select(0, i_p)
            w = outer.new_zeros(batch.num_systems, 9).index_add_(0, sys_of_pair, outer)
            w = w.view(-1, 3, 3)
        w = 0.5 * (w + w.transpose(1, 2))
        cell = batch.cell.to(vec.dtype)
        volume = torch.linalg.det(cell).abs()
        periodic = batch.pbc.all(dim=1) & (volume > 0)
        safe_v = torch.where(periodic, volume, torch.ones_like(volume))
        sigma = w / safe_v[:, None, None]
        return torch.where(periodic[:, None, None], sigma, torch.full_like(sigma, math.nan))


__all__ = ["SchNetPotential"]
