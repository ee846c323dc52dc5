"""Tiny datasets built in the tests (never read from ../shared)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from ase.build import bulk, molecule

from deepatoms.data.bonds import bond_graph, pack_with_bonds, perceive_bonds
from deepatoms.data.dataset import write_dataset
from deepatoms.data.packed import PackedSystems
from deepatoms.data.scaling import scale_atoms
from deepatoms.data.voxels.crystal_sets import CrystalSet

NAMES = [
    "CH4", "NH3", "H2O", "C2H2", "C2H4", "C2H6", "HCN", "CH3OH", "CH3CH2OH", "CH3CHO", "HCOOH",
    "CH3COOH", "C6H6", "CH3CN", "H2CO", "CH3OCH3", "C3H8", "CH3CONH2", "C4H4O", "C5H5N",
    "H2CCHF", "H2CF2",
]  # fmt: skip
MOLECULE_SPLIT = ["train"] * 16 + ["val"] * 4 + ["test"] * 2


def morse_energy(atoms, pairs) -> float:
    """Σ over bonds of a Morse well with its minimum at the stable bond length (eV)."""
    d = atoms.get_all_distances()
    return float(sum((1 - np.exp(-2.0 * (d[i, j] - r0))) ** 2 - 1 for i, j, r0 in pairs))


def write_scaled_set(path, scales) -> list[str]:
    """Seven small molecules × ``scales`` with Morse bond energies (minimum at s = 1), split by
    molecule (5 train, 1 val, 1 test); returns the bond vocabulary."""
    n_s = len(scales)
    names = ["CH4", "H2O", "NH3", "CH3OH", "H2CO", "C2H2", "HCN"]
    stable = [molecule(n) for n in names]
    bonds = [perceive_bonds(a) for a in stable]  # perceived once, at s = 1
    frames, frame_bonds, props = [], [], {"energy": [], "scale": [], "group": [], "split": []}
    for g, (atoms, b) in enumerate(zip(stable, bonds, strict=True)):
        d0 = atoms.get_all_distances()
        pairs = [(x, y, d0[x, y]) for x, y in zip(b.i, b.j, strict=True)]
        for s in scales:
            scaled = scale_atoms(atoms, s)
            frames.append(scaled)
            frame_bonds.append(b)
            props["energy"].append(morse_energy(scaled, pairs))
            props["scale"].append(s)
            props["group"].append(g)
            props["split"].append((["train"] * 5 + ["val", "test"])[g])
    data = PackedSystems.from_atoms(frames, props)
    data.edges, vocab = bond_graph(frames, frame_bonds)
    # the topology of every scaled copy is the stable molecule's
    for g in range(len(stable)):
        first = data.edges.subset([n_s * g])
        for c in range(1, n_s):
            other = data.edges.subset([n_s * g + c])
            np.testing.assert_array_equal(first.edge_index, other.edge_index)
    meta = {"units": {"energy": "eV", "scale": ""}, "source": "test", "provenance": {},
            "bond_types": vocab}  # fmt: skip
    write_dataset(path, data, meta)
    return vocab


def write_small_molecules(path: Path) -> Path:
    """22 small H/C/N/O/F molecules, centred on the centre of mass, atoms sorted by distance
    to it, with a bond graph and a 16/4/2 ``split`` column (G-SchNet's input)."""
    atoms = []
    for name in NAMES:
        a = molecule(name)
        a.positions -= a.get_center_of_mass()
        atoms.append(a[np.argsort(np.linalg.norm(a.positions, axis=1), kind="stable")])
    data, vocab = pack_with_bonds(atoms, system_props={"split": np.array(MOLECULE_SPLIT)})
    meta = {"units": {}, "source": "ase g2 (test)", "provenance": {}, "bond_types": vocab}
    write_dataset(path, data, meta)
    return path


def small_crystals() -> CrystalSet:
    """Six binary and elemental bulk crystals (ASE), one group each."""
    atoms = [
        bulk("NaCl", "rocksalt", a=5.64),
        bulk("Si", "diamond", a=5.43),
        bulk("Cu", "fcc", a=3.61),
        bulk("CsCl", "cesiumchloride", a=4.12),
        bulk("ZnS", "zincblende", a=5.41),
        bulk("MgO", "rocksalt", a=4.21),
    ]
    ids = [a.get_chemical_formula() + str(k) for k, a in enumerate(atoms)]
    return CrystalSet(atoms, ids, list(ids), ["ase"] * len(atoms))


#: 64 QM9 SMILES from qm9pack (every 2,000th row from row 6; derivations ≤ 64 productions).
QM9_SMILES = [
    "C=O",
    "O=C1NCC=CN1",
    "ON=C1CCCC=C1",
    "CC1(C)CC(=O)CO1",
    "OC1CN(CC#C)C1",
    "CCC(C#N)C(N)=O",
    "N=C1OCCNC1=O",
    "O=C1CC2CCC2O1",
    "OCC12CN1CC2=O",
    "O=C1OCC2CCC12",
    "C1C2C1C1=CN=NN21",
    "ON=C(CNC=O)C#C",
    "O1C=NC2=C1N=CN=C2",
    "CC1=C(N)OC=C1C=O",
    "NC1=CC=C2NCCN12",
    "COC1=C(O)N=C(N)N1",
    "OCCC1=CC=NC=C1",
    "N#CC1C2CCC=CC12",
    "C1CC23CCCCC12O3",
    "C1C2CCC11CCCC21",
    "C1CC23C=CC4C(C24)C13",
    "O=C1C2CCC11OCC21",
    "N=C1OC2CC3(CN3)C12",
    "O=C1NCC=C1C1CN1",
    "O=CC1=CC2(CC2)OC1",
    "O=CCC12CC1CCC2",
    "CC#CC1C2NC2C1O",
    "NC(=O)C1COCC1=O",
    "CC(C)(O)CCCC#N",
    "CC(O)C1OC2CCC12",
    "CC(CC1CCC1)C#N",
    "CC1(C)OC1CCC#C",
    "OC1(CC=O)C2CC1C2",
    "OC12C3CCC1=CCC23",
    "CC12CC1C1C(C=O)N21",
    "OC12CN3C4C(CC14)C23",
    "CC12CCCC3C1CC23",
    "CN1C(=N)C2OC2C1=N",
    "OC1C23COC12C=CC3",
    "CC1C2C3OC3C2C1=O",
    "OC1C2OC2(C#C)C1=O",
    "CC1C2N1CCC21CN1",
    "CC1CC(C#N)C2CN12",
    "CN1CC11CC2(C)NC12",
    "CC1CC2(CO2)C2NC12",
    "CC1OC2CC2(O)C1O",
    "CC1COC(C)C(C)=C1",
    "CC1CCOC(C1)C#C",
    "CC(C)(O)CC#CCO",
    "CC(O)(CO)C(=O)C#C",
    "COC(C=O)C(=O)C=O",
    "OCC1(O)CC2CN2C1",
    "COC12C3CC1(O)CC23",
    "COC12CC3CC1(C)C23",
    "COC1C(C=O)C1C#C",
    "COC1C=CCC2CC12",
    "OCC1CC2(O)COC12",
    "OCC1CNCC(=N)O1",
    "CCCC(C)C1CCO1",
    "OCCC1C2NC1C2=O",
    "CCOCC1(CO)CN1",
    "CC(=O)C1=CN=NC=N1",
    "CCC1=NC(=O)ON=N1",
    "COC1=C(CO)N=NO1",
]


def write_csv(path: Path, strings, split=None, props=None) -> Path:
    """A string CSV with optional split labels and property columns."""
    props = props or {}
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["string", *props, *(["split"] if split is not None else [])])
        for i, s in enumerate(strings):
            extra = [split[i]] if split is not None else []
            w.writerow([s, *(props[k][i] for k in props), *extra])
    return path


write_strings = write_csv


#: Overrides of ``density-vae-fast`` that make a density VAE small enough for tests.
TINY_DENSITY_VAE = ["model.latent=4", "model.encoder.widths=[2,2,2,2]",
                    "model.decoder.widths=[4,2,2,2]", "model.unet.widths=[2,4]",
                    "model.unet.bottleneck=4", "train.max_time=null",
                    "data.rotations_per_crystal=1", "data.split=[0.5,0.5,0.0]"]  # fmt: skip


def write_small_crystal_cifs(folder: Path) -> list[str]:
    """The crystals of :func:`small_crystals` as CIF files in ``folder``; their paths."""
    from ase.io import write

    crystals = small_crystals()
    files = []
    for cid, atoms in zip(crystals.ids, crystals.atoms, strict=True):
        files.append(str(folder / f"{cid}.cif"))
        write(files[-1], atoms)
    return files
