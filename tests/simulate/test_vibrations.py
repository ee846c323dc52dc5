"""Harmonic analysis: Hessians, frequencies, rigid-body modes, comparison with references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from ase import Atoms, units
from ase.calculators.calculator import Calculator as AseCalculator
from ase.calculators.emt import EMT
from ase.vibrations import Vibrations

from deepatoms.simulate import Calculator
from deepatoms.simulate.relax import relax
from deepatoms.simulate.vibrations import (
    compare_frequencies,
    harmonic_analysis,
    model_hessian,
    reference_hessian,
    vibrational_analysis,
)

F64 = torch.float64


@pytest.fixture(scope="module")
def relaxed_ethanol(mol_model):
    from deepatoms.data.structures import molecule_from_spec

    calc = Calculator(mol_model, dtype=F64)
    res = relax(molecule_from_spec("ethanol"), calc, fmax=1e-4, steps=500)
    assert res["converged"]
    return calc, res["atoms"]


def test_autograd_hessian_is_symmetric_and_equals_finite_differences(relaxed_ethanol):
    calc, atoms = relaxed_ethanol
    exact = model_hessian(calc, atoms, "autograd")
    fd = model_hessian(calc, atoms, "fd", delta=1e-3)
    assert exact.shape == (27, 27)
    np.testing.assert_array_equal(exact, exact.T)
    scale = np.abs(exact).max()
    np.testing.assert_allclose(fd, exact, atol=1e-5 * scale)
    # the translational sum rule of an invariant model: Σ_j H_ij = 0
    sums = exact.reshape(27, 9, 3).sum(axis=1)
    assert np.abs(sums).max() < 1e-8 * scale
    f_exact = harmonic_analysis(atoms, exact).frequencies
    f_fd = harmonic_analysis(atoms, fd).frequencies
    np.testing.assert_allclose(f_fd, f_exact, atol=0.5)  # cm⁻¹


def test_six_near_zero_rigid_modes_at_a_molecular_minimum(relaxed_ethanol):
    calc, atoms = relaxed_ethanol
    hess = model_hessian(calc, atoms)
    modes = harmonic_analysis(atoms, hess)
    assert modes.n_rigid == 6 and not modes.linear
    assert len(modes.frequencies) == 21
    assert np.abs(modes.rigid_frequencies).max() < 5.0  # cm⁻¹: zero up to the relaxation
    assert modes.frequencies.max() > 2500  # O–H / C–H stretches
    # without projection the six smallest |ω| of the full spectrum are the rigid modes
    full = harmonic_analysis(atoms, hess, project=False)
    assert len(full.frequencies) == 27
    by_size = np.sort(np.abs(full.frequencies))
    assert by_size[5] < 10.0 < by_size[6]
    np.testing.assert_allclose(np.sort(full.frequencies)[-15:], modes.frequencies[-15:], rtol=1e-3)
    # normal modes are unit displacement patterns of the right shape
    assert modes.modes.shape == (21, 9, 3)
    np.testing.assert_allclose(np.linalg.norm(modes.modes.reshape(21, -1), axis=1), 1.0)


class _Spring(AseCalculator):
    """E = k/2 (r − r0)² between the two atoms of a diatomic (eV, Å)."""

    implemented_properties = ("energy", "forces")

    def __init__(self, k: float, r0: float) -> None:
        super().__init__()
        self.k, self.r0 = k, r0

    def calculate(self, atoms=None, properties=("energy",), system_changes=()):
        super().calculate(atoms, properties, system_changes)
        d = self.atoms.positions[1] - self.atoms.positions[0]
        r = np.linalg.norm(d)
        f = -self.k * (r - self.r0) * d / r  # force on atom 1
        self.results = {"energy": 0.5 * self.k * (r - self.r0) ** 2, "forces": np.array([-f, f])}


def test_a_harmonic_diatomic_has_the_analytic_frequency():
    k, r0 = 36.0, 1.1  # eV/Å², Å
    atoms = Atoms("CO", positions=[[0, 0, 0], [0, 0, r0]])
    modes = harmonic_analysis(atoms, reference_hessian(atoms, _Spring(k, r0), delta=1e-3))
    mu = np.prod(atoms.get_masses()) / np.sum(atoms.get_masses())  # amu
    omega = math.sqrt(k * units._e / (mu * units._amu * 1e-20))  # rad/s
    expected = omega / (2 * math.pi * units._c * 100)  # cm⁻¹
    assert modes.linear and modes.n_rigid == 5
    assert modes.frequencies == pytest.approx([expected], rel=1e-6)
    # the atoms move in opposite directions with amplitudes ∝ 1/m (fixed centre of mass)
    dz = modes.modes[0, :, 2]
    inv_m = 1 / atoms.get_masses()
    np.testing.assert_allclose(np.abs(dz), inv_m / np.linalg.norm(inv_m), rtol=1e-6)
    assert dz[0] * dz[1] < 0


def test_reference_frequencies_match_ase_vibrations(tmp_path):
    """H2 with EMT: our central differences + projection vs ase.vibrations.Vibrations."""
    h2 = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]])
    h2 = relax(h2, EMT(), fmax=1e-6, steps=200)["atoms"]
    ours = harmonic_analysis(h2, reference_hessian(h2, EMT(), delta=0.01))
    h2.calc = EMT()
    vib = Vibrations(h2, delta=0.01, name=str(tmp_path / "vib"))
    vib.run()
    theirs = vib.get_frequencies()  # complex cm⁻¹, 6 values
    stretch = float(np.real(theirs[-1]))
    assert ours.frequencies == pytest.approx([stretch], rel=1e-4)
    assert len(ours.rigid_frequencies) == 5


def test_periodic_cell_has_three_rigid_modes(cu_model, cu_cell):
    calc = Calculator(cu_model, dtype=F64)
    small = cu_cell[:4]  # keep the Hessian small: the 4-atom conventional cell
    small.set_cell(cu_cell.cell / 2, scale_atoms=False)
    small.wrap()
    modes = harmonic_analysis(small, model_hessian(calc, small))
    assert modes.n_rigid == 3 and len(modes.frequencies) == 9


def test_compare_frequencies():
    c = compare_frequencies([1010.0, 2000.0, 490.0], [500.0, 1000.0, 2020.0])
    assert c["mae_cm1"] == pytest.approx((10 + 10 + 20) / 3)
    assert c["max_abs_cm1"] == pytest.approx(20.0)
    assert c["max_rel_percent"] == pytest.approx(2.0)
    assert c["errors_cm1"] == pytest.approx([-10.0, 10.0, -20.0])
    with pytest.raises(ValueError, match="cannot compare 1 model frequencies with 2"):
        compare_frequencies([1.0], [1.0, 2.0])


def test_vibrational_analysis_relaxes_each_calculator_at_its_own_minimum(mol_model, ethanol):
    from deepatoms.simulate.reference import make_calculator

    xtb, _ = make_calculator("xtb", ethanol)
    calc = Calculator(mol_model, dtype=F64)
    res = vibrational_analysis(ethanol, calc, reference=xtb, fmax=1e-3)
    model, ref = res["model"], res["reference"]
    assert len(model.frequencies) == len(ref.frequencies) == 21
    assert model.info["relax"]["final_fmax"] < 1e-3 and ref.info["relax"]["final_fmax"] < 1e-3
    assert not np.allclose(res["model_atoms"].positions, res["reference_atoms"].positions)
    assert 3400 < ref.frequencies[-1] < 3800  # GFN2-xTB O–H stretch
    assert np.all(ref.frequencies > 100)  # a minimum of the reference: no imaginary modes
    assert res["comparison"] == compare_frequencies(model.frequencies, ref.frequencies)
    # the C–H and O–H stretches of the small model are within 5 % of the reference
    assert np.all(np.abs(model.frequencies[-6:] / ref.frequencies[-6:] - 1) < 0.05)
    unrelaxed = vibrational_analysis(ethanol, calc, relax_first=False)
    assert "relax" not in unrelaxed["model"].info and unrelaxed["reference"] is None
