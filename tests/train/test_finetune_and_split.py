"""Fine-tuning from a model file (Paper B transfer learning) and explicit splits (CV)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from deepatoms.cli import app
from deepatoms.config.overrides import apply_overrides
from deepatoms.core.errors import ConfigError
from deepatoms.data.splits import load_split
from deepatoms.models.loading import load_model
from deepatoms.models.registry import build_model, load_preset
from deepatoms.train import fit as train
from deepatoms.train.tasks.property_setup import init_from

TINY = [
    "data.target=U0",
    "model.n_atom_basis=16",
    "model.n_interactions=2",
    "data.n_train=40",
    "data.n_val=10",
    "train.batch_size=10",
    "train.max_epochs=1",
]


def _cfg(*extra: str) -> dict:
    return apply_overrides(load_preset("schnet-fast"), [*TINY, *extra])


def test_explicit_split_is_used_and_saved(qm9_small, tmp_path):
    split = {"train": np.arange(10, 40), "val": np.arange(0, 10), "test": np.arange(40, 50)}
    summary = train(_cfg(), qm9_small, tmp_path / "run", progress=False, split=split)
    assert (summary["n_train"], summary["n_val"], summary["n_test"]) == (30, 10, 10)
    saved = load_split(tmp_path / "run" / "split.json")
    for k in split:
        np.testing.assert_array_equal(saved[k], split[k])


@pytest.mark.parametrize(
    "split, words",
    [
        ({"train": [0, 1], "val": [1, 2]}, "overlap"),
        ({"train": [0, 1]}, "missing"),
        ({"train": [0, 10**6], "val": [2]}, "must lie in"),
    ],
)
def test_bad_explicit_split_is_refused(qm9_small, tmp_path, split, words):
    with pytest.raises(ConfigError, match=words):
        train(_cfg(), qm9_small, tmp_path / "bad", progress=False, split=split)


def test_init_copies_every_weight_and_statistic(qm9_small, tmp_path):
    """The fine-tuned model starts exactly from the pretrained one (parameters and buffers)."""
    pre = train(_cfg(), qm9_small, tmp_path / "pre", progress=False)
    loaded = load_model(pre["model_file"])
    torch.manual_seed(123)
    fresh = build_model(loaded.model.config)
    assert not torch.equal(
        fresh.representation.embedding.weight, loaded.model.representation.embedding.weight
    )
    init_from(fresh, pre["model_file"], exclude=("property", "readout"))
    for (k, a), (k2, b) in zip(
        fresh.state_dict().items(), loaded.model.state_dict().items(), strict=True
    ):
        assert k == k2
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=k)


def test_init_refuses_a_different_architecture(qm9_small, tmp_path):
    pre = train(_cfg(), qm9_small, tmp_path / "pre", progress=False)
    other = build_model({**load_model(pre["model_file"]).model.config, "n_atom_basis": 8})
    with pytest.raises(ConfigError, match="n_atom_basis"):
        init_from(other, pre["model_file"], exclude=("property", "readout"))


def test_cli_fine_tunes_from_a_model_file(qm9_small, tmp_path):
    pre = train(_cfg(), qm9_small, tmp_path / "pre", progress=False)
    args = ["train", "--preset", "schnet-fast", "--data", qm9_small, "--out", str(tmp_path / "ft")]
    args += ["--init", pre["model_file"], "--quiet"]
    for s in TINY:
        args += ["--set", s]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    stats = (tmp_path / "ft" / "stats.json").read_text()
    assert "init" in stats and "model.pt" in stats
    narrow = [a.replace("n_atom_basis=16", "n_atom_basis=8") for a in args]
    narrow[narrow.index(str(tmp_path / "ft"))] = str(tmp_path / "ft2")
    bad = CliRunner().invoke(app, narrow)
    assert bad.exit_code == 2 and "cannot be loaded" in bad.output


def test_refit_statistics_keeps_weights_but_takes_new_target_statistics(qm9_small, tmp_path):
    pre = train(_cfg(), qm9_small, tmp_path / "pre", progress=False)
    cfg = _cfg("data.target=H", "train.init_statistics=refit", "train.max_epochs=1")
    with pytest.raises(ConfigError, match=r"it learned 'U0', this run learns 'H'.*--force"):
        train(cfg, qm9_small, tmp_path / "refused", progress=False, init=pre["model_file"])
    assert not (tmp_path / "refused" / "model.pt").exists()
    cfg = _cfg("data.target=H", "train.init_statistics=refit", "train.max_epochs=1",
               "train.init_force=true")  # fmt: skip
    ft = train(cfg, qm9_small, tmp_path / "ft", progress=False, init=pre["model_file"])
    stats = json.loads((tmp_path / "ft" / "stats.json").read_text())
    assert stats["init"]["statistics"] == "refit"
    assert ft["init"]["model_file"] == str(Path(pre["model_file"]).resolve())
    assert ft["init"]["warnings"] == ["it learned 'U0', this run learns 'H'"]
    head = load_model(ft["model_file"]).model.head
    assert float(head.mean) == pytest.approx(stats["mean"]) and float(head.std) == pytest.approx(
        stats["std"]
    )
    with pytest.raises(ConfigError, match="init_statistics"):
        train(_cfg("train.init_statistics=reset"), qm9_small, tmp_path / "bad", progress=False,
              init=pre["model_file"])  # fmt: skip


def test_init_refuses_a_model_that_never_saw_an_element_unless_forced(qm9_small, tmp_path):
    from deepatoms.data.dataset import read_dataset, write_dataset

    data, meta = read_dataset(qm9_small)
    no_nf = [k for k in range(len(data))
             if not np.isin(data.numbers[data.offsets[k] : data.offsets[k + 1]], [7, 9]).any()]  # fmt: skip
    hco = tmp_path / "hco.h5"
    write_dataset(hco, data.subset(np.array(no_nf)), meta)
    pre = train(_cfg(), str(hco), tmp_path / "pre", progress=False)
    args = ["train", "--preset", "schnet-fast", "--data", qm9_small, "--out", str(tmp_path / "ft"),
            "--init", pre["model_file"], "--quiet", *[a for s in TINY for a in ("--set", s)]]  # fmt: skip
    res = CliRunner().invoke(app, args)
    text = " ".join(res.output.split())
    new = " ".join(s for z, s in ((7, "N"), (9, "F")) if z in data.numbers)
    assert res.exit_code == 2 and f"it was trained on H C O only, and the data holds {new}" in text
    assert "--force" in text and not (tmp_path / "ft" / "model.pt").exists()
    res = CliRunner().invoke(app, [*args, "--force", "--refit-statistics", "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "ft" / "summary.json").read_text())
    assert summary["init"]["statistics"] == "refit"
    assert new in summary["init"]["warnings"][0]
