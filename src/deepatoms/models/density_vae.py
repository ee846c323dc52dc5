"""β-VAE for 3-D crystal densities (docs/density_vae.md §3, Hoffmann et al. §3.2, App. 8.1).

Encoder (BatchNorm + LeakyReLU after every convolution; no padding by Default):

    M [1×30³] → Conv 1→16 k5 s2 → 16×13³ → Conv 16→32 k3 → 32×11³ → Conv 32→64 k3 → 64×9³
              → Conv 64→128 k3 s2 → 128×4³ = 8,192 → Linear → μ (300), Linear → log σ² (300)

    option ``padding: same`` (padding k//2): 30 → 15 → 15 → 15 → 8 (flatten 65,536).

Decoder (trilinear upsampling + convolutions instead of transposed convolutions):

    z (300) → Linear → 128×5³ → up×2 → Conv 128→64 k5 p2 → 64×10³ → up×2 → Conv 64→32 k5 p1
            → 32×18³ → up×2 → Conv 32→16 k4 p0 → 16×33³ → Conv 16→1 k4 p0, ReLU → 1×30³

with LeakyReLU after the three hidden convolutions, optional BatchNorm before them (Default off),
paddings (2, 1, 0, 0) by Default ((1, 1, 2, 2) also lands on 30³) and an optional final trilinear
resize to another grid size. The last convolution's bias starts at ``out_bias`` = 0.1 Å⁻³ (not
in the paper): with PyTorch's default bias init the output ReLU can start negative at every
voxel, and then no gradient ever reaches the decoder (seen with the reduced CPU widths). Every size is configurable (``start``, ``widths``, ``kernels``,
``paddings``) so CPU presets can shrink the network; :func:`decoder_sizes` gives the chain.
Parameter counts at the Defaults: encoder 5,208,824 (BatchNorm affine included), decoder 6,129,905.

Reparameterisation: z = μ + exp(½ log σ²)·ε, ε ~ N(0, I) in training; z = μ in eval mode.

Conditioning (§8): with a per-sample scale m (largest density max(M), or largest Z), the encoder's
pre-bottleneck features are divided by m and the decoder receives m·z ("we multiply the input and
output of the bottleneck by the largest present density").
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "VAE_DEFAULTS",
    "DensityDecoder",
    "DensityEncoder",
    "DensityVAE",
    "decoder_sizes",
    "encoder_sizes",
    "merge_config",
]

VAE_DEFAULTS: dict = {
    "latent": 300,
    "leaky_slope": 0.01,
    "encoder": {
        "widths": [16, 32, 64, 128],
        "kernels": [5, 3, 3, 3],
        "strides": [2, 1, 1, 2],
        "padding": "none",  # none | same
    },
    "decoder": {
        "start": 5,  # side of the cube the Linear layer fills
        "widths": [128, 64, 32, 16],  # channels of the Linear output and the 3 hidden convs
        "kernels": [5, 5, 4, 4],
        "paddings": [2, 1, 0, 0],  # (1, 1, 2, 2) is the other exact 30³ choice
        "batchnorm": False,
        "resize": False,  # final trilinear resize to the grid size
        "out_bias": 0.1,  # initial bias of the last conv (Å⁻³): keeps the output ReLU alive
    },
}


def _check_lengths(where: str, **lists: Sequence) -> None:
    lens = {k: len(v) for k, v in lists.items()}
    if len(set(lens.values())) != 1 or 4 not in lens.values():
        raise ValueError(f"{where}: {', '.join(lists)} must each have 4 entries; got {lens}")


def encoder_sizes(
    n: int, kernels: Sequence[int], strides: Sequence[int], padding: str = "none"
) -> list[int]:
    """Cube sides through the encoder convolutions, input first (30 → [30, 13, 11, 9, 4])."""
    if padding not in ("none", "same"):
        raise ValueError(f"encoder padding {padding!r} is unknown; choose 'none' or 'same'")
    sizes = [int(n)]
    for k, s in zip(kernels, strides, strict=True):
        p = k // 2 if padding == "same" else 0
        out = (sizes[-1] + 2 * p - k) // s + 1
        if out < 1:
            raise ValueError(
                f"encoder: a {n}³ grid shrinks to nothing (sides {sizes}, then kernel {k}); "
                "use model.encoder.padding=same or a larger grid"
            )
        sizes.append(out)
    return sizes


def decoder_sizes(start: int, kernels: Sequence[int], paddings: Sequence[int]) -> list[int]:
    """Cube sides through the decoder, Linear output first (5 → [5, 10, 10, 20, 18, 36, 33, 30])."""
    sizes = [int(start)]
    for i, (k, p) in enumerate(zip(kernels, paddings, strict=True)):
        if i < 3:
            sizes.append(2 * sizes[-1])
        out = sizes[-1] + 2 * p - k + 1
        if out < 1:
            raise ValueError(f"decoder: sizes {sizes} shrink to nothing at kernel {k}, padding {p}")
        sizes.append(out)
    return sizes


def merge_config(defaults: Mapping, config: Mapping | None, where: str) -> dict:
    """``config`` merged over ``defaults`` (nested); unknown keys are an error naming ``where``."""
    out = copy.deepcopy(dict(defaults))
    for k, v in (config or {}).items():
        if k not in out:
            raise ValueError(f"{where}: unknown key {k!r}; known keys: {sorted(out)}")
        if isinstance(out[k], dict):
            out[k] = merge_config(out[k], v, f"{where}.{k}")
        else:
            out[k] = copy.deepcopy(v)
    return out


class DensityEncoder(nn.Module):
    """Density [B, 1, n, n, n] → (μ, log σ²), each [B, latent] (§3 encoder table)."""

    def __init__(
        self, n: int, latent: int = 300, widths: Sequence[int] = (16, 32, 64, 128),
        kernels: Sequence[int] = (5, 3, 3, 3), strides: Sequence[int] = (2, 1, 1, 2),
        padding: str = "none", leaky_slope: float = 0.01,
    ) -> None:  # fmt: skip
        super().__init__()
        _check_lengths("model.encoder", widths=widths, kernels=kernels, strides=strides)
        self.sizes = encoder_sizes(n, kernels, strides, padding)
        layers: list[nn.Module] = []
        c_in = 1
        for w, k, s in zip(widths, kernels, strides, strict=True):
            p = k // 2 if padding == "same" else 0
            layers += [nn.Conv3d(c_in, w, k, s, p), nn.BatchNorm3d(w), nn.LeakyReLU(leaky_slope)]
            c_in = w
        self.convs = nn.Sequential(*layers)
        self.n_features = c_in * self.sizes[-1] ** 3
        self.mu = nn.Linear(self.n_features, latent)
        self.logvar = nn.Linear(self.n_features, latent)

    def forward(
        self, density: torch.Tensor, scale: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """μ and log σ² of q(z | M); ``scale`` [B] divides the flattened features (§8)."""
        h = self.convs(density).flatten(1)
        if scale is not None:
            h = h / scale.reshape(-1, 1)
        return self.mu(h), self.logvar(h)


class DensityDecoder(nn.Module):
    """Latent [B, latent] → density [B, 1, n, n, n] ≥ 0 (§3 decoder table)."""

    def __init__(
        self, n: int, latent: int = 300, start: int = 5, widths: Sequence[int] = (128, 64, 32, 16),
        kernels: Sequence[int] = (5, 5, 4, 4), paddings: Sequence[int] = (2, 1, 0, 0),
        batchnorm: bool = False, resize: bool = False, out_bias: float = 0.1,
        leaky_slope: float = 0.01,
    ) -> None:  # fmt: skip
        super().__init__()
        _check_lengths("model.decoder", widths=widths, kernels=kernels, paddings=paddings)
        self.sizes = decoder_sizes(start, kernels, paddings)
        self.n, self.start, self.resize = int(n), int(start), bool(resize)
        if self.sizes[-1] != self.n and not self.resize:
            raise ValueError(
                f"model.decoder: sizes {self.sizes} end at {self.sizes[-1]}³, not the {n}³ grid; "
                "change model.decoder.start/paddings or set model.decoder.resize=true"
            )
        self.c0 = int(widths[0])
        self.linear = nn.Linear(latent, self.c0 * self.start**3)
        chans = [*widths, 1]
        self.convs = nn.ModuleList()
        for i, (k, p) in enumerate(zip(kernels, paddings, strict=True)):
            block: list[nn.Module] = [nn.Conv3d(chans[i], chans[i + 1], k, 1, p)]
            if i < 3:
                if batchnorm:
                    block.append(nn.BatchNorm3d(chans[i + 1]))
                block.append(nn.LeakyReLU(leaky_slope))
            else:
                block.append(nn.ReLU())
            self.convs.append(nn.Sequential(*block))
        nn.init.constant_(self.convs[-1][0].bias, float(out_bias))

    def forward(self, z: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
        """Decoded density M̂ = D(z) (raw units of Eq. 1, Å⁻³·Z); ``scale`` [B] multiplies z (§8)."""
        if scale is not None:
            z = z * scale.reshape(-1, 1)
        s = self.start
        x = self.linear(z).reshape(-1, self.c0, s, s, s)
        for i, conv in enumerate(self.convs):
            if i < 3:
                x = F.interpolate(x, scale_factor=2, mode="trilinear", align_corners=False)
            x = conv(x)
        if x.shape[-1] != self.n:
            x = F.interpolate(x, size=(self.n,) * 3, mode="trilinear", align_corners=False)
        return x


class DensityVAE(nn.Module):
    """Encoder + reparameterisation + decoder from one config dict (keys of :data:`VAE_DEFAULTS`)."""

    def __init__(self, n: int, config: Mapping | None = None) -> None:
        super().__init__()
        cfg = merge_config(VAE_DEFAULTS, config, "model")
        self.config = cfg
        enc, dec, slope = cfg["encoder"], cfg["decoder"], float(cfg["leaky_slope"])
        self.encoder = DensityEncoder(n, int(cfg["latent"]), leaky_slope=slope, **enc)
        self.decoder = DensityDecoder(n, int(cfg["latent"]), leaky_slope=slope, **dec)
        self.latent = int(cfg["latent"])

    def reparameterise(self, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """z = μ + σ·ε in training mode, μ in eval mode."""
        if not self.training:
            return mu
        return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)

    def forward(
        self, density: torch.Tensor, scale: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """``{"mu", "logvar", "z", "recon"}`` for a density batch [B, 1, n, n, n]."""
        mu, logvar = self.encoder(density, scale)
        z = self.reparameterise(mu, logvar)
        return {"mu": mu, "logvar": logvar, "z": z, "recon": self.decoder(z, scale)}
