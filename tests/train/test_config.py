"""Configs: presets, overrides and their errors."""

from __future__ import annotations

import copy

import pytest

from deepatoms.config.files import save_config
from deepatoms.config.overrides import apply_overrides, parse_override
from deepatoms.config.presets import preset_names
from deepatoms.core.errors import ConfigError
from deepatoms.models.registry import load_preset
from deepatoms.models.registry import load_run_config as load_config


def test_required_presets_exist():
    names = set(preset_names())
    assert {
        "schnet-qm9",
        "schnet-fast",
        "dtnn-qm9",
        "dtnn-fast",
        "nmpedge-qm9",
        "nmpedge-fast",
    } <= names


def test_paper_preset_values_schnet_qm9():
    cfg = load_preset("schnet-qm9")
    m = cfg["model"]
    assert (m["n_atom_basis"], m["n_interactions"]) == (64, 6)
    assert m["rbf"] == {"n_rbf": 300, "start": 0.0, "spacing": 0.1, "gamma": 10.0}
    assert cfg["graph"]["kind"] == "all" and m["cutoff_fn"] is None
    t = cfg["train"]
    assert (t["optimizer"], t["lr"], t["lr_decay"], t["lr_decay_steps"], t["batch_size"]) == (
        "adam",
        1e-3,
        0.96,
        100000,
        32,
    )
    assert (cfg["data"]["n_train"], cfg["data"]["n_val"]) == (110000, 10000)


def test_parse_override_types():
    assert parse_override("train.lr=1e-4") == (["train", "lr"], 1e-4)
    assert parse_override("train.max_time=null") == (["train", "max_time"], None)
    assert parse_override("model.rbf={n_rbf: 10, stop: 4.0}") == (
        ["model", "rbf"],
        {"n_rbf": 10, "stop": 4.0},
    )


def test_override_applies_and_leaves_preset_untouched():
    cfg = load_preset("schnet-fast")
    new = apply_overrides(cfg, ["train.lr=2e-4", "model.n_interactions=2"])
    assert new["train"]["lr"] == 2e-4 and new["model"]["n_interactions"] == 2
    assert cfg["train"]["lr"] == 1e-3


@pytest.mark.parametrize(
    "bad, words",
    [
        ("train.lr", "key=value"),
        ("train.lrr=1", "unknown key train.lrr"),
        ("trian.lr=1", "trian is not a section; sections are"),
        ("train.lr.x=1", "not a section"),
    ],
)
def test_override_errors_name_the_problem(bad, words):
    with pytest.raises(ConfigError, match=words.replace(".", r"\.")):
        apply_overrides(load_preset("schnet-fast"), [bad])


def test_unknown_preset_lists_available():
    with pytest.raises(ConfigError, match="schnet-fast"):
        load_preset("no-such-preset")


def test_saved_configs_gain_keys_added_to_the_defaults_later(tmp_path):
    """A run folder written before a new config key existed still loads (and resumes) equal."""
    cfg = load_preset("schnet-fast")
    old = copy.deepcopy(cfg)
    del old["train"]["init_statistics"]
    path = tmp_path / "config.yaml"
    save_config(old, path)
    assert load_config(path) == cfg
