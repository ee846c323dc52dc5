"""Two-process training (Lightning DDP on CPU with gloo) through the one protocol, and its
resume.

The command line is run as a user runs it; Lightning starts the second process. Checks: one run
folder written by rank 0 only (one result printed), a finite loss, validation errors summed
over both processes (the logged best validation MAE equals ``evaluate`` of the exported model
on the whole validation split), and agreement with a one-process run at equal total batch
(2 × 8 against 1 × 16 molecules per step, the same optimiser steps): the same result up to
float rounding.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

EXE = str(Path(sys.executable).parent / "deepatoms")
TINY = ["model.n_atom_basis=16", "model.n_interactions=1", "data.n_train=48", "data.n_val=20",
        "train.lr=1e-3"]  # fmt: skip


def _train(data: str, out: Path, *extra: str, epochs: int = 4) -> dict:
    args = [EXE, "train", "--preset", "schnet-fast", "--data", data, "--target", "U0", "--out",
            str(out), "--max-epochs", str(epochs), "--seed", "3", "--json", "--quiet",
            *[a for s in TINY for a in ("--set", s)], *extra]  # fmt: skip
    proc = subprocess.run(args, capture_output=True, text=True, timeout=600,
                          env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert len(results) == 1, proc.stdout  # only rank 0 reports
    return json.loads(results[0])


def test_two_cpu_processes_train_one_run(qm9_small, tmp_path):
    ddp = _train(qm9_small, tmp_path / "ddp", "--accelerator", "cpu", "--devices", "2",
                 "--strategy", "ddp", "--set", "train.batch_size=8")  # fmt: skip
    single = _train(qm9_small, tmp_path / "one", "--set", "train.batch_size=16")
    assert ddp["epochs"] == single["epochs"] == 4
    assert ddp["steps"] == single["steps"]  # 48 molecules: 3 steps of 2 × 8 or of 16
    assert math.isfinite(ddp["best_val_mae"])
    run = tmp_path / "ddp"
    assert sorted(p.name for p in run.iterdir() if p.is_file()) == sorted(
        p.name for p in (tmp_path / "one").iterdir() if p.is_file()
    )
    with open(run / "metrics.csv") as fh:
        val_rows = [ln for ln in fh.read().splitlines()[1:] if ln.split(",")[0] != ""]
    assert len([r for r in val_rows if r]) >= 4
    # the validation errors are summed over both processes: the whole split, once
    ev = subprocess.run([EXE, "evaluate", str(run), "--split", "val", "--json", "-q"],
                        capture_output=True, text=True, timeout=300)  # fmt: skip
    assert ev.returncode == 0, ev.stderr
    evaluated = json.loads(ev.stdout.strip().splitlines()[-1])
    assert evaluated["n"] == 20
    assert evaluated["mae"] == pytest.approx(ddp["best_val_mae"], rel=1e-4)
    # rank r takes batches r, r + 2, … of the epoch's permutation, so the two processes' batches
    # of 8 at one step are the one process's batch of 16: the same averaged gradient, the same
    # training up to float rounding (tolerance 1e-3 relative)
    assert ddp["best_val_mae"] == pytest.approx(single["best_val_mae"], rel=1e-3)


def test_a_two_process_run_resumes(qm9_small, tmp_path):
    ddp = ["--accelerator", "cpu", "--devices", "2", "--strategy", "ddp",
           "--set", "train.batch_size=8"]  # fmt: skip
    first = _train(qm9_small, tmp_path / "run", *ddp, epochs=2)
    assert not first["resumed"] and first["epochs"] == 2
    more = _train(qm9_small, tmp_path / "run", *ddp, epochs=3)
    assert more["resumed"] and more["epochs"] == 3 and more["steps"] == 9


@pytest.mark.parametrize("precision", ["32", "bf16-mixed"])
def test_precision_option(qm9_small, tmp_path, precision):
    from cli_helpers import invoke, last_json

    res = invoke("train", "--preset", "schnet-fast", "--data", qm9_small, "--target", "U0",
                 "--out", tmp_path / "run", "--max-epochs", "1", "--precision", precision,
                 "--json", "-q", *[a for s in TINY for a in ("--set", s)])  # fmt: skip
    summary = last_json(res.stdout)
    assert math.isfinite(summary["best_val_mae"])
    config = (tmp_path / "run" / "config.yaml").read_text()
    assert f"precision: {precision}" in config or f"precision: '{precision}'" in config
