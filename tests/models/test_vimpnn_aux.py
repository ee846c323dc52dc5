"""VIMPNN gated readout and auxiliary heads (docs/vimpnn.md §4), float64.

Auxiliary targets on ethanol, the orbital tables, z-score statistics, the auxiliary loss on a
hand-made case, the gated-readout algebra, model-file round trips and a tiny overfit run.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import molecule
from f64 import F64, float64_default
from test_mpnn import SMALL, bond_batch, ethanol, make

from deepatoms.data.neighbors import GraphSpec
from deepatoms.data.packed import PackedSystems
from deepatoms.models import build_model
from deepatoms.models.gated_readout import auxiliary_targets, orbital_count, scaling_probability
from deepatoms.models.loading import load_model
from model_helpers import save_atomistic


# -- targets (§4) ---------------------------------------------------------------------------------
def test_ethanol_targets_match_the_spec():
    numbers = torch.tensor([6, 6, 8, 1, 1, 1, 1, 1, 1])  # C₂H₆O
    index = torch.zeros(9, dtype=torch.long)
    t = auxiliary_targets(numbers, index, 1, torch.tensor([0.9], dtype=F64))
    assert list(t) == ["atoms", "orbitals", "scaling"]
    assert t["atoms"].dtype == F64
    assert t["atoms"].tolist() == [[6, 2, 0, 1, 0, 0, 0]]
    assert t["orbitals"].tolist() == [[6, 10, 0, 5, 0, 0, 0]]
    assert t["scaling"].shape == (1, 1)
    assert math.isclose(t["scaling"][0, 0], math.exp(-0.5), rel_tol=1e-14)
    val = auxiliary_targets(numbers, index, 1, heads=["orbitals"], orbitals="valence")
    assert list(val) == ["orbitals"] and val["orbitals"].tolist() == [[6, 8, 0, 6, 0, 0, 0]]
    p = scaling_probability(torch.tensor([1.0, 0.9, 1.5], dtype=F64))
    assert p[0] == 1.0 and math.isclose(p[1], 0.6065306597, rel_tol=1e-9)
    assert math.isclose(p[2], math.exp(-12.5), rel_tol=1e-12)  # 3.73e-6
    assert math.isclose(
        scaling_probability(torch.tensor(1.2, dtype=F64), 0.2), math.exp(-0.5), rel_tol=1e-12
    )


def test_targets_of_a_batch_and_missing_scale():
    numbers = torch.tensor([8, 1, 1, 29, 29, 13])
    index = torch.tensor([0, 0, 0, 1, 1, 1])
    t = auxiliary_targets(numbers, index, 2, torch.tensor([1.0, 1.5]))
    assert t["atoms"].tolist() == [[2, 0, 0, 1, 0, 0, 0], [0, 0, 0, 0, 0, 1, 2]]
    assert t["orbitals"].tolist() == [[2, 0, 0, 5, 0, 0, 0], [0, 0, 0, 0, 0, 9, 30]]
    with pytest.raises(ValueError, match="system property 'scale'"):
        auxiliary_targets(numbers, index, 2)


def test_orbital_tables():
    paper = {1: (1, 1), 6: (5, 4), 7: (5, 5), 8: (5, 6), 9: (5, 7), 13: (9, 3), 29: (15, 11)}
    # extensions: Na [Ne]3s¹, Zn [Ar]3d¹⁰4s², Ga …4p¹, Pd [Kr]4d¹⁰ (5s empty), Ba [Xe]6s²
    more = {2: (1, 2), 11: (6, 1), 30: (15, 12), 31: (18, 3), 46: (23, 10), 56: (28, 2)}
    for z, (sub, val) in {**paper, **more}.items():
        assert (orbital_count(z, "subshell"), orbital_count(z, "valence")) == (sub, val), z
    with pytest.raises(ValueError, match=r"element La \(Z = 57\).*'elements'"):
        orbital_count(57)


# -- statistics and loss --------------------------------------------------------------------------
def test_set_aux_statistics_zscores_the_pack():
    model = make(n_bond_types=3)
    systems = [ethanol(), molecule("H2O"), molecule("CH4")]
    scale = [0.9, 1.0, 1.5]
    pack = PackedSystems.from_atoms(systems, system_props={"scale": scale})
    model.set_aux_statistics(pack)
    heads = model.aux.heads
    counts = np.array([[6, 2, 1], [2, 0, 1], [4, 1, 0]], dtype=float)  # H, C, O
    np.testing.assert_allclose(heads["atoms"].mean.numpy(), counts.mean(0), rtol=1e-15)
    np.testing.assert_allclose(heads["atoms"].std.numpy(), counts.std(0), rtol=1e-15)
    orb = counts * [1, 5, 5]
    np.testing.assert_allclose(heads["orbitals"].mean.numpy(), orb.mean(0), rtol=1e-15)
    p = np.exp(-((np.array(scale) - 1) ** 2) / 0.02)
    np.testing.assert_allclose(heads["scaling"].mean.numpy(), [p.mean()], rtol=1e-15)
    np.testing.assert_allclose(heads["scaling"].std.numpy(), [p.std()], rtol=1e-15)
    same = PackedSystems.from_atoms(systems[1:2] * 2, system_props={"scale": [1.0, 1.0]})
    model.set_aux_statistics(same)  # constant targets: std 1, mean the constant
    assert heads["atoms"].std.tolist() == [1.0, 1.0, 1.0]
    assert heads["scaling"].mean.tolist() == [1.0] and heads["scaling"].std.tolist() == [1.0]
    with pytest.raises(ValueError, match="system property 'scale'"):
        model.set_aux_statistics(PackedSystems.from_atoms(systems))


def test_auxiliary_loss_hand_made():
    """H₂O at s = 1: z-scored MSEs 1/3 (atoms) + 1/3 (orbitals) + 4 (scaling) = 14/3."""
    model = make(n_bond_types=3, aux_weight=0.5)
    assert model.aux_weight == 0.5 and model.aux_labels == ["scale"]
    heads = model.aux.heads
    with torch.no_grad():
        heads["atoms"].mean.copy_(torch.tensor([1.0, 0.0, 1.0]))
        heads["atoms"].std.copy_(torch.tensor([1.0, 1.0, 2.0]))
        heads["orbitals"].mean.copy_(torch.tensor([2.0, 0.0, 5.0]))
        heads["scaling"].mean.fill_(0.5)
        heads["scaling"].std.fill_(0.5)
    water = molecule("H2O")  # numbers O, H, H → atoms [2, 0, 1], orbitals [2, 0, 5], p = 1
    pack = PackedSystems.from_atoms([water], system_props={"scale": [1.0]})
    batch = bond_batch([water], n_types=3, pack=pack)
    out = {
        "aux": {
            "atoms": torch.tensor([[3.0, 0.0, 1.0]], dtype=F64),  # ẑ [2, 0, 0] vs z [1, 0, 0]
            "orbitals": torch.tensor([[2.0, 1.0, 5.0]], dtype=F64),  # ẑ [0, 1, 0] vs z 0
            "scaling": torch.tensor([[0.0]], dtype=F64),  # ẑ −1 vs z +1
        }
    }
    loss = model.auxiliary_loss(out, batch)
    assert loss.dtype == F64 and math.isclose(float(loss), 14 / 3, rel_tol=1e-15)
    # the model's own outputs: differentiable, gradients reach the auxiliary heads only
    model.zero_grad()
    model.auxiliary_loss(model(batch), batch).backward()
    assert heads["scaling"].net.j[-1].weight.grad.abs().sum() > 0
    assert model.head.net.j[-1].weight.grad is None
    del batch.targets["scale"]
    with pytest.raises(ValueError, match=r"batch.targets\['scale'\]"):
        model.auxiliary_loss(out, batch)


def test_no_aux_heads_give_zero_loss():
    model = make("mpnn", n_bond_types=3)
    batch = bond_batch([ethanol()])
    out = model(batch)
    assert "aux" not in out and model.aux_labels == []
    assert float(model.auxiliary_loss(out, batch)) == 0.0
    model.set_aux_statistics(PackedSystems.from_atoms([ethanol()]))  # nothing to do


# -- gated readout (§4) ---------------------------------------------------------------------------
def test_gated_readout_algebra():
    """c_v = σ·[sigmoid(i([h ‖ h⁰])) ⊙ j(h)] + μ + E_ref; aux = μ_k + σ_k Σ_v gated_k(x_v)."""
    model = make(n_bond_types=3)
    with torch.no_grad():
        model.aux.heads["atoms"].mean.copy_(torch.tensor([1.0, 2.0, 3.0]))
        model.aux.heads["atoms"].std.fill_(2.0)
    batch = bond_batch([ethanol(), molecule("H2O")])
    out = model(batch)
    with torch.no_grad():
        x = model.representation(batch)
        h, h0 = x[:, :8], x[:, 8:]
        assert torch.equal(h0, model.representation.node_features(batch.numbers))
        net = model.head.net
        raw = torch.sigmoid(net.i(torch.cat([h, h0], 1))) * net.j(h)
        ref = torch.tensor([{1: -0.5, 6: -3.0, 8: -2.0}[int(z)] for z in batch.numbers], dtype=F64)
        expect = 1.3 * raw[:, 0] - 0.7 + ref
        torch.testing.assert_close(out["contributions"], expect, rtol=1e-14, atol=1e-14)
        aux = model.aux.heads["atoms"].net
        pooled = torch.zeros(2, 3, dtype=F64).index_add_(
            0, batch.batch, torch.sigmoid(aux.i(x)) * aux.j(h)
        )
        torch.testing.assert_close(out["aux"]["atoms"], 2.0 * pooled + torch.tensor([1.0, 2, 3]))
    assert out["aux"]["scaling"].shape == (2, 1) and out["aux"]["orbitals"].shape == (2, 3)


# -- model files ----------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_model_file_round_trip(tmp_path, dtype):
    model = make(n_bond_types=3, channels="b.ii", aux_weight=0.25).to(dtype)
    systems = [ethanol(), molecule("H2O")]
    model.set_aux_statistics(PackedSystems.from_atoms(systems, system_props={"scale": [0.9, 1.2]}))
    path = tmp_path / "vimpnn.pt"
    save_atomistic(path, model, GraphSpec(kind="bonds"), "eV")
    loaded = load_model(path)
    new = loaded.model
    assert type(new) is type(model) and loaded.graph == GraphSpec(kind="bonds")
    assert new.aux_weight == 0.25 and new.aux_labels == ["scale"]
    for name, head in model.aux.heads.items():
        assert torch.equal(new.aux.heads[name].mean, head.mean)
        assert torch.equal(new.aux.heads[name].std, head.std)
    assert float(model.aux.heads["atoms"].std[0]) != 1.0
    batch = bond_batch(systems, dtype=dtype)
    a, b = model(batch), new(batch)
    assert torch.equal(a["energy"], b["energy"])
    for k in a["aux"]:
        assert torch.equal(a["aux"][k], b["aux"][k])


# -- training sanity --------------------------------------------------------------------------------
def test_few_adam_steps_fit_morse_dimers():
    """4 H₂ at d = 0.6 … 1.2 Å with Morse energies: 40 Adam steps cut the loss (< 5 s)."""
    start = time.perf_counter()
    d = np.array([0.6, 0.74, 0.9, 1.2])
    energy = 4.7 * (1 - np.exp(-1.9 * (d - 0.74))) ** 2 - 4.7
    systems = [Atoms("H2", positions=[[0, 0, 0], [x, 0, 0]]) for x in d]
    pack = PackedSystems.from_atoms(systems, system_props={"energy": energy, "scale": d / 0.74})
    batch = bond_batch(systems, rc=1.5, n_types=1, pack=pack)
    torch.manual_seed(0)
    with float64_default():
        model = build_model({"name": "vimpnn", **SMALL, "n_bond_types": 1})
    model.head.set_statistics(mean=float(energy.mean() / 2), std=float(energy.std() / 2))
    model.set_aux_statistics(pack)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    target = batch.targets["energy"]

    def loss_fn():
        out = model(batch)
        mse = torch.mean((out["energy"] - target) ** 2) / energy.var()
        return mse + model.aux_weight * model.auxiliary_loss(out, batch), mse

    first = [float(x.detach()) for x in loss_fn()]
    for _ in range(40):
        opt.zero_grad()
        loss, _ = loss_fn()
        loss.backward()
        opt.step()
    last = [float(x.detach()) for x in loss_fn()]
    assert last[0] < 0.3 * first[0] and last[1] < 0.3 * first[1], (first, last)
    assert time.perf_counter() - start < 5.0
