"""Metrics of generated molecules on hand-made sets (docs/gschnet.md §11): exact values."""

from __future__ import annotations

import ase.db
import ase.io
import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule
from scipy.spatial.transform import Rotation

from deepatoms.analysis.generated_eval import (
    bonded_angles,
    check_all,
    distribution_distance,
    first_occurrence,
    kabsch_rmsd,
    key_labels,
    molecule_statistics,
    pair_distances,
    read_generated,
    table1,
    tag_molecules,
)
from deepatoms.analysis.molecule_validity import check_molecule
from deepatoms.simulate.molecules import relax_molecule, xtb_gap


def test_first_occurrence_by_hashing():
    keys = ["a", "b", "a", "", "c", "b", "a"]
    valid = np.array([1, 1, 1, 0, 1, 0, 1], bool)
    unique, dup = first_occurrence(keys, valid)
    assert unique.tolist() == [True, True, False, False, True, False, False]
    assert dup.tolist() == [-1, -1, 0, -1, -1, -1, 0]  # invalid "b" is not a duplicate


def test_key_labels_priority_and_tags():
    seen = key_labels(["a", "b", "b", "c", "c", "", "d"], ["test", "val", "train", "test", "val",
                                                           "train", "other"])  # fmt: skip
    assert seen == {"a": "test", "b": "train", "c": "val"}
    tags = tag_molecules(["a", "b", "x", "c", ""], np.array([1, 1, 1, 1, 0], bool), seen)
    assert tags.tolist() == ["test", "train", "novel", "val", ""]


def test_table1_rows_exact():
    # 8 generated: 2 invalid; valid: u1 train, u2 val (dup of it too), u3 novel ≥10 heavy,
    # u4 novel, u5 test
    valid = np.array([1, 1, 1, 0, 1, 1, 0, 1], bool)
    unique = np.array([1, 1, 0, 0, 1, 1, 0, 1], bool)
    tags = np.array(["train", "val", "val", "", "novel", "novel", "", "test"])
    heavy = np.array([3, 5, 5, 2, 12, 4, 40, 9])
    gap = np.array([4.0, 5.0, 1.0, 1.0, 6.0, np.nan, 1.0, 5.5])
    rows = {r["row"]: (r["count"], r["percent"]) for r in table1(valid, unique, tags, heavy, gap)}
    n_valid = 6
    expected = {
        "unique": 5,
        "unique+unseen": 4,
        "unique+unseen+novel": 2,
        "unique, <=9 heavy": 4,
        "unique+unseen, <=9 heavy": 3,
        "unique+unseen+novel, <=9 heavy": 1,
        "unique, gap<=5 eV": 2,  # 4.0 and 5.0; the duplicate's 1.0 and NaN do not count
    }
    assert rows == {k: (v, 100.0 * v / n_valid) for k, v in expected.items()}
    assert len(table1(valid, unique, tags, heavy)) == 6  # no gap row without gaps


def test_statistics_exact():
    mols = [molecule("CH4"), molecule("CH3CH2OH"), molecule("C6H6")]
    checks = check_all(mols)
    rings = np.array([[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]])
    s = molecule_statistics([m.numbers for m in mols], [c.orders for c in checks], rings)
    assert s["C"] == pytest.approx(9 / 3) and s["H"] == pytest.approx(16 / 3)
    assert s["O"] == pytest.approx(1 / 3) and s["N"] == 0 and s["F"] == 0
    assert s["B1"] == pytest.approx((4 + 8 + 9) / 3) and s["B2"] == pytest.approx(1.0)
    assert s["B3"] == 0 and s["R6"] == pytest.approx(1 / 3) and s["R3"] == 0
    assert s["heavy"] == pytest.approx(10 / 3) and s["bonds"] == pytest.approx(24 / 3)


def test_pair_distances_and_bonded_angles_exact():
    # molecule 0: C0 C1 C2 O3 with C1 at the origin; molecule 1: C, O
    numbers = np.array([6, 6, 6, 8, 1, 6, 8])
    positions = np.array(
        [[1.5, 0, 0], [0, 0, 0], [0, 1.5, 0], [-1.4, 0, 0], [9, 9, 9], [0, 0, 0], [0, 0, 1.2]]
    )
    offsets = np.array([0, 5, 7])
    cc = np.sort(pair_distances(numbers, positions, offsets, (6, 6)))
    np.testing.assert_allclose(cc, [1.5, 1.5, 1.5 * np.sqrt(2)])
    co = np.sort(pair_distances(numbers, positions, offsets, (6, 8)))
    np.testing.assert_allclose(co, [1.2, 1.4, np.hypot(1.5, 1.4), 2.9])
    bonds = np.array([[0, 1], [1, 2], [1, 3], [5, 6], [0, 4]])
    np.testing.assert_allclose(bonded_angles(numbers, positions, bonds, (6, 6, 6)), [90.0])
    cco = np.sort(bonded_angles(numbers, positions, bonds, (6, 6, 8)))
    np.testing.assert_allclose(cco, [90.0, 180.0])


