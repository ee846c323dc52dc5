"""Model families (one module each), the shared output head, the family registry and model
files."""

from deepatoms.models.heads import AtomisticModel, AtomwiseHead
from deepatoms.models.registry import FAMILIES, available_models, build_model

__all__ = ["FAMILIES", "AtomisticModel", "AtomwiseHead", "available_models", "build_model"]
