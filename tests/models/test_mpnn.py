"""MPNN / VIMPNN representation (docs/vimpnn.md §1–§3, §5), float64.

Node features, invariances, Σ c_v = E, the channel variants against a loop-by-loop reference of
the equations of docs/vimpnn.md, the reductions between variants, bond-type handling, periodic crystals,
forces = finite differences and option errors.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk, molecule
from f64 import F64, float64_default

from deepatoms.data.edge_store import StoredEdges
from deepatoms.data.graph import Batch, collate
from deepatoms.data.neighbors import GraphSpec, build_edges
from deepatoms.data.packed import PackedSystems
from deepatoms.models import build_model
from deepatoms.models.potential import compute_potential

BONDS = GraphSpec(kind="bonds")
SMALL = {"n_hidden": 8, "n_steps": 2, "elements": [1, 6, 8], "edge_net": [6, 7]}
SMALL["readout_hidden"] = [5]


def bond_batch(systems, rc: float = 1.7, n_types: int = 3, dtype=F64, pack=None) -> Batch:
    """Batch through the stored-bond path: pairs within ``rc`` Å, type (Z_i + Z_j) mod n_types."""
    idx, shifts, types, counts = [], [], [], []
    for a in systems:
        el = build_edges(
            a.positions,
            np.array([0, len(a)]),
            a.cell.array[None],
            a.pbc[None],
            GraphSpec("cutoff", rc),
        )
        half = el.edge_index.shape[1] // 2
        i, j = el.edge_index[:, :half]
        bt = (a.numbers[i] + a.numbers[j]) % n_types
        idx.append(el.edge_index)
        shifts.append(el.edge_shift)
        types.append(np.concatenate([bt, bt]).astype(np.int8))
        counts.append(2 * half)
    stored = StoredEdges(
        BONDS,
        np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        np.concatenate(idx, axis=1),
        np.concatenate(shifts).astype(np.int64),
        {"bond_type": np.concatenate(types)},
    )
    data = pack if pack is not None else PackedSystems.from_atoms(systems)
    data.edges = stored
    return collate(data, None, BONDS, dtype=dtype, targets=() if pack is None else None)


def make(name: str = "vimpnn", perturb: float = 0.2, seed: int = 0, **options):
    """A small float64 model with perturbed weights and non-trivial head statistics."""
    torch.manual_seed(seed)
    with float64_default():
        model = build_model({"name": name, **SMALL, **options})
    with torch.no_grad():
        for p in model.parameters():
            p.add_(perturb * torch.randn_like(p))
    model.head.set_statistics(mean=-0.7, std=1.3, atomref={1: -0.5, 6: -3.0, 8: -2.0})
    return model.eval()


def ethanol(seed: int = 1) -> Atoms:
    a = molecule("CH3CH2OH")
    a.rattle(stdev=0.05, seed=seed)
    return a


def states(model, batch) -> torch.Tensor:
    """h⁽ᵀ⁾ [N, d_h] of the representation."""
    return model.representation(batch)[:, : model.representation.n_state]


# -- node features (§1) ---------------------------------------------------------------------------
def test_node_features_paper_layout():
    with float64_default():
        model = build_model({"name": "vimpnn", "n_bond_types": 3})
        wide = build_model({"name": "vimpnn", "n_bond_types": 3, "channels": "b.ii"})
    numbers = torch.tensor([1, 8, 29, 13])
    h0 = model.representation.node_features(numbers)
    assert h0.shape == (4, 73) and h0.dtype == F64
    expect = torch.zeros(4, 73, dtype=F64)
    for row, (k, z) in enumerate([(0, 1), (3, 8), (6, 29), (5, 13)]):
        expect[row, k] = 1.0
        expect[row, 7] = z
    assert torch.equal(h0, expect)
    h0_wide = wide.representation.node_features(numbers)
    assert h0_wide.shape == (4, 219)
    assert torch.equal(h0_wide[:, :73], expect) and not h0_wide[:, 73:].any()
    with float64_default():
        scaled = build_model({"name": "vimpnn", "n_bond_types": 3, "z_scale": 29})
    h0_scaled = scaled.representation.node_features(numbers)
    assert torch.equal(h0_scaled[:, 7], torch.tensor([1, 8, 29, 13], dtype=F64) / 29)
    assert torch.equal(h0_scaled[:, :7], expect[:, :7])
    with pytest.raises(ValueError, match="z_scale"):
        build_model({"name": "vimpnn", "z_scale": 0})


# -- invariances ------------------------------------------------------------------------------------
@pytest.mark.parametrize("channels", ["none", "a.i", "a.ii", "b.i", "b.ii", "c"])
def test_rotation_translation_permutation_invariance(channels):
    model = make(channels=channels, n_bond_types=3)
    atoms = ethanol()
    out = model(bond_batch([atoms]))
    e, c = out["energy"].detach(), out["contributions"].detach()
    assert abs(float(e[0])) > 1e-3
    rng = np.random.default_rng(4)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    moved = atoms.copy()
    moved.positions = atoms.positions @ q.T + rng.normal(scale=3.0, size=3)
    out2 = model(bond_batch([moved]))
    torch.testing.assert_close(out2["energy"], e, rtol=1e-12, atol=0)
    torch.testing.assert_close(out2["contributions"], c, rtol=1e-11, atol=1e-12)
    perm = rng.permutation(len(atoms))
    out3 = model(bond_batch([atoms[perm]]))
    torch.testing.assert_close(out3["energy"], e, rtol=1e-12, atol=0)
    torch.testing.assert_close(out3["contributions"], c[perm], rtol=1e-11, atol=1e-12)
    for k, v in out["aux"].items():
        torch.testing.assert_close(out3["aux"][k], v, rtol=1e-11, atol=1e-12)


def test_contributions_sum_to_energy_and_batching():
    model = make(n_bond_types=3)
    systems = [ethanol(), molecule("H2O"), molecule("CH4")]
    out = model(bond_batch(systems))
    batch = bond_batch(systems)
    sums = torch.zeros(3, dtype=F64).index_add_(0, batch.batch, out["contributions"])
    assert torch.equal(sums, out["energy"])  # exactly: the head pools the same float64 values
    for k, a in enumerate(systems):
        alone = model(bond_batch([a]))["energy"]
        torch.testing.assert_close(out["energy"][k : k + 1], alone, rtol=1e-13, atol=1e-13)


# -- the variants against the equations (docs/vimpnn.md §2–§3) ----------------------------------------------
def reference_states(rep, batch: Batch) -> torch.Tensor:
    """h⁽ᵀ⁾ by loops over directed edges, one edge-network call per edge (§2–§3)."""
    h0 = rep.node_features(batch.numbers)
    d = batch.distances()
    bt = batch.edge_attr["bond_type"].long()
    n, k, d_msg, d_h = h0.shape[0], rep.n_bond_types, rep.d_msg, rep.n_state
    h = h0
    for _ in range(rep.n_steps):
        m = [[torch.zeros(d_msg, dtype=F64) for _ in range(k)] for _ in range(n)]
        for e in range(d.shape[0]):
            v, w = (int(x) for x in batch.edge_index[:, e])
            feat = [d[e : e + 1]]
            if rep.edge_features == "distance+bond_type":
                feat.append(torch.nn.functional.one_hot(bt[e], k).to(F64))
            a = rep.edge_net(torch.cat(feat)).view(d_msg, d_h)
            m[v][int(bt[e])] = m[v][int(bt[e])] + a @ h[w]
        new = []
        for v in range(n):
            hv, mv = h[v : v + 1], [x[None] for x in m[v]]
            if rep.channels == "none":
                new.append(rep.gru(sum(mv), hv))
            elif rep.channels == "a.i":  # Eq. 4, λ_k ∈ R^{d_msg}
                new.append(rep.gru(sum(rep.lam[j] * mv[j] for j in range(k)), hv))
            elif rep.channels == "a.ii":
                new.append(rep.gru(sum(rep.lam[j] * mv[j] for j in range(k)), hv))
            elif rep.channels == "b.i":
                new.append(rep.gru(torch.cat(mv, dim=1), hv))
            elif rep.channels == "b.ii":
                blocks = [
                    rep.gru(rep.lam[j] * mv[j], hv[:, j * d_msg : (j + 1) * d_msg])
                    for j in range(k)
                ]
                new.append(torch.cat(blocks, dim=1))
            else:  # c, Eq. 5
                new.append(sum(rep.grus[j](mv[j], hv) for j in range(k)))
        h = torch.cat(new)
    return h


@pytest.mark.parametrize("channels", ["none", "a.i", "a.ii", "b.i", "b.ii", "c"])
@pytest.mark.parametrize("edge_features", ["distance", "distance+bond_type"])
def test_variants_match_loop_reference(channels, edge_features):
    model = make(channels=channels, edge_features=edge_features, n_bond_types=3)
    rep = model.representation
    batch = bond_batch([ethanol(), molecule("H2O")])
    assert batch.mirrored_edges and len(set(batch.edge_attr["bond_type"].tolist())) == 3
    expect = reference_states(rep, batch)
    wide = channels in ("b.i", "b.ii")
    assert expect.shape == (12, 24 if wide else 8)
    with torch.no_grad():
        torch.testing.assert_close(states(model, batch), expect, rtol=1e-12, atol=1e-12)
    # the unmirrored path (one matrix per directed edge) gives the same states
    flat = replace(batch, mirrored_edges=False)
    torch.testing.assert_close(states(model, flat), expect, rtol=1e-12, atol=1e-12)


def test_b_i_concatenates_the_typed_messages():
    """b.i: d_h = K·d_msg, the GRU reads [m|1 ‖ m|2 ‖ m|3] (219 → 219 at paper size)."""
    with float64_default():
        rep = build_model({"name": "vimpnn", "channels": "b.i", "n_bond_types": 3}).representation
    assert rep.n_state == 219 and rep.d_msg == 73
    assert (rep.gru.input_size, rep.gru.hidden_size) == (219, 219)
    assert rep.edge_net[-1].out_features == 73 * 219
    m = torch.randn(4, 3, 73, dtype=F64)
    h = torch.randn(4, 219, dtype=F64)
    cat = torch.cat([m[:, 0], m[:, 1], m[:, 2]], dim=1)
    torch.testing.assert_close(rep.update(h, m), rep.gru(cat, h), rtol=0, atol=0)


# -- reductions -----------------------------------------------------------------------------------
def _copy_weights(src, dst) -> None:
    """Load src's weights into dst; GRU weights go to every per-type GRU of variant c."""
    state = src.state_dict()
    for key in list(state):
        if key.startswith("representation.gru."):
            for j in range(len(getattr(dst.representation, "grus", []))):
                state[key.replace(".gru.", f".grus.{j}.")] = state[key]
    missing, unexpected = dst.load_state_dict(state, strict=False)
    assert set(missing) <= {"representation.lam"}, missing
    assert all(k.startswith("representation.gru.") for k in unexpected), unexpected


