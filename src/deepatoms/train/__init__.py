"""The one training protocol (:func:`fit`) and the task of every model family.

``fit`` and ``TrainResult`` are imported on first use, so that modules of this package that do
not train (the loader, losses, metrics) can be used without importing Lightning.
"""

from __future__ import annotations

from typing import Any

__all__ = ["TrainResult", "fit"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from deepatoms.train import protocol

        return getattr(protocol, name)
    raise AttributeError(f"module 'deepatoms.train' has no attribute {name!r}")
