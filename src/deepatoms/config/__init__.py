"""Run configurations: the schema every config is checked against, ``--set`` overrides, preset
files (with ``base:`` inheritance) and config files.

A config is a plain nested dict with sections such as ``model``, ``graph``, ``data`` and
``train``; which sections and keys a config may have depends on the model family
(:mod:`deepatoms.models.registry`), whose schema is built from the sections defined in
:mod:`deepatoms.config.sections`.
"""

from deepatoms.config.overrides import apply_overrides, parse_override
from deepatoms.config.schema import Field, Schema, config_diff

__all__ = ["Field", "Schema", "apply_overrides", "config_diff", "parse_override"]
