"""Validity and identity of molecules from 3-D geometry (docs/gschnet.md §11)."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import molecule
from rdkit import Chem

from deepatoms.analysis.molecule_validity import (
    VALENCE,
    check_molecule,
    identity_key,
    ring_counts,
)


def embed(smiles: str, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Atomic numbers and MMFF-relaxed coordinates (Å) of a SMILES, hydrogens explicit."""
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    assert AllChem.EmbedMolecule(mol, randomSeed=seed) == 0
    AllChem.MMFFOptimizeMolecule(mol)
    return np.array([a.GetAtomicNum() for a in mol.GetAtoms()]), mol.GetConformer().GetPositions()


@pytest.mark.parametrize(
    ("name", "smiles", "n_single", "n_double"),
    [("CH4", "C", 4, 0), ("CH3CH2OH", "CCO", 8, 0), ("C6H6", "c1ccccc1", 9, 3)],
)
def test_simple_molecules_are_valid(name, smiles, n_single, n_double):
    atoms = molecule(name)
    check = check_molecule(atoms.numbers, atoms.positions)
    assert check.valid and check.reason == ""
    assert check.smiles == smiles and check.mirror_smiles == smiles and check.key == smiles
    assert np.sum(check.orders == 1) == n_single and np.sum(check.orders == 2) == n_double
    # every atom's bond orders add up to its valence (benzene: kekulised)
    total = np.zeros(len(atoms), int)
    np.add.at(total, check.bonds.ravel(), np.repeat(check.orders, 2))
    assert total.tolist() == [VALENCE[z] for z in atoms.numbers]
    assert np.all(check.bonds[:, 0] < check.bonds[:, 1])


def test_five_valent_carbon_is_invalid():
    # CH5: trigonal bipyramid with C–H 1.09 Å
    pos = np.array(
        [
            [0, 0, 0],
            [1.09, 0, 0],
            [-1.09, 0, 0],
            [0, 1.09, 0],
            [0, -0.545, 0.944],
            [0, -0.545, -0.944],
        ]
    )
    check = check_molecule([6, 1, 1, 1, 1, 1], pos)
    assert not check.valid and check.reason == "overcoordinated"
    assert check.smiles == "" and check.key == ""


def test_two_distant_fragments_are_invalid():
    a, b = molecule("CH4"), molecule("H2O")
    check = check_molecule(
        np.r_[a.numbers, b.numbers], np.r_[a.positions, b.positions + np.array([5.0, 0.0, 0.0])]
    )
    assert not check.valid and check.reason == "disconnected"
    assert len(check.bonds) == 6  # 4 C–H + 2 O–H perceived, but two fragments


def test_radical_charged_and_foreign_atoms_are_invalid():
    ch3 = molecule("CH3")  # odd electron count: no bond orders at charge 0
    assert check_molecule(ch3.numbers, ch3.positions).reason == "bond_orders"
    nitro = molecule("CH3NO2")  # needs N+ / O- charges
    assert check_molecule(nitro.numbers, nitro.positions).reason == "valence"
    h2s = molecule("SH2")
    assert check_molecule(h2s.numbers, h2s.positions).reason == "element"
    assert check_molecule([], np.zeros((0, 3))).reason == "empty"
    with pytest.raises(ValueError, match="2 atomic numbers but 1 positions"):
        check_molecule([1, 1], np.zeros((1, 3)))


def test_conformers_of_one_molecule_share_a_key():
    z1, p1 = embed("CCCCO", seed=1)
    z2, p2 = embed("CCCCO", seed=11)
    assert np.abs(p1 - p2).max() > 0.5  # really different geometries
    a, b = check_molecule(z1, p1), check_molecule(z2, p2)
    assert a.valid and b.valid and a.key == b.key == "CCCCO"


def test_enantiomers_share_a_key_but_not_their_smiles():
    z, p = embed("C[C@H](O)CC")
    mirrored = p * [-1.0, 1.0, 1.0]
    r, s = check_molecule(z, p), check_molecule(z, mirrored)
    # the stereo perceived from 3-D is the one the geometry was built from
    assert r.smiles == Chem.CanonSmiles("C[C@H](O)CC") == "CC[C@H](C)O"
    assert s.smiles == Chem.CanonSmiles("C[C@@H](O)CC") == "CC[C@@H](C)O"
    assert r.mirror_smiles == s.smiles and s.mirror_smiles == r.smiles
    assert r.key == s.key == "CC[C@@H](C)O"
    # an independently embedded (S) molecule is the mirror image too
    z2, p2 = embed("C[C@@H](O)CC", seed=5)
    assert check_molecule(z2, p2).smiles == s.smiles


def test_cis_trans_isomers_stay_distinct():
    cis, trans = embed("C/C=C\\C"), embed("C/C=C/C")
    assert check_molecule(*cis).key == "C/C=C\\C"
    assert check_molecule(*trans).key == "C/C=C/C"


def test_strained_cage_with_short_13_contact_is_valid():
    # bicyclo[1.1.1]pentane: bridgeheads 1.87 Å apart, inside 1.3·(r_C + r_C); pruned
    z, p = embed("C1C2CC1C2")
    check = check_molecule(z, p)
    assert check.valid and check.key == "C1C2CC1C2"
    assert len(check.bonds) == 6 + 8


def test_identity_key_and_ring_counts():
    assert identity_key("b", "a") == "a" and identity_key("a", "b") == "a"
    assert identity_key("", "") == ""
    assert ring_counts("C1CC1").tolist() == [1, 0, 0, 0]
    assert ring_counts("c1ccccc1").tolist() == [0, 0, 0, 1]
    assert ring_counts("C12C3C4C1C5C2C3C45").tolist() == [0, 6, 0, 0]  # cubane, symmetrised
    assert ring_counts("C1CCC2CCCC2C1").tolist() == [0, 0, 1, 1]
    with pytest.raises(ValueError, match="cannot parse"):
        ring_counts("C1CC")
