"""Run configurations: presets, ``--set key=value`` overrides, validation and saving.

A config has four sections: ``model`` (passed to ``build_model``), ``graph`` (``GraphSpec``),
``data`` (target, split sizes, atom references, readout) and ``train`` (optimiser, schedule,
stopping). Presets are YAML files in ``deepatoms/presets``; every key a user may set appears in
:data:`DEFAULTS` or in the preset itself, so a typo in ``--set`` is an error, not a silent no-op.
"""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

DEFAULTS: dict[str, Any] = {
    "name": None,
    "description": "",
    "reference": "",
    "model": {},
    "graph": {"kind": "cutoff", "cutoff": 5.0},
    "data": {
        "target": None,
        "n_train": 0.8,
        "n_val": 0.1,
        "n_test": None,
        "split_seed": None,  # None: use train.seed; set it to vary the initialisation only
        "split_column": None,  # per-system train/val/test labels to use as the split, e.g. split
        "group_by": None,  # per-system column whose groups stay whole in a random split, e.g. group
        "atomref": "auto",  # auto | dataset | fit | none
        "readout": "auto",  # auto | sum | mean
        # intensive targets (per molecule or per atom): mean readout when data.readout=auto
        "mean_readout_targets": [
            "homo",
            "lumo",
            "gap",
            "formation_energy_per_atom",
            "heat_ref",
            "heat_all",
            "delta_e",
            "e_above_hull",
        ],
        "std_ddof": 0,
        "forces": None,  # per-atom force label [N,3] (eV/Å) to train on with Eq. 5.7, e.g. forces
        "scale": "auto",  # auto | energy | forces: σ̂ from the energies or the force RMS
    },
    "train": {
        "seed": 0,
        "batch_size": 32,
        "eval_batch_size": 100,
        "optimizer": "adam",  # adam | sgd
        "lr": 1.0e-3,
        "momentum": 0.9,
        "weight_decay": 0.0,
        "lr_schedule": "exponential",  # exponential | plateau | linear | none
        "lr_linear_window": [0.1, 0.9],  # linear: decay to lr·lr_decay between these fractions
        "lr_decay": 0.96,
        "lr_decay_steps": 100000,
        "lr_staircase": False,
        "plateau_factor": 0.5,
        "plateau_patience": 10,
        "min_lr": 0.0,
        "max_epochs": 1000,
        "max_steps": -1,
        "max_time": None,  # minutes
        "val_every_steps": None,  # None: validate after every epoch
        "early_stopping_patience": 50,  # validation checks without improvement
        "gradient_clip": None,
        "accelerator": "cpu",
        "devices": 1,
        "num_threads": None,
        "dtype": "float32",
        "rho": 0.01,  # energy weight ρ of Eq. 5.7 (0: forces only, offset fitted afterwards)
        "force_weight": "1",  # 1 | 1-rho (Jørgensen 2019 thesis Eq. 3.15)
        "init_statistics": "keep",  # keep | refit: output statistics when fine-tuning (--init)
    },
}


class ConfigError(ValueError):
    """A configuration value or key is wrong; the message says which and how to fix it."""


def _merge(base: dict, update: dict, path: str = "") -> dict:
    out = copy.deepcopy(base)
    for k, v in update.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and out[k]:
            out[k] = _merge(out[k], v, f"{path}{k}.")
        else:
            out[k] = copy.deepcopy(v)
    return out


def preset_names() -> list[str]:
    """Names of the shipped presets."""
    files = resources.files("deepatoms.presets").iterdir()
    return sorted(p.name[:-5] for p in files if p.name.endswith(".yaml"))


def load_preset(name: str) -> dict:
    """The preset ``name`` merged over :data:`DEFAULTS`."""
    path = resources.files("deepatoms.presets") / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown preset {name!r}; available: {', '.join(preset_names())}")
    raw = yaml.safe_load(path.read_text()) or {}
    raw["name"] = name
    return _merge(DEFAULTS, raw)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.lr=1e-4"`` → (["train", "lr"], 0.0001); the value is parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key=value, e.g. train.lr=1e-4")
    key, _, value = text.partition("=")
    keys = [k for k in key.strip().split(".") if k]
    if not keys:
        raise ConfigError(f"override {text!r} has an empty key")
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError as exc:
        raise ConfigError(f"cannot parse the value of override {text!r}: {exc}") from exc
    if isinstance(parsed, str):  # YAML 1.1 reads "1e-4" as a string
        try:
            parsed = float(parsed)
        except ValueError:
            pass
    return keys, parsed


def apply_overrides(config: dict, overrides: list[str]) -> dict:
    """Apply ``--set`` overrides; keys must exist, except inside ``model`` (checked by the model)."""
    config = copy.deepcopy(config)
    for text in overrides:
        keys, value = parse_override(text)
        node = config
        for depth, k in enumerate(keys[:-1]):
            if not isinstance(node.get(k), dict):
                if keys[0] == "model" and k not in node:
                    node[k] = {}
                else:
                    raise ConfigError(
                        f"override {text!r}: {'.'.join(keys[: depth + 1])} is not a section; "
                        f"sections are {sorted(k for k, v in config.items() if isinstance(v, dict))}"
                    )
            node = node[k]
        last = keys[-1]
        if last not in node and keys[0] != "model":
            raise ConfigError(
                f"override {text!r}: unknown key {'.'.join(keys)}; known keys here: {sorted(node)}"
            )
        node[last] = value
    return config


def save_config(config: dict, path: str | Path) -> None:
    """Write the resolved config as YAML (atomically)."""
    from deepatoms.train.runfiles import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(config, sort_keys=False))


def load_config(path: str | Path) -> dict:
    """Read a config written by :func:`save_config`, merged over :data:`DEFAULTS`.

    Keys added to the defaults after the file was written take their default value, so runs
    made by an earlier version still resume and compare equal.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    return _merge(DEFAULTS, yaml.safe_load(path.read_text()) or {})
