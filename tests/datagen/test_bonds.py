"""Bond typing (docs/vimpnn.md §1): RDKit orders, electronegativity classes, metallic shells,
non-bonded pairs, the stored mirrored graph and its round trip through a dataset file."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule

from deepatoms.data.bonds import (
    attach_bonds,
    bond_graph,
    pack_with_bonds,
    perceive_bonds,
    replicate_bonds,
)
from deepatoms.data.dataset import read_dataset, write_dataset
from deepatoms.data.neighbors import GraphSpec
from deepatoms.datagen.scaled_qm9 import read_qm9_molecules


def _typed_pairs(atoms: Atoms, bonds) -> dict[tuple[str, str], list[str]]:
    """{(element i, element j) sorted: sorted list of types}."""
    sym = atoms.get_chemical_symbols()
    out: dict[tuple[str, str], list[str]] = {}
    for i, j, t in zip(bonds.i, bonds.j, bonds.types, strict=True):
        out.setdefault(tuple(sorted((sym[i], sym[j]))), []).append(str(t))
    return {k: sorted(v) for k, v in out.items()}


@pytest.fixture(scope="module")
def qm9_first() -> list[tuple[int, str, Atoms]]:
    """QM9 molecules 1-6: CH4, NH3, H2O, C2H2, HCN, H2CO."""
    return list(read_qm9_molecules(0, 6))


def test_ethanol_bonds_are_single_and_electronegativity_classes():
    eth = molecule("CH3CH2OH")
    b = perceive_bonds(eth)
    assert len(b.i) == 8 and set(b.types) == {"single"}
    assert np.all(b.i < b.j) and not b.shift.any()
    en = perceive_bonds(eth, rule="electronegativity")
    np.testing.assert_array_equal(en.i, b.i)
    np.testing.assert_array_equal(en.j, b.j)
    # ΔEN: C–C 0, C–H 0.35 → nonpolar; C–O 0.89, O–H 1.24 → polar
    assert _typed_pairs(eth, en) == {
        ("C", "C"): ["nonpolar"],
        ("C", "H"): ["nonpolar"] * 5,
        ("C", "O"): ["polar"],
        ("H", "O"): ["polar"],
    }


def test_qm9_triple_and_double_bonds_with_and_without_smiles(qm9_first):
    index = [m[0] for m in qm9_first]
    assert index == [1, 2, 3, 4, 5, 6]
    expected = {
        4: {("C", "C"): ["triple"], ("C", "H"): ["single", "single"]},  # HC#CH
        5: {("C", "N"): ["triple"], ("C", "H"): ["single"]},  # HC#N
        6: {("C", "O"): ["double"], ("C", "H"): ["single", "single"]},  # H2C=O
    }
    for idx, smiles, atoms in qm9_first[3:]:
        assert _typed_pairs(atoms, perceive_bonds(atoms, smiles=smiles)) == expected[idx]
        assert _typed_pairs(atoms, perceive_bonds(atoms)) == expected[idx]  # geometry only


def test_aromatic_ring_is_kekulised():
    benzene = molecule("C6H6")
    b = perceive_bonds(benzene, smiles="c1ccccc1")
    cc = _typed_pairs(benzene, b)[("C", "C")]
    assert cc == ["double"] * 3 + ["single"] * 3


def test_ionic_pair_and_rdkit_refuses_metal_contacts():
    nacl = Atoms("NaCl", positions=[[0, 0, 0], [2.36, 0, 0]])
    b = perceive_bonds(nacl, rule="electronegativity")  # ΔEN = 3.16 − 0.93 = 2.23
    assert b.types.tolist() == ["ionic"] and (b.i[0], b.j[0]) == (0, 1)
    with pytest.raises(ValueError, match="electronegativity"):
        perceive_bonds(nacl)


@pytest.mark.parametrize("cubic, n_atoms", [(False, 1), (True, 4)])
def test_fcc_cells_have_12_metallic_edges_per_atom(cubic, n_atoms):
    a = 3.61
    cu = bulk("Cu", "fcc", a=a, cubic=cubic)
    b = perceive_bonds(cu)
    assert len(cu) == n_atoms and len(b.i) == 6 * n_atoms and set(b.types) == {"metallic"}
    d = np.linalg.norm(cu.positions[b.j] - cu.positions[b.i] + b.shift @ cu.cell.array, axis=1)
    np.testing.assert_allclose(d, a / np.sqrt(2), rtol=1e-12)
    edges, vocab = bond_graph([cu], [b])
    assert vocab == ["metallic"]
    np.testing.assert_array_equal(np.bincount(edges.edge_index[0]), [12] * n_atoms)
    # a 1-atom cell bonds to its own images: 6 pairs (i = j = 0), no S = 0 self pair
    if n_atoms == 1:
        assert np.all(b.i == 0) and np.all(b.j == 0) and np.all(np.any(b.shift != 0, axis=1))


def test_metallic_shell_of_a_cluster_and_metal_factor():
    cluster = bulk("Al", "fcc", a=4.05, cubic=True).repeat(2)
    cluster.pbc = False
    cluster.cell = np.zeros((3, 3))
    b = perceive_bonds(cluster)
    d = np.linalg.norm(cluster.positions[b.j] - cluster.positions[b.i], axis=1)
    np.testing.assert_allclose(d, 4.05 / np.sqrt(2))
    wide = perceive_bonds(cluster, metal_factor=1.5)  # reaches the second shell at a
    assert len(wide.i) > len(b.i)
    with pytest.raises(ValueError, match="metal_factor"):
        perceive_bonds(cluster, metal_factor=0.5)


def test_nonbonded_pairs_within_cutoff():
    eth = molecule("CH3CH2OH")
    b = perceive_bonds(eth, nonbonded_cutoff=3.0)
    d = eth.get_all_distances()
    n_within = int(np.sum(np.triu(d <= 3.0, k=1)))
    assert len(b.i) == n_within
    assert (b.types == "single").sum() == 8 and (b.types == "nonbonded").sum() == n_within - 8


def test_clear_errors():
    eth = molecule("CH3CH2OH")
    with pytest.raises(ValueError, match="unknown bond rule 'bogus'"):
        perceive_bonds(eth, rule="bogus")
    with pytest.raises(ValueError, match="He has no Pauling electronegativity"):
        perceive_bonds(Atoms("HeH", positions=[[0, 0, 0], [0, 0, 3]]), rule="electronegativity")
    with pytest.raises(ValueError, match="describes other atoms"):
        perceive_bonds(eth, smiles="CCN")
    with pytest.raises(ValueError, match="cannot parse the SMILES"):
        perceive_bonds(eth, smiles="C((")
    b = perceive_bonds(eth)
    with pytest.raises(ValueError, match=r"not in the given vocabulary \['double'\]"):
        bond_graph([eth], [b], vocabulary=["double"])
    with pytest.raises(ValueError, match="unknown types"):
        bond_graph([eth], [b], vocabulary=["single", "sticky"])


def test_bond_graph_is_mirrored_and_uses_the_vocabulary(qm9_first):
    _, smiles, hcn = qm9_first[4]
    b = perceive_bonds(hcn, smiles=smiles)
    copies = replicate_bonds(b, 3)
    edges, vocab = bond_graph([hcn] * 3, copies, ["single", "double", "triple"])
    assert vocab == ["single", "double", "triple"] and edges.spec == GraphSpec(kind="bonds")
    np.testing.assert_array_equal(edges.offsets, [0, 4, 8, 12])
    first = edges.edge_index[:, :2]
    np.testing.assert_array_equal(edges.edge_index[:, 2:4], first[::-1])
    assert edges.attrs["bond_type"].dtype == np.int8
    types = edges.attrs["bond_type"][:4]
    np.testing.assert_array_equal(types[:2], types[2:])
    assert sorted(types[:2].tolist()) == [0, 2]  # C–H single, C#N triple
    # default vocabulary: the types present, canonical order
    assert bond_graph([hcn], [b])[1] == ["single", "triple"]


def test_pack_with_bonds_round_trips_through_a_file(tmp_path, qm9_first):
    atoms = [m[2] for m in qm9_first]
    smiles = [m[1] for m in qm9_first]
    pack, vocab = pack_with_bonds(atoms, smiles=smiles, system_props={"energy": np.arange(6.0)})
    assert vocab == ["single", "double", "triple"]
    path = tmp_path / "bonds.h5"
    meta = {"units": {"energy": "eV"}, "source": "test", "provenance": {}, "bond_types": vocab}
    write_dataset(path, pack, meta)
    data, back = read_dataset(path)
    assert back["bond_types"] == vocab
    for name in ("offsets", "edge_index", "edge_shift"):
        np.testing.assert_array_equal(getattr(data.edges, name), getattr(pack.edges, name))
    np.testing.assert_array_equal(data.edges.attrs["bond_type"], pack.edges.attrs["bond_type"])
    # attach_bonds on the packed data (SMILES from the column) gives the same graph
    data.system_props["smiles"] = np.array(smiles)
    data.edges = None
    assert attach_bonds(data) == vocab
    np.testing.assert_array_equal(data.edges.edge_index, pack.edges.edge_index)
