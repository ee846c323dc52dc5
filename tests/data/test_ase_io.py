"""Importing ASE-readable files: extxyz with calculator data, plain xyz, ASE db, errors."""

from __future__ import annotations

import ase.db
import ase.io
import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from deepatoms.data.dataset import read_dataset, write_dataset
from deepatoms.data.sources.ase_io import read_structures


def labelled(k: int) -> Atoms:
    """Structure k: water (k even) or a periodic Cu2 cell (k odd), with exact-decimal labels."""
    if k % 2 == 0:
        atoms = Atoms("OH2", positions=[[0, 0, 0.125 * k], [0, 0.75, 0.5], [0.75, 0, -0.5]])
    else:
        atoms = Atoms("Cu2", positions=[[0, 0, 0], [1.25, 1.25, 0]], cell=np.eye(3) * 3.5)
        atoms.pbc = True
    n = len(atoms)
    atoms.info["temperature"] = 300.0 + k
    atoms.info["step"] = k
    atoms.info["config_type"] = f"type{k % 2}"
    atoms.arrays["q"] = np.arange(n, dtype=float) * 0.25 - k
    stress = np.array([[1.0, 0.5, 0.25], [0.5, 2.0, 0.125], [0.25, 0.125, 3.0]]) * (k + 1)
    atoms.calc = SinglePointCalculator(
        atoms,
        energy=-10.5 - k,
        forces=np.arange(3 * n, dtype=float).reshape(n, 3) * 0.5 - k,
        stress=stress,
    )
    return atoms


def test_extxyz_round_trip_exact(tmp_path):
    structures = [labelled(k) for k in range(3)]
    path = tmp_path / "train.extxyz"
    ase.io.write(path, structures)
    data, meta = read_structures([path], progress=False)
    assert len(data) == 3
    assert data.n_atoms.tolist() == [3, 2, 3]
    np.testing.assert_array_equal(data.numbers, [8, 1, 1, 29, 29, 8, 1, 1])
    np.testing.assert_array_equal(data.positions, np.concatenate([a.positions for a in structures]))
    np.testing.assert_array_equal(data.cell[1], np.eye(3) * 3.5)
    assert data.pbc.tolist() == [[False] * 3, [True] * 3, [False] * 3]
    sp, ap = data.system_props, data.atom_props
    np.testing.assert_array_equal(sp["energy"], [-10.5, -11.5, -12.5])
    np.testing.assert_array_equal(sp["temperature"], [300.0, 301.0, 302.0])
    np.testing.assert_array_equal(sp["step"], [0, 1, 2])
    assert sp["step"].dtype.kind == "i"
    assert sp["config_type"].tolist() == ["type0", "type1", "type0"]
    # stress as Voigt (xx, yy, zz, yz, xz, xy), eV/Å^3
    np.testing.assert_array_equal(
        sp["stress"], np.array([[1.0, 2.0, 3.0, 0.125, 0.25, 0.5]]) * np.array([[1], [2], [3]])
    )
    expected_forces = np.concatenate([a.calc.results["forces"] for a in structures])
    np.testing.assert_array_equal(ap["forces"], expected_forces)
    np.testing.assert_array_equal(ap["q"], [0.0, 0.25, 0.5, -1.0, -0.75, -2.0, -1.75, -1.5])
    assert sp["source"].tolist() == [f"{path}:0", f"{path}:1", f"{path}:2"]
    assert meta["units"] == {"energy": "eV", "forces": "eV/Å", "stress": "eV/Å^3"}
    assert meta["dropped_properties"] == {}
    assert meta["provenance"]["structures_per_file"] == {str(path): 3}
    # and into a dataset file and back
    write_dataset(tmp_path / "d.h5", data, meta)
    back, meta2 = read_dataset(tmp_path / "d.h5")
    np.testing.assert_array_equal(back.atom_props["forces"], expected_forces)
    assert back.system_props["source"].tolist() == sp["source"].tolist()
    assert meta2["units"] == meta["units"]


def test_mixed_files_keep_only_common_properties(tmp_path):
    labelled_path = tmp_path / "a.extxyz"
    ase.io.write(labelled_path, [labelled(0), labelled(1)])
    plain_path = tmp_path / "b.xyz"
    plain = Atoms("CH4", positions=np.arange(15, dtype=float).reshape(5, 3) * 0.5)
    plain.info["temperature"] = 250.0
    ase.io.write(plain_path, plain, format="xyz")
    data, meta = read_structures([labelled_path, plain_path], progress=False)
    assert len(data) == 3
    assert data.n_atoms.tolist() == [3, 2, 5]
    np.testing.assert_array_equal(data.positions[5:], plain.positions)
    assert set(data.system_props) == {"source"}
    assert data.atom_props == {}
    dropped = meta["dropped_properties"]
    assert set(dropped) >= {"energy", "forces", "stress", "step", "config_type", "q"}
    assert dropped["energy"] == "present on 2 of 3 structures"
    assert data.system_props["source"].tolist()[-1] == f"{plain_path}:0"
    assert meta["provenance"]["structures_per_file"] == {str(labelled_path): 2, str(plain_path): 1}
    assert meta["units"] == {}


def test_ase_db_with_key_value_pairs_and_data(tmp_path):
    path = tmp_path / "set.db"
    with ase.db.connect(path) as con:
        for k in range(3):
            atoms = labelled(2 * k)  # three waters
            atoms.info.clear()
            con.write(
                atoms,
                key_value_pairs={"gap": 0.5 * k, "phase": "gas"},
                data={"dipole_vec": np.array([0.0, 0.25, k]), "born": np.full(3, 1.5 * k)},
            )
    data, meta = read_structures(path, progress=False)
    sp, ap = data.system_props, data.atom_props
    assert len(data) == 3
    assert meta["units"] == {"energy": "eV", "forces": "eV/Å", "stress": "eV/Å^3"}
    np.testing.assert_array_equal(sp["energy"], [-10.5, -12.5, -14.5])
    np.testing.assert_array_equal(sp["gap"], [0.0, 0.5, 1.0])
    assert sp["phase"].tolist() == ["gas"] * 3
    # three atoms per structure: a length-3 data array is taken as per atom
    np.testing.assert_array_equal(ap["dipole_vec"], [0.0, 0.25, 0.0, 0.0, 0.25, 1.0, 0, 0.25, 2.0])
    np.testing.assert_array_equal(ap["born"], np.repeat([0.0, 1.5, 3.0], 3))
    np.testing.assert_array_equal(sp["stress"][2], [5.0, 10.0, 15.0, 0.625, 1.25, 2.5])
    assert ap["forces"].shape == (9, 3)
    assert sp["source"].tolist() == [f"{path}:{i}" for i in range(3)]


def test_errors_name_the_file(tmp_path):
    missing = tmp_path / "missing.extxyz"
    with pytest.raises(FileNotFoundError, match=r"missing\.extxyz"):
        read_structures([missing], progress=False)
    garbage = tmp_path / "garbage.extxyz"
    garbage.write_text("3\nProperties=species:S:1:pos:R:3\nH 0 0\n")
    with pytest.raises(ValueError, match=r"garbage\.extxyz.*with ASE") as err:
        read_structures([garbage], progress=False)
    assert err.value.__cause__ is not None
    empty = tmp_path / "empty.xyz"
    empty.write_text("")
    with pytest.raises(ValueError, match=r"empty\.xyz"):
        read_structures([empty], progress=False)
    with pytest.raises(ValueError, match="no input files"):
        read_structures([], progress=False)
