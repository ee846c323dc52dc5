"""Atom-wise output head shared by all property models.

Per-atom standardisation and atom references (Schütt 2018 thesis Ch. 3–4; Paper A §5):

    Ê_i = o(x_i)                        output network on the final atom features
    E_i = σ·Ê_i + μ + E_ref(Z_i)        per-atom contribution (scale, shift, atom reference)
    y   = Σ_i E_i   (sum readout, extensive targets)   or   (1/n) Σ_i E_i   (mean readout)

For a sum readout μ, σ are the mean and std of the per-atom target (t − Σ ref)/n over the
training set; for a mean readout they are the z-score of t − (Σ ref)/n. With a zero raw output the
prediction is n·μ (+ Σ ref) for a sum readout and μ (+ mean ref) for a mean readout.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping

import torch
from torch import nn

from deepatoms.data.graph import Batch
from deepatoms.nn.mlp import mlp
from deepatoms.nn.scatter import scatter_sum

MAX_Z = 119  # atomic numbers 0 … 118


class AtomwiseHead(nn.Module):
    """Output network o, per-atom scale/shift, atom references and pooling.

    ``hidden`` widths of o (e.g. ``[F // 2]``), ``activation`` for its hidden layers; the last layer
    is zero-initialised when ``zero_init_last`` (SchNet, DTNN per the authors' code), so an untrained
    model predicts the training mean. Statistics live in buffers and travel with the model file.
    ``net``: a ready output network [N, n_in] → [N, 1] used instead of the MLP (then ``hidden``,
    ``activation`` and ``zero_init_last`` are unused), e.g. the gated readout of VIMPNN.
    """

    def __init__(
        self,
        n_in: int,
        hidden: list[int],
        activation: str = "ssp",
        readout: str = "sum",
        zero_init_last: bool = True,
        net: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if readout not in ("sum", "mean"):
            raise ValueError(f"readout must be 'sum' or 'mean', got {readout!r}")
        self.readout = readout
        if net is None:
            net = mlp(
                [n_in, *hidden, 1],
                activation=activation,
                last_init="zeros" if zero_init_last else "glorot",
            )
        self.net = net
        self.register_buffer("mean", torch.zeros(()))
        self.register_buffer("std", torch.ones(()))
        self.register_buffer("atomref", torch.zeros(MAX_Z, dtype=torch.float64))

    def _apply(self, fn, recurse: bool = True):
        # Device moves apply to the references too, dtype casts do not: they stay float64.
        ref = self._buffers["atomref"]
        super()._apply(fn, recurse)
        self._buffers["atomref"] = ref.to(device=self._buffers["mean"].device)
        return self

    def set_statistics(
        self, mean: float, std: float, atomref: Mapping[int, float] | None = None
    ) -> None:
        """Set μ, σ (target units) and per-element references E_ref(Z) (target units)."""
        if not std > 0:
            raise ValueError(f"target std must be > 0, got {std}")
        self.mean.fill_(float(mean))
        self.std.fill_(float(std))
        self.atomref.zero_()
        for z, v in (atomref or {}).items():
            z = int(z)
            if not 0 <= z < MAX_Z:
                raise ValueError(
                    f"atom reference for atomic number {z} is out of range 0…{MAX_Z - 1}"
                )
            self.atomref[z] = float(v)

    def forward(self, x: torch.Tensor, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (per-system prediction [B], per-atom contributions E_i [N]), both float64."""
        raw = self.net(x).squeeze(-1)
        # Scale/shift in the model dtype; references and pooling in float64, because total
        # energies (~10⁴ eV for QM9) lose meV to float32 rounding.
        contrib = (self.std * raw + self.mean).double() + self.atomref.index_select(
            0, batch.numbers
        )
        y = scatter_sum(contrib, batch.batch, batch.num_systems)
        if self.readout == "mean":
            y = y / batch.n_atoms.to(y.dtype)
        return y, contrib


class AtomisticModel(nn.Module):
    """A representation (Batch → atom features [N, F]) followed by an :class:`AtomwiseHead`.

    ``forward(batch)`` returns ``{property: [B], "contributions": [N]}``. ``config`` is the plain
    dict that rebuilds the model through :func:`deepatoms.models.registry.build_model`.
    """

    def __init__(
        self, representation: nn.Module, head: AtomwiseHead, property: str, config: dict
    ) -> None:
        super().__init__()
        self.representation = representation
        self.head = head
        self.property = property
        self.config = config

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        x = self.representation(batch)
        y, contrib = self.head(x, batch)
        return {self.property: y, "contributions": contrib}


def build_atomistic_model(representation: type[nn.Module], config: Mapping) -> AtomisticModel:
    """A representation class followed by an :class:`AtomwiseHead`, from a model config.

    ``config``: ``{"name": ..., <representation options>, "property": "U0", "readout": "sum",
    "head": {...}}``; the head options default to ``representation.HEAD_DEFAULTS`` (``hidden:
    "half"`` = one hidden layer of width n_atom_basis // 2). Unknown options raise ValueError
    naming them and the allowed ones.
    """
    cfg = dict(config)
    name = cfg.pop("name", representation.__name__)
    prop = cfg.pop("property", "energy")
    readout = cfg.pop("readout", "sum")
    head_cfg = {**getattr(representation, "HEAD_DEFAULTS", {}), **(cfg.pop("head", None) or {})}
    allowed = set(inspect.signature(representation.__init__).parameters) - {"self"}
    unknown = set(cfg) - allowed
    if unknown:
        raise ValueError(
            f"unknown option(s) {sorted(unknown)} for model {name!r}; allowed: {sorted(allowed)}"
        )
    rep = representation(**cfg)
    hidden = head_cfg.pop("hidden", "half")
    if hidden == "half":
        hidden = [rep.n_atom_basis // 2]
    head = AtomwiseHead(rep.n_atom_basis, list(hidden), readout=readout, **head_cfg)
    return AtomisticModel(rep, head, prop, dict(config))
