"""Energy-curve metrics on hand-made arrays (docs/vimpnn.md §7)."""

from __future__ import annotations

import numpy as np
import pytest

from deepatoms.analysis.curve_metrics import (
    dense_grid,
    dsc,
    dsc_summary,
    error_summary,
    errors_by_label,
    errors_by_size,
    reference_minima,
)

STEP = 0.005


def test_error_summary_exact_values():
    ref = np.array([-10.0, -20.0, 4.0, -5.0])
    pred = np.array([-9.0, -22.0, 4.0, -5.5])
    res = error_summary(pred, ref)
    ae = np.array([1.0, 2.0, 0.0, 0.5])
    assert res["n"] == 4
    assert res["mae"] == pytest.approx(0.875)
    assert res["mae_std"] == pytest.approx(np.sqrt(np.mean((ae - 0.875) ** 2)))
    assert res["mse"] == pytest.approx((1 + 4 + 0 + 0.25) / 4)
    re = np.array([0.1, 0.1, 0.0, 0.1])
    assert res["re"] == pytest.approx(0.075)
    assert res["re_std"] == pytest.approx(np.std(re))


def test_error_summary_zero_label_and_shape_errors():
    assert np.isnan(error_summary([1.0], [0.0])["re"])
    with pytest.raises(ValueError, match="pred has 2 values but ref has 1"):
        error_summary([1.0, 2.0], [1.0])


def test_dense_grid_default():
    g = dense_grid()
    assert len(g) == 121
    assert g[0] == 0.9 and g[-1] == 1.5 and 1.0 in g
    assert np.allclose(np.diff(g), STEP)
    with pytest.raises(ValueError, match="step must be > 0"):
        dense_grid(0.9, 1.5, 0.0)


def test_dsc_of_parabola_with_minimum_at_1_1():
    g = dense_grid()
    e = 3.0 * (g - 1.1) ** 2 - 7.0
    assert float(dsc(g, e)) == pytest.approx(0.1, abs=STEP / 2)


def _morse(r, r0=1.0, d=0.8, a=1.7):
    return d * (1 - np.exp(-a * (r - r0))) ** 2 - d


def _lj(r, r0=1.0, eps=0.3):  # minimum at r = 2^(1/6) σ = r0
    sigma = r0 * 2 ** (-1 / 6)
    return 4 * eps * ((sigma / r) ** 12 - (sigma / r) ** 6)


@pytest.mark.parametrize("pair", [_morse, _lj])
def test_dsc_exact_on_analytic_pair_curves(pair):
    # dimers with bond length 1.3 Å at s = 1: E(s) = V(1.3 s) with the pair minimum at 1.3 Å
    # (minimum at s = 1) and at 1.3·s* Å (minimum at s* = 1.23)
    g = dense_grid()
    s_star = 1.23
    curves = np.stack([pair(1.3 * g, 1.3), pair(1.3 * g, 1.3 * s_star)])
    d = dsc(g, curves)
    assert d.shape == (2,)
    assert d[0] <= STEP / 2
    assert abs(d[1] - (s_star - 1.0)) <= STEP / 2
    # against its own s_eq per curve, and in Å (× bond length)
    d_own = dsc(g, curves, s_eq=[1.0, s_star], length=[1.3, 2.0])
    assert d_own[0] <= 1.3 * STEP / 2 and d_own[1] <= 2.0 * STEP / 2


def test_dsc_checks_shapes_and_nan():
    g = dense_grid()
    with pytest.raises(ValueError, match="G = 121"):
        dsc(g, np.zeros((2, 5)))
    e = np.zeros((2, len(g)))
    e[1, 3] = np.nan
    with pytest.raises(ValueError, match=r"curves \[1\]"):
        dsc(g, e)


def test_dsc_summary_and_reference_minima():
    assert dsc_summary([0.1, 0.3]) == pytest.approx({"n": 2, "dsc": 0.2, "dsc_std": 0.1})
    groups = np.array([5, 5, 5, 2, 2])
    scales = np.array([0.9, 1.1, 1.0, 1.2, 0.9])
    energy = np.array([-1.0, -2.0, -3.0, -4.0, -1.0])
    ids, s_min = reference_minima(groups, scales, energy)
    assert ids.tolist() == [2, 5] and s_min.tolist() == [1.2, 1.0]


def test_errors_by_size_distinct_sizes_and_bins():
    n = np.array([3, 3, 5, 9, 10])
    ref = np.zeros(5)
    pred = np.array([1.0, 3.0, -2.0, 4.0, 6.0])
    t = errors_by_size(n, pred, ref)
    assert t["lo"].tolist() == [3, 5, 9, 10] and t["hi"].tolist() == [3, 5, 9, 10]
    assert t["n"].tolist() == [2, 1, 1, 1]
    assert t["mae"].tolist() == [2.0, 2.0, 4.0, 6.0]
    assert t["mae_std"][0] == pytest.approx(1.0)
    b = errors_by_size(n, pred, ref, bins=[0, 5, 10])
    assert b["lo"].tolist() == [0, 5] and b["n"].tolist() == [2, 3]  # 10 falls in the last bin
    assert b["mae"].tolist() == [2.0, 4.0]


def test_errors_by_label():
    res = errors_by_label(["Cu", "Al", "Cu"], [1.0, 2.0, 4.0], [2.0, 2.0, 2.0])
    assert list(res) == ["Al", "Cu"]
    assert res["Al"]["mae"] == 0.0 and res["Cu"]["mae"] == 1.5 and res["Cu"]["n"] == 2
