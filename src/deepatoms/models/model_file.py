"""The model file: one envelope for every family, written atomically and read safely.

A model file (``model.pt``) is one ``torch.save`` of plain containers and tensors::

    {"format": "deepatoms-model", "format_version": 2, "deepatoms_version": "0.2.0",
     "family": "schnet", "model": "schnet",            # registry names (docs/architecture.md)
     "config": {...},                                   # the model config that rebuilds it
     "state_dict": {name: tensor},                      # the weights (and buffers)
     "units": {"target": "eV", "length": "Å"},
     "target": {"name": "U0", "unit": "eV", "readout": "sum", ...} or None,
     "normalisation": {"mean": ..., "std": ..., "atomrefs": {...}} or {},
     "extras": {...},        # what the family needs besides the weights: the graph of an
                             # atomistic model, the grammar text of a grammar VAE, the grid and
                             # class map of a density VAE, the statistics of regressors
     "training_data": {"path": ..., "fingerprint": "sha256:...", "n_systems": ...},
     "run_config": {...},    # the full config of the training run, if any
     "meta": {...}}          # free: metrics, preset, epochs, ...

:func:`read_model_file` loads with ``torch.load(..., weights_only=True)``: opening a file never
runs code from it. Every problem (missing file, a file of another kind, a newer format version,
a truncated or corrupted file, a pickle that carries code) is one
:class:`~deepatoms.core.errors.ModelFileError` naming the file and what was expected. Files of
the four earlier formats (``deepatoms-model`` v1 of property models, potentials and G-SchNet;
``deepatoms-grammar-vae`` v1; ``deepatoms-latent-regressors`` v1; ``deepatoms-density-vae``
v1) are read and converted to this envelope.
"""

from __future__ import annotations

import os
import pickle
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deepatoms import __version__
from deepatoms.core.errors import MissingModelFileError, ModelFileError
from deepatoms.core.files import atomic_torch_save

__all__ = ["FORMAT", "FORMAT_VERSION", "ModelFile", "read_model_file", "write_model_file"]

FORMAT = "deepatoms-model"
FORMAT_VERSION = 2

_REQUIRED = ("family", "model", "config", "state_dict")
#: What ``deepatoms`` writes under each format name, for error messages.
_KNOWN_FORMATS = {
    "deepatoms-dataset": "a dataset (open it with `deepatoms data info`)",
    "deepatoms-cv": "a cross-validation summary",
}


@dataclass
class ModelFile:
    """The contents of a model file (module docstring), after any format upgrade."""

    path: Path
    family: str
    model: str
    config: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    units: dict[str, str] = field(default_factory=dict)
    target: dict[str, Any] | None = None
    normalisation: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    training_data: dict[str, Any] = field(default_factory=dict)
    run_config: dict[str, Any] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    deepatoms_version: str = ""


def write_model_file(
    path: str | os.PathLike, model: nn.Module, family: str, *,
    extras: Mapping[str, Any] | None = None, units: Mapping[str, str] | None = None,
    target: Mapping[str, Any] | None = None, normalisation: Mapping[str, Any] | None = None,
    training_data: Mapping[str, Any] | None = None, run_config: Mapping[str, Any] | None = None,
    meta: Mapping[str, Any] | None = None,
) -> Path:  # fmt: skip
    """Write ``model`` (its ``config`` and weights, dtype as it is) to ``path`` atomically.

    ``family``: the registry family of the model; the model's ``config["name"]`` names the
    model. Returns the path.
    """
    config = dict(getattr(model, "config", None) or {})
    if "name" not in config:
        raise ValueError("the model has no config with a 'name'; it cannot be rebuilt from a file")
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "deepatoms_version": __version__,
        "family": family,
        "model": config["name"],
        "config": config,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "units": dict(units or {}),
        "target": dict(target) if target is not None else None,
        "normalisation": dict(normalisation or {}),
        "extras": dict(extras or {}),
        "training_data": dict(training_data or {}),
        "run_config": dict(run_config) if run_config is not None else None,
        "meta": dict(meta or {}),
    }
    atomic_torch_save(payload, path)
    return Path(path)


