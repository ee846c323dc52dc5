"""``--set section.key=value`` overrides of a config (values parsed as YAML)."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from deepatoms.core.errors import ConfigError

__all__ = ["apply_overrides", "parse_override"]


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


def apply_overrides(config: Mapping, overrides: Iterable[str]) -> dict:
    """``config`` with ``--set`` overrides applied; keys must exist, except inside ``model``
    (whose keys the model builder checks). Values are checked when the config is resolved."""
    config = copy.deepcopy(dict(config))
    for text in overrides:
        keys, value = parse_override(text)
        node = config
        for depth, k in enumerate(keys[:-1]):
            if not isinstance(node.get(k), dict):
                if keys[0] == "model" and k not in node:
                    node[k] = {}
                else:
                    sections = sorted(k for k, v in config.items() if isinstance(v, dict))
                    raise ConfigError(
                        f"override {text!r}: {'.'.join(keys[: depth + 1])} is not a section; "
                        f"sections are {sections}"
                    )
            node = node[k]
        last = keys[-1]
        if last not in node and keys[0] != "model":
            raise ConfigError(
                f"override {text!r}: unknown key {'.'.join(keys)}; known keys here: {sorted(node)}"
            )
        node[last] = value
    return config
