"""The run folder: where a training run keeps its config, split, statistics, logs and model.

Layout: ``config.yaml`` (the resolved config) · ``split.json`` · ``stats.json`` ·
``checkpoints/{best,last}.ckpt`` · ``metrics.csv`` · ``plots/`` · ``model.pt`` ·
``summary.json``. Every file is written atomically.

Resuming (:func:`check_resume`): a folder with ``checkpoints/last.ckpt`` is resumed when its
saved config equals the new one up to the keys that do not change the result (the stopping
limits, threads, the hardware: ``resumable`` fields of the family's schema); a non-empty folder
that is not a run is refused.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Collection, Mapping
from pathlib import Path

from deepatoms.config.schema import config_diff
from deepatoms.core.errors import ConfigError
from deepatoms.models.registry import load_run_config

__all__ = ["RunFolder", "check_resume"]

log = logging.getLogger(__name__)


class RunFolder:
    """Paths inside a run folder."""

    def __init__(self, root: str | os.PathLike) -> None:
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


def check_resume(run: RunFolder, config: Mapping, resumable: Collection[str] = ()) -> bool:
    """True to resume the run in ``run``; ConfigError if the folder holds something else.

    ``resumable``: dotted keys (``train.max_epochs``) that may differ from the saved config.
    """
    if run.last_ckpt.is_file():
        diff = config_diff(load_run_config(run.config), config, resumable)
        if diff:
            raise ConfigError(
                f"{run.root} holds a run with a different config, so it cannot be resumed:\n  "
                + "\n  ".join(diff)
                + "\nUse a new --out folder to start a different run."
            )
        log.info("resuming %s from %s", run.root, run.last_ckpt)
        return True
    if run.root.exists() and not run.root.is_dir():
        raise ConfigError(f"output folder {run.root} is a file; choose a new --out folder")
    if run.root.exists() and not run.is_run() and not _killed_at_start(run):
        raise ConfigError(
            f"output folder {run.root} exists and is not empty; choose a new --out folder"
        )
    return False


#: What a run writes before its config snapshot (a run killed then left only these).
_BEFORE_CONFIG = frozenset({"split.json", "stats.json"})


def _killed_at_start(run: RunFolder) -> bool:
    """Whether ``run.root`` is empty or holds only what a run writes before its config (a run
    killed in its first seconds): it is then started afresh, not refused."""
    names = {p.name for p in run.root.iterdir()}
    return all(n in _BEFORE_CONFIG or (n.startswith(".") and n.endswith(".tmp")) for n in names)


def process_rank() -> int:
    """This process's rank in multi-process training (0 when there is only one process).

    Lightning starts the other processes of a ``ddp`` run with ``LOCAL_RANK``/``RANK`` set; only
    rank 0 writes the run folder."""
    for key in ("RANK", "LOCAL_RANK"):
        value = os.environ.get(key)
        if value is not None and value.strip().isdigit():
            return int(value)
    return 0
