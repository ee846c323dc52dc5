"""Relaxations with ASE optimisers; reading and writing structures."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.io import read, write

from deepatoms.data.structure_files import load_structure, write_structures
from deepatoms.simulate import Calculator
from deepatoms.simulate.relax import max_force, relax


@pytest.mark.parametrize("optimizer", ["bfgs", "fire", "lbfgs"])
def test_relax_reduces_the_max_force_below_the_tolerance(mol_model, ethanol, optimizer, tmp_path):
    ethanol.rattle(0.1, seed=2)
    calc = Calculator(mol_model, dtype=torch.float64)
    res = relax(
        ethanol, calc, fmax=0.01, optimizer=optimizer, steps=500, trajectory=tmp_path / "t.traj"
    )
    assert res["converged"]
    assert res["initial_fmax"] > 0.5
    assert res["final_fmax"] < 0.01
    assert res["final_energy"] < res["initial_energy"]
    final = res["atoms"]
    assert max_force(final.get_forces()) == pytest.approx(res["final_fmax"])
    assert final.get_potential_energy() == pytest.approx(res["final_energy"])
    assert ethanol.calc is None  # the input is not modified
    assert len(read(tmp_path / "t.traj", ":")) == res["steps"] + 1


def test_cell_relaxation_removes_the_stress(cu_model, tmp_path):
    from deepatoms.data.structures import bulk_from_spec

    calc = Calculator(cu_model, dtype=torch.float64)
    ideal = bulk_from_spec("Cu", size=32)  # EMT's lattice constant; forces vanish by symmetry
    strained = ideal.copy()
    strained.set_cell(ideal.cell * 1.04, scale_atoms=True)
    strained.calc = calc
    before = np.abs(strained.get_stress()).max()
    traj = tmp_path / "cell.traj"
    res = relax(strained, calc, fmax=0.01, relax_cell=True, steps=100, trajectory=traj)
    assert res["converged"] and res["final_fmax"] < 0.01
    assert res["volume"]["final"] < res["volume"]["initial"]  # a stretched cell shrinks
    # back to within 2 % of the EMT volume the model was trained around
    assert res["volume"]["final"] == pytest.approx(ideal.get_volume(), rel=0.02)
    res["atoms"].calc = calc
    assert np.abs(res["atoms"].get_stress()).max() < 0.05 * before
    frames = read(traj, ":")
    assert len(frames) == res["steps"] + 1
    assert frames[-1].get_volume() == pytest.approx(res["volume"]["final"])


def test_relax_rejects_bad_settings(mol_model, ethanol):
    calc = Calculator(mol_model)
    with pytest.raises(ValueError, match="unknown optimizer 'sd'; choose one of bfgs, fire"):
        relax(ethanol, calc, optimizer="sd")
    with pytest.raises(ValueError, match="cell relaxation needs a 3-D periodic"):
        relax(ethanol, calc, relax_cell=True)
    with pytest.raises(ValueError, match="fmax must be > 0"):
        relax(ethanol, calc, fmax=0)


def test_load_structure_from_files_and_molecule_specs(ethanol, cu_cell, tmp_path):
    frames = []
    for k in range(3):
        a = ethanol.copy()
        a.positions += k
        frames.append(a)
    write(tmp_path / "frames.extxyz", frames)
    last = load_structure(str(tmp_path / "frames.extxyz"))
    np.testing.assert_allclose(last.positions, frames[-1].positions)
    first = load_structure(f"{tmp_path / 'frames.extxyz'}@0")
    np.testing.assert_allclose(first.positions, frames[0].positions)
    write(tmp_path / "POSCAR", cu_cell, format="vasp")
    cell = load_structure(str(tmp_path / "POSCAR"))
    assert cell.pbc.all() and len(cell) == len(cu_cell)
    assert load_structure("ethanol").get_chemical_formula() == "C2H6O"
    assert load_structure("smiles:CO").get_chemical_formula() == "CH4O"  # methanol
    with pytest.raises(FileNotFoundError, match=r"structure file .*missing\.xyz does not exist"):
        load_structure(str(tmp_path / "missing.xyz"))
    with pytest.raises(ValueError, match="neither an existing file nor a known molecule"):
        load_structure("notamolecule")
    with pytest.raises(ValueError, match="selects 2 frames"):
        load_structure(f"{tmp_path / 'frames.extxyz'}@0:2")
    (tmp_path / "junk.xyz").write_text("not an xyz file\n")
    with pytest.raises(ValueError, match="cannot read a structure from"):
        load_structure(str(tmp_path / "junk.xyz"))


def test_write_structures_is_atomic_and_keeps_results(mol_model, ethanol, tmp_path):
    calc = Calculator(mol_model)
    res = relax(ethanol, calc, fmax=0.1)
    path = write_structures(tmp_path / "out" / "relaxed.extxyz", res["atoms"])
    back = read(path)
    assert back.get_potential_energy() == pytest.approx(res["final_energy"])
    assert [p.name for p in path.parent.iterdir()] == ["relaxed.extxyz"]
    with pytest.raises(ValueError, match="cannot tell a structure format"):
        write_structures(tmp_path / "relaxed.unknownsuffix", res["atoms"])
