"""The ASE calculator with trained models: derivatives, neighbour-list reuse, batching."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch
from ase import units
from ase.calculators.fd import calculate_numerical_forces, calculate_numerical_stress
from ase.md.langevin import Langevin

from deepatoms.models.loading import load_model
from deepatoms.models.potential import compute_potential
from deepatoms.models.registry import build_model
from deepatoms.models.schnet_potential import SchNetPotential
from deepatoms.simulate import Calculator
from deepatoms.simulate.md import initial_velocities
from model_helpers import save_atomistic

F64 = torch.float64


def test_forces_equal_finite_differences_molecule(mol_model, ethanol):
    ethanol.rattle(0.05, seed=1)
    ethanol.calc = Calculator(mol_model, dtype=F64)
    forces = ethanol.get_forces()
    numeric = calculate_numerical_forces(ethanol, eps=1e-4)
    scale = np.abs(forces).max()
    assert scale > 0.1  # not trivially zero
    np.testing.assert_allclose(forces, numeric, rtol=0, atol=1e-6 * scale)


def test_forces_and_stress_equal_finite_differences_periodic(cu_model, cu_cell):
    cu_cell.calc = Calculator(cu_model, dtype=F64)
    # an energy-only request on a periodic cell (it once failed on a numpy bool)
    energy = cu_cell.get_potential_energy()
    assert np.isfinite(energy)
    forces = cu_cell.get_forces()
    stress = cu_cell.get_stress()
    numeric = calculate_numerical_forces(cu_cell, eps=1e-4)
    np.testing.assert_allclose(forces, numeric, rtol=0, atol=1e-6 * np.abs(forces).max())
    numeric = calculate_numerical_stress(cu_cell, eps=1e-5)
    assert np.abs(stress).max() > 1e-4  # the cell is strained: the stress is not trivially zero
    np.testing.assert_allclose(stress, numeric, rtol=1e-5, atol=1e-8)


def test_analytic_schnet_path_equals_autograd_path(mol_model, cu_model, ethanol, cu_cell):
    """SchNet models get the hand-derived forces; they agree with autograd (float32, as run)."""
    for model, atoms in ((mol_model, ethanol), (cu_model, cu_cell)):
        atoms.rattle(0.05, seed=2)
        fast, slow = Calculator(model), Calculator(model)
        assert isinstance(fast._potential, SchNetPotential)
        slow._potential = partial(compute_potential, slow.energy_model.model)  # autograd route
        props = ["energy", "forces"] + (["stress"] if atoms.pbc.all() else [])
        for calc in (fast, slow):
            calc.calculate(atoms.copy(), props)
        f_fast, f_slow = fast.results["forces"], slow.results["forces"]
        np.testing.assert_allclose(f_fast, f_slow, rtol=0, atol=2e-5 * np.abs(f_slow).max())
        assert abs(fast.results["energy"] - slow.results["energy"]) < 1e-4 * len(atoms)
        if atoms.pbc.all():
            np.testing.assert_allclose(fast.results["stress"], slow.results["stress"], atol=1e-6)


@pytest.mark.parametrize("prune", [True, False])
def test_skin_reuse_equals_rebuilding_every_step(cu_model, cu_cell, prune, monkeypatch):
    """Along a hot MD trajectory the Verlet-skin list gives the energies and forces of a list
    rebuilt at every step, with far fewer rebuilds; whether or not it is pruned to r_c."""
    import deepatoms.simulate.calculator as calculator_module

    monkeypatch.setattr(calculator_module, "PRUNE_MIN_PAIRS", 0 if prune else 10**9)
    reused = Calculator(cu_model, dtype=F64, skin=0.5)
    fresh = Calculator(cu_model, dtype=F64, skin=0.0)
    assert reused.skin == 0.5
    atoms = cu_cell
    atoms.calc = reused
    initial_velocities(atoms, 1500, np.random.default_rng(0))
    dyn = Langevin(atoms, 2.0 * units.fs, temperature_K=1500, friction=0.02 / units.fs,
                   fixcm=False, rng=np.random.default_rng(1))  # fmt: skip
    worst = {"e": 0.0, "f": 0.0}

    def compare() -> None:
        e, f = atoms.get_potential_energy(), atoms.get_forces()
        probe = atoms.copy()
        probe.calc = fresh
        worst["e"] = max(worst["e"], abs(probe.get_potential_energy() - e))
        worst["f"] = max(worst["f"], np.abs(probe.get_forces() - f).max())

    dyn.attach(compare, interval=1)
    steps = 100
    dyn.run(steps)
    assert worst["e"] < 1e-9 and worst["f"] < 1e-9
    assert 1 < reused.n_builds < steps / 3  # atoms moved beyond skin/2, but lists were reused
    assert fresh.n_builds == steps + 1


def test_calculate_images_equals_one_by_one(mol_model, cu_model, ethanol, cu_cell):
    mols = []
    for seed in range(3):
        m = ethanol.copy()
        m.rattle(0.05, seed=seed)
        mols.append(m)
    calc = Calculator(mol_model, dtype=F64)
    batched = calc.calculate_images(mols, forces=True)
    for atoms, res in zip(mols, batched, strict=True):
        atoms.calc = Calculator(mol_model, dtype=F64)
        assert res["energy"] == pytest.approx(atoms.get_potential_energy(), abs=1e-9)
        np.testing.assert_allclose(res["forces"], atoms.get_forces(), atol=1e-9)
        np.testing.assert_allclose(res["energies"].sum(), res["energy"], atol=1e-9)
    cells = [cu_cell, cu_cell.repeat((1, 1, 2))]
    ccalc = Calculator(cu_model, dtype=F64)
    for atoms, res in zip(cells, ccalc.calculate_images(cells, stress=True), strict=True):
        atoms.calc = Calculator(cu_model, dtype=F64)
        assert res["energy"] == pytest.approx(atoms.get_potential_energy(), abs=1e-8)
        np.testing.assert_allclose(res["stress"], atoms.get_stress(), atol=1e-10)
    with pytest.raises(ValueError, match="periodic"):
        ccalc.calculate_images([ethanol], stress=True)


def test_separate_force_model(mol_model, ethanol, tmp_path):
    """Energies come from the energy model, forces from the force model."""
    loaded = load_model(mol_model)
    with torch.no_grad():
        for p in loaded.model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    other = tmp_path / "perturbed.pt"
    save_atomistic(other, loaded.model, loaded.graph, loaded.unit, loaded.meta)

    def results(calc: Calculator) -> tuple[float, np.ndarray]:
        atoms = ethanol.copy()
        atoms.calc = calc
        return atoms.get_potential_energy(), atoms.get_forces()

    e_a, f_a = results(Calculator(mol_model, dtype=F64))
    e_b, f_b = results(Calculator(other, dtype=F64))
    e_mix, f_mix = results(Calculator(mol_model, force_model=other, dtype=F64))
    assert abs(e_a - e_b) > 1e-3 and np.abs(f_a - f_b).max() > 1e-3  # the models differ
    assert e_mix == pytest.approx(e_a, abs=1e-10)
    np.testing.assert_allclose(f_mix, f_b, atol=1e-10)


def test_intensive_or_non_ev_models_are_refused(tmp_path):
    from deepatoms.data.neighbors import GraphSpec

    cfg = {"name": "schnet", "n_atom_basis": 8, "n_interactions": 1, "property": "homo"}
    path = tmp_path / "homo.pt"
    save_atomistic(path, build_model({**cfg, "readout": "mean"}), GraphSpec(), "eV")
    with pytest.raises(ValueError, match="mean readout"):
        Calculator(path)
    save_atomistic(path, build_model({**cfg, "property": "alpha"}), GraphSpec(), "Bohr^3")
    with pytest.raises(ValueError, match="energy model in eV"):
        Calculator(path)
