"""``deepatoms learn`` on a candidate pool: potentials scored by force deviation, property models
by energy std; a calculator given from Python; and the errors for inputs that cannot work."""

from __future__ import annotations

import json

import ase.io
import numpy as np
import pytest
from ase.build import bulk, molecule
from ase.calculators.emt import EMT

from cli_helpers import invoke, last_json
from deepatoms.core.errors import DeepatomsError
from deepatoms.data.dataset import read_dataset, write_dataset
from deepatoms.data.packed import PackedSystems
from deepatoms.workflows.evaluation import predict
from deepatoms.workflows.learn import learn

pytestmark = pytest.mark.filterwarnings("ignore:The number of training batches")
TINY = ["model.n_atom_basis=8", "model.n_interactions=1"]


def _ids(path) -> list[str]:
    return read_dataset(path)[0].system_props["frame_id"].tolist()


@pytest.fixture
def cu_pool(tmp_path):
    """30 rattled 4-atom Cu cells as an extxyz file."""
    rng = np.random.default_rng(0)
    frames = []
    for _ in range(30):
        a = bulk("Cu", cubic=True)
        a.positions += rng.normal(0.0, 0.1, a.positions.shape)
        frames.append(a)
    path = tmp_path / "pool.extxyz"
    ase.io.write(path, frames)
    return path


def test_a_potential_learns_from_a_pool_without_labelling_test_or_start_frames(tmp_path, cu_pool):
    out = tmp_path / "al"
    args = ["learn", "--pool", cu_pool, "--initial", "6", "--test", "5", "--rounds", "2",
            "--ensemble", "2", "--max-epochs", "2", "--trust-low", "0", "--trust-high", "100",
            "--per-round", "4", "--out", out, "--quiet", "--json"]  # fmt: skip
    for item in TINY:
        args += ["--set", item]
    res = last_json(invoke(*args).stdout)
    test, start = set(_ids(out / "test.h5")), _ids(out / "labelled.h5")[:6]
    assert read_dataset(out / "test.h5")[1]["units"]["stress"] == "eV/Å^3"  # periodic: stress too
    assert len(test) == 5 and len(set(start)) == 6 and not test & set(start)
    assert all(i.startswith("pool/") for i in test | set(start))
    r0, r1 = res["rounds"]
    assert r0["explored"] == 30 - 5 - 6 and r1["explored"] == 30 - 5 - 6 - 4
    assert r0["score"] == "max_force_deviation [eV/Å]" and r0["candidates"] == r0["explored"]
    selected = r0["selected_ids"] + r1["selected_ids"]
    assert len(selected) == len(set(selected)) == 8 and not set(selected) & (test | set(start))
    settings = json.loads((out / "settings.json").read_text())
    assert settings["calculator"] == "emt" and settings["explore"] == "pool"
    # the scores are the round's committee's maximum force deviations
    explored = json.loads((out / "round_0" / "explored.json").read_text())
    frames = ase.io.read(cu_pool, index=":")
    some = [frames[int(i.split("/")[1])] for i in explored["ids"][:4]]
    d_max = predict(out / "round_0" / "committee", some, progress=False)["max_force_deviation"]
    assert np.allclose(explored["scores"][:4], d_max, rtol=1e-5) and max(d_max) > 0
    # labels are EMT's for the pool's own structures
    labelled, _ = read_dataset(out / "labelled.h5")
    k = int(selected[0].split("/")[1])
    row = _ids(out / "labelled.h5").index(selected[0])
    assert labelled.system_props["energy"][row] == pytest.approx(
        EMT().get_potential_energy(frames[k]), abs=1e-9
    )


def test_a_property_model_picks_the_largest_energy_std_of_the_pool(tmp_path):
    names = ["CH4", "NH3", "H2O", "C2H2", "C2H4", "C2H6", "HCN", "CH3OH", "CH3CH2OH", "CH3CHO",
             "HCOOH", "CH3COOH", "CH3CN", "H2CO", "CH3OCH3", "C3H8", "CH3CONH2", "CH2OCH2"]  # fmt: skip
    pool = PackedSystems.from_atoms([molecule(n) for n in names])
    write_dataset(tmp_path / "pool.h5", pool, {"units": {}, "source": "test", "provenance": {}})
    res = learn(tmp_path / "al", preset="schnet-fast", pool=tmp_path / "pool.h5",
                calculator="emt", initial=6, test=4, rounds=1, ensemble=2, max_epochs=2,
                per_round=3, overrides=TINY, progress=False)  # fmt: skip
    (r0,) = res["rounds"]
    assert r0["test_force_mae"] is None and np.isfinite(r0["test_energy_mae"])
    assert r0["score"] == "energy std [eV]" and r0["explored"] == len(names) - 10
    explored = json.loads((tmp_path / "al" / "round_0" / "explored.json").read_text())
    top = sorted(explored["scores"], reverse=True)[:3]
    assert r0["selected_scores"] == top and res["n_labels"] == 6 + 3
    summary = json.loads((tmp_path / "al" / "round_0" / "committee" / "members" / "0"
                          / "summary.json").read_text())  # fmt: skip
    assert summary["target"] == "energy" and summary.get("forces") is None


