"""Training runs: resume equals an uninterrupted run; models fit a small set."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from deepatoms.config.overrides import apply_overrides
from deepatoms.core.errors import ConfigError
from deepatoms.data.dataset import read_dataset
from deepatoms.data.splits import load_split
from deepatoms.models.loading import load_model
from deepatoms.models.registry import load_preset
from deepatoms.train import fit as train

TINY = [
    "model.n_atom_basis=16",
    "model.n_interactions=2",
    "data.n_train=48",
    "data.n_val=16",
    "train.batch_size=16",
    "train.eval_batch_size=16",
    "train.lr=1e-3",
]


def _cfg(*extra: str, preset: str = "schnet-fast") -> dict:
    return apply_overrides(load_preset(preset), ["data.target=U0", *TINY, *extra])


def _last_weights(run) -> dict:
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    return ckpt["state_dict"]


def test_resume_gives_the_same_result_as_an_uninterrupted_run(qm9_small, tmp_path):
    full = train(_cfg("train.max_epochs=4"), qm9_small, tmp_path / "full", progress=False)
    part = train(_cfg("train.max_epochs=2"), qm9_small, tmp_path / "part", progress=False)
    assert part["epochs"] == 2 and not part["resumed"]
    resumed = train(_cfg("train.max_epochs=4"), qm9_small, tmp_path / "part", progress=False)
    assert resumed["resumed"] and resumed["epochs"] == full["epochs"] == 4
    assert resumed["steps"] == full["steps"]
    a, b = _last_weights(tmp_path / "full"), _last_weights(tmp_path / "part")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=f"weight {k} differs")
    assert resumed["best_val_mae"] == pytest.approx(full["best_val_mae"], rel=1e-12)
    # the metrics history of the interrupted part is kept, not overwritten
    rows = (tmp_path / "part" / "metrics.csv").read_text().splitlines()
    epochs = {r.split(",")[0] for r in rows[1:]}
    assert {"0", "1", "2", "3"} <= epochs


def test_resume_refuses_a_changed_config(qm9_small, tmp_path):
    train(_cfg("train.max_epochs=1"), qm9_small, tmp_path / "r", progress=False)
    with pytest.raises(ConfigError, match=r"train\.lr: 0\.001 \(saved\) vs 0\.0005"):
        train(
            _cfg("train.max_epochs=2", "train.lr=5e-4"), qm9_small, tmp_path / "r", progress=False
        )


def test_run_folder_contents_and_exported_model(qm9_small, tmp_path):
    run = tmp_path / "run"
    summary = train(_cfg("train.max_epochs=1"), qm9_small, run, progress=False)
    for name in (
        "config.yaml",
        "split.json",
        "stats.json",
        "metrics.csv",
        "model.pt",
        "summary.json",
    ):
        assert (run / name).is_file(), name
    assert (run / "checkpoints" / "best.ckpt").is_file()
    assert (run / "plots" / "learning_curve.png").is_file()
    split = load_split(run / "split.json")
    assert (len(split["train"]), len(split["val"]), len(split["test"])) == (48, 16, 136)
    assert not set(split["train"]) & set(split["test"])
    stats = json.loads((run / "stats.json").read_text())
    assert stats["atomref_source"] == "dataset" and stats["readout"] == "sum"
    loaded = load_model(run / "model.pt")
    assert loaded.property == "U0" and loaded.unit == "eV"
    assert summary["n_test"] == 136


def test_unknown_target_is_a_clear_error(qm9_small, tmp_path):
    cfg = apply_overrides(load_preset("schnet-fast"), ["data.target=U00", *TINY])
    with pytest.raises(ConfigError, match=r"not a numeric per-system property.*U0"):
        train(cfg, qm9_small, tmp_path / "x", progress=False)


def test_refuses_a_non_empty_folder_that_is_not_a_run(qm9_small, tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        train(_cfg("train.max_epochs=1"), qm9_small, tmp_path / "busy", progress=False)


def _train_mae(run, data_path) -> float:
    from deepatoms.workflows.evaluation import evaluate

    return evaluate(run, data_path, split="train")["mae"]


@pytest.mark.parametrize("preset", ["schnet-fast", "dtnn-fast", "nmpedge-fast"])
def test_training_reduces_the_error_well_below_the_mean_predictor(qm9_small, tmp_path, preset):
    """A short run must beat predicting the per-atom mean by a wide margin on its training set."""
    data, _ = read_dataset(qm9_small)
    cfg = _cfg(
        "train.max_epochs=60",
        "data.n_train=32",
        "train.lr=3e-3",
        "train.lr_schedule=none",
        "train.batch_size=8",
        preset=preset,
    )
    cfg["train"]["early_stopping_patience"] = 1000
    run = tmp_path / preset
    train(cfg, qm9_small, run, progress=False)
    split = load_split(run / "split.json")
    tr = data.subset(split["train"])
    stats = json.loads((run / "stats.json").read_text())
    # baseline: the normalisation alone (raw output 0) predicts Σ ref + n·μ
    from deepatoms.data.stats import atomref_sum

    refs = {int(k): v for k, v in stats["atomrefs"].items()}
    base = atomref_sum(tr.numbers, tr.offsets, refs) + tr.n_atoms * stats["mean"]
    base_mae = float(np.mean(np.abs(base - tr.system_props["U0"])))
    assert _train_mae(run, qm9_small) < 0.5 * base_mae


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["schnet-fast", "dtnn-fast", "nmpedge-fast"])
def test_each_model_overfits_32_molecules(qm9_small, preset):
    """Spec sanity check: each model fits 32 molecules to near-zero training error (< 5 meV).

    A plain Adam loop on one batch (no validation-based model selection, which would pick an
    early epoch of an overfitting run).
    """
    from deepatoms.data.graph import collate
    from deepatoms.data.neighbors import GraphSpec
    from deepatoms.data.stats import atomref_sum, target_statistics
    from deepatoms.models import build_model

    torch.manual_seed(0)
    data, meta = read_dataset(qm9_small)
    sub = data.subset(np.arange(32))
    refs = {int(k): v for k, v in meta["atomrefs"]["U0"].items()}
    cfg = load_preset(preset)
    model = build_model({**cfg["model"], "property": "U0", "readout": "sum"})
    mean, std = target_statistics(
        sub.system_props["U0"], sub.n_atoms, "sum", atomref_sum(sub.numbers, sub.offsets, refs)
    )
    model.head.set_statistics(mean, std, refs)
    batch = collate(sub, None, GraphSpec.from_config(cfg["graph"]), targets=["U0"])
    steps = 1000
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.1 ** (s / steps))
    start_mae = float((model(batch)["U0"] - batch.targets["U0"]).abs().mean())
    for _ in range(steps):
        opt.zero_grad()
        loss = ((model(batch)["U0"] - batch.targets["U0"]) ** 2).mean()
        loss.backward()
        opt.step()
        sched.step()
    with torch.no_grad():
        mae = float((model(batch)["U0"] - batch.targets["U0"]).abs().mean())
    assert start_mae > 0.5  # the task is not trivial at the start …
    assert mae < 0.005  # … and is fitted to near-zero error


def test_split_seed_fixes_the_split_while_train_seed_varies_the_model(qm9_small, tmp_path):
    a = train(
        _cfg("train.max_epochs=1", "train.seed=1", "data.split_seed=7"),
        qm9_small,
        tmp_path / "a",
        progress=False,
    )
    b = train(
        _cfg("train.max_epochs=1", "train.seed=2", "data.split_seed=7"),
        qm9_small,
        tmp_path / "b",
        progress=False,
    )
    sa, sb = load_split(tmp_path / "a" / "split.json"), load_split(tmp_path / "b" / "split.json")
    for k in ("train", "val", "test"):
        assert np.array_equal(sa[k], sb[k])
    wa, wb = _last_weights(tmp_path / "a"), _last_weights(tmp_path / "b")
    assert not torch.equal(
        wa["model.representation.embedding.weight"], wb["model.representation.embedding.weight"]
    )
    assert a["n_test"] == b["n_test"]