def test_distribution_distance():
    bins = np.linspace(0, 4, 5)
    same = distribution_distance(np.array([0.5, 1.5]), np.array([1.5, 0.5]), bins)
    assert same["w1"] == 0 and same["tv"] == 0
    np.testing.assert_allclose(same["generated"], [0.5, 0.5, 0, 0])
    shifted = distribution_distance(np.array([0.5, 1.5]), np.array([2.5, 3.5]), bins)
    assert shifted["w1"] == pytest.approx(2.0) and shifted["tv"] == pytest.approx(1.0)


def test_kabsch_rmsd_exact():
    p = molecule("CH3CH2OH").positions
    assert kabsch_rmsd(p, p) == pytest.approx(0.0, abs=1e-12)
    rot = Rotation.from_euler("xyz", [30, -50, 110], degrees=True).as_matrix()
    centred = p - p.mean(axis=0)
    q = (1.02 * centred) @ rot.T + [3.0, -1.0, 2.0]  # rotated, translated, stretched by 2 %
    expected = 0.02 * np.sqrt(np.mean(np.sum(centred**2, axis=1)))
    assert kabsch_rmsd(p, q) == pytest.approx(expected, rel=1e-9)
    heavy = molecule("CH3CH2OH").numbers != 1
    ch = p[heavy] - p[heavy].mean(axis=0)
    assert kabsch_rmsd(p, q, heavy) == pytest.approx(
        0.02 * np.sqrt(np.mean(np.sum(ch**2, axis=1))), rel=1e-9
    )
    # a mirror image is not a rotation: the RMSD does not vanish
    assert kabsch_rmsd(p, p * [-1, 1, 1]) > 0.1


def test_mmff_relaxation_of_a_relaxed_structure_moves_nothing():
    atoms = molecule("CH3CH2OH")
    check = check_molecule(atoms.numbers, atoms.positions)
    first, _ = relax_molecule(atoms, "mmff", check.mol)
    again = Atoms(atoms.numbers, first)
    second, info = relax_molecule(again, "mmff", check.mol)
    assert info["converged"]
    assert kabsch_rmsd(first, second) < 1e-3
    assert kabsch_rmsd(atoms.positions, first) > 0.01  # the g2 geometry is not MMFF's minimum
    with pytest.raises(ValueError, match="unknown relaxation method"):
        relax_molecule(atoms, "dft")


def test_xtb_relaxation_of_a_relaxed_structure_moves_nothing():
    atoms = molecule("CH3CH2OH")
    first, _ = relax_molecule(atoms, "xtb", fmax=0.01)
    second, info = relax_molecule(Atoms(atoms.numbers, first), "xtb", fmax=0.01)
    assert info["converged"] and info["steps"] == 0
    assert kabsch_rmsd(first, second) == pytest.approx(0.0, abs=1e-12)


def test_xtb_gap_is_invariant_and_in_range():
    atoms = molecule("C6H6")
    gap = xtb_gap(atoms.numbers, atoms.positions)
    rot = Rotation.from_euler("z", 33, degrees=True).as_matrix()
    assert xtb_gap(atoms.numbers, atoms.positions @ rot.T + 1.0) == pytest.approx(gap, abs=1e-6)
    assert 3.0 < gap < 7.0  # GFN2-xTB benzene ≈ 4.8 eV (B3LYP ≈ 6.7 eV)


def test_read_generated_db_and_extxyz(tmp_path):
    mols = [molecule("CH4"), molecule("H2O")]
    with ase.db.connect(tmp_path / "g.db") as db:
        for k, m in enumerate(mols):
            db.write(m, model="m", seed=3, temperature=0.1, index=k)
    db = ase.db.connect(tmp_path / "g.db")
    db.metadata = {"model": "m.pt", "seed": 3}
    atoms, meta = read_generated(tmp_path / "g.db")
    assert [a.get_chemical_formula() for a in atoms] == ["CH4", "H2O"]
    assert meta == {"model": "m.pt", "seed": 3}
    ase.io.write(tmp_path / "g.xyz", mols, format="extxyz")
    atoms, meta = read_generated(tmp_path / "g.xyz")
    assert len(atoms) == 2 and meta == {}
    np.testing.assert_allclose(atoms[1].positions, mols[1].positions)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_generated(tmp_path / "none.db")
    (tmp_path / "g.csv").write_text("x\n")
    with pytest.raises(ValueError, match="unknown format"):
        read_generated(tmp_path / "g.csv")
    ase.io.write(tmp_path / "empty.xyz", [], format="extxyz")
    with pytest.raises(ValueError, match=r"holds no molecules|cannot read"):
        read_generated(tmp_path / "empty.xyz")
