"""The torch device a command runs a model on (``--device``)."""

from __future__ import annotations

from typing import Any

from deepatoms.core.errors import DeepatomsError

__all__ = ["resolve_device"]


def resolve_device(name: str) -> Any:
    """The torch device ``name`` (``cpu``, ``cuda``, ``cuda:1``, ...); a clear error for an
    unknown device or a GPU that is not there."""
    import torch

    try:
        dev = torch.device(name)
    except RuntimeError:
        raise DeepatomsError(f"--device {name!r} is not a torch device; use cpu or cuda") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DeepatomsError(f"--device {name}: no CUDA GPU is available here; use --device cpu")
    return dev
