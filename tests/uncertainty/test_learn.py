"""``deepatoms learn`` on a tiny Cu cell with EMT: two rounds, a kill and resume, and no frame
labelled twice."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from cli_helpers import invoke, last_json
from deepatoms.data.dataset import read_dataset

pytestmark = pytest.mark.filterwarnings("ignore:The number of training batches")
ARGS = ["learn", "--bulk", "Cu", "--size", "4", "--initial", "8", "--test", "10",
        "--ensemble", "2", "--max-epochs", "3", "--temperatures", "300,1500", "--steps", "20",
        "--interval", "5", "--explorers", "2", "--trust-low", "0.0", "--trust-high", "100",
        "--per-round", "3", "--set", "model.n_atom_basis=8", "--set", "model.n_interactions=1",
        "--set", "train.batch_size=4"]  # fmt: skip


def _ids(path) -> list[str]:
    return read_dataset(path)[0].system_props["frame_id"].tolist()


def test_two_rounds_label_new_frames_and_log_them(tmp_path):
    out = tmp_path / "al"
    res = last_json(invoke(*ARGS, "--rounds", "2", "--out", out, "--quiet", "--json").stdout)
    rounds = res["rounds"]
    assert [r["round"] for r in rounds] == [0, 1]
    assert rounds[0]["labels"] == 8 and rounds[1]["labels"] == 8 + rounds[0]["selected"]
    assert rounds[0]["selected"] == 3 and rounds[0]["explored"] >= 3
    for r in rounds:
        assert np.isfinite(r["test_energy_mae"]) and np.isfinite(r["test_force_mae"])
    ids = _ids(out / "labelled.h5")
    assert len(ids) == len(set(ids)) == res["n_labels"] == 8 + 3 + 3
    assert (out / "error_vs_labels.png").is_file()
    assert len((out / "rounds.jsonl").read_text().splitlines()) == 2
    settings = json.loads((out / "settings.json").read_text())
    del settings["min_bond_ratio"]  # as a run folder of an earlier version, before that setting
    (out / "settings.json").write_text(json.dumps(settings))
    again = last_json(invoke(*ARGS, "--rounds", "2", "--out", out, "--quiet", "--json").stdout)
    assert again["n_labels"] == res["n_labels"]  # nothing left to do
    assert json.loads((out / "settings.json").read_text())["min_bond_ratio"] == 0.6
    res = invoke(*ARGS[:-1], "train.batch_size=2", "--rounds", "2", "--out", out, code=2)
    assert "other settings" in res.stderr


def test_a_killed_loop_resumes_and_never_labels_a_frame_twice(tmp_path):
    out = tmp_path / "al"
    cmd = [sys.executable, "-m", "deepatoms.cli", *ARGS, "--rounds", "3", "--out", str(out),
           "--quiet"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 300
    while not (out / "round_1" / "committee").exists() and time.monotonic() < deadline:
        assert proc.poll() is None, "the loop ended before it was killed"
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (out / "round_0" / "record.json").is_file()
    res = last_json(invoke(*ARGS, "--rounds", "3", "--out", out, "--quiet", "--json").stdout)
    assert [r["round"] for r in res["rounds"]] == [0, 1, 2]
    ids = _ids(out / "labelled.h5")
    assert len(ids) == len(set(ids)) == 8 + 3 * 3
    selected = [i for r in res["rounds"] for i in r["selected_ids"]]
    assert len(selected) == len(set(selected)) == 9
    log = [json.loads(x) for x in (out / "rounds.jsonl").read_text().splitlines()]
    assert [r["labels"] for r in log] == [8, 11, 14]


def test_rattle_exploration_labels_rattled_frames(tmp_path):
    out = tmp_path / "al"
    res = last_json(invoke(*ARGS, "--explore", "rattle", "--rattle", "0.1", "--rounds", "1",
                           "--out", out, "--quiet", "--json").stdout)  # fmt: skip
    (r,) = res["rounds"]
    assert r["explored"] == 2 * (20 // 5) and r["selected"] == 3
    assert all(i.startswith("r0/rattle") for i in r["selected_ids"])
    assert _ids(out / "labelled.h5")[-3:] == r["selected_ids"]


def test_selection_draws_among_the_candidates_between_the_trust_levels():
    from deepatoms.workflows.learn import _select

    d = np.arange(101) / 100  # d_max 0.00, 0.01, …, 1.00
    frames = [{"id": f"f{k}", "score": float(x)} for k, x in enumerate(d)]
    s = {
        "select": "deviation",
        "trust_low": 0.2,
        "trust_high": 0.8,
        "per_round": 10,
        "seed": 3,
        "potential": True,
    }
    chosen = _select(frames, s, 0)
    assert len(chosen) == 10 and len({f["id"] for f in chosen}) == 10
    assert all(0.2 <= f["score"] <= 0.8 for f in chosen)
    assert [f["id"] for f in _select(frames, s, 0)] == [f["id"] for f in chosen]  # seeded
    top = {f"f{k}" for k in range(71, 81)}  # the ten largest candidates (0.71 … 0.80)
    assert {f["id"] for f in chosen} != top  # drawn among all candidates, not the largest
    assert {f["id"] for f in _select(frames, s, 1)} != {f["id"] for f in chosen}  # per round
    few = _select(frames, {**s, "trust_low": 0.945, "trust_high": 0.985}, 0)
    assert [f["score"] for f in few] == [0.95, 0.96, 0.97, 0.98]  # fewer than the cap: all
    largest = _select(frames, {**s, "select": "largest"}, 0)  # up to the upper level only
    assert [f["id"] for f in largest] == [f"f{k}" for k in range(80, 70, -1)]
    rnd = _select(frames, {**s, "select": "random"}, 0)
    assert len(rnd) == 10 and any(not 0.2 <= f["score"] <= 0.8 for f in rnd)


def test_a_frame_the_reference_fails_on_is_left_out_with_its_reason(monkeypatch):
    from ase.build import bulk
    from ase.calculators.calculator import CalculationFailed
    from ase.calculators.emt import EMT

    import deepatoms.simulate.reference as reference
    from deepatoms.distribute.cluster import on_cluster
    from deepatoms.workflows.learn import Reference, _label

    class Picky(EMT):  # fails, like an unconverged xTB SCF, on a cell with a far-moved atom
        def calculate(self, atoms=None, properties=("energy",), system_changes=()):
            if atoms is not None and atoms.positions[0, 0] > 1.0:
                raise CalculationFailed("SCF not converged in 250 cycles")
            super().calculate(atoms, properties, system_changes)

    monkeypatch.setattr(reference, "make_calculator", lambda *a, **k: (Picky(), {}))
    frames = [bulk("Cu", cubic=True) for _ in range(3)]
    frames[1].positions[0, 0] += 1.5
    with on_cluster(1, None, progress=False) as cluster:
        packed, failed = _label(frames, ["a", "b", "c"], Reference("emt"), cluster)
    assert failed == {"b": "CalculationFailed: SCF not converged in 250 cycles"}
    assert packed.system_props["frame_id"].tolist() == ["a", "c"]
    assert np.allclose(packed.system_props["energy"], [EMT().get_potential_energy(frames[0])] * 2)
    with on_cluster(1, None, progress=False) as cluster:
        assert _label(frames[1:2], ["b"], Reference("emt"), cluster) == (None, failed)


def test_exploration_md_stops_where_atoms_collapse(tmp_path):
    """A committee (untrained members) that holds two Cu atoms 1.2 Å apart: its MD run records
    no frame and names the collapsed one; without the check (ratio 0) the same run records
    frames; a sound cell records frames either way."""
    import torch
    from ase.build import bulk

    from deepatoms.data.neighbors import GraphSpec
    from deepatoms.models.committee import Committee
    from deepatoms.models.registry import build_model
    from deepatoms.workflows.learn import _explore_md
    from model_helpers import save_committee

    members = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        members.append(build_model({"name": "schnet", "n_atom_basis": 8, "n_interactions": 1,
                                    "cutoff": 4.0, "property": "energy"}))  # fmt: skip
    model = save_committee(tmp_path / "c.pt", Committee(members),
                           GraphSpec(kind="cutoff", cutoff=4.0), [29])  # fmt: skip
    sound = bulk("Cu", cubic=True)
    collapsed = sound.copy()
    collapsed.positions[1] = [3.61 - 1.2, 0.0, 0.0]  # 1.2 Å from atom 0's image

    def run(start, ratio):
        return _explore_md([("r0/e0", start)], str(model), 300.0, 10, 5, 1.0, math.inf,
                           (0, 0), ratio)  # fmt: skip

    (stop,) = run(collapsed, 0.6)
    assert stop["id"] == "r0/e0/T300/5" and "atoms" not in stop
    assert "below 0.6 × the covalent radii" in stop["unphysical"]
    unchecked = run(collapsed, 0.0)
    assert [f["id"] for f in unchecked] == ["r0/e0/T300/5", "r0/e0/T300/10"]
    assert all("unphysical" not in f for f in unchecked)
    assert [f["id"] for f in run(sound, 0.6)] == ["r0/e0/T300/5", "r0/e0/T300/10"]


def test_collapsed_pool_frames_are_never_labelled(tmp_path):
    """Pool frames with collapsed atoms go to neither the test set, the start nor the labels;
    the round's record names them."""
    import ase.io
    from ase.build import bulk

    rng = np.random.default_rng(1)
    frames = []
    for k in range(24):
        a = bulk("Cu", cubic=True)
        a.positions += rng.normal(0.0, 0.08, a.positions.shape)
        if k % 6 == 0:  # frames 0, 6, 12, 18: atom 1 fallen onto atom 0
            a.positions[1] = a.positions[0] + [0.9, 0.0, 0.0]
        frames.append(a)
    ase.io.write(tmp_path / "pool.extxyz", frames)
    out = tmp_path / "al"
    res = last_json(invoke("learn", "--pool", tmp_path / "pool.extxyz", "--initial", "4",
                           "--test", "4", "--ensemble", "2", "--max-epochs", "2",
                           "--per-round", "20", "--trust-low", "0", "--trust-high", "1e9",
                           "--rounds", "1", "--set", "model.n_atom_basis=8",
                           "--set", "model.n_interactions=1", "--out", out, "--quiet",
                           "--json").stdout)  # fmt: skip
    bad = {"pool/0", "pool/6", "pool/12", "pool/18"}
    (r,) = res["rounds"]
    assert set(r["unphysical"]) == bad
    assert r["explored"] == 24 - 4 - 4 - 4 and r["selected"] == r["explored"]
    used = set(_ids(out / "labelled.h5")) | set(_ids(out / "test.h5"))
    assert len(used) == 20 and not used & bad
