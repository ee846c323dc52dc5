"""Atom, species and voxel metrics on hand-made cases (docs/density_vae.md §7)."""

import numpy as np
import pytest
import torch

from deepatoms.density.metrics import (
    VoxelMetrics,
    atom_metrics,
    compare_distance_histograms,
    nearest_neighbour_distances,
    voxel_metrics,
)
from deepatoms.density.recovery import RecoveredAtoms

# four atoms 3 Å apart on a line
Z = np.array([8, 8, 26, 1])
X = np.array([[1.0, 5, 5], [4.0, 5, 5], [7.0, 5, 5], [10.0, 5, 5]])


def test_perfect_reconstruction():
    m = atom_metrics([(Z, X)], [(Z, X)])
    assert m["count_exact"] == 1.0 and m["n_true_atoms"] == 4 and m["n_pred_atoms"] == 4
    assert m["true_to_pred"] == {"within_0.5": 1.0, "within_0.2": 1.0, "p50": 0.0, "p75": 0.0,
                                 "p90": 0.0}  # fmt: skip
    assert m["species_exact_0.5"] == 1.0 and m["species_within_2z"] == 1.0
    assert m["z_pearson"] == pytest.approx(1.0)


def test_shifting_one_atom_by_0_6_drops_within_half_angstrom_by_one_atom():
    moved = X.copy()
    moved[2, 1] += 0.6
    m = atom_metrics([(Z, X)], [(Z, moved)])
    assert m["true_to_pred"]["within_0.5"] == 0.75  # exactly one of four atoms lost
    assert m["pred_to_true"]["within_0.5"] == 0.75
    assert m["count_exact"] == 1.0
    # distances [0, 0, 0.6, 0]: p50 = 0, p75 = 0.15, p90 = 0.42 (linear interpolation)
    assert m["true_to_pred"]["p75"] == pytest.approx(0.15)
    assert m["true_to_pred"]["p90"] == pytest.approx(0.42)
    assert m["n_matched_0.5"] == 3 and m["species_exact_0.5"] == 1.0


def test_extra_atom_fails_exact_count_but_passes_within_one():
    pred_z = np.append(Z, 6)
    pred_x = np.vstack([X, [[5.5, 5, 5]]])  # 1.5 Å from two true atoms
    m = atom_metrics([(Z, X), (Z, X)], [(pred_z, pred_x), (Z, X)])
    assert m["count_exact"] == 0.5
    assert m["count_within_1"] == 1.0 and m["count_within_2"] == 1.0
    assert m["true_to_pred"]["within_0.5"] == 1.0
    assert m["pred_to_true"]["within_0.5"] == pytest.approx(8 / 9)


def test_species_metrics():
    zp = np.array([8, 9, 29, 1])  # F for O (+1), Cu for Fe (+3)
    xp = X.copy()
    xp[3, 0] += 0.4  # H matched within 0.5 Å but not within 0.33 Å
    m = atom_metrics([(Z, X)], [(zp, xp)])
    assert m["species_exact_0.5"] == 0.5  # O and H right of four
    assert m["n_matched_0.33"] == 3 and m["species_exact_0.33"] == pytest.approx(1 / 3)
    assert m["species_within_2z"] == 0.75  # all but Fe → Cu
    assert m["z_pearson"] == pytest.approx(np.corrcoef([8, 8, 26, 1], [8, 9, 29, 1])[0, 1])


def test_empty_predictions_and_recovered_atoms_input():
    empty = RecoveredAtoms(np.zeros(0, np.int64), np.zeros((0, 3)), np.zeros(0, np.int64), 10.0)
    m = atom_metrics([(Z, X)], [empty])
    assert m["count_exact"] == 0.0 and m["count_within_2"] == 0.0
    assert m["true_to_pred"]["within_0.5"] == 0.0 and m["true_to_pred"]["p50"] is None
    assert m["pred_to_true"]["within_0.5"] is None and m["pred_to_true"]["p90"] is None
    assert m["species_exact_0.5"] is None and m["z_pearson"] is None
    with pytest.raises(ValueError, match="1 true samples but 2 predictions"):
        atom_metrics([(Z, X)], [(Z, X), (Z, X)])


def test_hungarian_is_one_to_one():
    # two predictions on top of true atom 0: nearest-neighbour matches both, Hungarian only one
    pred_x = np.array([[1.0, 5, 5], [1.1, 5, 5]])
    t = (Z[:2], X[:2])
    nn = atom_metrics([t], [(np.array([8, 8]), pred_x)])
    hu = atom_metrics([t], [(np.array([8, 8]), pred_x)], hungarian=True)
    assert nn["pred_to_true"]["within_0.5"] == 1.0 and nn["true_to_pred"]["within_0.5"] == 0.5
    assert hu["pred_to_true"]["within_0.5"] == 0.5 and hu["true_to_pred"]["within_0.5"] == 0.5
    assert hu["matching"] == "hungarian"


def test_voxel_metrics_exact():
    t = np.zeros((2, 1, 2, 2, 2))
    p = np.zeros((2, 1, 2, 2, 2))
    p[0, 0, 0, 0, 0] = 2.0  # sample 0: MSE 4/8 = 0.5; sample 1: 0
    ct = np.zeros((2, 2, 2, 2), dtype=np.int64)
    ct[0, 0, 0, 0] = ct[1, 1, 1, 1] = 3
    logits = np.zeros((2, 4, 2, 2, 2))
    logits[:, 0] = 1.0
    logits[0, 3, 0, 0, 0] = 5.0  # atom voxel of sample 0 right, of sample 1 wrong
    m = voxel_metrics(torch.tensor(t), torch.tensor(p), torch.tensor(ct), torch.tensor(logits))
    assert m["mse_mean"] == 0.25 and m["mse_p50"] == 0.25 and m["mse_p5"] == pytest.approx(0.025)
    assert m["species_accuracy"] == 15 / 16 and m["species_accuracy_atoms"] == 0.5
    acc = VoxelMetrics()
    acc.update(t[:1], p[:1], ct[:1], logits[:1].argmax(1))
    acc.update(t[1:], p[1:], ct[1:], logits[1:].argmax(1))
    assert acc.result() == m
    assert VoxelMetrics().result()["mse_mean"] is None


def test_nearest_neighbour_distances_and_histograms():
    d = nearest_neighbour_distances([(Z, X), (Z[:1], X[:1])])
    np.testing.assert_allclose(d, [3.0, 3.0, 3.0, 3.0])  # the 1-atom structure adds nothing
    same = compare_distance_histograms(d, d, bins=6, max_distance=6.0)
    assert same["overlap"] == 1.0 and same["wasserstein"] == 0.0
    shifted = compare_distance_histograms(d, d + 1.5, bins=6, max_distance=6.0)
    assert shifted["overlap"] == 0.0 and shifted["wasserstein"] == pytest.approx(1.5)
    assert compare_distance_histograms(d, np.zeros(0))["overlap"] is None
