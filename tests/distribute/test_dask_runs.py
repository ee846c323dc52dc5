"""Chunked work on a 2-worker Dask ``LocalCluster`` equals the serial run; a killed worker or a
killed command loses and repeats nothing (issue: scale-out)."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from cli_helpers import invoke, last_json
from deepatoms.data.dataset import read_dataset
from deepatoms.data.neighbors import GraphSpec
from deepatoms.datagen.infinite_crystal import generate_infinite_crystal
from deepatoms.datagen.scaled_qm9 import generate_scaled_qm9
from deepatoms.models.registry import build_model
from deepatoms.workflows.datagen import reference_md
from deepatoms.workflows.screening import screen
from model_helpers import save_atomistic

distributed = pytest.importorskip("distributed")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")


def assert_same_data(a_path, b_path) -> None:
    a, _ = read_dataset(a_path)
    b, _ = read_dataset(b_path)
    assert len(a) == len(b) and a.property_names == b.property_names
    np.testing.assert_array_equal(a.numbers, b.numbers)
    np.testing.assert_array_equal(a.positions, b.positions)
    np.testing.assert_array_equal(a.cell, b.cell)
    for k in a.system_props:
        np.testing.assert_array_equal(a.system_props[k], b.system_props[k], err_msg=k)
    for k in a.atom_props:
        np.testing.assert_array_equal(a.atom_props[k], b.atom_props[k], err_msg=k)


def test_md_replicas_on_two_workers_equal_the_serial_run_bitwise(tmp_path):
    kw = {"bulk": "Cu", "size": 4, "frames": 10, "stride": 2, "equilibration": 4, "replicas": 3,
          "progress": False}  # fmt: skip
    serial = reference_md(tmp_path / "serial.h5", **kw)
    par = reference_md(tmp_path / "par.h5", workers=2, **kw)
    assert (serial["workers"], par["workers"]) == (1, 2)
    assert_same_data(tmp_path / "serial.h5", tmp_path / "par.h5")
    _, meta = read_dataset(tmp_path / "par.h5")
    assert meta["provenance"]["md"]["frames_per_replica"] == [4, 3, 3]
    assert not (tmp_path / "par.h5.parts").exists()
    one = reference_md(tmp_path / "one.h5", **{**kw, "replicas": 1})
    assert one["n_systems"] == 10  # one replica is the plain trajectory of the seed


def test_scaled_qm9_with_xtb_on_two_workers_equals_the_serial_run_bitwise(tmp_path):
    kw = {"molecules": 4, "scales": "0.95,1.05", "flush_every": 1, "progress": False}
    generate_scaled_qm9(tmp_path / "serial.h5", **kw)
    res = generate_scaled_qm9(tmp_path / "par.h5", workers=2, **kw)
    assert res["complete"] and res["workers"] == 2 and res["n_new"] == 4
    assert_same_data(tmp_path / "serial.h5", tmp_path / "par.h5")


def _ranking(folder: Path) -> list[dict]:
    with open(folder / "ranking.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_screen_on_two_workers_equals_the_serial_screen(tmp_path):
    cfg = {"name": "schnet", "n_atom_basis": 8, "n_interactions": 1, "readout": "mean",
           "property": "formation_energy_per_atom", "head": {"zero_init_last": False}}  # fmt: skip
    model = save_atomistic(tmp_path / "m.pt", build_model(cfg), GraphSpec(), "eV/atom",
                           meta={"elements": [13, 28, 29, 47, 79]})  # fmt: skip
    kw = {"elements": "Al,Cu,Ni,Ag,Au", "arity": [2], "max_atoms": 4, "progress": False,
          "chunk": 40}  # fmt: skip
    serial = screen(model, tmp_path / "serial", **kw)
    par = screen(model, tmp_path / "par", workers=2, **kw)
    assert par["workers"] == 2 and par["n_candidates"] == serial["n_candidates"] > 100
    a, b = _ranking(tmp_path / "serial"), _ranking(tmp_path / "par")
    assert [r["candidate_id"] for r in a] == [r["candidate_id"] for r in b]
    assert [r["rank"] for r in a] == [r["rank"] for r in b]
    ea = np.array([float(r["predicted_eV_per_atom"]) for r in a])
    eb = np.array([float(r["predicted_eV_per_atom"]) for r in b])
    np.testing.assert_allclose(ea, eb, atol=2e-6)
    assert len(set(ea.round(6))) > 10  # the model is not constant
    assert not (tmp_path / "par" / ".parts").exists()


def test_a_worker_killed_mid_run_loses_and_repeats_no_item(tmp_path):
    """Kill one of two worker processes after the first chunk is stored: the scheduler runs its
    chunk elsewhere and the dataset holds every cell exactly once, as the serial run."""
    kw = {"elements": ["Cu", "Al"], "points": 600, "chunk": 30, "progress": False}
    generate_infinite_crystal(tmp_path / "serial.h5", **kw)
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0")
    killed: list[int] = []

    def kill_one_worker() -> None:
        parts = tmp_path / "par.h5.parts"
        deadline = time.monotonic() + 120
        while not list(parts.glob("chunk-*.part")) and time.monotonic() < deadline:
            time.sleep(0.02)
        with distributed.Client(cluster.scheduler_address, timeout=30) as client:
            pids = client.run(os.getpid)
            pid = sorted(pids.values())[0]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    try:
        killer = threading.Thread(target=kill_one_worker)
        killer.start()
        res = generate_infinite_crystal(tmp_path / "par.h5", scheduler=cluster.scheduler_address,
                                        **kw)  # fmt: skip
        killer.join()
    finally:
        cluster.close()
    assert killed, "no worker was killed"
    assert res["complete"] and res["n_new"] == 1200
    data, _ = read_dataset(tmp_path / "par.h5")
    sp = data.system_props
    keys = list(zip(sp["group"].tolist(), sp["scale"].tolist(), strict=True))
    expected, written = 1200, len(keys)
    duplicated = written - len(set(keys))
    lost = expected - len(set(keys))
    assert (written, duplicated, lost) == (expected, 0, 0)
    assert_same_data(tmp_path / "serial.h5", tmp_path / "par.h5")


def test_a_killed_command_resumes_with_the_missing_chunks_only(tmp_path):
    """SIGKILL `deepatoms datagen crystal` after a few chunks; the same command continues and
    the result equals an uninterrupted run."""
    args = ["datagen", "crystal", "--elements", "Cu,Al", "--points", "1500", "--chunk", "50"]
    out = tmp_path / "cut.h5"
    parts = tmp_path / "cut.h5.parts"
    proc = subprocess.Popen(
        [sys.executable, "-m", "deepatoms.cli", *args, "--out", str(out), "--quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while len(list(parts.glob("chunk-*.part"))) < 3 and time.monotonic() < deadline:
        assert proc.poll() is None, "the command ended before it was killed"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = len(list(parts.glob("chunk-*.part")))
    assert before >= 3 and not out.exists() and not list(parts.glob(".*.tmp"))
    summary = last_json(invoke(*args, "--out", out, "--quiet", "--json").stdout)
    assert summary["complete"] and summary["n_skipped"] >= 150
    assert summary["n_skipped"] + summary["n_new"] == 3000
    assert not parts.exists()
    invoke(*args, "--out", tmp_path / "whole.h5", "--quiet")
    assert_same_data(tmp_path / "whole.h5", out)


def test_predict_of_a_potential_on_two_workers_equals_serial_and_resumes(tmp_path):
    """Energies, forces and stress of 30 Cu frames on 2 workers agree with the serial run; a
    serial run stopped after its first chunk continues from the chunk folder."""
    from deepatoms.workflows.evaluation import predict

    frames = tmp_path / "frames.h5"
    reference_md(frames, bulk="Cu", size=4, frames=30, stride=1, equilibration=2, progress=False)
    from ase.io import write

    data, _ = read_dataset(frames)
    write(tmp_path / "frames.extxyz", [data.get_atoms(k) for k in range(len(data))])
    cfg = {"name": "schnet", "n_atom_basis": 8, "n_interactions": 1, "property": "energy",
           "head": {"zero_init_last": False}}  # fmt: skip
    model = save_atomistic(tmp_path / "pot.pt", build_model(cfg), GraphSpec(kind="cutoff"), "eV",
                           meta={"elements": [29], "stats": {"forces": {"mean": 0.0}}})  # fmt: skip
    inputs = [tmp_path / "frames.extxyz"]
    serial = predict(model, inputs, tmp_path / "serial.csv", progress=False, chunk=7)
    assert "forces" in serial and "stress" in serial
    par = predict(model, inputs, tmp_path / "par.csv", progress=False, chunk=7, workers=2)
    np.testing.assert_allclose(par["predicted"], serial["predicted"], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.concatenate(par["forces"]), np.concatenate(serial["forces"]),
                               atol=1e-6)  # fmt: skip
    np.testing.assert_allclose(par["stress"], serial["stress"], rtol=1e-5, atol=1e-7)  # float32

    def stop_after_first_chunk(done, total):
        if done >= 7:
            raise KeyboardInterrupt

    from deepatoms.workflows import evaluation

    with pytest.raises(KeyboardInterrupt):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(evaluation, "ProgressBar", lambda *a, **k: _Stopper(stop_after_first_chunk))
            predict(model, inputs, tmp_path / "cut.csv", chunk=7)
    assert [p.name for p in sorted((tmp_path / "cut.csv.parts").glob("chunk-*"))] == [
        "chunk-000000000-000000007.part"
    ]
    again = predict(model, inputs, tmp_path / "cut.csv", progress=False, chunk=7)
    np.testing.assert_allclose(again["predicted"], serial["predicted"], rtol=1e-12)
    assert not (tmp_path / "cut.csv.parts").exists()
    assert (tmp_path / "cut.csv").read_text() == (tmp_path / "serial.csv").read_text()


class _Stopper:
    """A progress bar stand-in that calls ``fn(done, total)``."""

    def __init__(self, fn):
        self.fn = fn

    def __enter__(self):
        return self.fn

    def __exit__(self, *exc):
        return False


def test_gschnet_sampling_on_two_workers_equals_the_serial_run(tmp_path):
    """Chunks of molecules carry their own seeds: 3 chunks on 2 workers give the molecules of
    the serial run, in order; the chunk count does not depend on the workers."""
    import torch
    from ase.io import read

    from deepatoms.generate.steps import ALL_PAIRS
    from deepatoms.workflows.generation import generate_gschnet

    torch.manual_seed(0)
    model = build_model({"name": "gschnet", "n_atom_basis": 8, "n_interactions": 1,
                         "type_head": [8], "distance_head": [16]})  # fmt: skip
    path = save_atomistic(tmp_path / "model.pt", model, ALL_PAIRS, "")
    kw = {"max_atoms": 12, "seed": 2, "chunk": 4, "progress": False}
    serial = generate_gschnet(path, 12, tmp_path / "serial.xyz", **kw)
    par = generate_gschnet(path, 12, tmp_path / "par.xyz", workers=2, **kw)
    assert par["workers"] == 2 and serial["finished"] == par["finished"] > 0
    for key in ("discarded_cap", "discarded_nan", "steps", "placements"):
        assert serial[key] == par[key], key
    a, b = read(tmp_path / "serial.xyz", ":"), read(tmp_path / "par.xyz", ":")
    assert [m.info["index"] for m in a] == [m.info["index"] for m in b]
    for x, y in zip(a, b, strict=True):
        assert list(x.numbers) == list(y.numbers)
        np.testing.assert_allclose(x.positions, y.positions, atol=1e-6)
    assert not (tmp_path / "par.xyz.parts").exists()


def test_prototype_relaxations_on_two_workers_equal_the_serial_files(tmp_path):
    """Chunks of relaxations arrive in any order; the finished files are in enumeration order
    and equal those of the serial run."""
    args = ["datagen", "prototypes", "--elements", "Cu,Au", "--arity", "1,2", "--prototypes",
            "A1,A2,A3,L1_2,B2,L1_0", "--flush-every", "2", "--quiet"]  # fmt: skip
    invoke(*args, "--out", tmp_path / "serial")
    invoke(*args, "--out", tmp_path / "par", "--workers", "2")
    for name in ("initial.h5", "relaxed.h5"):
        assert_same_data(tmp_path / "serial" / name, tmp_path / "par" / name)
