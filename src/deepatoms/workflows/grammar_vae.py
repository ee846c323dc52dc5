"""Grammar VAEs after training: latent property regressors (``deepatoms vae regress``)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from deepatoms.config.overrides import apply_overrides
from deepatoms.config.sections import REGRESSOR
from deepatoms.core.errors import DeepatomsError
from deepatoms.core.results import Result
from deepatoms.models.loading import load_model
from deepatoms.train import fit

__all__ = ["RegressionResult", "regress"]


class RegressionResult(Result):
    """Latent regressors fitted on a grammar VAE: ``out`` (the model file), ``run`` (their run
    folder), ``properties`` ({name: {val_mae, test_mae (eV), best_epoch, epochs, …}}),
    ``n_train``, ``n_val``, ``n_test``."""


def regress(
    run: str | os.PathLike,
    data: str | os.PathLike,
    properties: Sequence[str],
    *,
    out: str | os.PathLike | None = None,
    overrides: Sequence[str] = (),
    overwrite: bool = False,
    progress: bool = True,
) -> RegressionResult:
    """Fit one latent regressor per property (eV) of the CSV ``data`` on the latent space of
    the grammar VAE ``run`` (a run folder or model file), through the training protocol.

    Settings: the VAE run's ``regressor`` section with ``overrides`` (``regressor.KEY=VALUE``).
    The CSV's train rows are fitted, its val rows stop early, its test rows give the test MAE.
    Writes ``out`` (default ``RUN/regressors.pt``) and the regressors' run folder next to it
    (``RUN/regressors/``).
    """
    if len(set(properties)) != len(properties):
        raise DeepatomsError(f"--property lists a property twice: {list(properties)}")
    space = load_model(run, expect="grammar-vae")
    model_file = Path(space.meta["model_file"])
    target = Path(out) if out is not None else model_file.parent / "regressors.pt"
    folder = target.with_suffix("")
    if target.exists() and not overwrite:
        raise DeepatomsError(f"{target} already exists; pass --overwrite to replace it")
    if overwrite and folder.is_dir():
        shutil.rmtree(folder)
    saved = (space.meta.get("config") or {}).get("regressor") or {}
    r = apply_overrides({"regressor": REGRESSOR.resolve(saved)}, overrides)["regressor"]
    r = REGRESSOR.check(r, "regressor.")
    config = {
        "model": {
            "name": "latent-regressors",
            "properties": list(properties),
            "hidden": r["hidden"],
            "dropout": r["dropout"],
            "dropout_after": r["dropout_after"],
        },
        "data": {"latent_space": str(model_file), "n_val": r["n_val"]},
        "train": {
            "seed": r["seed"],
            "batch_size": r["batch_size"],
            "lr": r["lr"],
            "momentum": r["momentum"],
            "l2": r["l2"],
            "max_epochs": r["max_epochs"],
            "early_stopping_patience": r["patience"],
        },
    }
    summary = fit(config, data, folder, model_file=target, progress=progress)
    return RegressionResult(
        out=str(target),
        run=str(folder),
        properties=summary["properties"],
        n_train=summary["n_train"],
        n_val=summary["n_val"],
        n_test=summary["n_test"],
    )
