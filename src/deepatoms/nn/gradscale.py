"""Gradient scaling: identity in the forward pass, gradient × γ in the backward pass.

Hoffmann et al. 2019, Eq. 2 and §3.2: the segmentation U-Net reads the decoded
density through ``gradscale_γ`` so that one backward pass of

    total = L_RE + β·KL + L_seg(U(gradscale_γ(M̂)), S)

gives the U-Net the full segmentation gradient and the VAE γ times it:

    forward:   gradscale_γ(x) = x
    backward:  ∂L/∂x = γ · ∂L/∂gradscale_γ(x)

γ = 0 cuts the segmentation gradient from the VAE exactly (the output is still not detached, so
the graph stays the same for every γ); γ = 1 is the plain identity.
"""

from __future__ import annotations

import torch

__all__ = ["GradScale", "grad_scale"]


class GradScale(torch.autograd.Function):
    """Autograd function behind :func:`grad_scale`."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, gamma: float) -> torch.Tensor:
        ctx.gamma = float(gamma)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad * ctx.gamma, None


def grad_scale(x: torch.Tensor, gamma: float) -> torch.Tensor:
    """Return ``x`` unchanged; its gradient is multiplied by ``gamma`` (dimensionless) on the way back.

    ``gamma = 1`` returns ``x`` itself (no extra graph node).
    """
    gamma = float(gamma)
    if gamma == 1.0:
        return x
    return GradScale.apply(x, gamma)