@pytest.mark.parametrize("channels", ["a.i", "a.ii", "b.i", "b.ii", "c"])
def test_one_bond_type_reduces_to_no_bt_model(channels):
    """K = 1, λ = 1: every variant equals channels none + edge_features distance (same weights)."""
    base = make("mpnn", edge_features="distance", n_bond_types=1)
    other = make(channels=channels, n_bond_types=1, seed=7, aux=[])
    _copy_weights(base, other)
    if other.representation.lam is not None:
        with torch.no_grad():
            other.representation.lam.fill_(1.0)
    batch = bond_batch([ethanol(), molecule("CH4")], n_types=1)
    e0 = base(batch)["energy"]
    torch.testing.assert_close(other(batch)["energy"], e0, rtol=1e-13, atol=1e-13)
    del batch.edge_attr["bond_type"]  # K = 1 needs no bond-type attribute
    torch.testing.assert_close(other(batch)["energy"], e0, rtol=1e-13, atol=1e-13)


def test_unit_lambdas_a_i_equals_a_ii_and_learnt_lambdas_matter():
    """λ = 1: a.i = a.ii = no-BT for any K (Σ_k m|k is the plain sum); other λ route by type."""
    batch = bond_batch([ethanol()], n_types=3)
    base = make("mpnn", edge_features="distance", n_bond_types=3)
    models = {ch: make(channels=ch, n_bond_types=3, seed=3, aux=[]) for ch in ("a.i", "a.ii")}
    e0 = base(batch)["energy"]
    for m in models.values():
        _copy_weights(base, m)
        with torch.no_grad():
            m.representation.lam.fill_(1.0)
        torch.testing.assert_close(m(batch)["energy"], e0, rtol=1e-13, atol=1e-13)
    with torch.no_grad():  # a.i with λ_k = c_k·1 equals a.ii with λ_k = c_k
        models["a.ii"].representation.lam.copy_(torch.tensor([0.5, 2.0, -1.0]))
        models["a.i"].representation.lam.copy_(torch.tensor([[0.5], [2.0], [-1.0]]).expand(3, 8))
    e_ii = models["a.ii"](batch)["energy"]
    torch.testing.assert_close(models["a.i"](batch)["energy"], e_ii, rtol=1e-13, atol=1e-13)
    assert abs(float((e_ii - e0).detach()[0])) > 1e-4


