"""Grammar VAEs after training: latent property regressors, evaluation and prior samples (the
functions behind ``deepatoms vae regress | evaluate | sample``)."""

from __future__ import annotations

import csv
import io
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from deepatoms.config.overrides import apply_overrides
from deepatoms.config.sections import REGRESSOR
from deepatoms.core.errors import DeepatomsError
from deepatoms.core.progress import ProgressBar
from deepatoms.core.results import Result
from deepatoms.models.loading import load_model
from deepatoms.train import fit

__all__ = [
    "RegressionResult",
    "VAEEvaluation",
    "VAESamples",
    "evaluate_vae",
    "regress",
    "sample_vae",
]


class RegressionResult(Result):
    """Latent regressors fitted on a grammar VAE: ``out`` (the model file), ``run`` (their run
    folder), ``properties`` ({name: {val_mae, test_mae (eV), best_epoch, epochs, …}}),
    ``n_train``, ``n_val``, ``n_test``."""


def regress(
    run: str | os.PathLike, data: str | os.PathLike, properties: Sequence[str], *,
    out: str | os.PathLike | None = None, overrides: Sequence[str] = (), overwrite: bool = False,
    progress: bool = True,
) -> RegressionResult:  # fmt: skip
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


class VAEEvaluation(Result):
    """Metrics of a grammar VAE on strings (Jørgensen et al. 2018, Paper D App. B; Kusner et al.
    2017): ``reconstruction`` (exact fraction, unfinished), ``elbo`` (−ELBO, reconstruction and
    KL in nats), ``active_dimensions``, ``prior`` (validity, uniqueness, novelty of prior
    draws), ``iw_bound`` (importance-weighted log-likelihood bound), ``out``."""


class VAESamples(Result):
    """Prior samples of a grammar VAE: ``n``, ``seed``, ``greedy``, fractions ``finished``,
    ``valid``, ``unique`` (of the valid ones), ``novel`` (of the unique ones; None without
    training strings), ``rows`` (index, string, finished, valid, canonical key), ``out``."""


def evaluate_vae(
    run: str | os.PathLike, data: str | os.PathLike, *, split: str = "test", samples: int = 1000,
    iw_samples: int = 0, seed: int = 0, out: str | os.PathLike | None = None, progress: bool = True,
) -> VAEEvaluation:  # fmt: skip
    """Reconstruction, ELBO, active dimensions and prior validity of the grammar VAE ``run``
    on the CSV rows of ``split`` (all rows without a split column); novelty against the run's
    training strings. Writes ``out`` (default ``RUN/metrics.json``)."""
    from deepatoms.core.files import write_json
    from deepatoms.data.strings import SPLITS, read_string_csv
    from deepatoms.design.vae_metrics import evaluate_vae as vae_metrics

    if split not in SPLITS:
        raise DeepatomsError(f"--split must be one of {list(SPLITS)}, got {split!r}")
    if samples < 0 or iw_samples < 0:
        raise DeepatomsError("--samples and --iw-samples must be ≥ 0")
    space = load_model(run, expect="grammar-vae")
    table = read_string_csv(data)
    rows = table.rows(split)
    if len(rows) == 0:
        raise DeepatomsError(f"{data} has no rows labelled {split!r}")
    strings = [table.strings[i] for i in rows]
    training = space.training_strings()
    if not training and table.split is not None:
        training = [table.strings[i] for i in table.rows("train")]
    with ProgressBar("decoding", quiet=not progress) as bar:
        metrics = vae_metrics(space, strings, training, samples, seed, iw_samples, bar)
    target = (
        Path(out) if out is not None else Path(space.meta["model_file"]).parent / "metrics.json"
    )
    metrics.update(model=space.meta.get("model_file"), data=str(Path(data).resolve()),
                   split=split if table.split is not None else "all",
                   n_training_strings=len(training))  # fmt: skip
    write_json(target, metrics)
    return VAEEvaluation(out=str(target), **metrics)


def sample_vae(
    run: str | os.PathLike, n: int, *, seed: int = 0, sample_rules: bool = False,
    out: str | os.PathLike | None = None, overwrite: bool = False, progress: bool = True,
) -> VAESamples:  # fmt: skip
    """Decode ``n`` prior samples z ~ N(0, I) of the grammar VAE ``run`` into strings (greedy
    masked decoding, or each production sampled from the masked softmax with
    ``sample_rules``); validity, uniqueness and novelty against the run's training strings.
    Writes a CSV (index, string, finished, valid, key) to ``out`` when given."""
    from deepatoms.core.files import atomic_write_text, check_new_file
    from deepatoms.grammar.validity import canonical, validity_checker

    if n < 1:
        raise DeepatomsError(f"-n must be at least 1, got {n}")
    if out is not None:
        check_new_file(out, overwrite)
    space = load_model(run, expect="grammar-vae")
    with ProgressBar("decoding", quiet=not progress) as bar:
        dec = space.decode(space.sample_prior(n, seed), greedy=not sample_rules, seed=seed,
                           progress=bar)  # fmt: skip
    ok = validity_checker(space.grammar)
    train_keys = set()
    for s in space.training_strings():
        try:
            train_keys.add(canonical(space.grammar, s))
        except ValueError:
            continue
    rows, keys = [], set()
    for i, s in enumerate(dec):
        valid = s is not None and ok(s)
        key = canonical(space.grammar, s) if valid else ""
        if valid:
            keys.add(key)
        rows.append((i, s or "", s is not None, valid, key))
    n_valid = sum(r[3] for r in rows)
    res = VAESamples(
        n=n, seed=seed, greedy=not sample_rules, finished=sum(r[2] for r in rows) / n,
        valid=n_valid / n, unique=len(keys) / max(n_valid, 1),
        novel=len(keys - train_keys) / max(len(keys), 1) if train_keys else None, rows=rows,
    )  # fmt: skip
    if out is not None:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["index", "string", "finished", "valid", "key"])
        w.writerows(rows)
        atomic_write_text(out, buf.getvalue())
        res["out"] = str(out)
    return res
