"""Fixed-length-feature baselines for the latent regressors (Paper D
Tables II and III), with scikit-learn.

Features
  * ``morgan`` (QM9 analogue): RDKit Morgan fingerprints, radius 2, 2,048 bits (0/1);
  * ``polymer`` (Paper D): :func:`deepatoms.grammar.polymer.polymer_features`, 13 + 10 + 24 + 552
    = 599 entries.
  Features are used as they are (no scaling).

Models
  * ``ridge``: ``RidgeCV`` over β ∈ {0.0001, 0.00072, 0.00518, 0.0373, 0.268, 1.93, 13.9, 100}
    chosen by 10-fold inner CV (Paper D Table II);
  * ``mlp``: ``MLPRegressor`` hidden (100, 100, 50), tanh, L-BFGS, L2 β = 10⁻⁴. Paper D quotes
    early stopping on 10 %, but scikit-learn applies ``early_stopping`` only to the adam and sgd
    solvers: with L-BFGS (Default) training stops at scikit-learn's ``max_iter`` (200) or on
    convergence, with no validation split. ``mlp_solver="adam"`` uses adam with scikit-learn's
    early stopping on 10 % of the training fold instead;
  * ``rf``: ``RandomForestRegressor`` with scikit-learn defaults (100 trees, every feature tried
    at each split), seeded. ``rf_max_features`` changes the features tried per split (a fraction
    or ``sqrt``/``log2``); 1/3 is Breiman's rule for regression and about 3× faster on 2,048
    fingerprint bits. Paper D does not state its random-forest settings.

Evaluation: k-fold CV (default 5, shuffled with ``seed``); the MAE of a model and property is
mean |y − ŷ| over all out-of-fold predictions (rows with a NaN label are skipped), reported in
meV in the layout of Paper D Table III (:func:`format_mae_table`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "BASELINE_MODELS",
    "FEATURE_KINDS",
    "RIDGE_ALPHAS",
    "cross_validate",
    "cv_folds",
    "format_mae_table",
    "make_model",
    "morgan_features",
    "string_features",
]

#: Ridge regularisation grid β of Paper D Table II.
RIDGE_ALPHAS = (0.0001, 0.00072, 0.00518, 0.0373, 0.268, 1.93, 13.9, 100.0)
#: Baseline model names → row labels of Paper D Table III.
BASELINE_MODELS = {"ridge": "Linear", "mlp": "MLP", "rf": "Random forest"}
#: Feature kinds → "Input feature" labels of Table III.
FEATURE_KINDS = {"morgan": "Morgan fingerprint", "polymer": "Fixed length"}
#: Column headers of Table III for known properties.
_PROPERTY_LABELS = {"homo": "ε_HOMO", "lumo": "ε_LUMO", "gap": "ε_gap", "opt": "ε_opt"}


def morgan_features(
    smiles: Sequence[str],
    radius: int = 2,
    n_bits: int = 2048,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Morgan fingerprint bits [N, n_bits] (uint8) of SMILES strings (RDKit, ``radius`` bonds).

    Raises ValueError naming the index and string of an unparseable SMILES.
    """
    from rdkit import Chem, rdBase
    from rdkit.Chem import rdFingerprintGenerator

    gen = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=n_bits)
    out = np.zeros((len(smiles), n_bits), np.uint8)
    step = max(1, len(smiles) // 100)
    for i, s in enumerate(smiles):
        with rdBase.BlockLogs():
            mol = Chem.MolFromSmiles(s)
        if mol is None:
            raise ValueError(
                f"SMILES {i} ({s!r}) is not valid for RDKit; Morgan features need valid SMILES "
                "(remove the row or use --features polymer for polymer strings)"
            )
        out[i] = gen.GetFingerprintAsNumPy(mol)
        if progress is not None and ((i + 1) % step == 0 or i + 1 == len(smiles)):
            progress(i + 1, len(smiles))
    return out


def string_features(
    strings: Sequence[str], kind: str, progress: Callable[[int, int], None] | None = None
) -> np.ndarray:
    """Fixed-length features [N, F] of ``kind`` ``"morgan"`` (F = 2048) or ``"polymer"``
    (F = 599) for ``strings``."""
    if kind == "morgan":
        return morgan_features(strings, progress=progress)
    if kind == "polymer":
        from deepatoms.grammar.polymer import polymer_features

        return np.asarray(polymer_features(list(strings))[0], float)
    raise ValueError(f"unknown feature kind {kind!r}; choose one of {sorted(FEATURE_KINDS)}")


def make_model(
    name: str,
    seed: int = 0,
    mlp_solver: str = "lbfgs",
    n_jobs: int = 1,
    rf_max_features: float | str = 1.0,
) -> Any:
    """An unfitted scikit-learn regressor ``ridge``, ``mlp`` or ``rf`` with the §9 settings."""
    if name == "ridge":
        from sklearn.linear_model import RidgeCV

        return RidgeCV(alphas=RIDGE_ALPHAS, cv=10)
    if name == "mlp":
        from sklearn.neural_network import MLPRegressor

        if mlp_solver not in ("lbfgs", "adam", "sgd"):
            raise ValueError(f"unknown MLP solver {mlp_solver!r}; choose lbfgs, adam or sgd")
        return MLPRegressor(
            hidden_layer_sizes=(100, 100, 50),
            activation="tanh",
            solver=mlp_solver,
            alpha=1e-4,
            early_stopping=mlp_solver != "lbfgs",
            validation_fraction=0.1,
            random_state=seed,
        )
    if name == "rf":
        from sklearn.ensemble import RandomForestRegressor

        named = isinstance(rf_max_features, str)
        if (named and rf_max_features not in ("sqrt", "log2")) or (
            not named and not 0.0 < float(rf_max_features) <= 1.0
        ):
            raise ValueError(
                f"random-forest max features must be a fraction in (0, 1], sqrt or log2; got "
                f"{rf_max_features!r}"
            )
        return RandomForestRegressor(random_state=seed, n_jobs=n_jobs, max_features=rf_max_features)
    raise ValueError(f"unknown baseline model {name!r}; choose from {sorted(BASELINE_MODELS)}")


def cv_folds(n: int, k: int = 5, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``k`` shuffled (train, test) index pairs over ``range(n)``: the test sets are disjoint
    and cover every index once (scikit-learn ``KFold``)."""
    from sklearn.model_selection import KFold

    if k < 2:
        raise ValueError(f"cross-validation needs at least 2 folds, got {k}")
    if n < k:
        raise ValueError(
            f"{n} rows cannot be split into {k} folds; use --folds {max(2, n)} or less"
        )
    kf = KFold(n_splits=k, shuffle=True, random_state=seed)
    return [(tr.astype(np.int64), te.astype(np.int64)) for tr, te in kf.split(np.arange(n))]


def cross_validate(
    features: np.ndarray, targets: Mapping[str, np.ndarray],
    models: Sequence[str] = ("ridge", "mlp", "rf"), folds: int = 5, seed: int = 0,
    mlp_solver: str = "lbfgs", n_jobs: int = 1, progress: Callable[[int, int], None] | None = None,
    rf_max_features: float | str = 1.0,
) -> dict[str, dict[str, dict[str, Any]]]:  # fmt: skip
    """k-fold CV of each baseline model on each property.

    Returns ``{model: {property: {"mae": eV, "fold_mae": [eV per fold], "n": rows}}}``; the MAE
    is over all out-of-fold predictions of rows with a finite label. ``progress(done, total)``
    counts fitted models.
    """
    x = np.asarray(features)
    for name in models:
        if name not in BASELINE_MODELS:
            raise ValueError(
                f"unknown baseline model {name!r}; choose from {list(BASELINE_MODELS)}"
            )
    for prop, y in targets.items():
        if len(y) != len(x):
            raise ValueError(f"property {prop!r} has {len(y)} values for {len(x)} feature rows")
    total, done = len(models) * len(targets) * folds, 0
    results: dict[str, dict[str, dict[str, Any]]] = {m: {} for m in models}
    for prop, y in targets.items():
        y = np.asarray(y, float)
        rows = np.flatnonzero(np.isfinite(y))
        split = cv_folds(len(rows), folds, seed)
        for name in models:
            abs_err = np.empty(len(rows))
            fold_mae = []
            for tr, te in split:
                model = make_model(name, seed, mlp_solver, n_jobs, rf_max_features)
                with warnings.catch_warnings():  # L-BFGS stops at max_iter by design (docstring)
                    warnings.simplefilter("ignore")
                    model.fit(x[rows[tr]], y[rows[tr]])
                err = np.abs(model.predict(x[rows[te]]) - y[rows[te]])
                abs_err[te] = err
                fold_mae.append(float(err.mean()))
                done += 1
                if progress is not None:
                    progress(done, total)
            results[name][prop] = {"mae": float(abs_err.mean()), "fold_mae": fold_mae,
                                   "n": len(rows)}  # fmt: skip
    return results


def format_mae_table(results: Mapping[str, Mapping[str, Mapping[str, Any]]], features: str) -> str:
    """Markdown table of test MAEs in meV (rounded), rows = models, in the layout of Paper D
    Table III: ``| Model | Input feature | ε_HOMO | ε_LUMO | … |``."""
    props: list[str] = []
    for per_prop in results.values():
        props += [p for p in per_prop if p not in props]
    label = FEATURE_KINDS.get(features, features)
    head = ["Model", "Input feature"] + [_PROPERTY_LABELS.get(p, p) for p in props]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, per_prop in results.items():
        cells = [BASELINE_MODELS.get(name, name), label]
        for p in props:
            r = per_prop.get(p)
            cells.append(f"{1000 * r['mae']:.0f}" if r is not None else "")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
