"""``deepatoms evaluate-generated`` as a user calls it: exact Table 1 rows on a hand-made set,
statistics, files and clear errors (docs/gschnet.md §11)."""

from __future__ import annotations

import json

import ase.db
import ase.io
import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule

from cli_helpers import invoke, last_json, one_line
from deepatoms.data.dataset import write_dataset
from deepatoms.data.neighbors import GraphSpec
from deepatoms.data.packed import PackedSystems
from deepatoms.data.splits import save_split
from deepatoms.generate.qm9_prep import prepare_molecules
from deepatoms.models.registry import build_model
from model_helpers import save_atomistic

# reference (QM9 stand-in): SMILES and split
REFERENCE = [
    ("CCO", "train"),
    ("C[C@@H](O)CC", "train"),
    ("CCC", "val"),
    ("c1ccccc1", "test"),
    ("CC(C)=O", "test"),
]


def embed(smiles: str, seed: int = 1) -> Atoms:
    """MMFF-relaxed 3-D molecule of a SMILES (hydrogens explicit)."""
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    assert AllChem.EmbedMolecule(mol, randomSeed=seed) == 0
    AllChem.MMFFOptimizeMolecule(mol)
    return Atoms(
        [a.GetAtomicNum() for a in mol.GetAtoms()], positions=mol.GetConformer().GetPositions()
    )


def generated_set() -> list[Atoms]:
    """11 molecules: 9 valid, 6 unique (2 train, 1 val, 1 test, 2 novel; one > 9 heavy atoms)."""
    s_butanol = embed("C[C@H](O)CC", seed=4)
    ch5 = Atoms("CH5", positions=[[0, 0, 0], [1.09, 0, 0], [-1.09, 0, 0], [0, 1.09, 0],
                                  [0, -0.545, 0.944], [0, -0.545, -0.944]])  # fmt: skip
    far = molecule("CH4") + Atoms(
        "H2O", positions=molecule("H2O").positions + np.array([6.0, 0, 0])
    )
    mna = embed("CN", seed=2)
    mna_rotated = mna.copy()
    mna_rotated.rotate(70, "z")
    return [
        embed("CCO", seed=2),  # 0 train
        embed("CCO", seed=3),  # 1 duplicate (conformer) of 0
        s_butanol,  # 2 train via its mirror image (R) in the reference
        embed("C[C@@H](O)CC", seed=9),  # 3 duplicate of 2 (mirror image)
        embed("CCC", seed=5),  # 4 val
        embed("c1ccccc1"),  # 5 test
        mna,  # 6 novel
        mna_rotated,  # 7 duplicate of 6
        ch5,  # 8 invalid: 5-valent carbon
        far,  # 9 invalid: two fragments
        embed("CCCCCCCCCC"),  # 10 novel, 10 heavy atoms
    ]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("evalgen")
    mols = [embed(smi, seed=7) for smi, _ in REFERENCE]
    pack = PackedSystems.from_atoms(mols, {"gap": [7.0, 7.5, 9.0, 6.8, 4.9]})
    data, info = prepare_molecules(pack, n_train=2, n_val=1)
    data.system_props["split"] = np.array([s for _, s in REFERENCE])
    meta = {
        "units": {"gap": "eV"},
        "source": "hand-made",
        "provenance": {},
        "bond_types": info["bond_types"],
        "dropped": info["dropped"],
    }
    write_dataset(root / "ref.h5", data, meta)
    plain = PackedSystems.from_atoms(mols)
    write_dataset(root / "plain.h5", plain, {"units": {}, "source": "x", "provenance": {}})
    gen = generated_set()
    with ase.db.connect(root / "mols.db") as db:
        for k, atoms in enumerate(gen):
            db.write(atoms, model="hand", seed=0, temperature=0.1, index=k)
    ase.db.connect(root / "mols.db").metadata = {"model": "hand", "seed": 0, "temperature": 0.1}
    ase.io.write(root / "mols.xyz", gen, format="extxyz")
    # a "gap model" predicting exactly the number of heavy atoms (eV): zero last layer, atom refs
    model = build_model(
        {
            "name": "schnet",
            "n_atom_basis": 8,
            "n_interactions": 1,
            "cutoff": 5.0,
            "property": "gap",
        }
    )
    model.head.set_statistics(0.0, 1.0, {6: 1.0, 7: 1.0, 8: 1.0, 9: 1.0})
    (root / "gaprun").mkdir()
    save_atomistic(root / "gaprun" / "model.pt", model, GraphSpec(kind="cutoff", cutoff=5.0), "eV")
    save_atomistic(root / "meV.pt", model, GraphSpec(kind="cutoff", cutoff=5.0), "meV")
    run = root / "run"
    save_split(
        run / "split.json",
        {"train": [2], "val": [], "test": [0, 1, 3, 4]},
        {"dataset": str(root / "ref.h5"), "n_systems": 5},
    )
    return root


