"""Density VAE model files (specs/crystal-density-vae.md §3–4; DESIGN "Model file").

One ``.pt`` written with ``torch.save`` of plain containers: the resolved model config, the
state dict, the voxel grid (``GridSpec.as_dict``), the class map (atomic number per class, class
0 = no atom) and free metadata (training regime, preset, metrics). Loaded with
``torch.load(..., weights_only=True)``: opening a model file never runs code from it. Writes are
atomic (``deepatoms.models.io.atomic_torch_save``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from deepatoms import __version__
from deepatoms.core.files import atomic_torch_save
from deepatoms.data.voxels.dataset import ClassMap
from deepatoms.data.voxels.grid import GridSpec
from deepatoms.models.density_model import DensityVAEModel
from deepatoms.models.io import read_payload

__all__ = ["FORMAT", "LoadedDensityModel", "load_density_model", "save_density_model"]

FORMAT = "deepatoms-density-vae"
FORMAT_VERSION = 1


@dataclass
class LoadedDensityModel:
    """A density VAE rebuilt from a file (eval mode), with its grid, classes and metadata."""

    model: DensityVAEModel
    grid: GridSpec
    class_map: ClassMap
    meta: dict = field(default_factory=dict)


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
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "deepatoms_version": __version__,
        "model_config": cfg,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "grid": grid.as_dict(),
        "class_map": class_map.to_list(),
        "meta": meta or {},
    }
    atomic_torch_save(payload, path)


def load_density_model(
    path: str | Path, map_location: str | torch.device = "cpu"
) -> LoadedDensityModel:
    """Rebuild a model written by :func:`save_density_model` (safe loading; eval mode)."""
    payload = read_payload(
        path, FORMAT, FORMAT_VERSION, "density VAE model",
        "train one with `deepatoms crystals train`", map_location,
    )  # fmt: skip
    model = DensityVAEModel(payload["model_config"])
    model.load_state_dict(payload["state_dict"])
    model.eval()
    return LoadedDensityModel(
        model=model,
        grid=GridSpec.from_dict(payload["grid"]),
        class_map=ClassMap.from_list(payload["class_map"]),
        meta=dict(payload.get("meta", {})),
    )
