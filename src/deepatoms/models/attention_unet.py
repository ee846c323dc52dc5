"""3-D attention U-Net for per-voxel species logits (docs/density_vae.md §4).

Ronneberger et al. 2015 (U-Net) with the additive attention gates of Oktay et al. 2018 on the
skip connections; the paper (Hoffmann et al. §3.2) names the network but gives no architecture,
so the Default is:

- levels with widths (16, 32, 64) and a 128-wide bottleneck; each level and the bottleneck is
  two 3×3×3 convolutions + BatchNorm + ReLU; max-pooling ×2 between levels;
- ``norm="group"`` (not in the paper) puts GroupNorm (up to 8 groups) where BatchNorm is. It has
  no running statistics, so it suits training where the network reads two kinds of input: the
  joint loss with ``train.seg_input_weight`` > 0 feeds it decoded and true densities, and
  BatchNorm's running mean/variance then average the two, which at evaluation matches neither
  (measured: 4.5 % exact atom counts on true densities with the mixed statistics, 92 % after
  re-estimating them on true densities alone);
- on the way up, a transposed convolution (kernel 2, stride 2) to the level's width, the gated
  skip x̂ = α·x concatenated with it, then two convolutions as above;
- attention gate (additive, gating signal g = the upsampled decoder feature at the skip's
  resolution): α = sigmoid(ψ(ReLU(W_x x + W_g g))), with 1×1×1 convolutions W_x, W_g (to
  ``width // 2`` channels) and ψ (to one channel); α ∈ (0, 1) per voxel;
- a 1×1×1 convolution to ``n_classes`` logits whose bias starts at the class-0 prior π
  (``background_prior``, not in the paper): b_0 = log(π(C − 1)/(1 − π)), b_c = 0 otherwise, so
  the first softmax gives "no atom" probability π. Atoms fill well under 1 % of the voxels; from
  uniform logits Adam needs thousands of steps of size ≈ lr to learn that prior before the
  atoms can be learned (Lin et al. 2017, prior-probability initialisation);
- the input is zero-padded to the next multiple of 2^levels (30 → 32) and the logits are cropped
  back (32 → 30), so any cube side works.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["NORMS", "AttentionGate", "AttentionUNet3d", "double_conv"]


NORMS = ("batch", "group")


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm3d(channels)
    if kind == "group":
        return nn.GroupNorm(math.gcd(8, channels), channels)
    raise ValueError(f"model.unet.norm={kind!r} is unknown; choose one of {NORMS}")


def double_conv(c_in: int, c_out: int, norm: str = "batch") -> nn.Sequential:
    """Two 3×3×3 convolutions (padding 1), each followed by the normalisation and ReLU.

    ``norm``: ``batch`` (BatchNorm, the Default) or ``group`` (GroupNorm with gcd(8, c_out)
    groups; the same affine parameter count).
    """
    return nn.Sequential(
        nn.Conv3d(c_in, c_out, 3, padding=1, bias=False),
        _norm(norm, c_out),
        nn.ReLU(inplace=True),
        nn.Conv3d(c_out, c_out, 3, padding=1, bias=False),
        _norm(norm, c_out),
        nn.ReLU(inplace=True),
    )


class AttentionGate(nn.Module):
    """Additive attention gate (Oktay et al. 2018): x·sigmoid(ψ(ReLU(W_x x + W_g g)))."""

    def __init__(self, x_channels: int, g_channels: int, inter_channels: int) -> None:
        super().__init__()
        self.w_x = nn.Conv3d(x_channels, inter_channels, 1, bias=False)
        self.w_g = nn.Conv3d(g_channels, inter_channels, 1)
        self.psi = nn.Conv3d(inter_channels, 1, 1)

    def coefficients(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """Attention coefficients α [B, 1, ...] in (0, 1) for skip ``x`` and gate ``g``."""
        return torch.sigmoid(self.psi(F.relu(self.w_x(x) + self.w_g(g))))

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return x * self.coefficients(x, g)


class AttentionUNet3d(nn.Module):
    """Density [B, C_in, n, n, n] → logits [B, n_classes, n, n, n] (§4)."""

    def __init__(
        self, n_classes: int = 95, widths: Sequence[int] = (16, 32, 64), bottleneck: int = 128,
        attention: bool = True, background_prior: float | None = 0.99, in_channels: int = 1,
        norm: str = "batch",
    ) -> None:  # fmt: skip
        super().__init__()
        widths = [int(w) for w in widths]
        if not widths or min(widths) < 1 or n_classes < 2:
            raise ValueError(
                f"model.unet: need at least one level width ≥ 1 and ≥ 2 classes; "
                f"got widths {widths}, n_classes {n_classes}"
            )
        self.factor = 2 ** len(widths)
        self.down = nn.ModuleList()
        c = in_channels
        for w in widths:
            self.down.append(double_conv(c, w, norm))
            c = w
        self.bottleneck = double_conv(c, int(bottleneck), norm)
        c = int(bottleneck)
        self.up = nn.ModuleList()
        self.gates = nn.ModuleList()
        self.merge = nn.ModuleList()
        for w in reversed(widths):
            self.up.append(nn.ConvTranspose3d(c, w, 2, stride=2))
            self.gates.append(AttentionGate(w, w, max(w // 2, 1)) if attention else nn.Identity())
            self.merge.append(double_conv(2 * w, w, norm))
            c = w
        self.head = nn.Conv3d(c, n_classes, 1)
        if background_prior is not None:
            p = float(background_prior)
            if not 0.0 < p < 1.0:
                raise ValueError(f"model.unet.background_prior must lie in (0, 1), got {p}")
            nn.init.zeros_(self.head.bias)
            with torch.no_grad():
                self.head.bias[0] = math.log(p * (n_classes - 1) / (1.0 - p))
        self.n_classes = int(n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Per-voxel class logits, cropped to the input's spatial shape."""
        shape = x.shape[-3:]
        pads: list[int] = []
        for side in reversed(shape):  # F.pad lists the last dimension first
            extra = -side % self.factor
            pads += [extra // 2, extra - extra // 2]
        h = F.pad(x, pads) if any(pads) else x
        skips = []
        for block in self.down:
            h = block(h)
            skips.append(h)
            h = F.max_pool3d(h, 2)
        h = self.bottleneck(h)
        levels = zip(self.up, self.gates, self.merge, reversed(skips), strict=True)
        for up, gate, merge, skip in levels:
            h = up(h)
            gated = gate(skip, h) if isinstance(gate, AttentionGate) else skip
            h = merge(torch.cat([gated, h], dim=1))
        logits = self.head(h)
        if any(pads):
            a, b, c = pads[4], pads[2], pads[0]  # leading pads of dims -3, -2, -1
            logits = logits[..., a : a + shape[0], b : b + shape[1], c : c + shape[2]]
        return logits
