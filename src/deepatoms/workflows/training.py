"""Train any model family from a preset or a config: the function behind ``deepatoms train``,
``deepatoms vae train`` and ``deepatoms crystals train``.

:func:`training_config` turns a preset name (or a config) and the usual options into a checked
config; :func:`train` then runs the one training protocol (:func:`deepatoms.train.fit`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from deepatoms.config.overrides import apply_overrides
from deepatoms.core.errors import ConfigError
from deepatoms.core.results import Result
from deepatoms.models.registry import FAMILIES, family_of, load_preset, resolve_config
from deepatoms.train import TrainResult, fit

__all__ = ["TrainResult", "list_presets", "train", "training_config"]

#: Keyword options of :func:`train` and the config keys they set.
OPTION_KEYS = {
    "target": "data.target",
    "rho": "train.rho",
    "max_epochs": "train.max_epochs",
    "max_time": "train.max_time",
    "n_train": "data.n_train",
    "n_val": "data.n_val",
    "seed": "train.seed",
    "regime": "data.regime",
    "init_force": "train.init_force",
    "accelerator": "train.accelerator",
    "devices": "train.devices",
    "strategy": "train.strategy",
    "precision": "train.precision",
    "init_statistics": "train.init_statistics",
}


def training_config(
    preset: str | Mapping[str, Any], overrides: Iterable[str] = (), **options: Any
) -> dict[str, Any]:
    """The checked config of ``preset`` (a preset name or a config dict) with ``options``
    (keys of :data:`OPTION_KEYS`, plus ``forces``: a force label or ``"none"``, and
    ``grammar``: a grammar name or file) and ``--set``-style ``overrides`` applied."""
    cfg = load_preset(preset) if isinstance(preset, str) else resolve_config(preset)
    extra = [
        f"{OPTION_KEYS[k]}={v}" for k, v in options.items() if k in OPTION_KEYS and v is not None
    ]
    forces = options.get("forces")
    if forces is not None:
        extra.append(
            "data.forces=null" if str(forces).lower() == "none" else f"data.forces={forces}"
        )
    unknown = set(options) - set(OPTION_KEYS) - {"forces", "grammar"}
    if unknown:
        raise TypeError(
            f"unknown training option(s) {sorted(unknown)}; known: {sorted(OPTION_KEYS)}"
        )
    cfg = apply_overrides(cfg, [*extra, *overrides])
    if options.get("grammar") is not None:
        cfg["data"]["grammar"] = str(options["grammar"])  # a path, kept as written
    return resolve_config(cfg)


def train(
    preset: str | Mapping[str, Any], data: Any, out: str | os.PathLike, *,
    overrides: Sequence[str] = (), init: str | os.PathLike | None = None, init_part: str = "all",
    split: Mapping[str, Any] | None = None, progress: bool = True, command: str | None = None,
    ensemble: int = 1, bootstrap: bool = False, workers: int = 1, scheduler: str | None = None,
    variance_scale: bool = True, **options: Any,
) -> TrainResult:  # fmt: skip
    """Train (or resume) the model of ``preset`` on ``data`` in the run folder ``out``.

    ``data``: a dataset file (property models, potentials, G-SchNet), a CSV of strings (grammar
    VAE) or crystal sources (density VAE). ``options``: ``target``, ``forces``, ``rho``,
    ``max_epochs``, ``max_time`` (minutes), ``n_train``, ``n_val``, ``seed``, ``regime``,
    ``grammar``; ``overrides``: ``"section.key=value"`` strings. ``init``: a model file to
    start from (fine-tuning). ``command``: the command line that asks (its family must be the
    one that command trains). ``ensemble`` > 1 trains a committee of that many members
    (``bootstrap``: each on a resample of the training set), on ``workers`` local Dask processes
    or the cluster at ``scheduler`` when given (:mod:`deepatoms.train.committee`), its σ² scaled
    by a factor fitted on the validation split unless ``variance_scale`` is False. Returns the
    run summary.
    """
    cfg = training_config(preset, overrides, **options)
    fam = family_of(cfg)
    if command is not None and fam.command != command:
        raise ConfigError(_wrong_command(cfg.get("name") or "(config)", fam, command))
    if ensemble != 1:
        from deepatoms.train.committee import fit_committee

        if split is not None:
            raise ConfigError("a committee takes its split from the config, not an explicit one")
        return fit_committee(cfg, data, out, n_members=ensemble, bootstrap=bootstrap,
                             workers=workers, scheduler=scheduler, init=init,
                             variance_scale=variance_scale, progress=progress)  # fmt: skip
    if bootstrap or workers != 1 or scheduler is not None or not variance_scale:
        raise ConfigError("--bootstrap, --no-variance-scale, --workers and --scheduler apply to "
                          "committees (--ensemble N); for one model use "
                          "--devices/--strategy")  # fmt: skip
    return fit(cfg, data, out, split=split, init=init, init_part=init_part, progress=progress)


def _wrong_command(name: str, fam: Any, command: str) -> str:
    """Why ``command`` does not train the preset ``name`` of family ``fam``, and what does."""
    own = [f for f in FAMILIES if f.command == command]
    use = f"use `{fam.command} --preset {name} ...`"
    if len(own) == 1:
        return (
            f"preset {name!r} is not a {own[0].title} preset (it is a {fam.title} preset); "
            f"`{command}` trains {', '.join(own[0].presets())}; or {use}"
        )
    return f"preset {name!r} is a {fam.title} preset, which `{command}` does not train; {use}"


def list_presets() -> Result:
    """The shipped presets, grouped by family: ``families`` (each with ``family``, ``title``,
    ``command`` that trains it and ``presets``) and ``presets`` (one row per preset: ``name``,
    ``family``, ``model``, ``description``, ``reference``)."""
    rows, groups = [], []
    for fam in FAMILIES:
        mine = []
        for name in fam.presets():
            cfg = load_preset(name)
            mine.append({"name": name, "family": fam.name, "model": cfg["model"]["name"],
                         "description": cfg["description"], "reference": cfg["reference"]})  # fmt: skip
        rows += mine
        groups.append({"family": fam.name, "title": fam.title, "summary": fam.summary,
                       "command": fam.command, "presets": mine})  # fmt: skip
    return Result(families=groups, presets=rows)
