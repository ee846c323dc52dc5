"""Config files of run folders: the resolved config as YAML, written atomically."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import yaml

from deepatoms.core.errors import ConfigError
from deepatoms.core.files import atomic_write_text

__all__ = ["read_config_file", "save_config"]


def save_config(config: Mapping, path: str | os.PathLike) -> None:
    """Write ``config`` as YAML to ``path`` (atomically, keys in their order)."""
    atomic_write_text(path, yaml.safe_dump(dict(config), sort_keys=False))


def read_config_file(path: str | os.PathLike) -> dict:
    """The raw mapping of a YAML config file; ConfigError if it is missing or not a mapping."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist; is {path.parent} a run folder?")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections")
    return raw
