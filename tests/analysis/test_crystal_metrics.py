"""Crystal metrics: subset errors, bootstrap MAE percentile, ground-state ranking (exact cases)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from deepatoms.analysis.crystal_metrics import (
    arity_labels,
    bootstrap_mae_percentile,
    error_stats,
    ground_state_ranking,
    n_elements_per_system,
    subset_errors,
)


# -- subset errors ----------------------------------------------------------------------------
def test_arity_labels_names_every_count():
    got = arity_labels([1, 2, 3, 4, 5, 9, 2])
    assert got.tolist() == ["unary", "binary", "ternary", "quaternary", "n-ary", "n-ary", "binary"]
    assert arity_labels(np.array([3.0])).tolist() == ["ternary"]
    with pytest.raises(ValueError, match=">= 1"):
        arity_labels([0, 1])
    with pytest.raises(ValueError, match="whole numbers"):
        arity_labels([1.5])


def test_n_elements_per_system_counts_distinct_elements():
    numbers = np.array([8, 8, 1, 26, 1, 6, 8, 7])
    offsets = np.array([0, 3, 4, 4, 8])  # the third system is empty
    assert n_elements_per_system(numbers, offsets).tolist() == [2, 1, 0, 4]


def test_subset_errors_by_labels_exact():
    y_true = np.array([1.0, 2.0, 3.0, 4.0])
    y_pred = np.array([4.0, -2.0, 3.0, 16.0])  # errors 3, -4, 0, 12
    res = subset_errors(y_true, y_pred, ["binary", "binary", "unary", "ternary"])
    assert res["all"] == {"n": 4, "mae": 4.75, "rmse": 6.5}
    assert list(res["subsets"]) == ["unary", "binary", "ternary"]  # arity order, not alphabetical
    assert res["subsets"]["unary"] == {"n": 1, "mae": 0.0, "rmse": 0.0}
    assert res["subsets"]["binary"] == {"n": 2, "mae": 3.5, "rmse": math.sqrt(12.5)}
    assert res["subsets"]["ternary"] == {"n": 1, "mae": 12.0, "rmse": 12.0}


def test_subset_errors_masks_may_overlap_and_scale_converts_units():
    y_true = np.array([0.0, 0.0, 0.0, 0.0])
    y_pred = np.array([0.5, -0.25, 0.0, 1.5])  # eV/atom
    masks = {"icsd": np.array([True, False, True, True]), "all_but_last": np.arange(4) < 3}
    res = subset_errors(y_true, y_pred, masks, scale=1000.0)  # meV/atom
    # errors in meV/atom: 500, -250, 0, 1500
    assert res["all"] == {"n": 4, "mae": 562.5, "rmse": math.sqrt(2_562_500 / 4)}
    icsd = res["subsets"]["icsd"]
    assert (icsd["n"], icsd["mae"]) == (3, 2000.0 / 3)
    assert icsd["rmse"] == pytest.approx(math.sqrt(2_500_000 / 3), rel=1e-15)
    assert res["subsets"]["all_but_last"]["mae"] == 250.0


def test_subset_errors_rejects_bad_groups():
    with pytest.raises(ValueError, match="boolean mask"):
        subset_errors([1.0, 2.0], [1.0, 2.0], {"x": [1, 0]})
    with pytest.raises(ValueError, match="3 labels for 2"):
        subset_errors([1.0, 2.0], [1.0, 2.0], ["a", "b", "c"])
    with pytest.raises(ValueError, match="y_pred has 1"):
        error_stats([1.0, 2.0], [1.0])
    empty = error_stats([], [])
    assert empty["n"] == 0 and math.isnan(empty["mae"])


# -- bootstrap -------------------------------------------------------------------------------
def _bootstrap_loop(errors: np.ndarray, n_resamples: int, q: float, seed: int) -> float:
    """Reference: one resample at a time."""
    rng = np.random.default_rng(seed)
    e = np.abs(errors)
    maes = [np.mean(e[rng.integers(0, len(e), size=len(e))]) for _ in range(n_resamples)]
    return float(np.percentile(maes, q))


@pytest.mark.parametrize("chunk", [None, 1, 7, 1000])
def test_bootstrap_equals_a_direct_loop_for_any_chunk(chunk):
    errors = np.random.default_rng(5).normal(0.0, 0.03, size=37)
    want = _bootstrap_loop(errors, 300, 95.0, seed=3)
    assert bootstrap_mae_percentile(errors, 300, 95.0, seed=3, chunk=chunk) == want


def test_bootstrap_percentiles_by_enumeration():
    # |errors| = {0, 1}: a resample's MAE is 0, 1/2 or 1 with probabilities 1/4, 1/2, 1/4, so the
    # 95th percentile is 1 and the median 1/2 (far from the boundaries at 10,000 resamples).
    errors = np.array([0.0, -1.0])
    assert bootstrap_mae_percentile(errors, 10_000, 95.0, seed=0) == 1.0
    assert bootstrap_mae_percentile(errors, 10_000, 50.0, seed=0) == 0.5
    assert bootstrap_mae_percentile(np.full(6, -0.25), 1000, 95.0, seed=1) == 0.25


def test_bootstrap_rejects_bad_input():
    with pytest.raises(ValueError, match="empty"):
        bootstrap_mae_percentile([])
    with pytest.raises(ValueError, match="NaN"):
        bootstrap_mae_percentile([1.0, np.nan])
    with pytest.raises(ValueError, match="n_resamples"):
        bootstrap_mae_percentile([1.0], n_resamples=0)
    with pytest.raises(ValueError, match=r"\[0, 100\]"):
        bootstrap_mae_percentile([1.0], q=101)


# -- ground-state ranking --------------------------------------------------------------------
# Composition A: ML picks a1, DFT a2 (wrong, ΔE = −0.75 − (−1.0) = 0.25); B: both b1 (right);
# C: one candidate. Rows are interleaved to check the grouping.
TABLE = [
    ("B", "b2", -1.5, -2.0),
    ("A", "a1", -1.0, -0.875),
    ("C", "c1", 0.125, 0.375),
    ("A", "a3", -0.5, -0.25),
    ("B", "b1", -2.0, -2.5),
    ("A", "a2", -0.75, -1.125),
]


def _rank(table=TABLE, **kw):
    comp, cand, e_ml, e_ref = (np.array(c) for c in zip(*table, strict=True))
    return ground_state_ranking(comp, cand, e_ml.astype(float), e_ref.astype(float), **kw)


def test_ground_state_ranking_hand_made_table():
    res = _rank()
    per = res["per_composition"]
    assert per["composition"].tolist() == ["A", "B", "C"]
    assert per["n_candidates"].tolist() == [3, 2, 1]
    assert per["ml_ground_state"].tolist() == ["a1", "b1", "c1"]
    assert per["dft_ground_state"].tolist() == ["a2", "b1", "c1"]
    assert per["delta_e"].tolist() == [0.25, 0.0, 0.0]
    assert per["correct"].tolist() == [False, True, True]
    assert per["gs_energy_error"].tolist() == [0.125, 0.5, 0.25]
    assert res["n_compositions"] == 3
    assert res["n_correct"] == 2
    assert res["random_expectation"] == 1 / 3 + 1 / 2 + 1
    assert res["mad"] == 0.25 / 3
    assert res["max_delta_e"] == 0.25
    assert res["mean_delta_e_wrong"] == 0.25
    assert res["gs_energy_mae"] == 0.875 / 3


def test_ground_state_energy_error_other_definition():
    res = _rank(gs_energy_error="dft_ground_state")  # |E_ML(G_DFT) − E_DFT(G_DFT)|
    assert res["per_composition"]["gs_energy_error"].tolist() == [0.375, 0.5, 0.25]
    assert res["gs_energy_mae"] == 1.125 / 3
    with pytest.raises(ValueError, match="gs_energy_error"):
        _rank(gs_energy_error="mean")


def test_ground_state_ranking_all_correct_and_ties():
    table = [("X", "x1", -1.0, -2.0), ("X", "x2", -1.0, -1.0), ("Y", "y1", 0.5, 0.0)]
    res = _rank(table)
    # ML tie between x1 and x2: the first row wins, which is also the DFT minimum.
    assert res["per_composition"]["ml_ground_state"].tolist() == ["x1", "y1"]
    assert res["n_correct"] == 2 and res["max_delta_e"] == 0.0
    assert math.isnan(res["mean_delta_e_wrong"])


def test_delta_e_is_zero_exactly_when_correct_on_random_tables():
    rng = np.random.default_rng(0)
    comp = rng.integers(0, 40, size=300)
    e_ref = rng.normal(size=300)
    e_ml = e_ref + rng.normal(scale=0.5, size=300)
    res = ground_state_ranking(comp, np.arange(300), e_ml, e_ref)
    per = res["per_composition"]
    assert np.all(per["delta_e"] >= 0)
    assert np.all(per["delta_e"][per["correct"]] == 0)
    assert np.all(per["delta_e"][~per["correct"]] > 0)
    sizes = np.bincount(comp)
    assert res["random_expectation"] == pytest.approx(np.sum(1 / sizes[sizes > 0]), rel=1e-15)
    assert res["n_compositions"] == int(np.count_nonzero(sizes))


def test_ground_state_ranking_rejects_mismatched_input():
    with pytest.raises(ValueError, match="candidate_id has shape"):
        ground_state_ranking(["A", "A"], ["a"], [0.0, 1.0], [0.0, 1.0])
    with pytest.raises(ValueError, match="finite"):
        ground_state_ranking(["A"], ["a"], [np.nan], [0.0])
