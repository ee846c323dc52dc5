"""MD with trained models: energy conservation, thermostat, outputs; trajectory analyses."""

from __future__ import annotations

import numpy as np
import pytest
from ase.calculators.calculator import Calculator as AseCalculator
from ase.geometry.rdf import get_rdf
from ase.io import read

from deepatoms.simulate import Calculator
from deepatoms.simulate.analysis import energy_drift, radial_distribution
from deepatoms.simulate.md import LOG_COLUMNS, run_md
from deepatoms.simulate.relax import relax

# NVE bounds for the small ethanol model from 300 K (9 atoms, float32 weights). Measured at
# 0.5 fs over 0.5 ps: drift ≈ 0.01 meV/atom/ps, fluctuation (std about the linear fit)
# ≈ 0.03 meV/atom; at 2 fs the fluctuation is ≈ 0.5 meV/atom (Verlet error ∝ dt²).
MAX_DRIFT = 0.5e-3  # eV/atom/ps
MAX_STD = 0.2e-3  # eV/atom


@pytest.fixture(scope="module")
def ethanol_min(mol_model):
    """Ethanol relaxed with the model (a start without large initial forces)."""
    from deepatoms.data.structures import molecule_from_spec

    return relax(molecule_from_spec("ethanol"), Calculator(mol_model), fmax=0.05)["atoms"]


def _nve(model, atoms, dt: float, ps: float = 0.5, calc=None) -> dict:
    calc = calc or Calculator(model)
    steps = round(ps * 1000 / dt)
    return run_md(atoms, calc, ensemble="nve", temperature_K=300, timestep_fs=dt, steps=steps)


def test_nve_conserves_energy(mol_model, ethanol_min):
    res = _nve(mol_model, ethanol_min, 0.5)
    assert res["steps"] == 1000
    d = res["energy_drift"]
    assert abs(d["drift"]) < MAX_DRIFT, d
    assert d["std"] < MAX_STD, d
    assert res["mean_temperature_K"] > 50  # atoms did move
    # The bound is not trivially met: with a 4× larger step the Verlet energy error grows ~16×
    # and breaks it.
    coarse = _nve(mol_model, ethanol_min, 2.0)["energy_drift"]
    assert coarse["std"] > MAX_STD
    assert 6 < coarse["std"] / d["std"] < 50


class _ScaledForces(AseCalculator):
    """A broken potential: energies of ``inner``, forces scaled (not −∇E any more)."""

    implemented_properties = ("energy", "forces")

    def __init__(self, inner: Calculator, factor: float) -> None:
        super().__init__()
        self.inner, self.factor = inner, factor

    def calculate(self, atoms=None, properties=("energy",), system_changes=()):
        super().calculate(atoms, properties, system_changes)
        res = self.inner.calculate_images([self.atoms])[0]
        self.results = {"energy": res["energy"], "forces": self.factor * res["forces"]}


def test_nve_check_catches_forces_inconsistent_with_the_energy(mol_model, ethanol_min):
    broken = _ScaledForces(Calculator(mol_model), 0.8)
    d = _nve(mol_model, ethanol_min, 0.5, ps=0.25, calc=broken)["energy_drift"]
    assert d["std"] > MAX_STD or abs(d["drift"]) > MAX_DRIFT


def test_nvt_langevin_reaches_the_temperature_and_writes_outputs(cu_model, cu_cell, tmp_path):
    traj, log = tmp_path / "md.traj", tmp_path / "md.log"
    steps, interval = 400, 20
    res = run_md(
        cu_cell, Calculator(cu_model), ensemble="nvt", temperature_K=500, timestep_fs=2.0,
        steps=steps, friction=0.05, seed=4, trajectory=traj, log=log, interval=interval,
    )  # fmt: skip
    assert res["integrator"] == "Langevin"
    second_half = res["series"]["temperature"][steps // 2 :]
    assert 350 < second_half.mean() < 650
    frames = read(traj, ":")
    assert len(frames) == res["n_frames"] == steps // interval + 1
    assert frames[-1].get_potential_energy() == pytest.approx(res["series"]["epot"][-1])
    np.testing.assert_allclose(frames[-1].positions, res["atoms"].positions)
    table = np.loadtxt(log)
    assert table.shape == (steps // interval + 1, len(LOG_COLUMNS))
    np.testing.assert_allclose(table[:, 1], np.arange(0, steps + 1, interval) * 2e-3)
    np.testing.assert_allclose(table[:, 2], table[:, 3] + table[:, 4], atol=2e-8)
    assert not list(tmp_path.glob(".*part"))  # partial files renamed into place
    # centre of mass fixed, cell unchanged
    np.testing.assert_allclose(
        frames[-1].get_center_of_mass(), frames[0].get_center_of_mass(), atol=1e-8
    )


def test_md_is_reproducible_with_a_seed_and_checks_settings(mol_model, ethanol_min):
    calc = Calculator(mol_model)
    a = run_md(ethanol_min, calc, steps=20, seed=7)["atoms"]
    b = run_md(ethanol_min, calc, steps=20, seed=7)["atoms"]
    c = run_md(ethanol_min, calc, steps=20, seed=8)["atoms"]
    np.testing.assert_array_equal(a.positions, b.positions)
    assert np.abs(a.positions - c.positions).max() > 1e-6
    with pytest.raises(ValueError, match="unknown ensemble 'npt'"):
        run_md(ethanol_min, calc, ensemble="npt")
    with pytest.raises(ValueError, match="timestep must be > 0"):
        run_md(ethanol_min, calc, timestep_fs=0)


def test_energy_drift_of_a_known_line():
    t = np.linspace(0, 2.0, 201)  # ps
    e = -100.0 + 0.03 * t + 0.001 * np.sin(40 * t)
    d = energy_drift(t, e, n_atoms=10)
    assert d["drift"] == pytest.approx(0.003, rel=2e-2)
    assert d["std"] == pytest.approx(0.001 / np.sqrt(2) / 10, rel=0.1)


def test_rdf_of_a_cell_matches_ase(cu_cell):
    frames = [cu_cell.repeat(2)]
    r, g = radial_distribution(frames, rmax=3.5, nbins=35)
    g_ase, r_ase = get_rdf(frames[0], 3.5, 35)
    np.testing.assert_allclose(r, r_ase)
    np.testing.assert_allclose(g, g_ase, atol=1e-10)
    # any rmax (beyond half the cell) works; g → 1 at long range for the crystal on average
    r2, g2 = radial_distribution(cu_cell, rmax=12.0, nbins=60)
    assert np.mean(g2[r2 > 8]) == pytest.approx(1.0, abs=0.1)


def test_rdf_of_a_molecule_is_a_pair_distance_density(ethanol):
    r, g = radial_distribution([ethanol, ethanol], rmax=6.0, nbins=600)
    assert np.sum(g) * (r[1] - r[0]) == pytest.approx(1.0)  # all 36 pairs are within 6 Å
    # O–H pairs: the hydroxyl bond (~0.97 Å) is 1 of the 6 O–H pairs
    r, g = radial_distribution(ethanol, rmax=6.0, nbins=600, pairs=("O", "H"))
    below = r < 1.2
    assert np.sum(g[below]) * (r[1] - r[0]) == pytest.approx(1 / 6)
    with pytest.raises(ValueError, match="unknown element"):
        radial_distribution(ethanol, 3.0, 10, pairs=("O", "Xx"))
