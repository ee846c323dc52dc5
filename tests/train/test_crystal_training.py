"""Crystal workflow as a user runs it: CIF-in-CSV → dataset → train on Voronoi/k-NN graphs →
evaluate and predict (the Voronoi edges are computed once per structure and stored)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from ase.build import bulk
from pymatgen.io.ase import AseAtomsAdaptor
from pymatgen.io.cif import CifWriter
from typer.testing import CliRunner

from deepatoms.cli import app

# (formula, prototype, lattice constant Å); the target is a made-up per-element energy
PROTOS = [("Cu", "fcc", 3.6), ("Ni", "fcc", 3.5), ("Al", "fcc", 4.05), ("Fe", "bcc", 2.87),
          ("W", "bcc", 3.16), ("NaCl", "rocksalt", 5.6), ("MgO", "rocksalt", 4.2),
          ("KCl", "rocksalt", 6.3), ("CsCl", "cesiumchloride", 4.1), ("ZnS", "zincblende", 5.4),
          ("GaAs", "zincblende", 5.65), ("Si", "diamond", 5.43)]  # fmt: skip
PER_ELEMENT = {"Cu": -0.1, "Ni": -0.2, "Al": 0.1, "Fe": -0.3, "W": 0.2, "Na": -1.0, "Cl": -0.5,
               "Mg": -1.2, "O": -1.5, "K": -0.9, "Cs": -0.8, "Zn": -0.3, "S": -0.4,
               "Ga": -0.2, "As": -0.1, "Si": 0.0}  # fmt: skip


@pytest.fixture(scope="module")
def crystal_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("crystals") / "crystals.csv"
    rng = np.random.default_rng(0)
    rows = []
    for k in range(48):
        name, kind, a = PROTOS[k % len(PROTOS)]
        atoms = bulk(name, kind, a=a * rng.uniform(0.97, 1.03))
        atoms.rattle(0.02, seed=k)
        y = np.mean([PER_ELEMENT[s] for s in atoms.get_chemical_symbols()]) + rng.normal(0, 0.01)
        cif = str(CifWriter(AseAtomsAdaptor.get_structure(atoms)))
        rows.append({"material_id": f"x-{k}", "cif": cif, "formation_energy_per_atom": y})
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["material_id", "cif", "formation_energy_per_atom"])
        w.writeheader()
        w.writerows(rows)
    h5 = path.with_suffix(".h5")
    res = CliRunner().invoke(app, ["data", "cif-csv", str(path), "--out", str(h5), "-q"])
    assert res.exit_code == 0, res.output
    return h5


TINY = ["model.n_atom_basis=8", "model.n_interactions=2", "train.max_epochs=3",
        "train.batch_size=8", "data.n_train=32", "data.n_val=8"]  # fmt: skip


@pytest.mark.parametrize("preset", ["voronoi-sym-fast", "nmpedge-mp-fast"])
def test_train_evaluate_predict_on_crystal_graphs(crystal_csv, tmp_path, preset):
    run = tmp_path / "run"
    args = ["train", "--preset", preset, "--data", str(crystal_csv), "--out", str(run), "-q"]
    sets = [a for s in TINY for a in ("--set", s)]
    res = CliRunner().invoke(app, [*args, *sets, "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output.strip().splitlines()[-1])
    assert summary["readout"] == "mean" and np.isfinite(summary["best_val_mae"])
    res = CliRunner().invoke(
        app, ["evaluate", str(run), "--data", str(crystal_csv), "-q", "--json"]
    )
    assert res.exit_code == 0, res.output
    cif = tmp_path / "cu.cif"
    bulk("Cu", "fcc", a=3.6).write(cif)
    res = CliRunner().invoke(app, ["predict", str(run), str(cif), "--json"])
    assert res.exit_code == 0, res.output
    assert "formation_energy_per_atom" in res.output