def read_model_file(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> ModelFile:
    """The envelope of the model file ``path`` (older formats converted); safe to call on any
    file: problems raise :class:`ModelFileError`, and no code from the file ever runs."""
    path = Path(path)
    if not path.is_file():
        what = "a folder" if path.is_dir() else "missing"
        raise MissingModelFileError(
            f"model file {path} is {what}; give the model.pt of a training run"
        )
    payload = _load_payload(path, map_location)
    fmt = payload.get("format")
    version = payload.get("format_version", 0)
    if fmt == FORMAT and isinstance(version, int) and version >= 2:
        if version > FORMAT_VERSION:
            raise ModelFileError(
                f"{path} has model-file format version {version}, newer than this deepatoms "
                f"reads ({FORMAT_VERSION}, deepatoms {__version__}); upgrade deepatoms to load it"
            )
        return _from_envelope(path, payload)
    upgrade = _LEGACY.get(fmt)
    if upgrade is None:
        raise ModelFileError(_not_a_model_file(path, payload))
    if not isinstance(version, int) or version > 1:
        raise ModelFileError(
            f"{path} has {fmt} format version {version}, newer than this deepatoms reads (1); "
            "upgrade deepatoms to load it"
        )
    try:
        return upgrade(path, payload)
    except (KeyError, TypeError, AttributeError) as exc:
        raise ModelFileError(
            f"{path} is a damaged {fmt} file: {type(exc).__name__} {exc}"
        ) from None


def _load_payload(path: Path, map_location: str | torch.device) -> dict:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols of foreign files
            payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        blocked = [line.strip() for line in str(exc).splitlines() if "GLOBAL" in line]
        if blocked:
            raise ModelFileError(
                f"{path} is not a deepatoms model file: it holds Python objects whose loading "
                f"could run code ({blocked[0]}), and deepatoms loads only tensors and plain "
                "values; nothing from the file was run"
            ) from None
        raise ModelFileError(_unreadable(path, "not a torch file")) from None
    except Exception as exc:  # torch raises several types for damaged or foreign files
        raise ModelFileError(_unreadable(path, type(exc).__name__)) from None
    if not isinstance(payload, dict):
        raise ModelFileError(
            f"{path} is not a deepatoms model file (it holds a {type(payload).__name__}); give "
            "the model.pt of a training run"
        )
    return payload


def _unreadable(path: Path, why: str) -> str:
    size = path.stat().st_size
    state = "empty" if size == 0 else f"{size} bytes"
    return (
        f"{path} is not a readable model file ({state}, {why}): it is truncated, corrupted or "
        "of another kind; give the model.pt of a training run"
    )


def _not_a_model_file(path: Path, payload: dict) -> str:
    fmt = payload.get("format")
    if fmt in _KNOWN_FORMATS:
        return f"{path} is {_KNOWN_FORMATS[fmt]}, not a model file"
    if "pytorch-lightning_version" in payload or "optimizer_states" in payload:
        return (
            f"{path} is a training checkpoint, not a model file; give the run folder or its "
            "model.pt (written when training ends)"
        )
    return (
        f"{path} is not a deepatoms model file (format {fmt!r}, expected {FORMAT!r}); give the "
        "model.pt of a training run"
    )


def _from_envelope(path: Path, p: dict) -> ModelFile:
    missing = [k for k in _REQUIRED if k not in p]
    if (
        missing
        or not isinstance(p.get("state_dict"), dict)
        or not isinstance(p.get("config"), dict)
    ):
        raise ModelFileError(f"{path} is a damaged model file: it lacks {missing or ['weights']}")
    return ModelFile(
        path=path,
        family=str(p["family"]),
        model=str(p["model"]),
        config=dict(p["config"]),
        state_dict=dict(p["state_dict"]),
        units=dict(p.get("units") or {}),
        target=p.get("target"),
        normalisation=dict(p.get("normalisation") or {}),
        extras=dict(p.get("extras") or {}),
        training_data=dict(p.get("training_data") or {}),
        run_config=p.get("run_config"),
        meta=dict(p.get("meta") or {}),
        format_version=int(p["format_version"]),
        deepatoms_version=str(p.get("deepatoms_version", "")),
    )


# -- earlier formats ---------------------------------------------------------------------------
#: model name → family of the models that ``deepatoms-model`` v1 files could hold.
_V1_FAMILIES = {
    "schnet": "schnet",
    "dtnn": "dtnn",
    "nmp_edge": "nmp_edge",
    "mpnn": "mpnn",
    "vimpnn": "mpnn",
    "gschnet": "gschnet",
}


def _legacy_atomistic(path: Path, p: dict) -> ModelFile:
    """``deepatoms-model`` v1: property models, potentials and G-SchNet."""
    config = dict(p["model_config"])
    if config.get("name") not in _V1_FAMILIES:
        raise ModelFileError(
            f"{path}: a deepatoms-model v1 file of an unknown model {config.get('name')!r} "
            f"(v1 files hold {', '.join(_V1_FAMILIES)})"
        )
    meta = dict(p.get("meta") or {})
    stats = dict(meta.get("stats") or {})
    gschnet = config.get("name") == "gschnet"
    target = None
    if not gschnet:
        target = {
            "name": p["property"],
            "unit": p.get("unit", ""),
            "readout": stats.get("readout", config.get("readout", "sum")),
            "forces": meta.get("forces"),
        }
    return ModelFile(
        path=path,
        family=_V1_FAMILIES[config["name"]],
        model=str(config.get("name")),
        config=config,
        state_dict=dict(p["state_dict"]),
        units={"target": p.get("unit", ""), "length": "Å"},
        target=target,
        normalisation={k: stats[k] for k in ("mean", "std", "atomrefs") if k in stats},
        extras={
            "graph": dict(p["graph"]),
            "elements": meta.get("elements"),
            "bond_types": meta.get("bond_types"),
        },
        training_data={"path": meta.get("dataset"), "source": meta.get("dataset_source")},
        run_config=meta.get("config"),
        meta=meta,
        format_version=1,
        deepatoms_version=str(p.get("deepatoms_version", "")),
    )


def _legacy_grammar_vae(path: Path, p: dict) -> ModelFile:
    """``deepatoms-grammar-vae`` v1."""
    meta = dict(p.get("meta") or {})
    config = {**dict(p["model_config"]), "name": "grammar-vae"}
    return ModelFile(
        path=path,
        family="grammar_vae",
        model="grammar-vae",
        config=config,
        state_dict=dict(p["state_dict"]),
        extras={"grammar": dict(p["grammar"]), "training_strings": meta.get("training_strings")},
        training_data={"path": meta.get("dataset")},
        run_config=meta.get("config"),
        meta=meta,
        format_version=1,
        deepatoms_version=str(p.get("deepatoms_version", "")),
    )


def _legacy_regressors(path: Path, p: dict) -> ModelFile:
    """``deepatoms-latent-regressors`` v1: one state dict per property → one module."""
    props = list(p["properties"])
    first = p["models"][props[0]]["config"]
    config = {"name": "latent-regressors", **dict(first), "properties": props}
    state: dict[str, torch.Tensor] = {}
    for k in props:
        for name, t in p["models"][k]["state_dict"].items():
            state[f"regressors.{k}.{name}"] = t
    state["mean"] = torch.tensor(
        [float(p["models"][k]["mean"]) for k in props], dtype=torch.float64
    )
    state["std"] = torch.tensor([float(p["models"][k]["std"]) for k in props], dtype=torch.float64)
    return ModelFile(
        path=path,
        family="grammar_vae",
        model="latent-regressors",
        config=config,
        state_dict=state,
        units={"target": "eV"},
        target={"names": props, "unit": "eV"},
        normalisation={
            k: {"mean": p["models"][k]["mean"], "std": p["models"][k]["std"]} for k in props
        },
        extras={"stats": {k: dict(p["models"][k].get("stats") or {}) for k in props}},
        meta=dict(p.get("meta") or {}),
        format_version=1,
        deepatoms_version=str(p.get("deepatoms_version", "")),
    )


def _legacy_density(path: Path, p: dict) -> ModelFile:
    """``deepatoms-density-vae`` v1."""
    config = {**dict(p["model_config"]), "name": "density_vae"}
    return ModelFile(
        path=path,
        family="density_vae",
        model="density_vae",
        config=config,
        state_dict=dict(p["state_dict"]),
        units={"length": "Å", "density": "Å⁻³"},
        extras={"grid": dict(p["grid"]), "class_map": list(p["class_map"])},
        meta=dict(p.get("meta") or {}),
        format_version=1,
        deepatoms_version=str(p.get("deepatoms_version", "")),
    )


_LEGACY = {
    "deepatoms-model": _legacy_atomistic,
    "deepatoms-grammar-vae": _legacy_grammar_vae,
    "deepatoms-latent-regressors": _legacy_regressors,
    "deepatoms-density-vae": _legacy_density,
}