TABLE = {
    "unique": 6,
    "unique+unseen": 4,
    "unique+unseen+novel": 2,
    "unique, <=9 heavy": 5,
    "unique+unseen, <=9 heavy": 3,
    "unique+unseen+novel, <=9 heavy": 1,
    "unique, gap<=5 eV": 4,  # heavy-atom counts 3, 5, 3, 6, 2, 10
}


def _rows(metrics):
    return {r["row"]: (r["count"], r["percent"]) for r in metrics["table1"]}


def test_exact_table1_statistics_and_files(files):
    out = files / "out"
    res = invoke(
        "evaluate-generated", files / "mols.db", "--reference", files / "ref.h5",
        "--relax", "none", "--gap-model", files / "gaprun", "--out", out, "--quiet", "--json",
    )  # fmt: skip
    m = last_json(res.stdout)
    assert m["n_generated"] == 11 and m["n_valid"] == 9 and m["validity"] == pytest.approx(9 / 11)
    assert m["invalid_reasons"] == {"overcoordinated": 1, "disconnected": 1}
    assert m["n_unique"] == 6 and m["n_duplicates"] == 3
    assert m["tags_unique"] == {"train": 2, "val": 1, "test": 1, "novel": 2}
    assert _rows(m) == {k: (v, pytest.approx(100 * v / 9)) for k, v in TABLE.items()}
    assert "generated geometries" in m["gap_source"]
    g = m["statistics"]["generated_unique"]
    exact = {"C": 26 / 6, "H": 57 / 6, "O": 2 / 6, "N": 1 / 6, "F": 0.0, "B1": 78 / 6,
             "B2": 3 / 6, "B3": 0.0, "R3": 0.0, "R5": 0.0, "R6": 1 / 6}  # fmt: skip
    assert {k: g[k] for k in exact} == pytest.approx(exact)
    q = m["statistics"]["qm9"]
    assert q["C"] == pytest.approx(18 / 5) and q["B2"] == pytest.approx(4 / 5)
    assert q["R6"] == pytest.approx(1 / 5)
    assert m["qm9_reference"]["checker_validity"] == 1.0
    assert m["qm9_reference"]["gap_le_5eV_percent"] == pytest.approx(20.0)
    assert m["distributions"]["r(C-C)"]["n_generated"] == 1 + 6 + 3 + 15 + 0 + 45
    for name in ("metrics.json", "table1.md", "molecules.csv", "distributions.png",
                 "statistics.png", "gap.png"):  # fmt: skip
        assert (out / name).is_file(), name
    assert not (out / "rmsd.png").exists()
    assert json.loads((out / "metrics.json").read_text())["n_unique"] == 6
    table = (out / "table1.md").read_text()
    assert "| unique+unseen+novel | 2 | 22.2% | 63.8% |" in table
    lines = (out / "molecules.csv").read_text().splitlines()
    assert lines[0].startswith("index,valid,reason,smiles,key,unique,duplicate_of,tag")
    assert lines[4].split(",")[5:8] == ["False", "2", "train"]  # the (R) mirror image of 2
    assert "| unique | 6 | 66.7% | 91.6% |" in res.stdout  # the printed table


def test_train_split_from_a_run_and_extxyz_input(files):
    res = invoke(
        "evaluate-generated", files / "mols.xyz", "--reference", files / "ref.h5",
        "--train-split", files / "run", "--relax", "none", "--quiet", "--json",
    )  # fmt: skip
    m = last_json(res.stdout)
    # the run trained on propane only: ethanol and butan-2-ol become unseen QM9 ("test")
    assert m["tags_unique"] == {"train": 1, "val": 0, "test": 3, "novel": 2}
    rows = _rows(m)
    assert rows["unique+unseen"] == (5, pytest.approx(500 / 9))
    assert rows["unique+unseen, <=9 heavy"] == (4, pytest.approx(400 / 9))
    assert "unique, gap<=5 eV" not in rows


