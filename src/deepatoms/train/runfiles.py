"""The run folder: where a training run keeps its config, split, statistics, logs and model.

Layout: ``config.yaml`` · ``split.json`` · ``stats.json`` · ``checkpoints/{best,last}.ckpt`` ·
``metrics.csv`` · ``plots/`` · ``model.pt`` · ``summary.json``. All writes are atomic.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to a temporary file next to ``path`` and rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | Path, obj: object) -> None:
    """Atomic JSON write (indented)."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: str | Path) -> dict:
    """Read a JSON file, naming the file in the error if it is missing or broken."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from exc


class RunDir:
    """Paths inside a run folder."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    config = property(lambda self: self.root / "config.yaml")
    split = property(lambda self: self.root / "split.json")
    stats = property(lambda self: self.root / "stats.json")
    checkpoints = property(lambda self: self.root / "checkpoints")
    last_ckpt = property(lambda self: self.root / "checkpoints" / "last.ckpt")
    best_ckpt = property(lambda self: self.root / "checkpoints" / "best.ckpt")
    metrics = property(lambda self: self.root / "metrics.csv")
    plots = property(lambda self: self.root / "plots")
    model = property(lambda self: self.root / "model.pt")
    summary = property(lambda self: self.root / "summary.json")

    def is_run(self) -> bool:
        """True if this folder holds a run config."""
        return self.config.is_file()
