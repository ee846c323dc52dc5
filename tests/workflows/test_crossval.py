"""Cross-validation: fold properties, fold splits, and a tiny end-to-end CV (API and CLI)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from deepatoms.analysis.crystal_metrics import bootstrap_mae_percentile
from deepatoms.config.overrides import apply_overrides
from deepatoms.data.packed import PackedSystems
from deepatoms.models.registry import load_preset
from deepatoms.workflows.crossval import cross_validate, fold_split, kfold_indices, report_unit

# The tiny runs have fewer batches than Lightning's logging interval; that is intended.
pytestmark = pytest.mark.filterwarnings("ignore:The number of training batches")

TARGET = "formation_energy_per_atom"
TINY = [
    f"data.target={TARGET}",
    "data.readout=mean",
    "data.atomref=none",
    "model.n_atom_basis=8",
    "model.n_interactions=1",
    "model.rbf.n_rbf=8",
    "model.rbf.stop=4.0",
    "model.cutoff=4.0",
    "graph.cutoff=4.0",
    "train.max_epochs=2",
    "train.batch_size=8",
    "train.eval_batch_size=16",
    "train.num_threads=1",
]


# -- folds -------------------------------------------------------------------------------------
def _check_partition(folds: list[np.ndarray], n: int, k: int) -> None:
    assert len(folds) == k
    joined = np.concatenate(folds)
    assert np.array_equal(np.sort(joined), np.arange(n))  # disjoint and covering
    sizes = [len(f) for f in folds]
    assert max(sizes) - min(sizes) <= 1
    assert all(np.array_equal(f, np.sort(f)) and f.dtype == np.int64 for f in folds)


def test_kfold_partitions_and_is_seeded():
    folds = kfold_indices(23, k=5, seed=4)
    _check_partition(folds, 23, 5)
    assert sorted(len(f) for f in folds) == [4, 4, 5, 5, 5]
    again = kfold_indices(23, k=5, seed=4)
    assert all(np.array_equal(a, b) for a, b in zip(folds, again, strict=True))
    other = kfold_indices(23, k=5, seed=5)
    assert not all(np.array_equal(a, b) for a, b in zip(folds, other, strict=True))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kfold_stratified_spreads_every_class_evenly(seed):
    labels = np.array(["icsd"] * 7 + ["oqmd"] * 11 + ["proto"] * 3)
    labels = labels[np.random.default_rng(9).permutation(len(labels))]
    folds = kfold_indices(len(labels), k=5, seed=seed, stratify=labels)
    _check_partition(folds, len(labels), 5)
    for cls, total in (("icsd", 7), ("oqmd", 11), ("proto", 3)):
        counts = [int(np.sum(labels[f] == cls)) for f in folds]
        assert sum(counts) == total
        assert max(counts) - min(counts) <= 1, (cls, counts)


def test_kfold_rejects_impossible_requests():
    with pytest.raises(ValueError, match="k must be"):
        kfold_indices(10, k=1)
    with pytest.raises(ValueError, match="cannot make 5 folds from 3"):
        kfold_indices(3, k=5)
    with pytest.raises(ValueError, match="one label per system"):
        kfold_indices(10, k=2, stratify=[0, 1])


def test_fold_split_holds_out_a_seeded_validation_subset():
    folds = kfold_indices(40, k=4, seed=0)
    s = fold_split(folds, 1, n_val=0.25, seed=0)
    assert np.array_equal(s["test"], folds[1])
    assert len(s["val"]) == 8 and len(s["train"]) == 22  # 25 % of the 30 training-part systems
    assert np.array_equal(np.sort(np.concatenate(list(s.values()))), np.arange(40))
    assert np.array_equal(fold_split(folds, 1, n_val=0.25, seed=0)["val"], s["val"])
    assert len(fold_split(folds, 0, n_val=5)["val"]) == 5
    with pytest.raises(ValueError, match="need at least 1"):
        fold_split(folds, 0, n_val=30)


def test_report_unit():
    assert report_unit("eV/atom") == ("meV/atom", 1000.0)
    assert report_unit("eV") == ("meV", 1000.0)
    assert report_unit("Debye") == ("Debye", 1.0)


# -- a tiny end-to-end CV ------------------------------------------------------------------------
PER_ELEMENT = {"Na": -1.0, "Cl": -0.5, "K": -0.8, "Br": -0.4, "Cu": 0.0, "Ag": 0.1, "O": -1.5}


def _crystal(kind: int, rng: np.random.Generator) -> Atoms:
    a = rng.uniform(3.6, 4.4)
    if kind == 0:
        return bulk(str(rng.choice(["Cu", "Ag"])), "fcc", a=a)
    if kind == 1:
        pair = [("Na", "Cl"), ("K", "Br"), ("Na", "Br")][rng.integers(3)]
        return bulk("".join(pair), "rocksalt", a=a + 1.5)
    # a cubic ABO3 perovskite: A at the corner, B at the body centre, O at the face centres
    a_el, b_el = [("K", "Cu"), ("Na", "Ag"), ("K", "Ag")][rng.integers(3)]
    pos = np.array([[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    return Atoms(a_el + b_el + "O3", scaled_positions=pos, cell=np.eye(3) * a, pbc=True)


@pytest.fixture(scope="module")
def crystals(tmp_path_factory) -> tuple[str, np.ndarray]:
    """30 small periodic crystals (unary, binary, ternary) with an artificial per-atom energy."""
    from deepatoms.data.dataset import write_dataset

    rng = np.random.default_rng(0)
    kinds = np.arange(30) % 3
    atoms = [_crystal(int(k), rng) for k in kinds]
    energy = np.array([np.mean([PER_ELEMENT[s] for s in a.get_chemical_symbols()]) for a in atoms])
    energy += rng.normal(0, 0.01, size=len(atoms))
    data = PackedSystems.from_atoms(
        atoms,
        {
            TARGET: energy,
            "id": np.array([f"x-{i}" for i in range(30)]),
            "formula": np.array([a.get_chemical_formula() for a in atoms]),
            "icsd": (np.arange(30) % 4 == 0).astype(np.int64),
        },
    )
    meta = {"units": {TARGET: "eV/atom"}, "source": "test crystals", "provenance": {}}
    path = tmp_path_factory.mktemp("crystals") / "crystals.h5"
    write_dataset(path, data, meta)
    return str(path), kinds + 1  # kind 0/1/2 has 1/2/3 elements


def _rows(path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _check_outputs(out, n_elements: np.ndarray, k: int) -> dict:
    rows = _rows(out / "predictions.csv")
    summary = json.loads((out / "cv_summary.json").read_text())
    assert [int(r["index"]) for r in rows] == list(range(30))  # every system predicted once
    fold = np.array([int(r["fold"]) for r in rows])
    assert set(fold.tolist()) == set(range(k))
    assert [r["id"] for r in rows] == [f"x-{i}" for i in range(30)]
    assert np.array_equal([int(r["n_elements"]) for r in rows], n_elements)
    err = (np.array([float(r["y_pred"]) for r in rows]) - [float(r["y_true"]) for r in rows]) * 1e3
    assert summary["unit"] == "meV/atom" and summary["target_unit"] == "eV/atom"
    pooled = summary["pooled"]
    assert pooled["n"] == 30
    assert pooled["mae"] == pytest.approx(np.mean(np.abs(err)), rel=1e-12)
    assert pooled["rmse"] == pytest.approx(np.sqrt(np.mean(err**2)), rel=1e-12)
    for rec in summary["folds"]:
        sel = fold == rec["fold"]
        assert rec["n_test"] == int(sel.sum())
        assert rec["n_train"] + rec["n_val"] + rec["n_test"] == 30
        assert rec["mae"] == pytest.approx(np.mean(np.abs(err[sel])), rel=1e-12)
    subsets = summary["subsets"]["n_elements"]
    assert list(subsets) == ["unary", "binary", "ternary"]
    for name, count in (("unary", 1), ("binary", 2), ("ternary", 3)):
        sel = n_elements == count
        assert subsets[name]["n"] == 10
        assert subsets[name]["mae"] == pytest.approx(np.mean(np.abs(err[sel])), rel=1e-12)
    n_boot = pooled["bootstrap"]["n_resamples"]
    p95 = bootstrap_mae_percentile(err, n_boot, 95.0, seed=summary["seed"])
    assert pooled["mae_bootstrap_p95"] == pytest.approx(p95, rel=1e-12)
    assert pooled["mae_bootstrap_p95"] > pooled["mae"]
    return summary


def test_cross_validation_end_to_end_and_resume(crystals, tmp_path):
    path, n_elements = crystals
    cfg = apply_overrides(load_preset("schnet-fast"), TINY)
    seen = []
    res = cross_validate(
        cfg, path, tmp_path / "cv", k=3, stratify_column="icsd", progress=False, on_fold=seen.append
    )
    assert [r["fold"] for r in seen] == [0, 1, 2] and all(r["trained_now"] for r in seen)
    summary = _check_outputs(tmp_path / "cv", n_elements, 3)
    assert summary["folds"] == res["folds"]
    # the 8 ICSD entries are spread 3/3/2 over the test folds
    icsd = np.arange(30) % 4 == 0
    runs = [json.loads((tmp_path / "cv" / f"fold{i}" / "split.json").read_text()) for i in range(3)]
    assert sorted(int(icsd[r["indices"]["test"]].sum()) for r in runs) == [2, 3, 3]
    assert set(summary["subsets"]["icsd"]) == {"0", "1"}
    for i in range(3):
        assert (tmp_path / "cv" / f"fold{i}" / "model.pt").is_file()
    # a rerun reuses the finished folds and gives the same predictions
    again = cross_validate(cfg, path, tmp_path / "cv", k=3, stratify_column="icsd", progress=False)
    assert not any(r["trained_now"] for r in again["folds"])
    assert again["pooled"] == res["pooled"]
    # a changed config is not silently reused, and other folds in the same folder are refused
    changed = apply_overrides(cfg, ["model.n_atom_basis=16"])
    with pytest.raises(ValueError, match=r"model.n_atom_basis: 8 \(saved\) vs 16"):
        cross_validate(changed, path, tmp_path / "cv", k=3, stratify_column="icsd", progress=False)
    with pytest.raises(ValueError, match="different folds"):
        cross_validate(cfg, path, tmp_path / "cv", k=3, seed=1, progress=False)


def test_cross_validation_input_errors(crystals, tmp_path):
    path, _ = crystals
    cfg = apply_overrides(load_preset("schnet-fast"), TINY)
    with pytest.raises(ValueError, match="stratify column 'nope'"):
        cross_validate(cfg, path, tmp_path / "a", k=3, stratify_column="nope", progress=False)
    with pytest.raises(ValueError, match="not a numeric per-system property"):
        cross_validate(
            apply_overrides(cfg, ["data.target=formula"]), path, tmp_path / "b", progress=False
        )
    with pytest.raises(ValueError, match="need at least 1"):
        cross_validate(cfg, path, tmp_path / "c", k=3, n_val=0.001, progress=False)


def test_cv_command_as_a_user_calls_it(crystals, tmp_path):
    from typer.testing import CliRunner

    import deepatoms.cli

    path, n_elements = crystals
    out = tmp_path / "cv_cli"
    args = ["cv", "--preset", "schnet-fast", "--data", path, "--out", str(out), "--target", TARGET]
    args += ["--folds", "2", "--val-fraction", "0.2", "--seed", "3", "--bootstrap", "2000"]
    for s in TINY[1:]:
        args += ["--set", s]
    res = CliRunner().invoke(deepatoms.cli.app, [*args, "--quiet", "--json"])
    assert res.exit_code == 0, res.output
    lines = res.stdout.strip().splitlines()
    assert lines[0].startswith("fold 0: 12 train / 3 val / 15 test, test MAE ")
    assert lines[0].endswith(" meV/atom")
    assert any(line.startswith("2-fold CV of schnet-fast on " + TARGET) for line in lines)
    payload = json.loads(lines[-1])
    assert payload["k"] == 2 and payload["seed"] == 3 and payload["unit"] == "meV/atom"
    assert payload["pooled"]["bootstrap"]["n_resamples"] == 2000
    summary = _check_outputs(out, n_elements, 2)
    assert summary["pooled"] == payload["pooled"]
    saved = (out / "fold0" / "config.yaml").read_text()
    assert "seed: 3" in saved  # --seed also seeds training
    bad = CliRunner().invoke(deepatoms.cli.app, [*args, "--stratify", "nope", "--quiet"])
    assert bad.exit_code == 2 and "stratify column 'nope'" in bad.stderr
