"""Shared helpers of the density-VAE tests (test_latent_tools.py, test_crystals_evaluate.py)."""

from __future__ import annotations

import torch

from deepatoms.data.voxels.dataset import ClassMap
from deepatoms.data.voxels.grid import GridSpec
from deepatoms.density.model_io import LoadedDensityModel, load_density_model, save_density_model
from deepatoms.density.training import density_preset
from deepatoms.models.density_model import DensityVAEModel


def tiny_model(path, condition: str = "none") -> LoadedDensityModel:
    """A tiny untrained density model (fast preset, widths 2–4, latent 8), saved and loaded."""
    cfg = density_preset("density-vae-fast")
    m = cfg["model"]
    m.update(latent=8, condition=condition)
    m["encoder"]["widths"] = [2, 2, 2, 2]
    m["decoder"]["widths"] = [4, 2, 2, 2]
    m["unet"] = {"widths": [2, 4], "bottleneck": 4, "attention": True}
    grid = GridSpec.from_dict(cfg["grid"])
    cmap = ClassMap.compact([11, 17, 29])
    torch.manual_seed(0)
    model = DensityVAEModel(m, grid_n=grid.n, n_classes=cmap.n_classes)
    save_density_model(path, model, grid, cmap, {"regime": "single"})
    return load_density_model(path)