# -- bond types and edge features (§1, §5) -------------------------------------------------------------
def test_mpnn_reads_bond_types_as_edge_features():
    model = make("mpnn", n_bond_types=3)
    batch = bond_batch([ethanol()])
    e = model(batch)["energy"].detach()
    batch.edge_attr["bond_type"] = (batch.edge_attr["bond_type"] + 1) % 3
    assert abs(float(model(batch)["energy"].detach()[0] - e[0])) > 1e-6


def test_bond_type_errors():
    batch = bond_batch([ethanol()], n_types=3)
    with pytest.raises(ValueError, match=r"outside 0 … 1.*n_bond_types"):
        make(n_bond_types=2)(batch)
    del batch.edge_attr["bond_type"]
    with pytest.raises(ValueError, match="no 'bond_type' edge attribute"):
        make(n_bond_types=3)(batch)
    with pytest.raises(ValueError, match="no 'bond_type' edge attribute"):
        make("mpnn", n_bond_types=3)(batch)  # the bond type is an edge feature
    make("mpnn", edge_features="distance", n_bond_types=3)(batch)  # no-BT: types unused


def test_distance_expansion_option():
    rbf = {"n_rbf": 5, "start": 0.8, "stop": 1.6}
    model = make(n_bond_types=3, distance_expansion=rbf)
    assert model.representation.edge_net[0].in_features == 5
    assert torch.isfinite(model(bond_batch([ethanol()]))["energy"]).all()
    mpnn = make("mpnn", n_bond_types=3, distance_expansion=rbf)
    assert mpnn.representation.edge_net[0].in_features == 8


