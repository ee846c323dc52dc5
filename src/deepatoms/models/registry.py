"""Model registry: every model family registers a builder under a name.

A model config is a plain dict: ``{"name": "schnet", <representation options>, "readout": "sum",
"property": "U0", "head": {...}}``. :func:`build_model` turns it into an :class:`AtomisticModel`;
the same dict is stored in the model file, so a saved model can be rebuilt without pickled code.

Families whose output stage is not the plain :class:`AtomwiseHead` (own readout network, own model
class, e.g. VIMPNN's gated readout and auxiliary heads) register a whole-model builder with
:func:`register_model_builder` instead of a representation class.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from torch import nn

from deepatoms.models.heads import AtomisticModel, AtomwiseHead

_REGISTRY: dict[str, tuple[Callable[..., nn.Module], dict]] = {}
_BUILDERS: dict[str, tuple[Callable[..., AtomisticModel], dict]] = {}


def register_model(name: str, head_defaults: dict) -> Callable:
    """Class decorator: register a representation class under ``name``.

    ``head_defaults``: the family's output network, e.g. ``{"hidden": "half", "activation": "ssp"}``
    (``"half"`` means one hidden layer of width n_atom_basis // 2).
    """

    def deco(cls: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY or name in _BUILDERS:
            raise ValueError(f"model name {name!r} is registered twice")
        _REGISTRY[name] = (cls, dict(head_defaults))
        return cls

    return deco


def register_model_builder(
    name: str, builder: Callable[..., AtomisticModel], defaults: dict
) -> None:
    """Register a family that builds its whole model (own head or model class).

    ``defaults``: every option of the family with its default value. :func:`build_model` rejects
    other keys and calls ``builder(property=..., readout=..., config=<the config dict>, **options)``
    with the defaults overridden by the config; the builder returns an :class:`AtomisticModel`.
    """
    if name in _REGISTRY or name in _BUILDERS:
        raise ValueError(f"model name {name!r} is registered twice")
    _BUILDERS[name] = (builder, dict(defaults))


def available_models() -> list[str]:
    """Names of all registered model families."""
    _import_families()
    return sorted({*_REGISTRY, *_BUILDERS})


def _import_families() -> None:
    # Importing the modules runs their @register_model decorators.
    from deepatoms.models import dtnn, gschnet, mpnn, nmp_edge, schnet  # noqa: F401


def build_model(config: dict) -> AtomisticModel:
    """Build a model from its config dict (see module docstring); unknown keys are an error."""
    _import_families()
    cfg = dict(config)
    name = cfg.pop("name", None)
    if name not in _REGISTRY and name not in _BUILDERS:
        raise ValueError(f"unknown model {name!r}; available: {available_models()}")
    prop = cfg.pop("property", "energy")
    readout = cfg.pop("readout", "sum")
    if name in _BUILDERS:
        builder, defaults = _BUILDERS[name]
        unknown = set(cfg) - set(defaults)
        if unknown:
            raise ValueError(
                f"unknown option(s) {sorted(unknown)} for model {name!r}; "
                f"allowed: {sorted(defaults)}"
            )
        options = {**defaults, **cfg}
        return builder(property=prop, readout=readout, config=dict(config), **options)
    cls, head_defaults = _REGISTRY[name]
    head_cfg = {**head_defaults, **(cfg.pop("head", None) or {})}
    allowed = set(inspect.signature(cls.__init__).parameters) - {"self"}
    unknown = set(cfg) - allowed
    if unknown:
        raise ValueError(
            f"unknown option(s) {sorted(unknown)} for model {name!r}; allowed: {sorted(allowed)}"
        )
    rep = cls(**cfg)
    n_out = rep.n_atom_basis
    hidden = head_cfg.pop("hidden", "half")
    if hidden == "half":
        hidden = [n_out // 2]
    head = AtomwiseHead(n_out, list(hidden), readout=readout, **head_cfg)
    return AtomisticModel(rep, head, prop, dict(config))
