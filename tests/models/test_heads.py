"""Output head algebra (docs/property_models.md §2 and Paper A §5 normalisation), registry and model-file round trips."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import molecule
from f64 import F64, float64_default

from deepatoms.data.graph import Batch
from deepatoms.data.neighbors import GraphSpec
from deepatoms.models import available_models, build_model
from deepatoms.models.loading import load_model
from model_helpers import save_atomistic

GRAPH = GraphSpec("all", None)
MU, SIGMA = -3.25, 0.8
REF = {1: -13.6, 6: -1029.5, 8: -2041.7}

SMALL = {
    "schnet": {"name": "schnet", "n_atom_basis": 8, "n_interactions": 2},
    "dtnn": {"name": "dtnn", "n_atom_basis": 8, "n_factors": 6, "n_interactions": 2},
    "nmp_edge": {"name": "nmp_edge", "n_atom_basis": 8, "n_interactions": 2},
}
families = pytest.mark.parametrize("family", sorted(SMALL))


def _systems() -> list[Atoms]:
    out = []
    for k, name in enumerate(["CH4", "H2O", "CH3OH"]):
        a = molecule(name)
        a.rattle(stdev=0.05, seed=k)
        out.append(a)
    return out


def _model(family: str, readout: str = "sum", zero_last: bool = False, **kw):
    torch.manual_seed(1)
    with float64_default():
        model = build_model({**SMALL[family], "readout": readout, **kw})
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
        if zero_last:  # raw output o(x_i) = 0 for every atom
            model.head.net[-1].weight.zero_()
            model.head.net[-1].bias.zero_()
    model.head.set_statistics(MU, SIGMA, REF)
    return model.eval()


def _ref_sums(systems):
    n = np.array([len(a) for a in systems], dtype=float)
    ref = np.array([sum(REF[int(z)] for z in a.numbers) for a in systems])
    return n, ref


@families
def test_zero_raw_output_sum_readout_predicts_n_mu_plus_refs(family):
    systems = _systems()
    model = _model(family, "sum", zero_last=True)
    batch = Batch.from_atoms(systems, GRAPH, dtype=F64)
    with torch.no_grad():
        out = model(batch)
    n, ref = _ref_sums(systems)
    np.testing.assert_allclose(out["energy"].numpy(), n * MU + ref, rtol=1e-13)
    contrib = out["contributions"]
    expected_c = np.array([MU + REF[int(z)] for z in batch.numbers])
    np.testing.assert_allclose(contrib.numpy(), expected_c, rtol=1e-13)
    per_sys = torch.zeros(len(systems), dtype=F64).index_add_(0, batch.batch, contrib)
    np.testing.assert_allclose(per_sys.numpy(), out["energy"].numpy(), rtol=1e-13)


@families
def test_zero_raw_output_mean_readout_predicts_mu_plus_mean_ref(family):
    systems = _systems()
    model = _model(family, "mean", zero_last=True)
    batch = Batch.from_atoms(systems, GRAPH, dtype=F64)
    with torch.no_grad():
        out = model(batch)
    n, ref = _ref_sums(systems)
    np.testing.assert_allclose(out["energy"].numpy(), MU + ref / n, rtol=1e-13)


@families
@pytest.mark.parametrize("readout", ["sum", "mean"])
def test_prediction_is_scaled_raw_output_and_contributions_add_up(family, readout):
    """y = Σ_i (σ·o(x_i) + μ + E_ref(Z_i)), divided by n for a mean readout."""
    systems = _systems()
    model = _model(family, readout)
    batch = Batch.from_atoms(systems, GRAPH, dtype=F64)
    with torch.no_grad():
        out = model(batch)
        raw = model.head.net(model.representation(batch)).squeeze(-1)
    assert raw.abs().max() > 1e-3
    n, ref = _ref_sums(systems)
    raw_sum = torch.zeros(len(systems), dtype=F64).index_add_(0, batch.batch, raw).numpy()
    expected = SIGMA * raw_sum + n * MU + ref
    if readout == "mean":
        expected = expected / n
    np.testing.assert_allclose(out["energy"].numpy(), expected, rtol=1e-12)
    contrib_sum = torch.zeros(len(systems), dtype=F64).index_add_(
        0, batch.batch, out["contributions"]
    )
    scale = n if readout == "mean" else 1.0
    np.testing.assert_allclose(contrib_sum.numpy() / scale, out["energy"].numpy(), rtol=1e-12)


def test_untrained_zero_init_heads_predict_training_mean():
    """SchNet and DTNN zero-initialise the last output layer (authors' codes); NMP-edge does not."""
    systems = _systems()
    n, _ = _ref_sums(systems)
    batch = Batch.from_atoms(systems, GRAPH, dtype=torch.float32)
    for family, zero in (("schnet", True), ("dtnn", True), ("nmp_edge", False)):
        model = build_model(SMALL[family])
        model.head.set_statistics(MU, SIGMA)
        with torch.no_grad():
            e = model(batch)["energy"].numpy()
        assert np.allclose(e, n * MU, rtol=1e-6) == zero, family


def test_set_statistics_rejects_bad_values():
    model = build_model(SMALL["schnet"])
    with pytest.raises(ValueError, match="std"):
        model.head.set_statistics(0.0, 0.0)
    with pytest.raises(ValueError, match="atomic number"):
        model.head.set_statistics(0.0, 1.0, {200: 1.0})


def test_registry_knows_all_families_and_rejects_unknown_options():
    assert {"schnet", "dtnn", "nmp_edge"} <= set(available_models())
    for name in ("dtnn", "nmp_edge"):
        with pytest.raises(ValueError, match="unknown option"):
            build_model({"name": name, "n_filterz": 3})
    with pytest.raises(ValueError, match="aggregation"):
        build_model({"name": "dtnn", "aggregation": "max"})
    with pytest.raises(ValueError, match="aggregation"):
        build_model({"name": "nmp_edge", "aggregation": "max"})


ROUND_TRIP = {
    "schnet": {},
    "dtnn": {"aggregation": "mean", "cutoff_fn": "cosine", "cutoff": 6.0},
    "nmp_edge": {"rbf_width": "paper_a", "edge_width": 8, "edge_activation": "ssp"},
}


@families
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_model_file_round_trip(family, dtype, tmp_path):
    systems = _systems()
    model = _model(family, "sum", **ROUND_TRIP[family]).to(dtype)
    batch = Batch.from_atoms(systems, GRAPH, dtype=dtype)
    path = tmp_path / f"{family}.pt"
    save_atomistic(path, model, GRAPH, "eV", meta={"note": "test"})
    loaded = load_model(path)
    assert loaded.graph == GRAPH and loaded.unit == "eV" and loaded.property == "energy"
    assert loaded.meta["note"] == "test" and loaded.meta["family"] == family
    assert next(loaded.model.parameters()).dtype == dtype
    assert not loaded.model.training
    with torch.no_grad():
        a = model(batch)
        b = loaded.model(batch)
    assert torch.equal(a["energy"], b["energy"])
    assert torch.equal(a["contributions"], b["contributions"])