def test_unknown_element_is_named():
    model = make(n_bond_types=3)
    atoms = Atoms("CNH", positions=[[0, 0, 0], [1.2, 0, 0], [-1.0, 0, 0]])
    with pytest.raises(ValueError, match=r"\['N'\].*'elements'"):
        model(bond_batch([atoms]))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"channels": "a.iii"}, "channels must be one of"),
        ({"edge_features": "bond_type"}, "edge_features must be one of"),
        ({"n_hidden": 3}, "n_hidden must be an integer >= 4"),
        ({"n_steps": 0}, "n_steps must be an integer >= 1"),
        ({"n_bond_types": 0}, "n_bond_types must be an integer >= 1"),
        ({"elements": [1, 1, 6]}, "distinct atomic numbers"),
        ({"edge_net": []}, "edge_net must be a non-empty list"),
        ({"readout_hidden": [0]}, "readout_hidden must be a non-empty list"),
        ({"aux": ["atoms", "charges"]}, r"unknown: \['charges'\]"),
        ({"aux": "atoms"}, "got the string"),
        ({"orbitals": "shells"}, "orbitals must be one of"),
        ({"scaling_sigma": 0}, "scaling_sigma must be a number > 0"),
        ({"aux_weight": -1}, "aux_weight must be a number >= 0"),
        ({"elements": [1, 79]}, "no orbital count for element Au"),
        ({"n_interactions": 3}, r"unknown option\(s\) \['n_interactions'\]"),
        ({"distance_expansion": {"n_rbf": 4, "stop": 2.0, "width": 1}}, "unknown rbf option"),
    ],
)
def test_bad_options(options, message):
    with pytest.raises(ValueError, match=message):
        build_model({"name": "vimpnn", **SMALL, **options})


def test_family_defaults():
    mpnn = build_model({"name": "mpnn", "n_bond_types": 3})
    vim = build_model({"name": "vimpnn", "n_bond_types": 3})
    rep = mpnn.representation
    assert (rep.channels, rep.edge_features, rep.n_steps, rep.d_msg) == (
        "none",
        "distance+bond_type",
        3,
        73,
    )
    assert [layer.out_features for layer in rep.edge_net] == [128, 256, 128, 73 * 73]
    assert rep.edge_net[0].in_features == 1 + 3
    assert mpnn.aux_labels == [] and mpnn.aux_weight == 0.3
    assert "aux" not in mpnn(bond_batch([molecule("CH4")], dtype=torch.float32))
    assert (vim.representation.channels, vim.representation.edge_features) == ("a.ii", "distance")
    assert vim.aux.names == ["atoms", "orbitals", "scaling"] and vim.aux_labels == ["scale"]
    gate = vim.head.net.i
    assert [layer.out_features for layer in gate] == [128, 256, 128, 1] and gate[
        0
    ].in_features == 146
    assert vim.representation.lam.shape == (3,) and bool((vim.representation.lam == 1).all())


