"""QM9 SMILES table, string-table CSV writing and design windows (docs/grammar_vae.md §7)."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from deepatoms.design.qm9_smiles import (
    QM9_DESIGN_TARGETS,
    QM9_DESIGN_WINDOWS,
    in_windows,
    qm9_smiles_table,
    window_fractions,
    write_table_csv,
)


def test_window_fractions_exact_on_hand_made_values():
    values = {
        "lumo": np.array([-1.0, 0.0, -0.5, 0.1, -2.0, np.nan, -0.3, -0.7]),
        "gap": np.array([4.0, 6.0, 7.0, 5.0, 5.0, 5.0, 3.9, 4.5]),
    }
    fr = window_fractions(values, QM9_DESIGN_WINDOWS)
    # lumo in [-1, 0] (bounds included, NaN out): rows 0, 1, 2, 6, 7
    # gap in [4, 6]: rows 0, 1, 3, 4, 5, 7; both: rows 0, 1, 7
    assert fr == {"lumo": 5 / 8, "gap": 6 / 8, "all": 3 / 8, "n": 8}
    masks = in_windows(values, QM9_DESIGN_WINDOWS)
    assert np.flatnonzero(masks["all"]).tolist() == [0, 1, 7]
    assert QM9_DESIGN_TARGETS == {"lumo": -0.5, "gap": 5.0}


def test_window_errors_name_the_problem():
    with pytest.raises(ValueError, match=r"no values for window\(s\) \['opt'\]"):
        window_fractions({"lumo": np.zeros(2)}, {"opt": (1.4, 1.7)})
    with pytest.raises(ValueError, match=r"lower bound 1\.0 is above the upper bound 0\.0"):
        in_windows({"lumo": np.zeros(2)}, {"lumo": (1.0, 0.0)})


@pytest.fixture(scope="module")
def qm9_table() -> dict[str, np.ndarray]:
    """All 130,831 QM9 SMILES (about 5 s on one core)."""
    return qm9_smiles_table(progress=False)


def test_qm9_window_fractions_of_the_spec(qm9_table):
    """25.0 % LUMO in [-1, 0] eV, 27.6 % gap in [4, 6] eV, 12.3 % both (docs/grammar_vae.md §7)."""
    fr = window_fractions(qm9_table, QM9_DESIGN_WINDOWS)
    assert fr["n"] == 130_831
    assert round(100 * fr["lumo"], 1) == 25.0
    assert round(100 * fr["gap"], 1) == 27.6
    assert round(100 * fr["all"], 1) == 12.3


def test_qm9_table_columns_units_and_split(qm9_table):
    assert list(qm9_table) == ["string", "homo", "lumo", "gap", "qm9_index", "split"]
    # methane, QM9 index 1: HOMO -0.3877, LUMO 0.1171, gap 0.5048 Ha (qm9pack CSV)
    assert qm9_table["string"][0] == "C" and qm9_table["qm9_index"][0] == 1
    assert qm9_table["homo"][0] == -0.3877 * 27.211386
    assert qm9_table["lumo"][0] == 0.1171 * 27.211386
    assert qm9_table["gap"][0] == 0.5048 * 27.211386
    sizes = {s: int((qm9_table["split"] == s).sum()) for s in ("train", "val", "test")}
    assert sizes == {"train": 104_665, "val": 13_083, "test": 13_083}  # 80/10/10


def test_write_table_csv_round_trips_floats(tmp_path):
    path = tmp_path / "t.csv"
    n = write_table_csv(path, {"string": ["C", "CO"], "lumo": [0.1 + 0.2, np.nan],
                               "flag": [True, False]})  # fmt: skip
    assert n == 2
    rows = list(csv.DictReader(path.open()))
    assert rows[0] == {"string": "C", "lumo": repr(0.1 + 0.2), "flag": "1"}
    assert float(rows[0]["lumo"]) == 0.1 + 0.2 and rows[1]["lumo"] == ""
    with pytest.raises(ValueError, match="different lengths"):
        write_table_csv(path, {"a": [1], "b": [1, 2]})
