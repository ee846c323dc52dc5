"""Fixed-length-feature baselines (docs/grammar_vae.md §9) on tiny synthetic sets."""

from __future__ import annotations

import numpy as np
import pytest

from deepatoms.design.baselines import (
    RIDGE_ALPHAS,
    cross_validate,
    cv_folds,
    format_mae_table,
    make_model,
    morgan_features,
)


def test_cv_folds_are_disjoint_and_cover_the_data():
    folds = cv_folds(23, 5, seed=1)
    assert len(folds) == 5
    tests = [te for _, te in folds]
    assert sorted(len(t) for t in tests) == [4, 4, 5, 5, 5]
    np.testing.assert_array_equal(np.sort(np.concatenate(tests)), np.arange(23))
    for train, test in folds:
        assert not set(train) & set(test)
        np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(23))
    assert not np.array_equal(tests[0], np.arange(len(tests[0])))  # shuffled
    again = cv_folds(23, 5, seed=1)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again, strict=True))
    with pytest.raises(ValueError, match="3 rows cannot be split into 5 folds"):
        cv_folds(3, 5)


def test_ridge_recovers_a_linear_function():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 4))
    w = np.array([0.5, -1.0, 2.0, 0.25])
    res = cross_validate(x, {"y": x @ w + 0.3}, models=["ridge"], folds=5)
    assert res["ridge"]["y"]["n"] == 80 and len(res["ridge"]["y"]["fold_mae"]) == 5
    assert res["ridge"]["y"]["mae"] < 1e-4  # β = 1e-4 is picked; only its shrinkage remains
    ridge = make_model("ridge").fit(x, x @ w + 0.3)
    assert ridge.alpha_ == RIDGE_ALPHAS[0]
    np.testing.assert_allclose(ridge.coef_, w, atol=1e-5)


def test_all_models_run_and_nan_labels_are_skipped():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 3))
    y = np.tanh(x[:, 0]) + 0.1 * x[:, 1]
    y_nan = y.copy()
    y_nan[:5] = np.nan
    done = []
    res = cross_validate(x, {"y": y, "z": y_nan}, folds=3, progress=lambda d, t: done.append(t))
    assert set(res) == {"ridge", "mlp", "rf"}
    assert res["rf"]["z"]["n"] == 55 and res["mlp"]["y"]["n"] == 60
    assert all(np.isfinite(res[m][p]["mae"]) for m in res for p in ("y", "z"))
    assert len(done) == 3 * 2 * 3  # models × properties × folds
    mlp = make_model("mlp")
    assert (mlp.hidden_layer_sizes, mlp.activation, mlp.solver, mlp.alpha) == (
        (100, 100, 50), "tanh", "lbfgs", 1e-4,
    )  # fmt: skip
    assert make_model("mlp", mlp_solver="adam").early_stopping


def test_mae_table_format():
    results = {
        "ridge": {"homo": {"mae": 0.0781}, "lumo": {"mae": 0.0514}},
        "rf": {"homo": {"mae": 0.0822}, "lumo": {"mae": 0.0518}},
    }
    assert format_mae_table(results, "polymer").splitlines() == [
        "| Model | Input feature | ε_HOMO | ε_LUMO |",
        "|---|---|---|---|",
        "| Linear | Fixed length | 78 | 51 |",
        "| Random forest | Fixed length | 82 | 52 |",
    ]


def test_morgan_features():
    from rdkit import Chem
    from rdkit.Chem import rdFingerprintGenerator

    x = morgan_features(["CCO", "C#N", "CCO"])
    assert x.shape == (3, 2048) and x.dtype == np.uint8
    np.testing.assert_array_equal(x[0], x[2])
    gen = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)
    on = set(gen.GetFingerprint(Chem.MolFromSmiles("C#N")).GetOnBits())
    assert set(np.flatnonzero(x[1])) == on
    with pytest.raises(ValueError, match=r"SMILES 1 \('C\(C'\) is not valid"):
        morgan_features(["C", "C(C"])


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match="unknown baseline model 'svm'"):
        make_model("svm")
    with pytest.raises(ValueError, match="unknown baseline model 'svm'"):
        cross_validate(np.zeros((10, 2)), {"y": np.zeros(10)}, models=["svm"])


def test_random_forest_features_per_split():
    assert make_model("rf").max_features == 1.0  # scikit-learn's default: every feature
    assert make_model("rf", rf_max_features=0.333).max_features == 0.333
    assert make_model("rf", rf_max_features="sqrt").max_features == "sqrt"
    for bad in (0.0, 1.5, "half"):
        with pytest.raises(ValueError, match="fraction in \\(0, 1\\], sqrt or log2"):
            make_model("rf", rf_max_features=bad)
