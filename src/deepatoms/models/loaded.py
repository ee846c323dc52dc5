"""What :func:`deepatoms.models.loading.load_model` returns for each family: the model in eval
mode with what it needs besides its weights.

- property models, potentials and G-SchNet: :class:`LoadedModel` (model, graph, target, unit);
- grammar VAE: :class:`~deepatoms.models.latent_space.LatentSpace` (model and grammar);
- latent regressors: :class:`~deepatoms.models.latent_regressor.LatentRegressors`;
- density VAE: :class:`LoadedDensityModel` (model, voxel grid, species classes).

Every object has a ``meta`` dict: the file's free metadata plus ``model_file``, ``family`` and
``training_data``. The ``wrap_*`` functions build these objects from a model and its file; the
registry names one per model kind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from deepatoms.data.neighbors import GraphSpec
from deepatoms.data.voxels.dataset import ClassMap
from deepatoms.data.voxels.grid import GridSpec
from deepatoms.models.latent_space import LatentSpace
from deepatoms.models.model_file import ModelFile

__all__ = [
    "LoadedDensityModel",
    "LoadedModel",
    "file_meta",
    "wrap_atomistic",
    "wrap_density",
    "wrap_grammar_vae",
    "wrap_regressors",
]


@dataclass
class LoadedModel:
    """An atomistic model (property model, potential, G-SchNet) with the graph it expects.

    ``property``: the predicted target (e.g. ``U0``; ``""`` for G-SchNet) in ``unit``.
    """

    model: nn.Module
    graph: GraphSpec
    property: str
    unit: str
    meta: dict = field(default_factory=dict)


@dataclass
class LoadedDensityModel:
    """A density VAE + U-Net with its voxel grid and species classes."""

    model: nn.Module
    grid: GridSpec
    class_map: ClassMap
    meta: dict = field(default_factory=dict)


def file_meta(mf: ModelFile) -> dict[str, Any]:
    """The free metadata of a file with where it came from (``model_file``, ``family``,
    ``training_data``)."""
    return {
        **mf.meta,
        "model_file": str(mf.path),
        "family": mf.family,
        "training_data": mf.training_data,
    }


def wrap_atomistic(model: nn.Module, mf: ModelFile) -> LoadedModel:
    """A :class:`LoadedModel` of a property model, potential or G-SchNet."""
    meta = file_meta(mf)
    for key in ("elements", "bond_types"):
        if mf.extras.get(key) is not None:
            meta.setdefault(key, mf.extras[key])
    target = mf.target or {}
    return LoadedModel(
        model=model,
        graph=GraphSpec.from_config(mf.extras["graph"]),
        property=str(target.get("name") or getattr(model, "property", "") or ""),
        unit=str(target.get("unit", mf.units.get("target", ""))),
        meta=meta,
    )


def wrap_grammar_vae(model: nn.Module, mf: ModelFile) -> LatentSpace:
    """The latent space of a grammar VAE (the grammar text travels in the file)."""
    from deepatoms.grammar.cfg import Grammar

    g = mf.extras["grammar"]
    meta = file_meta(mf)
    if mf.extras.get("training_strings"):
        meta.setdefault("training_strings", mf.extras["training_strings"])
    return LatentSpace(model, Grammar.from_text(g["text"], g["name"]), meta)


def wrap_regressors(model: nn.Module, mf: ModelFile) -> nn.Module:
    """Latent regressors with their training statistics."""
    model.stats = {k: dict(v) for k, v in (mf.extras.get("stats") or {}).items()}
    model.meta = {**file_meta(mf), "regressor_file": str(mf.path)}
    return model


def wrap_density(model: nn.Module, mf: ModelFile) -> LoadedDensityModel:
    """A density VAE with its grid and class map."""
    return LoadedDensityModel(
        model=model,
        grid=GridSpec.from_dict(mf.extras["grid"]),
        class_map=ClassMap.from_list(mf.extras["class_map"]),
        meta=file_meta(mf),
    )
