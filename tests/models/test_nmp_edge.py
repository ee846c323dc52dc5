"""NMP-edge (docs/property_models.md §6, Paper A Eqs. 5–10): equations against a written-out reference computation."""

from __future__ import annotations

import pytest
import torch
from ase import Atoms
from f64 import F64, float64_default

from deepatoms.data.graph import Batch
from deepatoms.data.neighbors import GraphSpec
from deepatoms.models import build_model

GRAPH = GraphSpec("all", None)


def _water() -> Atoms:  # deliberately asymmetric
    return Atoms("OHH", positions=[[0.0, 0.0, 0.1], [0.97, 0.05, 0.0], [-0.2, 0.9, -0.1]])


def _model(seed: int = 3, **kw):
    cfg = {"name": "nmp_edge", "n_atom_basis": 8, "n_interactions": 3}
    cfg.update(kw)
    torch.manual_seed(seed)
    with float64_default():
        model = build_model(cfg)
    with torch.no_grad():  # zero biases hide mistakes: give every parameter some noise
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return model


def ssp(x: torch.Tensor) -> torch.Tensor:
    return torch.log(0.5 * torch.exp(x) + 0.5)  # the textbook form, not the library's


def _reference(model, atoms: Atoms, gamma: float, use_edge_updates: bool, out_act=None):
    """Paper A Eqs. 5–9 with explicit loops over atoms and ordered pairs (no mirror trick)."""
    rep = model.representation
    pos = torch.tensor(atoms.positions, dtype=F64)
    z = torch.tensor(atoms.numbers)
    n = len(atoms)
    mu = 0.1 * torch.arange(151, dtype=F64)
    pairs = [(i, j) for i in range(n) for j in range(n) if i != j]
    eps = {}
    for i, j in pairs:
        d = torch.linalg.vector_norm(pos[j] - pos[i])
        eps[i, j] = torch.exp(-gamma * (d - mu) ** 2)

    def edge_net(upd, hi, hj, e):
        hidden = ssp(upd.l1.weight @ torch.cat([hi, hj, e]) + upd.l1.bias)
        out = upd.l2.weight @ hidden + upd.l2.bias
        return out if out_act is None else out_act(out)

    h = [rep.embedding.weight[z[i]] for i in range(n)]
    if use_edge_updates:
        e = {p: edge_net(rep.edge_updates[0], h[p[0]], h[p[1]], eps[p]) for p in pairs}
    else:
        e = eps
    n_steps = len(rep.blocks)
    for t, blk in enumerate(rep.blocks):
        new_h = []
        for i in range(n):
            m = torch.zeros_like(h[i])
            for j in range(n):
                if j == i:
                    continue
                gate = ssp(
                    blk.filter2.weight @ ssp(blk.filter1.weight @ e[i, j] + blk.filter1.bias)
                    + blk.filter2.bias
                )
                m = m + (blk.lin_node.weight @ h[j]) * gate  # Eq. 8, W₁ without bias
            upd = blk.update2.weight @ ssp(blk.update1.weight @ m + blk.update1.bias)
            new_h.append(h[i] + upd + blk.update2.bias)  # Eq. 9
        h = new_h
        if use_edge_updates and t < n_steps - 1:  # Eq. 7
            e = {p: edge_net(rep.edge_updates[t + 1], h[p[0]], h[p[1]], e[p]) for p in pairs}
    return torch.stack(h)


@pytest.mark.parametrize("rbf_width,gamma", [("sigma", 50.0), ("paper_a", 10.0)])
def test_forward_matches_reference_with_edge_updates(rbf_width, gamma):
    atoms = _water()
    model = _model(rbf_width=rbf_width)
    assert model.representation.rbf.gamma == pytest.approx(gamma)
    batch = Batch.from_atoms(atoms, GRAPH, dtype=F64)
    with torch.no_grad():
        h = model.representation(batch)
        ref = _reference(model, atoms, gamma, use_edge_updates=True)
    torch.testing.assert_close(h, ref, rtol=1e-11, atol=1e-11)


def test_edge_options_width_c_and_ssp_output():
    atoms = _water()
    model = _model(edge_width=8, edge_activation="ssp")
    rep = model.representation
    assert all(u.l2.out_features == 8 for u in rep.edge_updates)
    batch = Batch.from_atoms(atoms, GRAPH, dtype=F64)
    with torch.no_grad():
        h = rep(batch)
        ref = _reference(model, atoms, 50.0, use_edge_updates=True, out_act=ssp)
    torch.testing.assert_close(h, ref, rtol=1e-11, atol=1e-11)


def test_without_edge_updates_message_is_schnet_filter_form():
    atoms = _water()
    model = _model(use_edge_updates=False)
    rep = model.representation
    assert len(rep.edge_updates) == 0
    batch = Batch.from_atoms(atoms, GRAPH, dtype=F64)
    with torch.no_grad():
        h = rep(batch)
        ref = _reference(model, atoms, 50.0, use_edge_updates=False)
    torch.testing.assert_close(h, ref, rtol=1e-11, atol=1e-11)


