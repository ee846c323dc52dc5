"""``deepatoms relax | md | vibrations | scan`` as a user calls them."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ase.io import read, write

from cli_helpers import invoke, last_json, one_line

EXE = str(Path(sys.executable).parent / "deepatoms")


def test_every_simulation_command_has_help():
    for cmd in ("relax", "md", "vibrations", "scan"):
        assert "Usage" in invoke(cmd, "--help").stdout


def test_relax_writes_a_readable_structure(mol_model, ethanol, tmp_path):
    start = ethanol.copy()
    start.rattle(0.05, seed=5)
    write(tmp_path / "start.xyz", start)
    out, traj = tmp_path / "relaxed.extxyz", tmp_path / "relax.traj"
    res = invoke("relax", mol_model.parent, tmp_path / "start.xyz", "--fmax", "0.02",
                 "--out", out, "--traj", traj, "--json")  # fmt: skip
    summary = last_json(res.stdout)
    assert summary["converged"] and summary["final_fmax"] < 0.02
    assert "converged in" in res.stdout
    relaxed = read(out)
    assert relaxed.get_potential_energy() == pytest.approx(summary["final_energy"])
    assert len(read(traj, ":")) == summary["steps"] + 1
    # refuses to replace the output without --overwrite
    res = invoke("relax", mol_model, tmp_path / "start.xyz", "--out", out, code=2)
    assert "already exists; pass --overwrite" in one_line(res.stderr)
    invoke("relax", mol_model, tmp_path / "start.xyz", "--out", out, "--overwrite")


def test_md_through_the_installed_entry_point(mol_model, tmp_path):
    traj = tmp_path / "md.traj"
    proc = subprocess.run(
        [EXE, "md", str(mol_model), "ethanol", "--ensemble", "nve", "--steps", "40",
         "--interval", "10", "--out", str(traj), "--seed", "3", "--json", "--quiet"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    summary = last_json(proc.stdout)
    assert summary["ensemble"] == "nve" and summary["steps"] == 40
    assert summary["n_frames"] == 5 and summary["log"] == str(tmp_path / "md.log")
    assert "energy_drift" in summary and "mean_temperature_K" in summary
    assert "Etot drift" in proc.stdout and "mean T" in proc.stdout
    frames = read(traj, ":")
    assert len(frames) == 5 and np.abs(frames[-1].get_momenta()).max() > 0
    assert np.loadtxt(tmp_path / "md.log").shape == (5, 6)


def test_vibrations_table_against_xtb(mol_model, tmp_path):
    out = tmp_path / "vib.csv"
    res = invoke("vibrations", mol_model, "ethanol", "--reference", "xtb", "--out", out, "--json")
    text = res.stdout
    assert "GFN2-xTB" in text and "model vs GFN2-xTB: MAE" in text
    assert "each at its own minimum" in text and "6 rigid-body modes removed" in text
    summary = last_json(text)
    assert len(summary["model"]["frequencies_cm1"]) == 21
    assert summary["reference"]["name"] == "GFN2-xTB"
    assert summary["model"]["relax"]["converged"]
    assert set(summary["comparison"]) >= {"mae_cm1", "max_abs_cm1", "max_rel_percent"}
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 21 and set(rows[0]) == {"mode", "model_cm1", "reference_cm1", "error_cm1"}
    fd = last_json(invoke("vibrations", mol_model, "ethanol", "--method", "fd", "--json").stdout)
    np.testing.assert_allclose(
        fd["model"]["frequencies_cm1"], summary["model"]["frequencies_cm1"], atol=2.0
    )


def test_scan_of_a_crystal_file(cu_model, cu_cell, tmp_path):
    write(tmp_path / "POSCAR", cu_cell, format="vasp")
    csv_path, png = tmp_path / "scan.csv", tmp_path / "scan.png"
    res = invoke("scan", cu_model, tmp_path / "POSCAR", "--scale", "0.95:1.05:5",
                 "--reference", "emt", "--plot", png, "--out", csv_path, "--json")  # fmt: skip
    summary = last_json(res.stdout)
    assert summary["scale"] == pytest.approx(np.linspace(0.95, 1.05, 5).tolist())
    assert len(summary["pressure_GPa"]) == 5 and summary["reference_name"] == "EMT"
    assert len(summary["reference"]["energy"]) == 5
    assert png.stat().st_size > 1000
    assert len(list(csv.DictReader(csv_path.open()))) == 5


@pytest.fixture(scope="module")
def homo_model(tmp_path_factory) -> Path:
    """A model file of an intensive property (mean readout, eV)."""
    from deepatoms.data.neighbors import GraphSpec
    from deepatoms.models.registry import build_model
    from model_helpers import save_atomistic

    cfg = {"name": "schnet", "n_atom_basis": 8, "n_interactions": 1, "property": "homo",
           "readout": "mean"}  # fmt: skip
    path = tmp_path_factory.mktemp("homo") / "model.pt"
    save_atomistic(path, build_model(cfg), GraphSpec(), "eV")
    return path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["relax", "{missing}", "ethanol"], "nope.pt does not exist; give a model file (model.pt) or a run folder"),
        (["relax", "{homo}", "ethanol"], "mean readout"),
        (["relax", "{mol}", "{tmp}/none.xyz"], "none.xyz does not exist"),
        (["relax", "{mol}", "unobtainium"], "neither an existing file nor a known molecule"),
        (["relax", "{mol}", "ethanol", "--cell"], "cell relaxation needs a 3-D periodic"),
        (["relax", "{mol}", "ethanol", "--optimizer", "sd"], "unknown optimizer 'sd'"),
        (["relax", "{mol}", "ethanol", "--dtype", "half"], "--dtype must be float32 or float64"),
        (["relax", "{mol}", "ethanol", "--out", "{tmp}/r.nope"], "cannot tell a structure format"),
        (["md", "{mol}", "ethanol", "--out", "{tmp}/a.traj", "--ensemble", "npt"],
         "unknown ensemble 'npt'; choose nve or nvt"),
        (["md", "{mol}", "ethanol", "--out", "{tmp}/a.pdb"], "an ASE .traj or an .extxyz"),
        (["scan", "{mol}", "ethanol", "--scale", "0.9:1.1"], "bad scale '0.9:1.1'"),
        (["scan", "{mol}", "ethanol", "--scale", "1", "--reference", "dft"],
         "unknown calculator 'dft'"),
        (["vibrations", "{mol}", "ethanol", "--method", "hessian"], "unknown Hessian method"),
    ],
)  # fmt: skip
def test_bad_input_exits_2_with_a_clear_message(mol_model, homo_model, tmp_path, args, message):
    fill = {"mol": mol_model, "homo": homo_model, "missing": tmp_path / "nope.pt", "tmp": tmp_path}
    res = invoke(*[a.format(**fill) for a in args], code=2)
    assert res.stderr.startswith("error:")
    assert message in one_line(res.stderr)


def test_an_unavailable_reference_calculator_is_a_clear_error(mol_model, monkeypatch):
    import deepatoms.simulate.reference as calculators

    def missing(*args, **kwargs):
        raise ModuleNotFoundError("the xtb calculator needs the 'tblite' package")

    monkeypatch.setattr(calculators, "make_calculator", missing)
    res = invoke("vibrations", mol_model, "ethanol", "--reference", "xtb", code=2)
    assert "reference calculator 'xtb' is unavailable" in one_line(res.stderr)
    assert "tblite" in res.stderr


def test_elements_the_model_never_saw_give_a_warning(mol_model):
    res = invoke("scan", mol_model, "NH3", "--scale", "1.0")
    assert "warning: the model was trained on H C O only; N in NH3" in one_line(res.stderr)


def test_separate_force_model(mol_model, ethanol, tmp_path):
    """--force-model: energies from MODEL, forces from the second model (thesis Eqs. 5.8-5.11)."""
    import torch

    from deepatoms.models.loading import load_model
    from model_helpers import save_atomistic

    loaded = load_model(mol_model)
    with torch.no_grad():
        loaded.model.head.std.mul_(2.0)  # twice the forces, different energies
    doubled = tmp_path / "doubled.pt"
    save_atomistic(doubled, loaded.model, loaded.graph, loaded.unit, loaded.meta)
    start = ethanol.copy()
    start.rattle(0.05, seed=5)
    write(tmp_path / "start.xyz", start)
    common = ["relax", mol_model, tmp_path / "start.xyz", "--steps", "0", "--json"]
    plain = last_json(invoke(*common, "--out", tmp_path / "a.extxyz").stdout)
    mixed = last_json(
        invoke(*common, "--out", tmp_path / "b.extxyz", "--force-model", doubled).stdout
    )
    assert mixed["initial_energy"] == pytest.approx(plain["initial_energy"], abs=1e-9)
    assert mixed["initial_fmax"] == pytest.approx(2 * plain["initial_fmax"], rel=1e-6)
