"""Density VAE + segmentation U-Net as one module, and the joint loss (docs/density_vae.md §3–5, §8).

Forward pass (Hoffmann et al. Eq. 2, one backward pass):

    μ, log σ² = E(M / m)            z = μ + σ·ε            M̂ = D(m·z)
    Ŝ = U(gradscale_γ(M̂))           (m = 1 unless conditioning, §8)

Loss:

    total = L_RE(M, M̂) + β·D_KL(q(z|M) ‖ N(0, I)) + L_seg(Ŝ, S)
    L_RE  = mean over voxels of (M̂ − M)²   (``recon_reduction: mean``, Default)
            or its sum over voxels, averaged over the batch (``sum``)
    D_KL  = −½ Σ_d (1 + log σ²_d − μ_d² − σ²_d), summed over the latent, averaged over the batch
    L_seg = per-voxel softmax cross-entropy against the class map (Default; optional class
            weights), or sigmoid + binary cross-entropy against one-hot S summed over classes and
            averaged over voxels (``seg_loss: bce``)

gradscale_γ (``deepatoms.nn.gradscale``) gives the U-Net the full segmentation gradient and the
VAE γ times it; γ is an argument of :meth:`DensityVAEModel.forward` because it acts on the graph
built there.

Conditioning (``condition``): ``none`` (Default) · ``max_density`` (m = max M of each input
sample) · ``max_z`` (m = largest atomic number of each sample; the caller passes it).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from deepatoms.models.attention_unet import AttentionUNet3d
from deepatoms.models.density_vae import VAE_DEFAULTS, DensityVAE, merge_config
from deepatoms.nn.gradscale import grad_scale

__all__ = [
    "MODEL_DEFAULTS",
    "DensityVAEModel",
    "joint_loss",
    "kl_divergence",
    "segmentation_loss",
    "voxel_accuracy",
]

MODEL_DEFAULTS: dict = {
    "name": "density_vae",
    "grid_n": 30,  # cube side of the density grid (filled in from the grid at build time)
    "n_classes": 95,  # filled in from the class map at build time
    **VAE_DEFAULTS,
    "condition": "none",  # none | max_density | max_z
    "unet": {
        "widths": [16, 32, 64],
        "bottleneck": 128,
        "attention": True,
        "background_prior": 0.99,
        "norm": "batch",  # batch | group (GroupNorm, no running statistics; not in the paper)
    },
}
_CONDITIONS = ("none", "max_density", "max_z")
_MIN_SCALE = 1e-3  # floor of the max_density scale (an empty box has max M = 0)


class DensityVAEModel(nn.Module):
    """β-VAE (§3) + attention U-Net (§4) built from one config (keys of :data:`MODEL_DEFAULTS`).

    ``grid_n`` and ``n_classes`` override the config's entries; :attr:`config` is the resolved
    config a model file stores.
    """

    def __init__(
        self, config: Mapping | None = None, grid_n: int | None = None, n_classes: int | None = None
    ) -> None:
        super().__init__()
        cfg = merge_config(MODEL_DEFAULTS, config, "model")
        if grid_n is not None:
            cfg["grid_n"] = int(grid_n)
        if n_classes is not None:
            cfg["n_classes"] = int(n_classes)
        if cfg["condition"] not in _CONDITIONS:
            raise ValueError(
                f"model.condition={cfg['condition']!r} is unknown; choose one of {_CONDITIONS}"
            )
        self.config = cfg
        self.condition = cfg["condition"]
        self.vae = DensityVAE(cfg["grid_n"], {k: cfg[k] for k in VAE_DEFAULTS})
        self.unet = AttentionUNet3d(cfg["n_classes"], **cfg["unet"])

    @property
    def latent(self) -> int:
        """Latent size (300 at paper settings)."""
        return self.vae.latent

    def condition_scale(
        self, density: torch.Tensor, max_z: torch.Tensor | None = None
    ) -> torch.Tensor | None:
        """Per-sample conditioning scale m [B] (§8), or None without conditioning.

        ``max_density``: max M̂ of each sample (floored at 1e-3); ``max_z``: ``max_z`` [B], the
        largest atomic number per sample, which the caller must give.
        """
        if self.condition == "none":
            return None
        if self.condition == "max_density":
            return density.flatten(1).amax(dim=1).clamp_min(_MIN_SCALE)
        if max_z is None:
            raise ValueError("model.condition=max_z needs max_z (largest Z per sample) as input")
        return max_z.to(density.dtype).reshape(-1)

    def encode(
        self, density: torch.Tensor, scale: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(μ, log σ²), each [B, latent], of density [B, 1, n, n, n]."""
        if scale is None:
            scale = self.condition_scale(density)
        return self.vae.encoder(density, scale)

    def decode(self, z: torch.Tensor, scale: torch.Tensor | float | None = None) -> torch.Tensor:
        """Decoded density M̂ [B, 1, n, n, n]; with conditioning ``scale`` is m (or α, §8)."""
        if self.condition != "none" and scale is None:
            raise ValueError(
                f"this model is conditioned ({self.condition}); decode(z, scale=m) needs m"
            )
        if isinstance(scale, (int, float)):
            scale = torch.full((z.shape[0],), float(scale), dtype=z.dtype, device=z.device)
        return self.vae.decoder(z, scale)

    def segment(self, density: torch.Tensor) -> torch.Tensor:
        """Per-voxel class logits [B, n_classes, n, n, n] of a (decoded) density."""
        return self.unet(density)

    def forward(
        self,
        density: torch.Tensor,
        gamma: float = 1.0,
        scale: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """``{"mu", "logvar", "z", "recon", "seg_logits"}``; the U-Net reads gradscale_γ(M̂)."""
        if scale is None:
            scale = self.condition_scale(density)
        out = self.vae(density, scale)
        out["seg_logits"] = self.unet(grad_scale(out["recon"], gamma))
        return out


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """D_KL(N(μ, σ²) ‖ N(0, I)) summed over the latent, averaged over the batch (nats)."""
    return (-0.5 * (1.0 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)).mean()


def joint_loss(
    out: Mapping[str, torch.Tensor], density: torch.Tensor, classes: torch.Tensor, beta: float,
    class_weights: torch.Tensor | None = None, seg_loss: str = "ce", recon_reduction: str = "mean",
) -> dict[str, torch.Tensor]:  # fmt: skip
    """Eq. 2 terms: ``total``, ``recon_mse`` (always the voxel mean), ``kl``, ``seg_ce``.

    ``out`` is :meth:`DensityVAEModel.forward`'s dict, ``density`` [B, 1, n, n, n] the target M,
    ``classes`` [B, n, n, n] long the class map of S; γ was applied in the forward pass.
    """
    mse = F.mse_loss(out["recon"], density)
    if recon_reduction == "mean":
        recon = mse
    elif recon_reduction == "sum":
        recon = (out["recon"] - density).pow(2).flatten(1).sum(dim=1).mean()
    else:
        raise ValueError(f"recon_reduction={recon_reduction!r} is unknown; choose 'mean' or 'sum'")
    kl = kl_divergence(out["mu"], out["logvar"])
    seg = segmentation_loss(out["seg_logits"], classes, class_weights, seg_loss)
    total = recon + float(beta) * kl + seg
    return {"total": total, "recon_mse": mse, "kl": kl, "seg_ce": seg}


def segmentation_loss(
    logits: torch.Tensor,
    classes: torch.Tensor,
    class_weights: torch.Tensor | None = None,
    seg_loss: str = "ce",
) -> torch.Tensor:
    """L_seg (Eq. 3) of logits [B, C, n, n, n] against class indices [B, n, n, n].

    ``ce``: per-voxel softmax cross-entropy (weighted mean with ``class_weights`` [C]); ``bce``:
    sigmoid + binary cross-entropy against one-hot S, summed over classes (each weighted),
    averaged over voxels.
    """
    if seg_loss == "ce":
        return F.cross_entropy(logits, classes, weight=class_weights)
    if seg_loss == "bce":
        onehot = F.one_hot(classes, logits.shape[1]).movedim(-1, 1).to(logits.dtype)
        per = F.binary_cross_entropy_with_logits(logits, onehot, reduction="none")
        if class_weights is not None:
            per = per * class_weights.reshape(1, -1, 1, 1, 1)
        return per.sum(dim=1).mean()
    raise ValueError(f"seg_loss={seg_loss!r} is unknown; choose 'ce' or 'bce'")


def voxel_accuracy(logits: torch.Tensor, classes: torch.Tensor) -> tuple[float, float]:
    """Top-1 species accuracy over all voxels and over atom voxels (class ≠ 0); NaN if none."""
    pred = logits.argmax(dim=1)
    hit = pred == classes
    atom = classes != 0
    n_atom = int(atom.sum())
    acc_atom = float(hit[atom].float().mean()) if n_atom else float("nan")
    return float(hit.float().mean()), acc_atom
