"""Training a grammar VAE in a run folder: files, schedule, resume, splits, presets."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import yaml
from gvae_helpers import QM9_SMILES, write_csv

from deepatoms.config.overrides import apply_overrides
from deepatoms.core.errors import ConfigError
from deepatoms.data.strings import read_string_csv
from deepatoms.models.loading import load_model
from deepatoms.models.registry import family, load_preset
from deepatoms.train import fit as train_grammar_vae
from deepatoms.train.tasks.grammar_vae import string_table_split as resolve_vae_split
from deepatoms.workflows.training import train


def vae_preset_names() -> list[str]:
    return family("grammar_vae").presets()


load_vae_preset = load_preset
load_latent_space = load_model

SPLIT = ["train"] * 48 + ["val"] * 8 + ["test"] * 8
TINY = [
    "model.hidden=16",
    "model.dense=16",
    "model.latent_dim=4",
    "data.max_len=64",
    "train.batch_size=16",
    "train.recon_check=4",
]


def _metrics(run) -> list[dict]:
    with open(run / "metrics.csv") as fh:
        return list(csv.DictReader(fh))


def test_gvae_train_and_resume(tmp_path):
    data = write_csv(tmp_path / "d.csv", QM9_SMILES, SPLIT)
    cfg = apply_overrides(
        load_vae_preset("grammar-vae-qm9"),
        [*TINY, "train.max_epochs=2", "train.lr_step_epochs=1", "train.alpha_warmup_epochs=2"],
    )
    run = tmp_path / "run"
    s = train_grammar_vae(cfg, data, run, progress=False)
    assert (s["epochs"], s["steps"], s["n_train"], s["n_val"]) == (2, 6, 48, 8)
    assert s["resumed"] is False and s["val_recon_checked"] == 4
    for name in ("config.yaml", "split.json", "stats.json", "summary.json", "model.pt"):
        assert (run / name).is_file(), name
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert (run / "training_strings.txt").read_text().splitlines() == QM9_SMILES[:48]
    rows = _metrics(run)
    assert [float(r["lr"]) for r in rows] == pytest.approx([1e-3, 5e-4])
    assert [float(r["alpha"]) for r in rows] == pytest.approx([0.0, 0.04])
    for key in ("val_loss", "val_recon", "val_kl", "val_nelbo", "val_token_acc", "train_loss"):
        assert np.isfinite(float(rows[-1][key])), key
    assert float(rows[-1]["val_loss"]) == pytest.approx(
        float(rows[-1]["val_recon"]) + 0.08 * float(rows[-1]["val_kl"]), rel=1e-4
    )  # validation at the final alpha
    space = load_latent_space(run)
    assert space.latent_dim == 4 and space.max_len == 64
    assert space.meta["config"]["train"]["max_epochs"] == 2

    cfg3 = apply_overrides(cfg, ["train.max_epochs=3"])
    s3 = train_grammar_vae(cfg3, data, run, progress=False)
    assert s3["resumed"] is True and s3["epochs"] == 3 and s3["steps"] == 9
    rows = _metrics(run)
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    assert float(rows[-1]["alpha"]) == pytest.approx(0.08)

    with pytest.raises(ConfigError, match=r"model\.hidden: 16 \(saved\) vs 32 \(now\)"):
        train_grammar_vae(apply_overrides(cfg3, ["model.hidden=32"]), data, run, progress=False)


def test_gvae_train_errors(tmp_path):
    cfg = apply_overrides(load_vae_preset("grammar-vae-qm9"), [*TINY, "train.max_epochs=1"])
    bad = write_csv(tmp_path / "bad.csv", ["C", "CC", "C(X", "CCC"], ["train"] * 3 + ["val"])
    with pytest.raises(ValueError, match=r"bad.csv line 4: cannot parse 'C\(X'"):
        train_grammar_vae(cfg, bad, tmp_path / "r1", progress=False)
    good = write_csv(tmp_path / "good.csv", QM9_SMILES[:8])
    with pytest.raises(ValueError, match="unknown grammar 'nope'"):
        train_grammar_vae(
            apply_overrides(cfg, ["data.grammar=nope"]), good, tmp_path / "r2", progress=False
        )
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("x")
    with pytest.raises(ConfigError, match="exists and is not empty"):
        train_grammar_vae(cfg, good, tmp_path / "full", progress=False)
    with pytest.raises(ValueError, match="more than max_len = 20"):
        train_grammar_vae(
            apply_overrides(cfg, ["data.max_len=20"]), good, tmp_path / "r3", progress=False
        )


def test_gvae_random_split_and_caps(tmp_path):
    path = write_csv(tmp_path / "d.csv", QM9_SMILES)
    table = read_string_csv(path)
    data_cfg = load_vae_preset("grammar-vae-qm9")["data"]
    split = resolve_vae_split(table, data_cfg, seed=0)
    assert (len(split["train"]), len(split["val"]), len(split["test"])) == (58, 6, 0)
    assert sorted(np.concatenate([split["train"], split["val"]]).tolist()) == list(range(64))
    again = resolve_vae_split(table, data_cfg, seed=0)
    assert all(np.array_equal(split[k], again[k]) for k in split)
    capped = resolve_vae_split(table, {**data_cfg, "max_train": 10, "n_val": 4}, seed=1)
    assert (len(capped["train"]), len(capped["val"])) == (10, 4)
    labelled = read_string_csv(write_csv(tmp_path / "s.csv", ["C", "CC"], ["train", "test"]))
    with pytest.raises(ConfigError, match="no 'val' rows"):
        resolve_vae_split(labelled, data_cfg, seed=0)


def test_gvae_presets():
    names = vae_preset_names()
    assert names == ["grammar-vae-polymer", "grammar-vae-qm9", "grammar-vae-qm9-fast"]
    paper = load_vae_preset("grammar-vae-qm9")
    assert paper["model"] == {
        "name": "grammar-vae", "architecture": "gru", "latent_dim": 32, "hidden": 256,
        "dense": 128, "z_input": "both",
    }  # fmt: skip
    t = paper["train"]
    assert (t["lr"], t["lr_step_epochs"], t["lr_factor"], t["batch_size"]) == (1e-3, 100, 0.5, 64)
    assert (t["max_epochs"], t["early_stopping_patience"], t["alpha"]) == (300, 30, 0.08)
    assert paper["data"]["max_len"] == 80 and paper["regressor"]["hidden"] == [512, 512, 256]
    poly = load_vae_preset("grammar-vae-polymer")
    assert (poly["data"]["grammar"], poly["data"]["max_len"]) == ("polymer", 55)
    fast = load_vae_preset("grammar-vae-qm9-fast")
    assert fast["data"]["max_train"] == 20000 and fast["model"]["hidden"] == 128
    # `deepatoms presets` reads every preset through load_preset
    for name in names:
        cfg = load_preset(name)
        assert cfg["model"]["name"] == "grammar-vae" and cfg["description"]
    with pytest.raises(ConfigError, match="not a grammar VAE preset"):
        train("schnet-qm9", "x.csv", "out", command="deepatoms vae train")
    with pytest.raises(ConfigError, match="unknown preset"):
        load_vae_preset("grammar-vae-zinc")


def test_gvae_preset_yaml_is_plain():
    from importlib import resources

    for name in vae_preset_names():
        raw = yaml.safe_load((resources.files("deepatoms.presets") / f"{name}.yaml").read_text())
        assert set(raw) <= {"description", "reference", "model", "data", "train", "regressor"}


def test_gvae_train_polymer_preset(tmp_path):
    from deepatoms.grammar.polymer import generate_polymer_strings

    strings = generate_polymer_strings(40, seed=0)
    data = write_csv(tmp_path / "p.csv", strings, ["train"] * 32 + ["val"] * 8)
    cfg = apply_overrides(
        load_vae_preset("grammar-vae-polymer"),
        ["model.hidden=16", "model.dense=8", "model.latent_dim=4", "train.max_epochs=1"],
    )
    s = train_grammar_vae(cfg, data, tmp_path / "run", progress=False)
    assert (s["grammar"], s["n_train"], s["epochs"]) == ("paper41", 32, 1)
    assert (
        load_model(tmp_path / "run" / "model.pt").training_strings() == strings[:32]
    )  # spaces kept
    space = load_latent_space(tmp_path / "run")
    assert space.grammar.n_rules == 41 and space.max_len == 55
    assert space.encode_mean(strings[:3]).shape == (3, 4)
