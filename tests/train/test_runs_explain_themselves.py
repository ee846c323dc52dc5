"""A run says why it stopped, a rerun of a finished run says so and how to continue, only
settings that change the result block a resume, and a damaged last checkpoint falls back to the
best one."""

from __future__ import annotations

import json
import logging

from cli_helpers import invoke, last_json, one_line
from deepatoms.config.overrides import apply_overrides
from deepatoms.models.registry import load_preset
from deepatoms.train import fit

TINY = ["data.target=U0", "model.n_atom_basis=8", "model.n_interactions=1", "data.n_train=24",
        "data.n_val=8", "train.batch_size=8"]  # fmt: skip


def _cfg(*extra: str) -> dict:
    return apply_overrides(load_preset("schnet-fast"), [*TINY, *extra])


def test_a_finished_run_is_not_trained_again_and_says_how_to_continue(qm9_small, tmp_path):
    run = tmp_path / "run"
    first = fit(_cfg("train.max_epochs=2"), qm9_small, run, progress=False)
    assert first["stopped"] == "max_epochs"
    assert json.loads((run / "summary.json").read_text())["stopped"] == "max_epochs"
    args = ["train", "--preset", "schnet-fast", "--data", qm9_small, "--out", run,
            "--max-epochs", "2", *[a for s in TINY for a in ("--set", s)]]  # fmt: skip
    res = invoke(*args, "--json", "--quiet")
    summary = last_json(res.stdout)
    assert summary["already_finished"] and summary["epochs"] == 2
    assert "already finished (max_epochs after 2 epochs); nothing was trained" in one_line(
        res.stderr
    )
    assert "raise --max-epochs (was 2)" in one_line(res.stderr)
    # a speed-only setting does not block the resume; a higher limit continues the run
    more = invoke(*[a if a != "2" else "3" for a in args], "--set", "train.num_threads=1",
                  "--json", "--quiet")  # fmt: skip
    summary = last_json(more.stdout)
    assert not summary.get("already_finished") and summary["resumed"] and summary["epochs"] == 3


def test_early_stopping_is_named_and_a_higher_patience_continues(qm9_small, tmp_path):
    run = tmp_path / "run"
    cfg = _cfg("train.max_epochs=40", "train.early_stopping_patience=1", "train.lr=1e-9")
    first = fit(cfg, qm9_small, run, progress=False)
    assert first["stopped"] == "early_stopping (patience 1)" and first["epochs"] < 40
    again = fit(cfg, qm9_small, run, progress=False)
    assert again["already_finished"] and "train.early_stopping_patience (was 1)" in again["note"]
    longer = fit(apply_overrides(cfg, ["train.early_stopping_patience=3"]), qm9_small, run,
                 progress=False)  # fmt: skip
    assert not longer.get("already_finished") and longer["epochs"] > first["epochs"]


def test_a_truncated_last_checkpoint_falls_back_to_the_best(qm9_small, tmp_path, caplog):
    run = tmp_path / "run"
    fit(_cfg("train.max_epochs=2"), qm9_small, run, progress=False)
    last = run / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:100])
    with caplog.at_level(logging.WARNING, logger="deepatoms.train.protocol"):
        summary = fit(_cfg("train.max_epochs=3"), qm9_small, run, progress=False)
    assert "cannot be read" in caplog.text and "best.ckpt" in caplog.text
    assert summary["resumed"] and summary["epochs"] == 3


def test_training_progress_goes_to_stderr(qm9_small, tmp_path):
    res = invoke("train", "--preset", "schnet-fast", "--data", qm9_small, "--out",
                 tmp_path / "run", "--max-epochs", "1", *[a for s in TINY for a in ("--set", s)])  # fmt: skip
    assert "it/s" in res.stderr or "Epoch 0" in res.stderr
    assert "Epoch 0" not in res.stdout and "it/s" not in res.stdout
    assert "finished schnet-fast on U0" in res.stdout
    # Lightning's advice for large runs is noise here
    for noise in ("does not have many workers", "PossibleUserWarning", "GPU available"):
        assert noise not in res.stdout + res.stderr, noise