def test_a_calculator_object_from_python_labels_the_frames(tmp_path, cu_pool):
    res = learn(tmp_path / "al", pool=cu_pool, calculator=EMT(), initial=5, test=4, rounds=1,
                ensemble=2, max_epochs=1, trust_low=0.0, trust_high=100.0, per_round=2,
                overrides=TINY, progress=False)  # fmt: skip
    settings = json.loads((tmp_path / "al" / "settings.json").read_text())
    assert settings["calculator"] == "python:ase.calculators.emt.EMT"
    assert res["n_labels"] == 5 + 2


def test_inputs_that_cannot_work_get_one_clear_error(tmp_path, cu_pool):
    with pytest.raises(DeepatomsError, match="property model"):
        learn(tmp_path / "a", preset="schnet-fast", molecule="H2O", progress=False)
    with pytest.raises(DeepatomsError, match="--explore pool needs --pool"):
        learn(tmp_path / "b", pool=cu_pool, explore="md", progress=False)
    with pytest.raises(DeepatomsError, match="too few"):
        learn(tmp_path / "c", pool=cu_pool, initial=20, test=10, progress=False)
    assert not (tmp_path / "c").exists()  # nothing half-written: a corrected rerun may use it
    with pytest.raises(DeepatomsError, match="give one of --molecule, --bulk"):
        learn(tmp_path / "d", molecule="H2O", bulk="Cu", progress=False)
    for bad, flag in (
        ({"ensemble": 1}, "--ensemble"),
        ({"test": 0}, "--test"),
        ({"initial": 1}, "--initial"),
        ({"per_round": 0}, "--per-round"),
    ):
        with pytest.raises(DeepatomsError, match=f"{flag} must be an integer"):
            learn(tmp_path / "h", pool=cu_pool, progress=False, **bad)
    assert not (tmp_path / "h").exists()
    for ratio in (-0.1, 1.0, "0.6"):
        with pytest.raises(DeepatomsError, match="--min-bond-ratio must be ≥ 0 and < 1"):
            learn(tmp_path / "i", pool=cu_pool, min_bond_ratio=ratio, progress=False)
    assert not (tmp_path / "i").exists()
    with pytest.raises(DeepatomsError, match="give the system"):
        learn(tmp_path / "e", progress=False)
    (tmp_path / "junk.xyz").write_text("not a structure\n")
    with pytest.raises(DeepatomsError, match="cannot read the candidate pool"):
        learn(tmp_path / "f", pool=tmp_path / "junk.xyz", progress=False)
    nolabels = PackedSystems.from_atoms([bulk("Cu", cubic=True)] * 3,
                                        system_props={"energy": np.zeros(3)})  # fmt: skip
    write_dataset(
        tmp_path / "noforces.h5",
        nolabels,
        {"units": {"energy": "eV"}, "source": "test", "provenance": {}},
    )
    with pytest.raises(DeepatomsError, match="no forces labels"):
        learn(tmp_path / "g", data=tmp_path / "noforces.h5", test=2, progress=False)
    assert not (tmp_path / "g").exists()


def test_learn_from_a_structure_file_on_the_command_line(tmp_path):
    path = tmp_path / "cu.cif"
    ase.io.write(path, bulk("Cu", cubic=True))
    out = tmp_path / "al"
    invoke("learn", "--structure", path, "--initial", "4", "--test", "4", "--rounds", "1",
           "--ensemble", "2", "--max-epochs", "1", "--temperatures", "300", "--steps", "10",
           "--interval", "5", "--explorers", "1", "--trust-low", "0", "--trust-high", "100",
           "--per-round", "1", "--set", TINY[0], "--set", TINY[1], "--out", out, "--quiet")  # fmt: skip
    settings = json.loads((out / "settings.json").read_text())
    assert settings["calculator"] == "emt" and settings["structure"] == str(path)
    assert len(_ids(out / "labelled.h5")) == 4 + 1


def test_on_two_dask_workers_the_loop_labels_what_the_serial_loop_labels(tmp_path, cu_pool):
    kw = dict(pool=cu_pool, calculator=EMT(), initial=5, test=4, rounds=2, ensemble=2,
              max_epochs=1, trust_low=0.0, trust_high=100.0, per_round=3, overrides=TINY,
              progress=False)  # fmt: skip
    serial = learn(tmp_path / "serial", **kw)
    parallel = learn(tmp_path / "parallel", workers=2, **kw)
    assert [r["selected_ids"] for r in parallel["rounds"]] == [
        r["selected_ids"] for r in serial["rounds"]
    ]
    a, _ = read_dataset(tmp_path / "serial" / "labelled.h5")
    b, _ = read_dataset(tmp_path / "parallel" / "labelled.h5")
    assert a.system_props["frame_id"].tolist() == b.system_props["frame_id"].tolist()
    assert np.array_equal(a.system_props["energy"], b.system_props["energy"])
    assert np.array_equal(a.atom_props["forces"], b.atom_props["forces"])
