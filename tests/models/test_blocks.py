"""Building blocks (docs/property_models.md §2) and the DTNN equations (docs/property_models.md §3), checked against written-out formulas."""

from __future__ import annotations

import math

import pytest
import torch
from ase import Atoms
from f64 import F64, float64_default

from deepatoms.data.graph import Batch
from deepatoms.data.neighbors import GraphSpec
from deepatoms.models import build_model
from deepatoms.nn.activations import shifted_softplus
from deepatoms.nn.cutoff import CosineCutoff, HardCutoff
from deepatoms.nn.radial import GaussianRBF
from deepatoms.nn.scatter import scatter_mean, scatter_sum


# -- shifted softplus ---------------------------------------------------------------------------
def test_ssp_zero_slope_and_no_overflow():
    x = torch.tensor([0.0, 100.0, -100.0], dtype=F64, requires_grad=True)
    y = shifted_softplus(x)
    (g,) = torch.autograd.grad(y.sum(), x)
    assert y[0].item() == 0.0
    assert g[0].item() == pytest.approx(0.5, abs=1e-15)
    assert torch.isfinite(y).all() and torch.isfinite(g).all()
    assert y[1].item() == pytest.approx(100.0 - math.log(2.0), rel=1e-14)
    assert y[2].item() == pytest.approx(-math.log(2.0), rel=1e-14)
    # ssp'(x) = sigmoid(x), also in float32 at |x| = 100
    x32 = torch.tensor([-100.0, -3.0, 0.7, 100.0], requires_grad=True)
    (g32,) = torch.autograd.grad(shifted_softplus(x32).sum(), x32)
    torch.testing.assert_close(g32, torch.sigmoid(x32.detach()))
    assert torch.isfinite(shifted_softplus(x32)).all()


# -- Gaussian radial basis ----------------------------------------------------------------------
def test_rbf_gamma_and_sigma_forms_agree():
    d = torch.linspace(0.0, 6.0, 37, dtype=F64)
    sigma = 0.3
    with float64_default():
        a = GaussianRBF(n_rbf=21, start=0.5, spacing=0.25, sigma=sigma)
        b = GaussianRBF(n_rbf=21, start=0.5, spacing=0.25, gamma=1.0 / (2 * sigma**2))
    mu = 0.5 + 0.25 * torch.arange(21, dtype=F64)
    ref = torch.exp(-((d[:, None] - mu[None, :]) ** 2) / (2 * sigma**2))
    torch.testing.assert_close(a(d), ref, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(b(d), ref, rtol=1e-12, atol=1e-15)
    # σ defaults to the spacing; `stop` places the last centre there
    c = GaussianRBF(n_rbf=11, stop=5.0)
    assert c.gamma == pytest.approx(1.0 / (2 * 0.5**2))
    assert c.centers[-1].item() == pytest.approx(5.0)


# -- cutoffs ------------------------------------------------------------------------------------
def test_cosine_cutoff_values():
    rc = 4.0
    r = torch.tensor([0.0, rc / 2, rc, rc + 1e-9, 7.0], dtype=F64)
    f = CosineCutoff(rc)(r)
    torch.testing.assert_close(f, torch.tensor([1.0, 0.5, 0.0, 0.0, 0.0], dtype=F64))
    h = HardCutoff(rc)(r)
    torch.testing.assert_close(h, torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0], dtype=F64))


# -- scatter ------------------------------------------------------------------------------------
def test_scatter_mean_empty_bin_is_zero_without_nan():
    src = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], dtype=F64, requires_grad=True)
    idx = torch.tensor([0, 0, 2])
    out = scatter_mean(src, idx, dim_size=4)
    expected = torch.tensor([[2.0, 3.0], [0.0, 0.0], [5.0, 6.0], [0.0, 0.0]], dtype=F64)
    torch.testing.assert_close(out, expected)
    (g,) = torch.autograd.grad(out.sum(), src)
    assert torch.isfinite(g).all()
    torch.testing.assert_close(g, torch.tensor([[0.5, 0.5], [0.5, 0.5], [1.0, 1.0]], dtype=F64))
    torch.testing.assert_close(scatter_sum(src, idx, 4)[1], torch.zeros(2, dtype=F64))
    empty = scatter_mean(src[:0], idx[:0], dim_size=3)
    assert empty.shape == (3, 2) and not torch.isnan(empty).any() and (empty == 0).all()


# -- DTNN (docs/property_models.md §3) -----------------------------------------------------------------------------
def _three_atoms() -> Atoms:
    return Atoms("CHO", positions=[[0.0, 0.0, 0.0], [1.09, 0.1, -0.05], [-0.4, 1.15, 0.2]])


def _dtnn(**kw):
    torch.manual_seed(7)
    cfg = {"name": "dtnn", "n_atom_basis": 6, "n_factors": 5, "n_interactions": 3}
    cfg["rbf"] = {"n_rbf": 12, "spacing": 0.2, "sigma": 0.2}
    cfg.update(kw)
    with float64_default():
        model = build_model(cfg)
    with torch.no_grad():  # W^{xf} and the last head layer start at zero: make them non-trivial
        for p in model.parameters():
            p.add_(0.4 * torch.randn_like(p))
    return model