# -- periodic crystals and forces ----------------------------------------------------------------
def fcc_crystal(cubic: bool = False) -> Atoms:
    """fcc lattice (a = 3.61 Å) of H atoms: the raw Z = 29 node feature of Cu saturates the GRU of
    the tiny, perturbed test models, which would leave the geometry checks nearly blind."""
    atoms = bulk("Cu", "fcc", a=3.61, cubic=cubic)
    atoms.numbers[:] = 1
    return atoms


def test_periodic_crystal_images_and_supercell():
    """fcc, 1-atom cell: 12 edges to its own images; a 2×2×2 supercell has equal contributions."""
    model = make(n_bond_types=1)
    prim = fcc_crystal()
    batch = bond_batch([prim], rc=2.8, n_types=1)
    assert batch.edge_index.shape[1] == 12 and (batch.edge_index == 0).all()
    e1 = model(batch)
    e8 = model(bond_batch([prim.repeat((2, 2, 2))], rc=2.8, n_types=1))
    torch.testing.assert_close(
        e8["contributions"], e1["contributions"].repeat(8), rtol=1e-12, atol=1e-12
    )
    strained = prim.copy()
    strained.set_cell(prim.cell * 1.1, scale_atoms=True)
    e_s = model(bond_batch([strained], rc=3.1, n_types=1))["energy"]
    assert abs(float((e_s - e1["energy"]).detach()[0])) > 1e-6, "the energy must follow the cell"


def _fd_forces(model, batch: Batch, h: float = 1e-5) -> torch.Tensor:
    f = torch.zeros_like(batch.positions)
    with torch.no_grad():
        for a in range(batch.num_atoms):
            for k in range(3):
                e = []
                for sgn in (1.0, -1.0):
                    pos = batch.positions.clone()
                    pos[a, k] += sgn * h
                    e.append(model(replace(batch, positions=pos))["energy"].sum())
                f[a, k] = -(e[0] - e[1]) / (2 * h)
    return f


@pytest.mark.parametrize("system", ["molecule", "crystal"])
def test_forces_equal_finite_differences(system):
    if system == "molecule":
        model, batch = make(n_bond_types=3), bond_batch([ethanol()])
    else:
        model, atoms = make(n_bond_types=1), fcc_crystal(cubic=True)
        atoms.rattle(stdev=0.05, seed=2)
        batch = bond_batch([atoms], rc=2.9, n_types=1)
    f = compute_potential(model, batch)["forces"].detach()
    assert f.abs().max() > 1e-3
    torch.testing.assert_close(f, _fd_forces(model, batch), rtol=1e-6, atol=1e-8 * f.abs().max())


def test_float32_model():
    torch.manual_seed(0)
    model = build_model({"name": "vimpnn", **SMALL, "n_bond_types": 3})
    batch = bond_batch([ethanol()], dtype=torch.float32)
    out = model(batch)
    assert out["energy"].dtype == F64 and out["aux"]["atoms"].dtype == F64
    with float64_default():
        ref = build_model({"name": "vimpnn", **SMALL, "n_bond_types": 3})
    ref.load_state_dict(model.state_dict())
    e64 = ref(bond_batch([ethanol()]))["energy"]
    torch.testing.assert_close(out["energy"], e64, rtol=1e-5, atol=1e-5)


def test_atom_without_bonds_and_force_training_graph():
    """A bond-less atom (no edges at all in its own batch) keeps h = GRU updates of zero messages;
    forces are differentiable w.r.t. the weights (create_graph, force training)."""
    model = make(n_bond_types=3)
    lone = Atoms("O", positions=[[0.0, 0.0, 0.0]])
    both = model(bond_batch([lone, ethanol()]))
    alone = model(bond_batch([lone]))
    assert bond_batch([lone]).edge_index.shape == (2, 0)
    torch.testing.assert_close(both["energy"][:1], alone["energy"], rtol=1e-13, atol=1e-13)
    res = compute_potential(model, bond_batch([ethanol()]), create_graph=True)
    (res["forces"] ** 2).sum().backward()
    grad = model.representation.edge_net[0].weight.grad
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
