"""Preset files: YAML configs shipped in ``deepatoms/presets``, with inheritance.

A preset may name another preset as its ``base``; its own keys are deep-merged over the base's
(:func:`read_preset`), so a variant states only what differs, e.g.::

    base: density-vae-paper
    train: {beta: 0.1}

The registry (:func:`deepatoms.models.registry.load_preset`) then merges the result over its
family's defaults and checks it against the family's schema.
"""

from __future__ import annotations

from importlib import resources

import yaml

from deepatoms.config.schema import merge
from deepatoms.core.errors import ConfigError

__all__ = ["preset_names", "read_preset"]

_PACKAGE = "deepatoms.presets"


def preset_names() -> list[str]:
    """Names of the shipped presets, sorted."""
    files = resources.files(_PACKAGE).iterdir()
    return sorted(p.name[:-5] for p in files if p.name.endswith(".yaml"))


def read_preset(name: str, _chain: tuple[str, ...] = ()) -> dict:
    """The YAML of preset ``name`` with its ``base`` chain merged underneath; ``name`` set.

    Raises ConfigError for an unknown preset (listing the known ones), a base that names an
    unknown preset, and a chain of bases that comes back to a preset (naming the chain).
    """
    if name in _chain:
        raise ConfigError(f"preset {name!r} is its own base ({' → '.join([*_chain, name])})")
    path = resources.files(_PACKAGE) / f"{name}.yaml"
    if not path.is_file():
        where = f" (base of {_chain[-1]!r})" if _chain else ""
        raise ConfigError(
            f"unknown preset {name!r}{where}; available: {', '.join(preset_names())} "
            "(`deepatoms presets` describes them)"
        )
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"preset {name!r} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(
            f"preset {name!r} must be a mapping of sections, not {type(raw).__name__}"
        )
    base = raw.pop("base", None)
    if base is not None:
        raw = merge(read_preset(str(base), (*_chain, name)), raw)
    raw["name"] = name
    return raw
