"""Density VAE model files: written and read through the one model-file envelope
(``deepatoms.models.model_file``), with the voxel grid and the class map (atomic number per
class, class 0 = no atom) as the family's extras."""

from __future__ import annotations

from pathlib import Path

from deepatoms.data.voxels.dataset import ClassMap
from deepatoms.data.voxels.grid import GridSpec
from deepatoms.models.density_model import DensityVAEModel
from deepatoms.models.loaded import LoadedDensityModel
from deepatoms.models.loading import load_model
from deepatoms.models.model_file import write_model_file

__all__ = ["LoadedDensityModel", "load_density_model", "save_density_model"]


def save_density_model(
    path: str | Path,
    model: DensityVAEModel,
    grid: GridSpec,
    class_map: ClassMap,
    meta: dict | None = None,
) -> None:
    """Write ``model`` with its ``grid`` and ``class_map`` to ``path`` atomically.

    The model's grid side and class count must match ``grid.n`` and ``class_map.n_classes``.
    """
    cfg = model.config
    if cfg["grid_n"] != grid.n or cfg["n_classes"] != class_map.n_classes:
        raise ValueError(
            f"model ({cfg['grid_n']}³ grid, {cfg['n_classes']} classes) does not match the grid "
            f"({grid.n}³) or class map ({class_map.n_classes} classes) given to save it with"
        )
    write_model_file(
        path,
        model,
        "density_vae",
        units={"length": "Å", "density": "Å⁻³"},
        extras={"grid": grid.as_dict(), "class_map": class_map.to_list()},
        meta=meta,
    )


def load_density_model(path: str | Path) -> LoadedDensityModel:
    """The density VAE of a model file or run folder (safe loading; eval mode)."""
    return load_model(path, expect="density_vae")
