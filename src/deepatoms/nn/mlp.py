"""Dense layers and small multilayer perceptrons."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from deepatoms.nn.activations import get_activation


class Dense(nn.Linear):
    """Linear layer with an optional activation and a choice of weight initialisation.

    ``init`` is ``"glorot"`` (Xavier-uniform, the default of the authors' codes), ``"zeros"`` or
    ``"torch"`` (PyTorch's default). Biases start at zero.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        activation: str | None = None,
        init: str = "glorot",
    ) -> None:
        self._init = init
        super().__init__(in_features, out_features, bias=bias)
        self.activation = get_activation(activation)

    def reset_parameters(self) -> None:
        if self._init == "glorot":
            nn.init.xavier_uniform_(self.weight)
        elif self._init == "zeros":
            nn.init.zeros_(self.weight)
        elif self._init == "torch":
            super().reset_parameters()
            return
        else:
            raise ValueError(f"unknown init {self._init!r}; choose 'glorot', 'zeros' or 'torch'")
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(super().forward(x))


def mlp(
    sizes: Sequence[int],
    activation: str = "ssp",
    last_activation: str | None = None,
    last_init: str = "glorot",
    bias: bool = True,
) -> nn.Sequential:
    """Stack of :class:`Dense` layers with widths ``sizes`` (input first).

    Hidden layers use ``activation``; the last uses ``last_activation`` and ``last_init``.
    """
    if len(sizes) < 2:
        raise ValueError(f"an MLP needs at least input and output widths, got {list(sizes)}")
    layers = []
    for k in range(len(sizes) - 1):
        last = k == len(sizes) - 2
        layers.append(
            Dense(
                sizes[k],
                sizes[k + 1],
                bias=bias,
                activation=last_activation if last else activation,
                init=last_init if last else "glorot",
            )
        )
    return nn.Sequential(*layers)
