"""``deepatoms screen`` end to end: EMT prototype data → tiny trained model → ranked files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from ase.db import connect

from cli_helpers import invoke
from deepatoms.config.overrides import apply_overrides
from deepatoms.data.prototypes.library import load_aflow_prototypes, select_prototypes
from deepatoms.data.prototypes.substitution import CandidateSpace, CompositionRequest, pack
from deepatoms.datagen.prototypes import generate_prototype_set
from deepatoms.models.inference import predict_packed
from deepatoms.models.loading import load_model
from deepatoms.models.registry import load_preset
from deepatoms.train import fit as train

pytestmark = pytest.mark.filterwarnings("ignore:The number of training batches")
PROTOTYPES = ["A1", "A2", "A3", "L1_2", "L1_0", "B2", "D0_3", "D0_19"]


def flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """A small SchNet (mean readout) on EMT formation energies of the initial prototype
    structures of Cu, Ag, Au (33 candidates); returns (model.pt, relaxed.h5)."""
    folder = tmp_path_factory.mktemp("screen_model")
    generate_prototype_set(folder / "set", elements=["Cu", "Ag", "Au"], arities=[1, 2],
                           prototypes=PROTOTYPES)  # fmt: skip
    cfg = apply_overrides(
        load_preset("schnet-fast"),
        [
            "data.target=formation_energy_per_atom", "data.readout=mean", "data.n_train=26",
            "data.n_val=7", "model.n_atom_basis=16", "model.n_interactions=1",
            "train.max_epochs=3", "train.batch_size=13", "train.num_threads=1",
        ],
    )  # fmt: skip
    summary = train(cfg, folder / "set" / "initial.h5", folder / "run", progress=False)
    return Path(summary["model_file"]), folder / "set" / "relaxed.h5"


def test_screen_end_to_end(trained, tmp_path):
    model, reference = trained
    out = tmp_path / "screen"
    res = invoke("screen", model.parent, "--elements", "Au,Cu,Ag", "--arity", "2",
                 "--prototypes", "L1_2", "--prototypes", "L1_0,B2", "--prototypes", "D0_3",
                 "--window", "0.001", "--top", "2", "--chunk", "5", "--out", out,
                 "--reference", reference, "--json")  # fmt: skip
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    # 3 pairs × (L1_2: 2 orders, D0_3: 2, L1_0: 1, B2: 1) = 18 candidates, 9 compositions
    assert summary["n_candidates"] == 18 and summary["n_compositions"] == 9
    assert summary["n_best_rows"] == 18  # every composition has exactly 2 candidates
    assert "screened 18 candidates of 9 compositions on 4 prototypes" in flat(res.stdout)

    with open(out / "ranking.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 18
    # the CSV holds the model's predictions for the candidate structures, exactly
    protos = select_prototypes(load_aflow_prototypes(), ["L1_2", "L1_0", "B2", "D0_3"])
    space = CandidateSpace(protos, CompositionRequest.parse("Ag,Au,Cu", 2))
    cands = [space.from_id(r["candidate_id"]) for r in rows]
    expect = predict_packed(load_model(model), pack(cands))
    got = np.array([float(r["predicted_eV_per_atom"]) for r in rows])
    np.testing.assert_allclose(got, expect, atol=1e-6)
    # ranks and gaps per composition
    for comp in {r["composition"] for r in rows}:
        mine = [r for r in rows if r["composition"] == comp]
        energies = [float(r["predicted_eV_per_atom"]) for r in mine]
        assert [int(r["rank"]) for r in mine] == [1, 2] and energies == sorted(energies)
        assert float(mine[1]["gap_eV_per_atom"]) == pytest.approx(
            energies[1] - energies[0], abs=2e-6
        )
        assert [r["flagged"] for r in mine] == [
            "1",
            "1" if energies[1] - energies[0] <= 0.001 else "0",
        ]

    db_rows = list(connect(out / "best.db").select())
    assert len(db_rows) == 18 and {r.rank for r in db_rows} == {1, 2}
    assert connect(out / "best.db").metadata["model"]["property"] == "formation_energy_per_atom"

    record = json.loads((out / "screen.json").read_text())
    gs = record["summary"]["ground_state"]
    assert gs["n_compositions"] == 9 and gs["n_with_reference"] == 18
    assert gs["random_expectation"] == pytest.approx(4.5) and gs["max_delta_e"] >= 0.0
    assert record["model"]["readout"] == "mean" and not record["model"]["divided_by_atoms"]
    assert record["candidates"]["request"] == {"elements": ["Ag", "Au", "Cu"], "arity": [2],
                                               "stoichiometry": []}  # fmt: skip
    assert "ground state vs" in res.stdout


def test_screen_formulas_and_errors(trained, tmp_path):
    model, _ = trained
    out = tmp_path / "f"
    res = invoke("screen", model, "--formula", "CuAu,Cu3Au", "--prototypes", "aflow",
                 "--max-atoms", "4", "--out", out, "--quiet", "--json")  # fmt: skip
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["n_compositions"] == 2
    assert {g["composition"] for g in summary["ground_states"]} == {"CuAu", "Cu3Au"}

    res = invoke("screen", model, "--formula", "CuAu", "--out", out, code=2)
    assert "already exist" in flat(res.stderr) and "--overwrite" in flat(res.stderr)
    res = invoke("screen", model, "--elements", "Cu,Ni", "--out", tmp_path / "n", code=2)
    assert "never trained on Ni" in flat(res.stderr)
    res = invoke("screen", model, "--elements", "Cu,Au", "--arity", "3", "--out", tmp_path / "n",
                 code=2)  # fmt: skip
    assert "arity 3 needs at least 3 elements" in flat(res.stderr)
    res = invoke("screen", model, "--elements", "Cu,Au", "--prototypes", "L2_1",
                 "--out", tmp_path / "n", code=2)  # fmt: skip
    assert "no candidates" in flat(res.stderr)
    res = invoke("screen", tmp_path / "nope.pt", "--elements", "Cu,Au", "--out", tmp_path / "n",
                 code=2)  # fmt: skip
    assert "nope.pt does not exist; give a model file" in flat(res.stderr)
    assert not (tmp_path / "n").exists()
    assert "Usage" in invoke("screen", "--help").stdout
