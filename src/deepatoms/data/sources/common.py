"""Helpers shared by the dataset sources: input checksums and progress bars."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any


def file_md5(path: str | Path) -> str:
    """MD5 hex digest of a file (provenance of an input, read in 1 MiB blocks)."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def progress_bar(enabled: bool) -> Any:
    """A rich progress bar (description, bar, done/total, elapsed) on stderr; off when disabled."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=not enabled,
    )


__all__ = ["file_md5", "progress_bar"]
