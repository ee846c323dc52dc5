"""Isotropic scaling scans: batched energies, pressures, reference curves, parsing."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from ase import units
from ase.calculators.emt import EMT

from deepatoms.simulate import Calculator
from deepatoms.simulate.scan import parse_scale, plot_scan, scaled_images, scan, write_scan_csv


def test_batched_scan_equals_single_points_molecule(mol_model, ethanol):
    calc = Calculator(mol_model, dtype=torch.float64)
    scales = parse_scale("0.9:1.2:4")
    res = scan(ethanol, calc, scales)
    assert not res["periodic"] and "pressure_GPa" not in res
    for s, e, img in zip(scales, res["energy"], scaled_images(ethanol, scales), strict=True):
        img.calc = Calculator(mol_model, dtype=torch.float64)
        assert e == pytest.approx(img.get_potential_energy(), abs=1e-9)
        d = img.get_all_distances() / ethanol.get_all_distances().clip(1e-12)
        assert np.allclose(d[~np.eye(9, dtype=bool)], s)  # every distance scaled by s
    assert res["min_scale"] == pytest.approx(1.0)  # ASE's ethanol is near the minimum


def test_periodic_scan_gives_volume_and_pressure_and_a_reference(cu_model, cu_cell, tmp_path):
    calc = Calculator(cu_model, dtype=torch.float64)
    scales = np.array([0.97, 1.0, 1.03])
    res = scan(cu_cell, calc, scales, reference=EMT())
    np.testing.assert_allclose(res["volume"], cu_cell.get_volume() * scales**3)
    for k, img in enumerate(scaled_images(cu_cell, scales)):
        img.calc = Calculator(cu_model, dtype=torch.float64)
        assert res["energy"][k] == pytest.approx(img.get_potential_energy(), abs=1e-8)
        p = -np.mean(img.get_stress()[:3]) / units.GPa
        assert res["pressure_GPa"][k] == pytest.approx(p, rel=1e-4)
        img.calc = EMT()
        assert res["reference"]["energy"][k] == pytest.approx(img.get_potential_energy())
    # compression raises the pressure, for the model and for EMT
    assert np.all(np.diff(res["pressure_GPa"]) < 0)
    assert np.all(np.diff(res["reference"]["pressure_GPa"]) < 0)
    write_scan_csv(res, tmp_path / "scan.csv")
    rows = list(csv.DictReader((tmp_path / "scan.csv").open()))
    assert len(rows) == 3 and float(rows[1]["scale"]) == 1.0
    assert {"volume_A3", "pressure_GPa", "ref_energy_eV", "ref_pressure_GPa"} <= set(rows[0])
    png = plot_scan(res, tmp_path / "scan.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_parse_scale():
    np.testing.assert_allclose(parse_scale("0.9:1.5:10"), np.linspace(0.9, 1.5, 10))
    np.testing.assert_allclose(parse_scale("0.95, 1.0,1.05"), [0.95, 1.0, 1.05])
    for bad, why in [
        ("0.9:1.5", "a range needs exactly three parts"),
        ("0.9:1.5:1", "N must be an integer >= 2"),
        ("0.9:1.5:2.5", "N must be an integer >= 2"),
        ("a:1.5:10", "not a number"),
        ("1.0:1.0:5", "START and STOP are equal"),
        ("-0.5:1:5", "must be finite and > 0"),
        ("", "not a number"),
    ]:
        with pytest.raises(ValueError, match=why):
            parse_scale(bad)
