"""``deepatoms curves`` as a user calls it: tables, files, and clear errors (docs/vimpnn.md §7)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from ase import Atoms
from ase.build import molecule

from cli_helpers import invoke, last_json, one_line
from deepatoms.analysis.energy_curves import scaled_pack
from deepatoms.data.dataset import write_dataset
from deepatoms.data.edge_store import StoredEdges
from deepatoms.data.neighbors import GraphSpec
from deepatoms.data.packed import PackedSystems
from deepatoms.data.splits import save_split
from deepatoms.models.registry import build_model
from deepatoms.workflows.curves import pick_plot_groups
from model_helpers import save_atomistic

SCALES = np.linspace(0.9, 1.5, 4)
SIZES = [2, 3, 4, 5]  # H chains, one base structure (group) each
SPLITS = ["test", "test", "train", "val"]


def _chains() -> PackedSystems:
    """Linear H_n chains (bond 0.74 Å, single bonds) at s = 1 with their stored bond graph."""
    atoms = [Atoms(f"H{n}", positions=[[0.74 * i, 0.0, 0.0] for i in range(n)]) for n in SIZES]
    pack = PackedSystems.from_atoms(
        atoms, {"group": [10, 11, 12, 13], "split": SPLITS, "element": ["H"] * 4}
    )
    counts = [2 * (n - 1) for n in SIZES]
    idx = []
    for n in SIZES:
        half = np.stack([np.arange(n - 1), np.arange(1, n)])
        idx.append(np.concatenate([half, half[::-1]], axis=1))
    e = int(sum(counts))
    pack.edges = StoredEdges(
        GraphSpec(kind="bonds"),
        np.concatenate([[0], np.cumsum(counts)]),
        np.concatenate(idx, axis=1),
        np.zeros((e, 3), np.int64),
        {"bond_type": np.zeros(e, np.int8)},
    )
    return pack


def _labels(data: PackedSystems) -> np.ndarray:
    """Morse energy per bond, minimum at s = 1.1 for every chain (eV)."""
    n_bonds = data.n_atoms - 1
    d = 0.74 * data.system_props["scale"]
    return n_bonds * (2.0 * (1 - np.exp(-1.5 * (d - 0.74 * 1.1))) ** 2 - 2.0) - 5.0 * data.n_atoms


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("curves")
    data = scaled_pack(_chains(), SCALES)
    data.system_props["energy"] = _labels(data)
    meta = {"units": {"energy": "eV"}, "source": "test", "provenance": {}, "bond_types": ["single"]}
    write_dataset(root / "chains.h5", data, meta)
    flat = data.subset(np.arange(len(data)))
    flat.system_props.pop("split")
    write_dataset(root / "nosplit.h5", flat, meta)
    noscale = PackedSystems(
        data.numbers,
        data.positions,
        data.offsets,
        data.cell,
        data.pbc,
        {"energy": data.system_props["energy"]},
    )
    write_dataset(root / "noscale.h5", noscale, meta)
    cfg = {"name": "schnet", "n_atom_basis": 8, "n_interactions": 1, "cutoff": 3.0}
    # an untrained SchNet with a zero last layer predicts 0 eV for everything
    save_atomistic(
        root / "zero.pt",
        build_model(cfg),
        GraphSpec(kind="bonds"),
        "eV",
        {"bond_types": ["single"]},
    )
    run = root / "run_cutoff"
    live = build_model({**cfg, "head": {"zero_init_last": False}})
    save_atomistic(run / "model.pt", live, GraphSpec(kind="cutoff", cutoff=3.0), "eV")
    save_split(
        run / "split.json",
        {"train": [0], "val": [1], "test": [4, 5, 6, 7]},
        {"n_systems": len(data)},
    )
    return {"root": root, "data": data, "run": run}


def test_curves_table_files_and_exact_metrics_of_a_zero_model(files):
    root, data = files["root"], files["data"]
    out = root / "out1"
    res = invoke(
        "curves",
        root / "zero.pt",
        files["run"],
        "--data",
        root / "chains.h5",
        "--out",
        out,
        "--quiet",
        "--json",
    )
    text = one_line(res.stdout)
    assert "8 samples of 2 groups (test)" in text
    assert "MAE MSE RE DSC DSC" in text and "[eV] [eV²] [-] [s] [Å]" in text
    assert "zero 8" in text and "run_cutoff 8" in text
    r = last_json(res.stdout)
    test = np.isin(data.system_props["group"], [10, 11])
    y = data.system_props["energy"][test]
    zero, live = r["models"]
    # prediction 0: MAE = mean |y|, MSE = mean y², RE = 1; its flat curve has argmin s = 0.9
    assert zero["n"] == 8
    assert zero["mae"] == pytest.approx(np.mean(np.abs(y)))
    assert zero["mse"] == pytest.approx(np.mean(y**2))
    assert zero["re"] == pytest.approx(1.0) and zero["re_std"] == pytest.approx(0.0)
    assert zero["dsc_values"] == pytest.approx([0.1, 0.1])
    assert zero["dsc"] == pytest.approx(0.1) and zero["dsc_std"] == pytest.approx(0.0)
    assert zero["dsc_angstrom"] == pytest.approx(0.1 * 0.74)
    assert zero["by_size"]["lo"] == [2, 3] and zero["by_size"]["n"] == [4, 4]
    assert zero["by_element"]["H"]["n"] == 8
    assert live["name"] == "run_cutoff" and live["graph"] == "cutoff"
    assert 0.0 <= live["dsc"] <= 0.6 and live["seconds_per_estimate"] > 0
    assert r["dsc_groups"] == [10, 11] and r["grid"]["n"] == 121
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["models"][0]["mae"] == pytest.approx(zero["mae"])
    for name in ("curves.csv", "error_vs_size.png", "curves_10.png", "curves_11.png"):
        assert (out / name).is_file(), name
    with (out / "curves.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 * 2 * 121
    assert {r["model"] for r in rows} == {"zero", "run_cutoff"}
    assert all(float(r["energy"]) == 0.0 for r in rows if r["model"] == "zero")


def test_reference_s_eq_run_split_and_systems(files):
    root = files["root"]
    # the labels' minimum on the data grid (0.9, 1.1, 1.3, 1.5) is s = 1.1: DSC = |0.9 − 1.1|
    res = invoke(
        "curves",
        root / "zero.pt",
        "--data",
        root / "nosplit.h5",
        "--run",
        files["run"],
        "--s-eq",
        "reference",
        "--out",
        root / "out2",
        "--json",
    )
    r = last_json(res.stdout)
    assert r["n_samples"] == 4 and r["dsc_groups"] == [11]  # split.json test = group 11
    assert r["models"][0]["dsc"] == pytest.approx(0.2)
    res = invoke(
        "curves",
        root / "zero.pt",
        "--data",
        root / "chains.h5",
        "--split",
        "all",
        "--systems",
        "12,13",
        "--step",
        "0.05",
        "--out",
        root / "out3",
        "--json",
    )
    r = last_json(res.stdout)
    assert r["n_samples"] == 8 and r["dsc_groups"] == [12, 13] and r["grid"]["n"] == 13
    assert sorted(p.name for p in (root / "out3").glob("curves_*.png")) == [
        "curves_12.png",
        "curves_13.png",
    ]


def test_displaced_atom_contribution_plot(files):
    root = files["root"]
    xyz = root / "methane.xyz"
    molecule("CH4").write(xyz)  # single bonds only, as in the model's vocabulary
    res = invoke(
        "curves",
        root / "zero.pt",
        "--displace-cluster",
        xyz,
        "--atom",
        2,
        "--out",
        root / "out4",
        "--json",
    )
    r = last_json(res.stdout)
    d = r["displaced"]["zero"]
    assert len(d["factor"]) == 50 and d["factor"][0] == pytest.approx(0.8)
    assert (root / "out4" / "contributions_zero.png").is_file()
    assert (root / "out4" / "contributions_zero.csv").is_file()
    assert "contributions (zero, atom 2)" in one_line(res.stdout)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data", "missing.h5"], "missing.h5"),
        (["--data", "noscale.h5"], "has no 'group' or 'scale' column"),
        (["--data", "nosplit.h5"], "the data has no 'split' column: pass --run RUN_DIR"),
        (["--data", "chains.h5", "--systems", "12"], "groups [12] have no samples in split"),
        (["--data", "chains.h5", "--s-eq", "two"], "--s-eq must be 'one' or 'reference'"),
        ([], "nothing to do: give --data"),
        (["--displace-cluster", "chain.xyz"], "--displace-cluster needs --atom K"),
    ],
)
def test_user_errors(files, args, message):
    root = files["root"]
    args = [str(root / a) if a.endswith((".h5", ".xyz")) else a for a in args]
    res = invoke("curves", root / "zero.pt", *args, "--out", root / "bad", code=2)
    assert message in one_line(res.stderr)


def test_bond_model_on_data_without_bonds_and_existing_output(files):
    root, data = files["root"], files["data"]
    plain = PackedSystems(
        data.numbers, data.positions, data.offsets, data.cell, data.pbc, data.system_props
    )
    write_dataset(root / "nobonds.h5", plain, {"units": {}, "source": "t", "provenance": {}})
    res = invoke(
        "curves", root / "zero.pt", "--data", root / "nobonds.h5", "--out", root / "out5", code=2
    )
    assert "graph kind 'bonds'" in one_line(res.stderr) and "stores no graph" in res.stderr
    invoke("curves", files["run"], "--data", root / "nobonds.h5", "--out", root / "out6", "-q")
    res = invoke(
        "curves", files["run"], "--data", root / "nobonds.h5", "--out", root / "out6", code=2
    )
    assert "already exists; pass --overwrite" in one_line(res.stderr)


def test_pick_plot_groups_smallest_and_largest():
    groups = np.array([4, 5, 6, 7, 8])
    sizes = np.array([30, 10, 50, 20, 40])
    assert pick_plot_groups(groups, sizes, None).tolist() == [5, 6, 7, 8]
    assert pick_plot_groups(groups, sizes, 3).tolist() == [5, 6, 7]
    assert pick_plot_groups(groups, sizes, 0).tolist() == []