def test_without_edge_updates_equals_schnet_with_copied_weights():
    """Paper A's SchNet baseline: same numbers as our SchNet (paper filters, no cutoff)."""
    atoms = _water()
    nmp = _model(use_edge_updates=False).representation
    with float64_default():
        sch = build_model(
            {
                "name": "schnet",
                "n_atom_basis": 8,
                "n_interactions": 3,
                "rbf": {"n_rbf": 151, "start": 0.0, "spacing": 0.1, "sigma": 0.1},
                "cutoff_fn": None,
                "cutoff": None,
                "filter_last_activation": "ssp",
            }
        ).representation
    with torch.no_grad():
        sch.embedding.weight.copy_(nmp.embedding.weight)
        for sb, nb in zip(sch.interactions, nmp.blocks, strict=True):
            sb.in2f.weight.copy_(nb.lin_node.weight)
            for dst, src in (
                (sb.filter_net.l1, nb.filter1),
                (sb.filter_net.l2, nb.filter2),
                (sb.f2out, nb.update1),
                (sb.dense, nb.update2),
            ):
                dst.weight.copy_(src.weight)
                dst.bias.copy_(src.bias)
        batch = Batch.from_atoms(atoms, GRAPH, dtype=F64)
        torch.testing.assert_close(nmp(batch), sch(batch), rtol=1e-12, atol=1e-12)


def test_edge_states_are_directional_after_one_update():
    atoms = _water()
    model = _model()
    rep = model.representation
    batch = Batch.from_atoms(atoms, GRAPH, dtype=F64)
    assert batch.mirrored_edges
    half = batch.edge_index.shape[1] // 2
    recv, send = batch.edge_index[:, :half]
    with torch.no_grad():
        e0 = rep.edge_states(batch, steps=0)
        e1 = rep.edge_states(batch, steps=1)
    assert e0.shape == (2 * half, 4)  # edge width C/2 by default
    diff0 = (e0[:half] - e0[half:]).abs().amax(dim=1)
    z = batch.numbers
    hetero = z[recv] != z[send]
    assert hetero.any() and (~hetero).any()
    assert (diff0[hetero] > 1e-3).all(), "e_ij must differ from e_ji for different elements"
    # same element and symmetric ε: E₀ gives e_ij = e_ji before any message passing
    torch.testing.assert_close(diff0[~hetero], torch.zeros_like(diff0[~hetero]))
    # after a step the two H atoms differ in their environment, so every edge is directional
    assert ((e1[:half] - e1[half:]).abs().amax(dim=1) > 1e-4).all()


def test_defaults_follow_spec():
    model = build_model({"name": "nmp_edge"})
    rep = model.representation
    assert rep.n_atom_basis == 64 and len(rep.blocks) == 3
    assert rep.rbf.n_rbf == 151
    assert rep.rbf.centers[-1].item() == pytest.approx(15.0, abs=1e-5)
    assert rep.rbf.gamma == pytest.approx(50.0)  # σ = 0.1 Å
    assert rep.cutoff_fn is None and rep.aggregation == "sum"
    # E₀ … E_{T−1}: the update after the last step is skipped
    assert len(rep.edge_updates) == 3
    assert rep.edge_updates[0].l1.in_features == 2 * 64 + 151
    assert all(u.l1.in_features == 2 * 64 + 32 for u in rep.edge_updates[1:])
    assert all(u.l1.out_features == 64 and u.l2.out_features == 32 for u in rep.edge_updates)
    assert all(isinstance(u.l2.activation, torch.nn.Identity) for u in rep.edge_updates)
    # message: W₁ without bias, filter widths [C, C]; weights not shared across steps
    assert all(b.lin_node.bias is None for b in rep.blocks)
    assert all(b.filter1.in_features == 32 and b.filter2.out_features == 64 for b in rep.blocks)
    assert len({id(b) for b in rep.blocks}) == 3
    # Glorot-uniform weights: |w| ≤ sqrt(6 / (fan_in + fan_out))
    w = rep.blocks[0].update1.weight
    assert w.abs().max() <= (6.0 / 128) ** 0.5 and w.std() > 0.5 * (2.0 / 128) ** 0.5
    # embedding N(0, variance 1/√C): std C^(-1/4)
    emb = rep.embedding.weight[1:]
    assert emb.std().item() == pytest.approx(64**-0.25, rel=0.1)
    # readout: hidden C/2 with ssp; last layer Glorot (not zero) as in the authors' code
    net = model.head.net
    assert net[0].out_features == 32 and net[1].weight.abs().sum() > 0


def test_rbf_width_options():
    assert build_model(
        {"name": "nmp_edge", "rbf": {"n_rbf": 51, "stop": 5.0}, "rbf_width": "paper_a"}
    ).representation.rbf.gamma == pytest.approx(10.0)
    with pytest.raises(ValueError, match="paper_a"):
        build_model(
            {
                "name": "nmp_edge",
                "rbf": {"n_rbf": 5, "stop": 1.0, "sigma": 0.1},
                "rbf_width": "paper_a",
            }
        )
    with pytest.raises(ValueError, match="rbf_width"):
        build_model({"name": "nmp_edge", "rbf_width": "wide"})


def test_cosine_cutoff_switches_messages_off():
    atoms = _water()  # all distances > 0.5 Å
    model = _model(cutoff_fn="cosine", cutoff=0.5)
    batch = Batch.from_atoms(atoms, GRAPH, dtype=F64)
    lone = Batch.from_atoms([atoms[[k]] for k in range(3)], GRAPH, dtype=F64)
    assert lone.edge_index.shape[1] == 0
    with torch.no_grad():
        torch.testing.assert_close(
            model.representation(batch), model.representation(lone), rtol=1e-13, atol=1e-13
        )
