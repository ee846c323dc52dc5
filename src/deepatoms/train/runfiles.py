"""The run folder: where a training run keeps its config, split, statistics, logs and model.

Layout: ``config.yaml`` · ``split.json`` · ``stats.json`` · ``checkpoints/{best,last}.ckpt`` ·
``metrics.csv`` · ``plots/`` · ``model.pt`` · ``summary.json``. All writes are atomic.

Resuming (:func:`check_run_folder`, shared by every trainer): a folder with
``checkpoints/last.ckpt`` is resumed when its saved config equals the new one up to the
resumable ``train.*`` keys (:func:`config_diff`); a non-empty folder that is not a run is refused.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from pathlib import Path

from deepatoms.core.errors import ConfigError


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


def config_diff(
    saved: Mapping, now: Mapping, resumable: Collection[str] = (), prefix: str = ""
) -> list[str]:
    """Lines ``key: saved vs now`` for every differing (nested) config value, keys sorted.

    ``train.K`` for K in ``resumable`` is ignored (e.g. ``max_epochs``: raising it resumes).
    """
    out = []
    for k in sorted(set(saved) | set(now)):
        a, b = saved.get(k), now.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += config_diff(a, b, resumable, f"{prefix}{k}.")
        elif a != b and not (prefix == "train." and k in resumable):
            out.append(f"{prefix}{k}: {a!r} (saved) vs {b!r} (now)")
    return out


def check_run_folder(
    run: RunDir,
    config: Mapping,
    load_saved: Callable[[Path], Mapping],
    resumable: Collection[str] = (),
    log: logging.Logger | None = None,
    new_out: str = "a new --out folder",
) -> bool:
    """True to resume the run in ``run``; ConfigError if the folder holds something else.

    ``load_saved(run.config)`` reads the saved config as the trainer resolves it; a resumable
    run must match ``config`` (:func:`config_diff` with ``resumable``). ``log`` (if given) notes
    the resume; ``new_out`` ends the message for a non-empty folder that is not a run.
    """
    if run.last_ckpt.is_file():
        diff = config_diff(load_saved(run.config), config, resumable)
        if diff:
            raise ConfigError(
                f"{run.root} holds a run with a different config, so it cannot be resumed:\n  "
                + "\n  ".join(diff)
                + "\nUse a new --out folder to start a different run."
            )
        if log is not None:
            log.info("resuming %s from %s", run.root, run.last_ckpt)
        return True
    if run.root.exists() and any(run.root.iterdir()) and not run.is_run():
        raise ConfigError(f"output folder {run.root} exists and is not empty; choose {new_out}")
    return False
