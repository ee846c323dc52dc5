"""Data generation: structure specs, reference calculators, Langevin MD labels, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ase.calculators.emt import EMT
from typer.testing import CliRunner

from deepatoms.cli import app
from deepatoms.data.dataset import read_dataset, write_dataset
from deepatoms.data.structures import bulk_from_spec, molecule_from_spec, parse_composition
from deepatoms.datagen.md import generate_md
from deepatoms.simulate.reference import make_calculator

EXE = str(Path(sys.executable).parent / "deepatoms")


def flat(text: str) -> str:
    """Rich wraps long error lines; compare with single spaces."""
    return " ".join(text.split())


# -- structures -----------------------------------------------------------------------------------
def test_molecule_names_aliases_and_smiles():
    g2 = molecule_from_spec("CH3CH2OH")
    alias = molecule_from_spec("Ethanol")
    assert g2.get_chemical_formula() == "C2H6O" and not g2.pbc.any()
    np.testing.assert_array_equal(alias.positions, g2.positions)
    assert alias.info["kind"] == "molecule" and alias.info["spec"] == "Ethanol"
    assert molecule_from_spec("salicylic acid").get_chemical_formula() == "C7H6O3"
    assert molecule_from_spec("malonaldehyde").get_chemical_formula() == "C3H4O2"

    a = molecule_from_spec("smiles:CCO", seed=3)
    b = molecule_from_spec("CCO", seed=3)  # bare SMILES: not a name, parsed as SMILES
    assert a.get_chemical_formula() == "C2H6O" and a.info["smiles"] == "CCO"
    np.testing.assert_allclose(a.positions, b.positions)
    d = a.get_all_distances()[np.triu_indices(len(a), 1)]
    assert d.min() > 0.9  # a real 3-D embedding, no overlapping atoms


def test_molecule_spec_errors_suggest_names():
    with pytest.raises(ValueError, match="Did you mean ethanol"):
        molecule_from_spec("ethanoll")
    with pytest.raises(ValueError, match="invalid SMILES 'C1CC'"):
        molecule_from_spec("smiles:C1CC")


def test_bulk_specs():
    cu = bulk_from_spec("Cu", "fcc", size=32)
    assert len(cu) == 32 and set(cu.get_chemical_symbols()) == {"Cu"}
    assert cu.pbc.all()
    np.testing.assert_allclose(cu.cell.array, np.eye(3) * 2 * 3.61)

    alloy = bulk_from_spec("Cu3Au", "fcc", size=108, seed=1)
    symbols = alloy.get_chemical_symbols()
    assert len(alloy) == 108 and symbols.count("Cu") == 81 and symbols.count("Au") == 27
    assert alloy.info["composition"] == {"Cu": 0.75, "Au": 0.25}
    assert alloy.info["a"] == pytest.approx(0.75 * 3.61 + 0.25 * 4.08)  # Vegard
    again = bulk_from_spec("Cu3Au", "fcc", size=108, seed=1)
    other = bulk_from_spec("Cu3Au", "fcc", size=108, seed=2)
    assert again.get_chemical_symbols() == symbols != other.get_chemical_symbols()

    assert parse_composition("Cu0.7Ni0.3") == pytest.approx({"Cu": 0.7, "Ni": 0.3})
    assert parse_composition("CuNi") == {"Cu": 0.5, "Ni": 0.5}
    bcc = bulk_from_spec("Fe", "bcc", size=54)
    assert len(bcc) == 54 and bcc.info["a"] == 2.87
    hcp = bulk_from_spec("Mg", "hcp", size=48)
    assert len(hcp) == 48 and hcp.info["c/a"] == pytest.approx(1.624)
    assert len(bulk_from_spec("Si", "fcc", a=5.0, size=4)) == 4


def test_bulk_spec_errors():
    with pytest.raises(ValueError, match="unknown structure 'diamond'"):
        bulk_from_spec("Cu", "diamond")
    with pytest.raises(ValueError, match=r"unknown element 'Cx'.*did you mean"):
        bulk_from_spec("Cx")
    with pytest.raises(ValueError, match="no default lattice constant for Si"):
        bulk_from_spec("Si")
    with pytest.raises(ValueError, match="too small to hold Au"):
        bulk_from_spec("Cu9Au", size=4)


# -- calculators ----------------------------------------------------------------------------------
def test_calculator_choices_and_errors(monkeypatch):
    calc, prov = make_calculator("emt", bulk_from_spec("CuNi", size=4))
    assert isinstance(calc, EMT)
    assert prov["calculator"] == "emt" and prov["package"] == "ase" and prov["package_version"]
    assert prov["units"]["forces"] == "eV/Å"
    with pytest.raises(ValueError, match=r"EMT has no parameters for Fe, S;.*xtb"):
        make_calculator("emt", bulk_from_spec("FeS", "bcc", a=2.9, size=2))
    with pytest.raises(ValueError, match="unknown calculator 'dft'"):
        make_calculator("dft")
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['cutoff'\]"):
        make_calculator("emt", cutoff=5.0)
    monkeypatch.setitem(sys.modules, "tblite.ase", None)  # as if tblite were not installed
    with pytest.raises(ModuleNotFoundError, match="pip install tblite"):
        make_calculator("xtb")


# -- MD -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cu_md():
    atoms = bulk_from_spec("Cu", size=32)
    calc, prov = make_calculator("emt", atoms)
    data, meta = generate_md(
        atoms, calc, prov, n_frames=6, stride=4, equilibration_steps=20, strain=0.02, seed=7
    )
    return atoms, data, meta


def test_md_labels_match_the_calculator(cu_md):
    _, data, meta = cu_md
    assert len(data) == 6 and list(data.n_atoms) == [32] * 6
    assert data.system_props["energy"].shape == (6,)
    assert data.system_props["stress"].shape == (6, 6)
    assert data.atom_props["forces"].shape == (6 * 32, 3)
    assert data.pbc.all()
    for k in (0, 5):
        frame = data.get_atoms(k)
        frame.calc = EMT()
        assert frame.get_potential_energy() == pytest.approx(data.system_props["energy"][k])
        np.testing.assert_allclose(frame.get_forces(), frame.arrays["forces"], atol=1e-10)
        np.testing.assert_allclose(frame.get_stress(), data.system_props["stress"][k], atol=1e-12)
    # strained frames: the cells and the stress differ from frame to frame
    assert np.ptp(data.cell.reshape(6, -1), axis=0).max() > 1e-3
    assert np.all(data.system_props["stress"].std(axis=0) > 1e-4)
    assert np.abs(data.atom_props["forces"]).max() > 0.05
    assert meta["units"] == {"energy": "eV", "forces": "eV/Å", "stress": "eV/Å^3"}


def test_md_is_reproducible_and_recorded(cu_md, tmp_path):
    atoms, data, meta = cu_md
    calc, prov = make_calculator("emt", atoms)
    again, _ = generate_md(
        atoms, calc, prov, n_frames=6, stride=4, equilibration_steps=20, strain=0.02, seed=7
    )
    np.testing.assert_array_equal(again.positions, data.positions)
    np.testing.assert_array_equal(again.system_props["energy"], data.system_props["energy"])

    write_dataset(tmp_path / "cu.h5", data, meta)
    _, back = read_dataset(tmp_path / "cu.h5")
    assert back["source"] == "deepatoms datagen md"
    p = back["provenance"]
    assert p["calculator"]["calculator"] == "emt"
    assert {"temperature_K", "timestep_fs", "friction_per_fs", "stride", "n_frames", "seed"} <= set(
        p["md"]
    )
    assert p["md"]["equilibration_steps"] == 20 and p["md"]["strain"] == 0.02
    assert p["structure"]["spec"] == "Cu" and p["structure"]["n_atoms"] == 32
    assert p["versions"]["deepatoms"] and p["date"]


def test_md_without_strain_keeps_the_cell():
    atoms = bulk_from_spec("Cu", size=4)
    calc, prov = make_calculator("emt", atoms)
    data, _ = generate_md(atoms, calc, prov, n_frames=3, stride=2, equilibration_steps=0)
    np.testing.assert_array_equal(data.cell, np.repeat(atoms.cell.array[None], 3, axis=0))
    assert data.system_props["stress"].shape == (3, 6)


def test_md_refuses_bad_settings():
    atoms = bulk_from_spec("Cu", size=4)
    calc, prov = make_calculator("emt", atoms)
    with pytest.raises(ValueError, match=r"n_frames must be a positive integer.*timestep"):
        generate_md(atoms, calc, prov, n_frames=0, timestep=-1.0)
    water = molecule_from_spec("water")
    with pytest.raises(ValueError, match="strain applies to periodic cells"):
        generate_md(water, EMT(), {}, n_frames=1, strain=0.01)


def test_xtb_water():
    pytest.importorskip("tblite")
    water = molecule_from_spec("water")
    calc, prov = make_calculator("xtb", water)
    assert prov["method"] == "GFN2-xTB" and prov["package"] == "tblite"
    assert prov["settings"]["threads"] == 1
    with pytest.raises(ValueError, match="threads must be a positive integer"):
        make_calculator("xtb", threads=0)
    data, meta = generate_md(water, calc, prov, n_frames=4, stride=3, equilibration_steps=10)
    assert set(data.system_props) == {"energy"} and data.atom_props["forces"].shape == (12, 3)
    assert "stress" not in meta["units"] and not data.pbc.any()
    frame = data.get_atoms(2)
    frame.calc, _ = make_calculator("xtb")
    assert frame.get_potential_energy() == pytest.approx(data.system_props["energy"][2], abs=1e-6)
    # the MD's SCF restarts from the previous step: labels agree to the SCF tolerance
    np.testing.assert_allclose(frame.get_forces(), frame.arrays["forces"], atol=1e-4)
    assert np.ptp(data.system_props["energy"]) > 0


# -- CLI ------------------------------------------------------------------------------------------
def test_cli_datagen_md_writes_a_dataset(tmp_path):
    out = tmp_path / "cu.h5"
    cmd = [EXE, "datagen", "md", "--bulk", "Cu", "--size", "4", "--frames", "3", "--stride", "2"]
    cmd += ["--equilibration", "4", "--seed", "1", "--out", str(out), "--no-progress", "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["n_systems"] == 3 and res["calculator"] == "emt" and res["n_atoms"] == 4
    data, meta = read_dataset(out)
    assert set(data.property_names) == {"energy", "stress", "forces"}
    assert meta["provenance"]["md"]["strain"] == 0.02  # the bulk default
    assert meta["provenance"]["md"]["seed"] == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--molecule", "water", "--bulk", "Cu"], "exactly one of --molecule"),
        (["--frames", "3"], "exactly one of --molecule"),
        (["--bulk", "Cu", "--frames", "0"], "n_frames must be a positive integer"),
        (["--bulk", "Cu", "--stride", "-2"], "stride must be a positive integer"),
        (["--bulk", "Cu", "--timestep", "0"], "timestep must be positive"),
        (["--bulk", "Cu", "--temperature", "-5"], "temperature must be zero or positive"),
        (["--bulk", "Cu", "--structure", "diamond"], "unknown structure 'diamond'"),
        (["--molecule", "SH2", "--calculator", "emt"], "EMT has no parameters for S"),
        (["--molecule", "water", "--strain", "0.01"], "--strain applies to --bulk only"),
        (["--molecule", "water", "--size", "8"], "--size apply to --bulk only"),
        (["--bulk", "Cu", "--method", "GFN1-xTB"], "--method chooses the xtb Hamiltonian"),
        (["--molecule", "ethanoll"], "Did you mean ethanol"),
    ],
)
def test_cli_datagen_md_refuses_bad_arguments(tmp_path, args, message):
    out = tmp_path / "x.h5"
    res = CliRunner().invoke(app, ["datagen", "md", *args, "--out", str(out), "--no-progress"])
    assert res.exit_code == 2, res.output
    assert message in flat(res.stderr)
    assert not out.exists()


def test_cli_datagen_md_keeps_existing_output(tmp_path):
    out = tmp_path / "x.h5"
    out.write_text("keep me")
    res = CliRunner().invoke(app, ["datagen", "md", "--bulk", "Cu", "--out", str(out)])
    assert res.exit_code == 2 and "pass --overwrite" in flat(res.stderr)
    assert out.read_text() == "keep me"


def test_cli_help():
    for cmd in (["datagen"], ["datagen", "md"], ["data", "md17"]):
        res = CliRunner().invoke(app, [*cmd, "--help"])
        assert res.exit_code == 0 and "Usage" in res.output, cmd
