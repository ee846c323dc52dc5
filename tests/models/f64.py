"""Test helper shared by the model tests: build modules directly in float64."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

F64 = torch.float64


@contextmanager
def float64_default() -> Iterator[None]:
    """Build modules directly in float64 (constants such as RBF centres are then exact)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(F64)
    try:
        yield
    finally:
        torch.set_default_dtype(old)
