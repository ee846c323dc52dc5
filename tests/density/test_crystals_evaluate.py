"""Evaluation of a density model on held-out crystals (docs/density_vae.md §7)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from ase.build import bulk
from dvae_helpers import tiny_model

from deepatoms.data.voxels.crystal_sets import CrystalSet
from deepatoms.density.evaluate import PAPER, ROWS, evaluate_density_model, format_markdown


def _set(atoms, ids):
    return CrystalSet(list(atoms), list(ids), list(ids), ["ase"] * len(ids))


@pytest.fixture
def centre_model(tmp_path):
    """Tiny model whose U-Net says "Cu" everywhere: one atom at the box centre per sample."""
    loaded = tiny_model(tmp_path / "tiny.pt")
    with torch.no_grad():
        loaded.model.unet.head.weight.zero_()
        loaded.model.unet.head.bias.copy_(torch.tensor([0.0, 0.0, 0.0, 5.0]))  # [-, Na, Cl, Cu]
    return loaded


def test_exact_metrics_for_a_one_atom_prediction(centre_model, tmp_path):
    # Every sample is predicted as one Cu atom at the box centre (5, 5, 5) Å.
    # Cu fcc primitive: 1 atom at the cell origin; the cell centre ½(a+b+c) goes to the box
    # centre, so the atom sits |½(a+b+c)| = 1.8·√3 Å from it whatever the rotation.
    # NaCl primitive: Na at the origin (2.82·√3 Å away), Cl wrapped to ½(a+b+c) = the centre.
    crystals = _set([bulk("Cu", "fcc", a=3.6), bulk("NaCl", "rocksalt", a=5.64)], ["cu", "nacl"])
    res = evaluate_density_model(
        centre_model, crystals, tmp_path / "ev", rotations=2, seed=1, plots=False
    )
    m = res["model"]
    assert m["n_samples"] == 4 and m["n_true_atoms"] == 6 and m["n_pred_atoms"] == 4
    assert m["count_exact"] == 0.5 and m["count_within_1"] == 1.0  # NaCl: 2 true, 1 predicted
    assert m["true_to_pred"]["within_0.5"] == pytest.approx(2 / 6)  # the two Cl atoms
    assert m["pred_to_true"]["within_0.5"] == pytest.approx(2 / 4)
    assert m["n_matched_0.5"] == 2 and m["species_exact_0.5"] == 0.0  # Cu predicted on Cl
    assert m["species_within_2z"] == 0.0  # |29 − 17| > 2
    oracle = res["oracle"]
    assert oracle["count_exact"] == 1.0 and oracle["true_to_pred"]["within_0.5"] == 1.0
    assert oracle["species_exact_0.5"] == 1.0
    assert res["settings"]["n_samples"] == 4 and res["clipping"]["atoms_dropped"] == 0
    assert m["voxel"]["n_samples"] == 4
    assert m["voxel"]["species_accuracy"] < 0.01  # every voxel says Cu: only Cu voxels right
    on_cu = evaluate_density_model(
        centre_model, _set([bulk("Cu", "fcc", a=3.6)], ["cu"]), tmp_path / "cu", rotations=3,
        plots=False,
    )  # fmt: skip
    for direction in ("true_to_pred", "pred_to_true"):
        d = on_cu["model"][direction]
        assert d["p50"] == pytest.approx(1.8 * math.sqrt(3), abs=1e-9)
        assert d["p90"] == pytest.approx(1.8 * math.sqrt(3), abs=1e-9)
    assert on_cu["model"]["count_exact"] == 1.0
    assert on_cu["model"]["species_exact_0.5"] is None  # nothing matched within 0.5 Å
    assert on_cu["model"]["voxel"]["species_accuracy_atoms"] == 1.0  # Cu voxels are all Cu
    assert on_cu["unet_true_density"]["count_exact"] == 1.0
    assert not (tmp_path / "cu" / "plots").exists()


def test_outputs_are_written_and_reproducible(centre_model, tmp_path):
    crystals = _set([bulk("Cu", "fcc", a=3.6), bulk("Si", "diamond", a=5.43)], ["cu", "si"])
    a = evaluate_density_model(centre_model, crystals, tmp_path / "a", rotations=1, seed=5)
    b = evaluate_density_model(
        centre_model, crystals, tmp_path / "b", rotations=1, seed=5, plots=False
    )
    assert a["model"] == b["model"] and a["oracle"] == b["oracle"]
    saved = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert saved["model"]["count_exact"] == a["model"]["count_exact"]
    for name in ("evaluation.png", "examples.png", "nn_distances.png"):
        assert (tmp_path / "a" / "plots" / name).read_bytes()[:4] == b"\x89PNG"
    md = (tmp_path / "a" / "metrics.md").read_text()
    assert md == format_markdown(a)
    assert "| exact atom count | 0.500 | 0.500 | 1.000 | ≈ 0.90" in md
    assert "\\|Δn\\| ≤ 1" in md  # escaped, so the table keeps five columns
    assert all(line.count(" | ") == 4 for line in md.splitlines() if line.startswith("| "))


def test_paper_rows_point_at_existing_metrics(centre_model, tmp_path):
    res = evaluate_density_model(
        centre_model, _set([bulk("Cu", "fcc", a=3.6)], ["cu"]), tmp_path / "ev", plots=False
    )
    paths = {p for _, p in ROWS}
    for regime in ("single", "repeated"):
        assert set(PAPER[regime]) <= paths
    for _, path in ROWS:
        node = res["model"]
        for k in path:
            assert k in node, path
            node = node[k]


def test_errors_name_the_problem(centre_model, tmp_path):
    with pytest.raises(ValueError, match="no crystals"):
        evaluate_density_model(centre_model, _set([], []), tmp_path / "x")
    big = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(3)
    with pytest.raises(ValueError, match=r"crystal big \(Cu108\).*--skip-large"):
        evaluate_density_model(centre_model, _set([big], ["big"]), tmp_path / "x")
    assert not (tmp_path / "x").exists()
    np.testing.assert_equal(len(ROWS), len({label for label, _ in ROWS}))
