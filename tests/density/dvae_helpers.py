"""Shared helpers of the density-VAE tests (test_latent_tools.py, test_crystals_evaluate.py)."""

from __future__ import annotations

import torch

from deepatoms.data.voxels.dataset import ClassMap
from deepatoms.data.voxels.grid import GridSpec
from deepatoms.models.density_model import DensityVAEModel
from deepatoms.models.loaded import LoadedDensityModel
from deepatoms.models.loading import load_model
from deepatoms.models.registry import load_preset as density_preset
from model_helpers import save_density


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
    save_density(path, model, grid, cmap, {"regime": "single"})
    return load_model(path)
