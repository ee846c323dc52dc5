"""Published test errors to compare a trained model with (the Schütt 2018 thesis and Paper A;
each entry names its table; docs/references.md).

MAE values as published, converted to the product's units (eV for energies; 1 kcal/mol =
0.0433641 eV). Each entry names the table and the training-set size it was obtained with.
"""

from __future__ import annotations

KCAL = 0.0433641  # eV per kcal/mol

# (model family, target) → list of (MAE in target units of deepatoms, n_train, source)
PUBLISHED_MAE: dict[tuple[str, str], list[tuple[float, int, str]]] = {
    ("schnet", "U0"): [(0.32 * KCAL, 110000, "Schütt 2018 thesis Table 4.2 (T=6)")],
    ("schnet", "U"): [(0.44 * KCAL, 110000, "Schütt 2018 thesis Table 4.2")],
    ("schnet", "H"): [(0.32 * KCAL, 110000, "Schütt 2018 thesis Table 4.2")],
    ("schnet", "G"): [(0.32 * KCAL, 110000, "Schütt 2018 thesis Table 4.2")],
    ("schnet", "homo"): [(0.95 * KCAL, 110000, "Schütt 2018 thesis Table 4.2")],
    ("schnet", "lumo"): [(0.78 * KCAL, 110000, "Schütt 2018 thesis Table 4.2")],
    ("schnet", "gap"): [(1.45 * KCAL, 110000, "Schütt 2018 thesis Table 4.2")],
    ("schnet", "zpve"): [(0.039 * KCAL, 110000, "Schütt 2018 thesis Table 4.2")],
    ("schnet", "mu"): [(0.033, 110000, "Schütt 2018 thesis Table 4.2")],
    ("schnet", "alpha"): [(0.235, 110000, "Schütt 2018 thesis Table 4.2")],
    ("schnet", "r2"): [(0.073, 110000, "Schütt 2018 thesis Table 4.2")],
    ("schnet", "Cv"): [(0.033, 110000, "Schütt 2018 thesis Table 4.2")],
    ("dtnn", "U0"): [
        (1.04 * KCAL, 25000, "Schütt 2018 thesis Table 3.1 (T=3)"),
        (0.94 * KCAL, 50000, "Schütt 2018 thesis Table 3.1 (T=3)"),
        (0.84 * KCAL, 100000, "Schütt 2018 thesis Table 3.1 (T=3)"),
    ],
    ("nmp_edge", "U0"): [(0.0105, 110000, "Jørgensen et al. Paper A Table 3")],
    ("nmp_edge", "U"): [(0.0106, 110000, "Paper A Table 3")],
    ("nmp_edge", "H"): [(0.0113, 110000, "Paper A Table 3")],
    ("nmp_edge", "G"): [(0.0122, 110000, "Paper A Table 3")],
    ("nmp_edge", "homo"): [(0.0367, 110000, "Paper A Table 3")],
    ("nmp_edge", "lumo"): [(0.0308, 110000, "Paper A Table 3")],
    ("nmp_edge", "gap"): [(0.0580, 110000, "Paper A Table 3")],
    ("nmp_edge", "zpve"): [(0.00149, 110000, "Paper A Table 3")],
    ("nmp_edge", "mu"): [(0.029, 110000, "Paper A Table 3")],
    ("nmp_edge", "alpha"): [(0.077, 110000, "Paper A Table 3")],
    ("nmp_edge", "r2"): [(0.072, 110000, "Paper A Table 3")],
    ("nmp_edge", "Cv"): [(0.032, 110000, "Paper A Table 3")],
}

_ALIASES = {"U0_atom": "U0", "U_atom": "U", "H_atom": "H", "G_atom": "G", "Cv_atom": "Cv"}


def published_references(model: str, target: str) -> list[dict]:
    """Published MAEs for ``model`` on QM9 ``target`` (empty if the papers give none)."""
    rows = PUBLISHED_MAE.get((model, _ALIASES.get(target, target)), [])
    return [{"mae": m, "n_train": n, "source": s} for m, n, s in rows]
