"""Deprecated names of model-file reading (kept so that existing scripts keep working).

Use :func:`deepatoms.load_model` (any family, run folder or model file) instead of
:func:`load_model_file`; model files are written by the training protocol
(:func:`deepatoms.models.model_file.write_model_file`).
"""

from __future__ import annotations

import os
import warnings

import torch

from deepatoms.models.loaded import LoadedModel
from deepatoms.models.loading import ATOMISTIC_FAMILIES, load_model

__all__ = ["LoadedModel", "load_model_file"]


def load_model_file(
    path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> LoadedModel:
    """Deprecated: ``deepatoms.load_model(path)`` loads every kind of model file."""
    warnings.warn(
        "deepatoms.models.io.load_model_file is deprecated; use deepatoms.load_model(path)",
        DeprecationWarning,
        stacklevel=2,
    )
    return load_model(path, expect=ATOMISTIC_FAMILIES, map_location=map_location)