def test_relaxation_rmsd_and_gaps_on_the_sample(files):
    out = files / "relaxed"
    res = invoke(
        "evaluate-generated", files / "mols.db", "--reference", files / "ref.h5",
        "--relax", "mmff", "--relax-sample", 10, "--gap-model", files / "gaprun" / "model.pt",
        "--out", out, "--quiet", "--json",
    )  # fmt: skip
    m = last_json(res.stdout)
    rel = m["relaxation"]
    assert rel["sample_size"] == 6 and rel["n_relaxed"] == 6 and rel["failures"] == {}
    groups = {t: g["all_atoms"]["n"] for t, g in rel["rmsd_by_tag"].items()}
    assert groups == {"train": 2, "val": 1, "test": 1, "novel": 2}
    # MMFF-built inputs are already MMFF minima: RMSD ≈ 0
    assert rel["rmsd_all"]["all_atoms"]["mean"] < 0.01
    assert m["gap_source"].startswith("model 'gap' on relaxed (mmff)")
    assert _rows(m)["unique, gap<=5 eV"] == (4, pytest.approx(400 / 9))
    assert m["gaps"]["model_relaxed_geometry"]["n"] == 6
    assert (out / "rmsd.png").is_file()
    assert "RMSD train" in res.stdout


def test_xtb_relaxation_and_gap_on_a_small_sample(files):
    res = invoke(
        "evaluate-generated", files / "mols.db", "--reference", files / "ref.h5",
        "--relax", "xtb", "--relax-sample", 2, "--xtb-gap", "--quiet", "--json",
    )  # fmt: skip
    m = last_json(res.stdout)
    assert m["relaxation"]["n_relaxed"] == 2
    assert 0.0 < m["relaxation"]["rmsd_all"]["all_atoms"]["mean"] < 0.5
    xtb = m["gaps"]["xtb"]
    assert xtb["n"] == 2 and xtb["geometry"] == "relaxed" and 1.0 < xtb["mean"] < 12.0


def test_clear_errors(files):
    ref = files / "ref.h5"
    res = invoke("evaluate-generated", files / "none.db", "--reference", ref, code=2)
    assert "none.db' does not exist" in one_line(res.stderr)
    res = invoke("evaluate-generated", files / "mols.db", "--reference", files / "x.h5", code=2)
    assert "x.h5' does not exist" in one_line(res.stderr)
    res = invoke("evaluate-generated", files / "mols.db", "--reference", files / "plain.h5", code=2)
    assert "no 'canonical_smiles'" in one_line(res.stderr)
    assert "deepatoms data qm9-generative" in one_line(res.stderr)
    res = invoke("evaluate-generated", files / "mols.db", "--reference", ref, "--relax", "dft",
                 code=2)  # fmt: skip
    assert "unknown --relax 'dft'" in one_line(res.stderr)
    res = invoke("evaluate-generated", files / "mols.db", "--reference", ref, "--gap-model",
                 files / "meV.pt", code=2)  # fmt: skip
    assert "in 'meV'" in one_line(res.stderr)
    res = invoke("evaluate-generated", files / "mols.db", "--reference", ref, "--train-split",
                 files, code=2)  # fmt: skip
    assert "no split.json there" in one_line(res.stderr)


def test_relaxation_and_xtb_gaps_on_two_workers_equal_the_serial_run(files):
    pytest.importorskip("distributed")
    args = ["evaluate-generated", files / "mols.db", "--reference", files / "ref.h5",
            "--relax", "xtb", "--relax-sample", 10, "--xtb-gap", "--quiet", "--json"]  # fmt: skip
    serial = last_json(invoke(*args, "--out", files / "serial").stdout)
    par = last_json(invoke(*args, "--out", files / "par", "--workers", "2").stdout)
    assert serial["relaxation"]["n_relaxed"] == 6 and serial["gaps"]["xtb"]["n"] == 6
    assert par["relaxation"] == serial["relaxation"]
    assert par["gaps"] == serial["gaps"]
    assert not (files / "par" / ".parts").exists()
