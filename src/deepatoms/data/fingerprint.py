"""Fingerprints of training data: a short hash that says whether two inputs are the same.

A file's fingerprint is ``sha256:<hex>`` of its bytes; a folder's hashes its files' names and
fingerprints (sorted); a source that is not a path (e.g. ``prototypes:1000``) contributes its
text. Model files and split files record the fingerprint of the data they were made from.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

__all__ = ["file_fingerprint", "sources_fingerprint"]

_CHUNK = 1 << 20


def file_fingerprint(path: str | os.PathLike) -> str:
    """``sha256:<hex>`` of the bytes of ``path`` (a folder: of its files, recursively)."""
    path = Path(path)
    digest = hashlib.sha256()
    if path.is_dir():
        for p in sorted(q for q in path.rglob("*") if q.is_file()):
            digest.update(str(p.relative_to(path)).encode())
            digest.update(file_fingerprint(p).encode())
        return f"sha256:{digest.hexdigest()}"
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(block)
    return f"sha256:{digest.hexdigest()}"


def sources_fingerprint(sources: Iterable[str | os.PathLike]) -> str:
    """One fingerprint of several sources, in order: files and folders by content, anything
    else (a generated source such as ``prototypes:1000``) by its text."""
    digest = hashlib.sha256()
    for src in sources:
        p = Path(src)
        part = file_fingerprint(p) if p.exists() else f"text:{src}"
        digest.update(part.encode())
    return f"sha256:{digest.hexdigest()}"
