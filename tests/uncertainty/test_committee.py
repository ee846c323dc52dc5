"""Committees: mean and spread, the model file, the calculator's uncertainty keys, the trust
level in MD and relaxation, and the calibration measures on hand-made cases."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from ase.build import bulk, molecule

from deepatoms.analysis.calibration import calibration_curve, calibration_report
from deepatoms.data.neighbors import GraphSpec
from deepatoms.data.packed import PackedSystems
from deepatoms.models.committee import (
    Committee,
    fit_variance_scale,
    force_deviation,
    member_std,
)
from deepatoms.models.inference import predict_members
from deepatoms.models.loading import load_model
from deepatoms.models.model_file import write_model_file
from deepatoms.models.registry import build_model
from deepatoms.simulate.calculator import Calculator
from deepatoms.simulate.md import run_md
from deepatoms.simulate.relax import relax
from model_helpers import save_committee

CFG = {"name": "schnet", "n_atom_basis": 8, "n_interactions": 1, "cutoff": 4.0,
       "property": "energy", "head": {"zero_init_last": False}}  # fmt: skip
GRAPH = GraphSpec(kind="cutoff", cutoff=4.0)


def _member(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(CFG)


def _save(path, committee: Committee) -> None:
    save_committee(path, committee, GRAPH, [1, 6, 8, 29])


def test_identical_members_have_zero_spread_and_the_mean_is_the_member():
    one = _member(0)
    committee = Committee([one, copy.deepcopy(one), copy.deepcopy(one)])
    data = PackedSystems.from_atoms([molecule("CH3CH2OH"), molecule("H2O")])
    members = predict_members(GRAPH, committee, data)
    assert members.shape == (3, 2)
    np.testing.assert_allclose(member_std(members), 0.0, atol=1e-12)
    single = predict_members(GRAPH, Committee([one, one]), data)[0]
    np.testing.assert_allclose(members.mean(0), single, rtol=1e-12)


def test_spread_and_deviation_follow_their_definitions():
    m = np.array([[1.0, 2.0], [3.0, 2.0], [5.0, 2.0]])  # 3 members, 2 systems
    np.testing.assert_allclose(member_std(m), [2.0, 0.0])  # unbiased: var of 1,3,5 is 4
    np.testing.assert_allclose(member_std(m, variance_scale=4.0), [4.0, 0.0])
    f = np.zeros((2, 2, 3))
    f[0, 0] = [1.0, 0.0, 0.0]
    f[1, 0] = [-1.0, 0.0, 0.0]  # atom 0: members ±1 along x; atom 1: agree
    np.testing.assert_allclose(force_deviation(f), [1.0, 0.0])
    assert fit_variance_scale(np.array([2.0, -2.0]), np.array([1.0, 1.0])) == pytest.approx(4.0)


def test_spread_grows_away_from_the_training_data():
    """Members fitted to the same function on x ∈ [0, 1] agree there and disagree far away."""
    torch.manual_seed(0)
    x = torch.linspace(0, 1, 64)[:, None]
    y = torch.sin(3 * x)
    nets = []
    for seed in range(5):
        torch.manual_seed(seed)
        net = torch.nn.Sequential(torch.nn.Linear(1, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
        opt = torch.optim.Adam(net.parameters(), lr=1e-2)
        for _ in range(1500):
            opt.zero_grad()
            ((net(x) - y) ** 2).mean().backward()
            opt.step()
        nets.append(net)
    with torch.no_grad():
        near = torch.stack([n(torch.tensor([[0.5]])) for n in nets]).numpy().reshape(5, 1)
        far = torch.stack([n(torch.tensor([[4.0]])) for n in nets]).numpy().reshape(5, 1)
    assert member_std(far)[0] > 10 * member_std(near)[0]


def test_committee_model_file_round_trip(tmp_path):
    committee = Committee([_member(0), _member(1), _member(2)], variance_scale=2.5)
    _save(tmp_path / "c.pt", committee)
    loaded = load_model(tmp_path / "c.pt")
    assert isinstance(loaded.model, Committee) and len(loaded.model) == 3
    assert loaded.model.variance_scale == 2.5 and loaded.property == "energy"
    data = PackedSystems.from_atoms([molecule("CH4")])
    np.testing.assert_allclose(predict_members(GRAPH, loaded.model, data),
                               predict_members(GRAPH, committee, data), rtol=1e-6)  # fmt: skip


def test_calculator_reports_the_spread_and_its_mean_is_the_member_mean(tmp_path):
    members = [_member(0), _member(1), _member(2)]
    _save(tmp_path / "c.pt", Committee(members))
    atoms = molecule("CH3CH2OH")
    atoms.calc = Calculator(tmp_path / "c.pt")
    e, f = atoms.get_potential_energy(), atoms.get_forces()
    r = atoms.calc.results
    assert {"energy_std", "forces_std", "force_deviation", "max_force_deviation"} <= set(r)
    assert r["forces_std"].shape == (9, 3) and r["force_deviation"].shape == (9,)
    singles = []
    for k, m in enumerate(members):
        _save(tmp_path / f"m{k}.pt", Committee([m, m]))  # two copies of one member: its values
        b = atoms.copy()
        b.calc = Calculator(tmp_path / f"m{k}.pt")
        singles.append((b.get_potential_energy(), b.get_forces()))
    es = np.array([s[0] for s in singles])
    fs = np.array([s[1] for s in singles])
    assert e == pytest.approx(es.mean(), abs=1e-5)
    np.testing.assert_allclose(f, fs.mean(0), atol=1e-5)
    assert r["energy_std"] == pytest.approx(es.std(ddof=1), rel=1e-4, abs=1e-7)
    np.testing.assert_allclose(r["force_deviation"], force_deviation(fs), atol=1e-5)
    assert r["max_force_deviation"] == pytest.approx(force_deviation(fs).max(), abs=1e-5)


def test_md_stops_at_the_trust_level_and_relax_reports_deviations(tmp_path):
    _save(tmp_path / "c.pt", Committee([_member(0), _member(1), _member(2)]))
    calc = Calculator(tmp_path / "c.pt")
    cu = bulk("Cu", "fcc", a=3.6, cubic=True)
    free = run_md(cu, calc, steps=5, temperature_K=300, interval=1)
    dev = free["series"]["max_force_deviation"]
    assert len(dev) == 6 and np.all(np.isfinite(dev)) and free["stopped_untrusted"] is None
    level = float(np.sort(dev)[2])  # passed within the first steps
    stopped = run_md(cu, calc, steps=5, temperature_K=300, interval=1,
                     max_force_deviation=level)  # fmt: skip
    first = int(np.argmax(dev > level))
    assert stopped["stopped_untrusted"]["step"] == first
    assert stopped["steps"] == first and len(stopped["series"]["max_force_deviation"]) == first + 1
    flagged = run_md(cu, calc, steps=5, temperature_K=300, interval=1,
                     max_force_deviation=level, on_deviation="flag")  # fmt: skip
    assert flagged["flagged_steps"] == [k for k in range(6) if dev[k] > level]
    cu.calc = calc
    cu.get_stress()
    assert calc.results["stress_std"].shape == (6,) and np.all(calc.results["stress_std"] >= 0)
    rattled = cu.copy()
    rattled.rattle(0.05, seed=1)
    res = relax(rattled, calc, steps=3)
    assert len(res["force_deviation"]) >= 1 and res["stopped_untrusted"] is None


def test_a_single_model_refuses_a_trust_level(tmp_path):
    from model_helpers import save_atomistic

    save_atomistic(tmp_path / "one.pt", _member(0), GRAPH, "eV",
                   meta={"stats": {"forces": {"mean": 0.0}}})  # fmt: skip
    with pytest.raises(ValueError, match="needs a committee model"):
        run_md(molecule("H2O"), Calculator(tmp_path / "one.pt"), steps=2, max_force_deviation=0.1)


def test_calibration_measures_on_hand_made_errors():
    rng = np.random.default_rng(0)
    std = rng.uniform(0.5, 2.0, 20000)
    errors = rng.normal(0.0, std)  # exactly calibrated
    good = calibration_report(errors, std)
    assert good["miscalibration_area"] < 0.01
    assert good["coverage_1sigma"] == pytest.approx(0.6827, abs=0.01)
    assert good["coverage_2sigma"] == pytest.approx(0.9545, abs=0.01)
    assert good["spearman_abs_error_std"] > 0.2
    nll = np.mean(0.5 * np.log(2 * np.pi * std**2) + errors**2 / (2 * std**2))
    assert good["nll"] == pytest.approx(nll)
    over = calibration_report(errors, std * 10)  # claims far too much uncertainty
    assert over["miscalibration_area"] > 0.3 and over["coverage_1sigma"] > 0.99
    _, observed = calibration_curve(np.array([0.0, 0.0]), np.array([1.0, 1.0]))
    assert observed[0] == 1.0 and observed[-1] == 1.0  # zero errors lie in every interval
    tiny = calibration_report(np.array([1.0, -1.0, math.nan]), np.array([1.0, 0.0, 1.0]))
    assert tiny["n_calibration"] == 1 and tiny["n_without_std"] == 2


def test_screen_reports_the_committee_spread(tmp_path):
    import csv

    from deepatoms.workflows.screening import screen

    cfg = {**CFG, "readout": "mean", "property": "formation_energy_per_atom"}
    members = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        members.append(build_model(cfg))
    committee = Committee(members)
    write_model_file(tmp_path / "c.pt", committee, "schnet",
                     extras={"graph": GRAPH.to_config(), "elements": [29, 79],
                             "committee": {"n_members": 2, "variance_scale": 1.0}},
                     units={"target": "eV/atom", "length": "Å"},
                     target={"name": "formation_energy_per_atom", "unit": "eV/atom"})  # fmt: skip
    screen(tmp_path / "c.pt", tmp_path / "s", elements="Cu,Au", arity=[2],
           prototypes=["L1_2,B2"], progress=False)  # fmt: skip
    with open(tmp_path / "s" / "ranking.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and all(float(r["std_eV_per_atom"]) > 0 for r in rows)
