"""Model families (one module each) and the shared output head, registry and model files."""

from deepatoms.models.heads import AtomisticModel, AtomwiseHead
from deepatoms.models.registry import available_models, build_model, register_model

__all__ = ["AtomisticModel", "AtomwiseHead", "available_models", "build_model", "register_model"]
