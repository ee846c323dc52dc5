"""The autograd potential wrapper: forces and stress against finite differences (float64).

Checks: autograd forces equal central differences of the energy; stress equals
the derivative of the energy under strain divided by the volume (ASE convention).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import bulk, molecule
from f64 import F64
from test_invariance import ALL, RC, families, make_model, rattled, rel_close

from deepatoms.data.graph import Batch
from deepatoms.data.neighbors import GraphSpec
from deepatoms.models.potential import compute_potential, stress_to_voigt, voigt_to_stress

CUT = GraphSpec("cutoff", RC)


def _energy(model, atoms, graph) -> float:
    batch = Batch.from_atoms(atoms, graph, dtype=F64)
    with torch.no_grad():
        return float(model(batch)["energy"][0])


def _strained(atoms, eps: np.ndarray):
    a = atoms.copy()
    a.set_cell(atoms.cell.array @ (np.eye(3) + eps), scale_atoms=True)
    return a


def _fd_stress(model, atoms, graph, h: float) -> np.ndarray:
    out = np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            eps = np.zeros((3, 3))
            eps[a, b] = eps[b, a] = h / (2 if a != b else 1)
            de = _energy(model, _strained(atoms, eps), graph) - _energy(
                model, _strained(atoms, -eps), graph
            )
            out[a, b] = de / (2 * h) / atoms.get_volume()
    return out


def _fd_forces(model, atoms, graph, h: float) -> np.ndarray:
    out = np.zeros((len(atoms), 3))
    for i in range(len(atoms)):
        for k in range(3):
            e = []
            for sign in (1, -1):
                a = atoms.copy()
                a.positions[i, k] += sign * h
                e.append(_energy(model, a, graph))
            out[i, k] = -(e[0] - e[1]) / (2 * h)
    return out


@families
@pytest.mark.parametrize("system", ["molecule", "periodic"])
def test_wrapper_forces_equal_finite_differences(family, system):
    """compute_potential forces = −∂E/∂R by central differences (Richardson, h = 1e-4 Å)."""
    if system == "molecule":
        atoms, graph, agg = rattled(molecule("CH3OH"), 3), ALL, "sum"
    else:  # a skewed, rattled periodic cell: images enter through shift·cell
        atoms, graph, agg = bulk("NaCl", "rocksalt", a=5.64), CUT, "mean"
        atoms.rattle(stdev=0.08, seed=4)
    model = make_model(family, aggregation=agg)
    out = compute_potential(model, Batch.from_atoms(atoms, graph, dtype=F64), forces=True)
    f = out["forces"].detach().numpy()
    assert np.abs(f).max() > 1e-3
    d1, d2 = _fd_forces(model, atoms, graph, 1e-4), _fd_forces(model, atoms, graph, 2e-4)
    rel_close(f, (4 * d1 - d2) / 3, 1e-8, "wrapper forces vs finite differences")
    # Newton's third law: no net force on an isolated or periodic system.
    assert np.abs(f.sum(0)).max() < 1e-10


@families
def test_stress_equals_strain_derivative(family):
    """σ = (1/V) ∂E/∂ε: autograd vs central differences of strained cells (skewed cell)."""
    atoms = bulk("NaCl", "rocksalt", a=5.64)
    atoms.set_cell(atoms.cell.array @ np.array([[1.0, 0.03, 0.0], [0.0, 0.98, 0.02], [0, 0, 1.04]]))
    atoms.rattle(stdev=0.08, seed=5)
    model = make_model(family, aggregation="mean")
    out = compute_potential(model, Batch.from_atoms(atoms, CUT, dtype=F64), stress=True)
    s = out["stress"][0].detach().numpy()
    assert np.abs(s).max() > 1e-4
    np.testing.assert_allclose(s, s.T, atol=1e-12)
    d1, d2 = _fd_stress(model, atoms, CUT, 1e-5), _fd_stress(model, atoms, CUT, 2e-5)
    rel_close(s, (4 * d1 - d2) / 3, 1e-7, "stress vs strain finite differences")


def test_stress_of_batch_matches_systems_alone_and_is_nan_for_molecules():
    model = make_model("schnet", aggregation="mean")
    cu = bulk("Cu", "fcc", a=3.7, cubic=True)
    cu.rattle(0.05, seed=1)
    water = molecule("H2O")
    batch = Batch.from_atoms([cu, water, cu], CUT, dtype=F64)
    out = compute_potential(model, batch, stress=True)
    alone = compute_potential(model, Batch.from_atoms(cu, CUT, dtype=F64), stress=True)
    s = out["stress"].detach()
    torch.testing.assert_close(s[0], alone["stress"][0].detach())
    torch.testing.assert_close(s[2], alone["stress"][0].detach())
    assert torch.isnan(s[1]).all()
    assert out["forces"].shape == (2 * len(cu) + 3, 3)


def test_create_graph_allows_training_on_forces():
    """With create_graph the force error back-propagates to the weights (double backprop)."""
    model = make_model("schnet")
    batch = Batch.from_atoms(rattled(molecule("CH3OH"), 2), ALL, dtype=F64)
    out = compute_potential(model, batch, create_graph=True)
    loss = (out["forces"] ** 2).sum()
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and max(float(g.abs().max()) for g in grads) > 0
    # Without create_graph the forces carry no graph.
    assert not compute_potential(model, batch)["forces"].requires_grad


def test_voigt_round_trip():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4, 3, 3))
    a = a + a.transpose(0, 2, 1)
    v = stress_to_voigt(a)
    np.testing.assert_allclose(v[:, 3], a[:, 1, 2])  # yz
    np.testing.assert_allclose(v[:, 5], a[:, 0, 1])  # xy
    np.testing.assert_allclose(voigt_to_stress(torch.from_numpy(v)).numpy(), a)
