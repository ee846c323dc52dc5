"""Model files: one ``.pt`` with config, weights, normalisation and units.

Saved with ``torch.save`` of plain containers and tensors, loaded with
``torch.load(..., weights_only=True)``: opening a model file never runs code from it.
Writes are atomic (temporary file + rename).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from deepatoms import __version__
from deepatoms.core.files import atomic_torch_save
from deepatoms.data.neighbors import GraphSpec
from deepatoms.models.heads import AtomisticModel
from deepatoms.models.registry import build_model

FORMAT = "deepatoms-model"
FORMAT_VERSION = 1


@dataclass
class LoadedModel:
    """A model rebuilt from a file, with the graph it expects and its metadata."""

    model: AtomisticModel
    graph: GraphSpec
    property: str
    unit: str
    meta: dict = field(default_factory=dict)


def save_model_file(
    path: str | Path, model: AtomisticModel, graph: GraphSpec, unit: str, meta: dict | None = None
) -> None:
    """Write ``model`` (weights in float32 or float64 as they are) to ``path`` atomically."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "deepatoms_version": __version__,
        "model_config": model.config,
        "graph": graph.to_config(),
        "property": model.property,
        "unit": unit,
        "state_dict": state,
        "meta": meta or {},
    }
    atomic_torch_save(payload, path)


def read_payload(
    path: str | Path,
    fmt: str,
    max_version: int,
    kind: str,
    hint: str,
    map_location: str | torch.device = "cpu",
) -> dict:
    """The plain-container payload of a deepatoms file, safely loaded and checked.

    ``torch.load(weights_only=True)``; the payload must be a dict with ``format`` ``fmt`` and a
    ``format_version`` (missing: 0) of at most ``max_version``. ``kind`` names the file type in
    errors ("density VAE model"); ``hint`` says how to get the right file. A missing ``path``
    raises FileNotFoundError.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{kind} file {path} does not exist")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types for non-model files
        raise ValueError(
            f"{path} is not a readable {kind} file ({type(exc).__name__}: {exc})"
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != fmt:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise ValueError(
            f"{path} is not a {kind} file (format {found!r}, expected {fmt!r}); {hint}"
        )
    if payload.get("format_version", 0) > max_version:
        raise ValueError(
            f"{path} has {kind} format version {payload['format_version']}, newer than this "
            f"deepatoms reads ({max_version}); upgrade deepatoms"
        )
    return payload


def load_model_file(path: str | Path, map_location: str | torch.device = "cpu") -> LoadedModel:
    """Rebuild a model from a file written by :func:`save_model_file` (safe loading)."""
    payload = read_payload(
        path, FORMAT, FORMAT_VERSION, "deepatoms model",
        "pass the exported model.pt of a training run", map_location,
    )  # fmt: skip
    model = build_model(payload["model_config"])
    # Cast first: load_state_dict copies into the existing tensors, so loading float64 weights
    # into the freshly built float32 model would round them.
    dtypes = [v.dtype for v in payload["state_dict"].values() if v.is_floating_point()]
    model.to(dtype=dtypes[0] if dtypes else torch.float32)
    model.load_state_dict(payload["state_dict"])
    model.eval()
    return LoadedModel(
        model=model,
        graph=GraphSpec.from_config(payload["graph"]),
        property=payload["property"],
        unit=payload["unit"],
        meta=payload.get("meta", {}),
    )
