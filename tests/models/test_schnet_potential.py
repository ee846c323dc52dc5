"""The analytic SchNet potential equals autograd (compute_potential) for every covered option."""

from __future__ import annotations

import platform
from dataclasses import replace

import numpy as np
import pytest
import torch
from ase.build import bulk, molecule
from f64 import F64, float64_default
from test_invariance import ALL, RC, rattled

from deepatoms.core.allocator import keep_freed_memory
from deepatoms.data.graph import Batch
from deepatoms.data.neighbors import GraphSpec
from deepatoms.models.potential import compute_potential
from deepatoms.models.registry import build_model
from deepatoms.models.schnet_potential import SchNetPotential

CUT = GraphSpec("cutoff", RC)
BASE = {
    "name": "schnet",
    "n_atom_basis": 12,
    "n_interactions": 3,
    "rbf": {"n_rbf": 16, "stop": RC},
    "cutoff_fn": "cosine",
    "cutoff": RC,
}
VARIANTS = {
    "practical": {},
    "paper": {"filter_last_activation": "ssp", "shared_filters": True, "cutoff_fn": "hard"},
    "no-cutoff-fn": {"cutoff_fn": None},
    "shared-blocks": {"shared_interactions": True},
    "mean": {"aggregation": "mean"},
    "deep-tanh-head": {"head": {"hidden": [10, 7], "activation": "tanh"}},
    "silu-head": {"head": {"hidden": [6], "activation": "silu"}},
}


def _model(**changes):
    torch.manual_seed(0)
    with float64_default():
        model = build_model({**BASE, **changes})
    with torch.no_grad():  # perturb every weight, so zero-initialised layers count too
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    model.head.set_statistics(mean=-0.7, std=1.3, atomref={1: -0.5, 8: -2.0, 29: -3.0})
    return model.eval()


def _cu() -> object:
    atoms = bulk("Cu", "fcc", a=3.7, cubic=True)
    atoms.set_cell(atoms.cell.array @ np.array([[1.0, 0.04, 0.0], [0.0, 0.97, 0.02], [0, 0, 1.03]]))
    atoms.rattle(stdev=0.07, seed=3)
    return atoms


def _assert_same(batch: Batch, model, stress: bool) -> dict:
    ref = compute_potential(model, batch, forces=True, stress=stress)
    out = SchNetPotential.from_model(model)(batch, forces=True, stress=stress)
    for key in ["energy", "contributions", "forces"] + (["stress"] if stress else []):
        torch.testing.assert_close(
            out[key], ref[key].detach(), rtol=1e-10, atol=1e-10, equal_nan=True, msg=key
        )
    assert float(out["forces"].abs().max()) > 1e-3
    return out


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_analytic_equals_autograd_molecule_and_periodic(variant):
    model = _model(**VARIANTS[variant])
    assert SchNetPotential.supports(model)
    _assert_same(Batch.from_atoms(rattled(molecule("CH3OH"), 2), ALL, dtype=F64), model, False)
    out = _assert_same(Batch.from_atoms(_cu(), CUT, dtype=F64), model, True)
    assert float(out["stress"].abs().max()) > 1e-4


def test_analytic_batches_and_unmirrored_edges():
    """Several systems at once (stress per system, NaN for the molecule); a plain edge list."""
    model = _model()
    batch = Batch.from_atoms([_cu(), rattled(molecule("H2O"), 1), _cu()], CUT, dtype=F64)
    out = _assert_same(batch, model, True)
    assert torch.isnan(out["stress"][1]).all() and not torch.isnan(out["stress"][0]).any()
    torch.testing.assert_close(out["stress"][0], out["stress"][2])
    plain = replace(batch, mirrored_edges=False)  # every directed edge its own pair
    _assert_same(plain, model, True)


def test_energy_only_call_and_no_autograd_state():
    model = _model()
    batch = Batch.from_atoms(rattled(molecule("CH3OH"), 2), ALL, dtype=F64)
    out = SchNetPotential.from_model(model)(batch, forces=False)
    assert "forces" not in out
    with torch.no_grad():
        ref = model(batch)
    torch.testing.assert_close(out["energy"], ref["energy"], rtol=1e-12, atol=1e-12)
    assert not out["energy"].requires_grad


def test_uncovered_models_are_declined():
    """Other families and intensive (mean-readout) models fall back to autograd."""
    with float64_default():
        dtnn = build_model({"name": "dtnn", "n_atom_basis": 8, "n_interactions": 2})
        intensive = build_model({**BASE, "readout": "mean"})
    assert SchNetPotential.from_model(dtnn) is None
    assert SchNetPotential.from_model(intensive) is None
    assert SchNetPotential.from_model(torch.nn.Linear(2, 2)) is None


def test_allocator_settings_are_idempotent():
    first = keep_freed_memory()
    assert keep_freed_memory() is first
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert first is True