def test_dtnn_defaults_match_spec():
    model = build_model({"name": "dtnn"})
    rep = model.representation
    assert rep.n_atom_basis == 30 and rep.n_interactions == 3
    assert rep.rbf.n_rbf == 100
    assert rep.rbf.centers[0].item() == 0.0
    assert rep.rbf.centers[-1].item() == pytest.approx(19.8, abs=1e-5)
    assert rep.rbf.gamma == pytest.approx(12.5)  # σ = 0.2 Å
    assert rep.cutoff_fn is None and rep.aggregation == "sum"
    inter = rep.interaction
    assert inter.in2fac.weight.shape == (60, 30) and inter.in2fac.bias is not None
    assert inter.dist2fac.weight.shape == (60, 100) and inter.dist2fac.bias is not None
    assert inter.fac2out.weight.shape == (30, 60) and inter.fac2out.bias is None
    assert (inter.fac2out.weight == 0).all()
    # output network: one hidden tanh layer of width 15, zero-initialised last layer
    net = model.head.net
    assert len(net) == 2 and net[0].out_features == 15
    assert isinstance(net[0].activation, torch.nn.Tanh)
    assert (net[1].weight == 0).all()


def test_dtnn_one_interaction_network_shared_across_passes():
    reps = [
        build_model({"name": "dtnn", "n_atom_basis": 6, "n_factors": 5, "n_interactions": t})
        for t in (1, 3, 5)
    ]
    n_params = {sum(p.numel() for p in m.parameters()) for m in reps}
    assert len(n_params) == 1, "parameter count must not grow with the number of passes"
    rep = reps[1].representation
    n_nets = sum(isinstance(m, type(rep.interaction)) for m in rep.modules())
    assert n_nets == 1


def _dtnn_reference(model, atoms: Atoms, tanh_inside: bool = True) -> torch.Tensor:
    """Eqs. 3.1–3.7 written out with explicit loops over i and j (3 atoms)."""
    rep = model.representation
    inter = rep.interaction
    pos = torch.tensor(atoms.positions, dtype=F64)
    z = torch.tensor(atoms.numbers)
    A = rep.embedding.weight
    Wfx, bf1 = inter.in2fac.weight, inter.in2fac.bias
    Wfd, bf2 = inter.dist2fac.weight, inter.dist2fac.bias
    Wxf = inter.fac2out.weight
    mu = 0.2 * torch.arange(12, dtype=F64)
    n = len(atoms)
    x = [A[z[i]] for i in range(n)]
    for _ in range(3):  # the same weights in every pass
        new = []
        for i in range(n):
            acc = torch.zeros(6, dtype=F64)
            for j in range(n):
                if j == i:
                    continue
                d = torch.linalg.vector_norm(pos[j] - pos[i])
                dhat = torch.exp(-((d - mu) ** 2) / (2 * 0.2**2))
                pre = Wxf @ ((Wfx @ x[j] + bf1) * (Wfd @ dhat + bf2))
                acc = acc + (torch.tanh(pre) if tanh_inside else pre)
            new.append(x[i] + (acc if tanh_inside else torch.tanh(acc)))
        x = new
    return torch.stack(x)


def test_dtnn_matches_reference_with_tanh_inside_the_sum():
    atoms = _three_atoms()
    model = _dtnn()
    batch = Batch.from_atoms(atoms, GraphSpec("all", None), dtype=F64)
    with torch.no_grad():
        x = model.representation(batch)
        ref = _dtnn_reference(model, atoms, tanh_inside=True)
        wrong = _dtnn_reference(model, atoms, tanh_inside=False)
    torch.testing.assert_close(x, ref, rtol=1e-12, atol=1e-12)
    assert (x - wrong).abs().max() > 1e-3  # the check can tell tanh inside from outside


def test_dtnn_cutoff_and_mean_aggregation():
    atoms = _three_atoms()
    batch = Batch.from_atoms(atoms, GraphSpec("all", None), dtype=F64)
    base = _dtnn()
    mean = _dtnn(aggregation="mean")
    with torch.no_grad():
        # one pass, sum vs mean over the two neighbours of every atom
        for m in (base, mean):
            m.representation.n_interactions = 1
        x0 = base.representation.embedding(batch.numbers)
        d_sum = base.representation(batch) - x0
        d_mean = mean.representation(batch) - x0
    torch.testing.assert_close(d_mean, d_sum / 2, rtol=1e-12, atol=1e-14)
    # a cosine cutoff below every distance switches all interactions off
    far = _dtnn(cutoff_fn="cosine", cutoff=0.5)
    with torch.no_grad():
        x = far.representation(batch)
    torch.testing.assert_close(x, far.representation.embedding(batch.numbers), rtol=0, atol=0)
