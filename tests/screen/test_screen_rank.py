"""Ranking logic with hand-made energies and an injected fake predictor; CSV and ASE db output."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from ase.db import connect

from deepatoms.data.prototypes.library import load_aflow_prototypes, select_prototypes
from deepatoms.data.prototypes.substitution import CandidateSpace, CompositionRequest
from deepatoms.screen.output import CSV_COLUMNS, write_best_db, write_ranking_csv
from deepatoms.screen.rank import (
    ground_state_delta,
    predict_candidates,
    rank_candidates,
    rank_energies,
)
from deepatoms.screen.run import run_screen

# Hand-made predicted (ML) and reference (DFT) energies, eV/atom, of the Cu–Au candidates on
# L1_2, D0_3, B2 and L1_0. Per composition:
#   Cu3Au: ML min L1_2 (-0.30), DFT min L1_2 → correct, ΔE = 0
#   CuAu3: ML min D0_3 (-0.10), DFT min L1_2 → wrong, ΔE = E_ML(L1_2) − E_ML(D0_3) = 0.04
#   CuAu:  ML min B2 (-0.10), DFT min L1_0 → wrong, ΔE = -0.08 − (-0.10) = 0.02
ML = {
    "AB3_cP4_221_a_c:A=Au,B=Cu": -0.30,
    "AB3_cF16_225_a_bc:A=Au,B=Cu": -0.25,
    "AB3_cP4_221_a_c:A=Cu,B=Au": -0.06,
    "AB3_cF16_225_a_bc:A=Cu,B=Au": -0.10,
    "AB_cP2_221_b_a:A=Au,B=Cu": -0.10,
    "AB_tP2_123_a_d:A=Au,B=Cu": -0.08,
}
DFT = {
    "AB3_cP4_221_a_c:A=Au,B=Cu": -0.30,
    "AB3_cF16_225_a_bc:A=Au,B=Cu": 0.00,
    "AB3_cP4_221_a_c:A=Cu,B=Au": -0.20,
    "AB3_cF16_225_a_bc:A=Cu,B=Au": -0.05,
    "AB_cP2_221_b_a:A=Au,B=Cu": -0.05,
    "AB_tP2_123_a_d:A=Au,B=Cu": -0.20,
}


def fake_predictor(data, candidates, progress=None):
    """Looks energies up by candidate id; checks it was handed the matching structures."""
    assert len(data) == len(candidates)
    for k, c in enumerate(candidates):
        np.testing.assert_array_equal(data.get_atoms(k).numbers, c.numbers)
    return np.array([ML[c.candidate_id] for c in candidates])


@pytest.fixture(scope="module")
def space() -> CandidateSpace:
    protos = select_prototypes(load_aflow_prototypes(), ["L1_2", "D0_3", "B2", "L1_0"])
    return CandidateSpace(protos, CompositionRequest.parse("Cu,Au", 2))


def test_rank_table_by_hand():
    comp = np.array(["X", "Y", "X", "X", "Y"])
    energy = np.array([0.10, 0.50, -0.20, 0.00, 0.50])
    r = rank_energies(comp, energy, window=0.15)
    assert r.order.tolist() == [2, 3, 0, 1, 4]  # by composition, energy; ties: input order
    assert r.rank.tolist() == [1, 2, 3, 1, 2]
    np.testing.assert_allclose(r.gap, [0.0, 0.2, 0.3, 0.0, 0.0], atol=1e-15)
    assert r.flagged.tolist() == [True, False, False, True, True]
    assert r.n_candidates.tolist() == [3, 3, 3, 2, 2]
    # window 0 flags exactly the minima (and exact ties)
    assert rank_energies(comp, energy, 0.0).flagged.tolist() == [True, False, False, True, True]
    # integer composition codes work the same way
    assert rank_energies(np.array([5, 1, 5, 5, 1]), energy).order.tolist() == [1, 4, 2, 3, 0]
    with pytest.raises(ValueError, match="window must be zero or positive"):
        rank_energies(comp, energy, window=-0.01)
    with pytest.raises(ValueError, match="need one label per energy"):
        rank_energies(comp[:2], energy)
    with pytest.raises(ValueError, match="energies must be finite"):
        rank_energies(comp, np.array([0.0, np.nan, 0.0, 0.0, 0.0]))


def test_fake_predictor_ranking_and_ground_state_delta(space):
    assert len(space) == len(ML)
    done = []
    table = predict_candidates(
        space, fake_predictor, chunk=4, progress=lambda d, t: done.append((d, t))
    )
    assert done[-1] == (6, 6) and all(t == 6 for _, t in done)
    assert table.names.tolist() == ["Cu3Au", "CuAu", "CuAu3"]
    r = rank_candidates(table, window=0.03)
    rows = {row["candidate_id"]: row for row in r.rows()}
    assert [row["composition"] for row in r.rows()] == ["Cu3Au"] * 2 + ["CuAu"] * 2 + ["CuAu3"] * 2
    assert rows["AB3_cP4_221_a_c:A=Au,B=Cu"]["rank"] == 1
    assert rows["AB3_cF16_225_a_bc:A=Cu,B=Au"]["rank"] == 1
    assert rows["AB_cP2_221_b_a:A=Au,B=Cu"]["rank"] == 1
    assert rows["AB3_cF16_225_a_bc:A=Au,B=Cu"]["gap"] == pytest.approx(0.05)
    assert rows["AB_tP2_123_a_d:A=Au,B=Cu"]["gap"] == pytest.approx(0.02)
    assert rows["AB_tP2_123_a_d:A=Au,B=Cu"]["flagged"]  # 0.02 ≤ 0.03
    assert not rows["AB3_cP4_221_a_c:A=Cu,B=Au"]["flagged"]  # 0.04 > 0.03
    assert all(row["energy"] == ML[cid] for cid, row in rows.items())
    assert r.summary() == {
        "n_candidates": 6, "n_compositions": 3, "n_flagged": 4, "window_eV_per_atom": 0.03
    }  # fmt: skip
    assert [g["candidate_id"] for g in r.ground_states()] == [
        "AB3_cP4_221_a_c:A=Au,B=Cu", "AB_cP2_221_b_a:A=Au,B=Cu", "AB3_cF16_225_a_bc:A=Cu,B=Au"
    ]  # fmt: skip
    assert [g["n_flagged"] for g in r.ground_states()] == [1, 2, 1]

    gs = r.ground_state_delta(DFT)
    per = gs["per_composition"]
    assert per["composition"].tolist() == ["Cu3Au", "CuAu", "CuAu3"]
    np.testing.assert_allclose(per["delta_e"], [0.0, 0.02, 0.04], atol=1e-12)
    assert per["correct"].tolist() == [True, False, False]
    assert per["dft_ground_state"].tolist() == [
        "AB3_cP4_221_a_c:A=Au,B=Cu", "AB_tP2_123_a_d:A=Au,B=Cu", "AB3_cP4_221_a_c:A=Cu,B=Au"
    ]  # fmt: skip
    assert gs["n_correct"] == 1 and gs["random_expectation"] == pytest.approx(1.5)
    assert gs["mad"] == pytest.approx(0.02) and gs["max_delta_e"] == pytest.approx(0.04)
    assert gs["mean_delta_e_wrong"] == pytest.approx(0.03)
    assert gs["n_with_reference"] == 6 and gs["n_without_reference"] == 0
    # candidates without a reference are left out; none at all is an error
    partial = r.ground_state_delta({k: v for k, v in DFT.items() if "cF16" not in k})
    assert partial["n_without_reference"] == 2 and partial["n_compositions"] == 3
    with pytest.raises(ValueError, match="no screened candidate has a reference"):
        r.ground_state_delta({"B2:x": 0.0})


def test_ground_state_delta_on_a_hand_table():
    comp = ["A", "A", "A", "B", "B"]
    ids = ["a1", "a2", "a3", "b1", "b2"]
    e_ml = [0.30, 0.10, 0.20, -0.5, -0.4]
    ref = {"a1": 0.0, "a2": -0.1, "a3": 0.1, "b1": 0.2, "b2": 0.1, "other": 9.0}
    gs = ground_state_delta(comp, ids, e_ml, ref)
    per = gs["per_composition"]
    assert per["delta_e"].tolist() == [0.0, pytest.approx(0.1)]  # A: exact 0, B: -0.4 - -0.5
    assert per["ml_ground_state"].tolist() == ["a2", "b1"]
    assert gs["n_correct"] == 1 and gs["random_expectation"] == pytest.approx(1 / 3 + 1 / 2)


def test_chunking_does_not_change_predictions(space):
    one = predict_candidates(space, fake_predictor, chunk=1)
    many = predict_candidates(space, fake_predictor, chunk=10_000)
    for name in ("prototype", "elements", "composition", "names", "n_atoms", "energy"):
        np.testing.assert_array_equal(getattr(one, name), getattr(many, name))
    assert one.candidate_ids().tolist() == [c.candidate_id for c in space]


def test_bad_predictors_are_caught(space):
    with pytest.raises(ValueError, match="returned 1 values for 6 candidates"):
        predict_candidates(space, lambda d, c, p=None: np.zeros(1))
    with pytest.raises(ValueError, match="non-finite energies for 6 candidates"):
        predict_candidates(space, lambda d, c, p=None: np.full(len(c), np.nan))


def test_csv_and_best_db(space, tmp_path):
    r = rank_candidates(predict_candidates(space, fake_predictor), window=0.03)
    write_ranking_csv(tmp_path / "ranking.csv", r)
    with open(tmp_path / "ranking.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == CSV_COLUMNS and len(rows) == 6
    first = rows[0]
    assert first["composition"] == "Cu3Au" and first["rank"] == "1" and first["flagged"] == "1"
    assert first["assignment"] == "A=Au,B=Cu" and float(first["predicted_eV_per_atom"]) == -0.3

    n = write_best_db(tmp_path / "best.db", r, top=1, metadata={"window": 0.03})
    assert n == 3
    db = connect(tmp_path / "best.db")
    assert db.metadata == {"window": 0.03}
    got = {row.candidate_id: row for row in db.select()}
    assert set(got) == {
        "AB3_cP4_221_a_c:A=Au,B=Cu", "AB3_cF16_225_a_bc:A=Cu,B=Au", "AB_cP2_221_b_a:A=Au,B=Cu"
    }  # fmt: skip
    row = got["AB_cP2_221_b_a:A=Au,B=Cu"]
    assert row.rank == 1 and row.predicted_energy == -0.10 and row.gap == 0.0 and row.flagged
    assert row.composition == "CuAu" and row.n_candidates == 2
    ref = space.from_id(row.candidate_id).atoms()
    np.testing.assert_allclose(row.toatoms().positions, ref.positions)
    assert row.toatoms().get_chemical_formula() == ref.get_chemical_formula()
    assert write_best_db(tmp_path / "best.db", r, top=0) == 0  # replaced, now empty
    assert len(list(connect(tmp_path / "best.db").select())) == 0


def test_run_screen_writes_all_files_and_refuses_to_overwrite(space, tmp_path):
    summary = run_screen(space, tmp_path / "out", fake_predictor, window=0.03, top=1,
                         model_info={"kind": "fake"})  # fmt: skip
    assert summary["n_candidates"] == 6 and summary["n_compositions"] == 3
    assert summary["n_best_rows"] == 3 and summary["n_flagged"] == 4
    assert len(summary["ground_states"]) == 3
    record = json.loads((tmp_path / "out" / "screen.json").read_text())
    assert record["model"] == {"kind": "fake"} and record["candidates"]["n_candidates"] == 6
    assert {"deepatoms", "ase", "pymatgen"} <= set(record["versions"])
    with pytest.raises(ValueError, match=r"already exist.*--overwrite"):
        run_screen(space, tmp_path / "out", fake_predictor)
    run_screen(space, tmp_path / "out", fake_predictor, overwrite=True, top=0)
