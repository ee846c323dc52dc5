"""``deepatoms vae``: train, evaluate and sample grammar VAEs; train latent regressors.

Commands (``specs/grammar-vae.md`` §2–5):

- ``vae train --data CSV --out RUN [--preset P] [--grammar G] [--set k=v]``: a run folder
  (``design.vae_training``); the same command on the folder resumes it.
- ``vae regress RUN --data CSV --property lumo --property gap``: one latent regressor per
  property (§5; ``design.regressors``) → ``RUN/regressors.pt``; test MAE on the CSV's test rows.
- ``vae evaluate RUN --data CSV``: §4 metrics on the CSV's test rows → ``RUN/metrics.json``.
- ``vae sample RUN -n N``: decode prior samples; validity, uniqueness, novelty; optional CSV.

CSV: a ``string`` (or ``smiles``) column, an optional ``split`` column (train/val/test) and
property columns in eV. The commands live on ``vae_app``; :func:`register` adds the group to a
typer app (idempotent); importing this module registers nothing.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Annotated

import typer

from deepatoms.cli_support import (
    JsonOpt,
    OverwriteOpt,
    QuietOpt,
    add_group_once,
    check_new_output,
    emit_json,
    fail_cleanly,
    out,
)
from deepatoms.core.progress import ProgressBar

vae_app = typer.Typer(
    help="Grammar variational autoencoders over strings (SMILES, polymers): train, evaluate, "
    "sample, latent property regressors.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add the ``vae`` command group to ``app`` once."""
    add_group_once(app, vae_app, "vae")


RunArg = Annotated[
    Path, typer.Argument(help="Grammar-VAE run folder or its model.pt.", metavar="RUN")
]
DataOpt = Annotated[
    Path,
    typer.Option(
        "--data", help="CSV with a 'string' (or 'smiles') column, optional 'split'.", metavar="CSV"
    ),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a config value, e.g. --set train.alpha=0.04."),
]
RegressorSetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a regressor setting, e.g. --set regressor.l2=1e-7."),
]


def _run_folder(run: Path) -> Path:
    """The run folder of ``run`` (itself, or the folder holding a model file)."""
    return run if run.is_dir() else run.parent


@vae_app.command("train")
@fail_cleanly
def train_command(
    data: DataOpt,
    out_dir: Annotated[
        Path, typer.Option("--out", help="Run folder (created; resumed if it holds a run).")
    ],
    preset: Annotated[
        str, typer.Option(help="Grammar-VAE preset (see `deepatoms presets`).")
    ] = "grammar-vae-qm9",
    grammar: Annotated[
        str | None,
        typer.Option(
            help="Grammar: smiles, polymer, polymer-typed or a .cfg file (default: the preset's)."
        ),
    ] = None,
    max_epochs: Annotated[int | None, typer.Option(help="Stop after this many epochs.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for split, init, shuffling.")] = None,
    set_: SetOpt = None,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Train a grammar VAE on a CSV of strings (run folder with model.pt and metrics).

    Running the same command again on a run folder with checkpoints/last.ckpt resumes it.
    """
    import logging

    from deepatoms.workflows.training import train

    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    s = train(preset, data, out_dir, overrides=list(set_ or []), max_epochs=max_epochs, seed=seed,
              grammar=grammar, progress=not quiet, command="deepatoms vae train")  # fmt: skip
    verb = "resumed and finished" if s["resumed"] else "finished"
    recon = ""
    if s["val_recon_accuracy"] is not None:
        recon = (
            f", reconstruction accuracy {100 * s['val_recon_accuracy']:.1f} % of "
            f"{s['val_recon_checked']} validation strings"
        )
    out.print(
        f"{verb} {s['preset']} ({s['grammar']} grammar, {s['n_train']} training strings): "
        f"{s['epochs']} epochs, {s['steps']} steps, best validation loss "
        f"{s['best_val_loss']:.5g} nats{recon} ({s['wall_time_s']} s)"
    )
    out.print(f"model: {s['model_file']}")
    if as_json:
        emit_json(s)


@vae_app.command("regress")
@fail_cleanly
def regress_command(
    run: RunArg,
    data: DataOpt,
    properties: Annotated[
        list[str], typer.Option("--property", help="Property column (eV), repeatable.")
    ],
    out_file: Annotated[
        Path | None,
        typer.Option("--out", help="Regressor file (default: RUN/regressors.pt).", metavar="FILE"),
    ] = None,
    set_: RegressorSetOpt = None,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Train one latent property regressor per property (MLP 512-512-256-1, Paper D).

    Settings: the run's regressor section (--set regressor.KEY=VALUE). The CSV's train rows are
    fitted, its val rows stop early, its test rows give the reported MAE (eV).
    """
    from deepatoms.workflows.grammar_vae import regress

    result = regress(run, data, properties, out=out_file, overrides=list(set_ or []),
                     overwrite=overwrite, progress=not quiet)  # fmt: skip
    target = result["out"]
    for p in properties:
        st = result["properties"][p]
        test_txt = (
            f", test MAE {st['test_mae']:.4g} eV ({result['n_test']})" if "test_mae" in st else ""
        )
        out.print(
            f"{p}: validation MAE {st['val_mae']:.4g} eV (best epoch {st['best_epoch']} of "
            f"{st['epochs']}){test_txt}"
        )
    out.print(f"wrote {target}")
    if as_json:
        emit_json(dict(result))


@vae_app.command("evaluate")
@fail_cleanly
def evaluate_command(
    run: RunArg,
    data: DataOpt,
    split: Annotated[
        str, typer.Option(help="Rows to evaluate: train, val, test (all rows without a split).")
    ] = "test",
    samples: Annotated[int, typer.Option(help="Prior samples for validity (0: skip).")] = 1000,
    iw_samples: Annotated[
        int, typer.Option(help="Importance samples K of the log-likelihood bound (0: skip).")
    ] = 0,
    seed: Annotated[int, typer.Option(help="Seed of the prior and posterior samples.")] = 0,
    out_file: Annotated[
        Path | None,
        typer.Option("--out", help="Metrics file (default: RUN/metrics.json).", metavar="FILE"),
    ] = None,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Evaluate a grammar VAE: reconstruction, ELBO, active dimensions, prior validity.

    Metrics of specs/grammar-vae.md §4 on the CSV rows of --split (all rows without a split
    column); novelty against the run's training strings. Writes RUN/metrics.json.
    """
    from deepatoms.core.files import write_json
    from deepatoms.data.strings import SPLITS, read_string_csv
    from deepatoms.design.vae_metrics import evaluate_vae
    from deepatoms.models.loading import load_model

    if split not in SPLITS:
        raise ValueError(f"--split must be one of {list(SPLITS)}, got {split!r}")
    if samples < 0 or iw_samples < 0:
        raise ValueError("--samples and --iw-samples must be ≥ 0")
    space = load_model(run, expect="grammar-vae")
    table = read_string_csv(data)
    rows = table.rows(split)
    if len(rows) == 0:
        raise ValueError(f"{data} has no rows labelled {split!r}")
    strings = [table.strings[i] for i in rows]
    training = space.training_strings()
    if not training and table.split is not None:
        training = [table.strings[i] for i in table.rows("train")]
    with ProgressBar("decoding", quiet) as bar:
        metrics = evaluate_vae(space, strings, training, samples, seed, iw_samples, bar)
    metrics.update(
        model=space.meta.get("model_file"),
        data=str(Path(data).resolve()),
        split=split if table.split is not None else "all",
        n_training_strings=len(training),
    )
    target = out_file or _run_folder(run) / "metrics.json"
    write_json(target, metrics)
    r, e, a = metrics["reconstruction"], metrics["elbo"], metrics["active_dimensions"]
    out.print(
        f"reconstruction accuracy {100 * r['accuracy']:.1f} % ({r['n_exact']}/{r['n']}, "
        f"{r['n_unfinished']} unfinished); −ELBO {e['nelbo']:.4g} nats (recon {e['recon']:.4g}, "
        f"KL {e['kl']:.4g}); active dimensions {a['n_active']}/{a['latent_dim']}"
    )
    if "prior" in metrics:
        p = metrics["prior"]
        out.print(
            f"prior samples {p['n']}: valid {100 * p['valid']:.1f} %, unique "
            f"{100 * p['unique']:.1f} %, novel {100 * p['novel']:.1f} %"
        )
    if "iw_bound" in metrics:
        out.print(f"log p(x) ≥ {metrics['iw_bound']['log_px']:.4g} nats (K = {iw_samples})")
    out.print(f"wrote {target}")
    if as_json:
        emit_json({"out": str(target), **metrics})


@vae_app.command("sample")
@fail_cleanly
def sample_command(
    run: RunArg,
    n: Annotated[int, typer.Option("-n", "--n", help="Latent points z ~ N(0, I) to decode.")],
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same set.")] = 0,
    sample_rules: Annotated[
        bool,
        typer.Option(help="Sample each production from the masked softmax instead of argmax."),
    ] = False,
    out_file: Annotated[
        Path | None,
        typer.Option("--out", help="CSV: index, string, finished, valid, key.", metavar="CSV"),
    ] = None,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Decode N samples of the prior z ~ N(0, I) into strings.

    Greedy masked decoding by default; reports validity, uniqueness and novelty against the
    run's training strings and writes them to --out (CSV) or prints the first 20.
    """
    from deepatoms.core.files import atomic_write_text
    from deepatoms.grammar.validity import canonical, validity_checker
    from deepatoms.models.loading import load_model

    if n < 1:
        raise ValueError(f"-n must be at least 1, got {n}")
    if out_file is not None:
        check_new_output(out_file, overwrite)
    space = load_model(run, expect="grammar-vae")
    with ProgressBar("decoding", quiet) as bar:
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
    res = {
        "n": n,
        "seed": seed,
        "greedy": not sample_rules,
        "finished": sum(r[2] for r in rows) / n,
        "valid": n_valid / n,
        "unique": len(keys) / max(n_valid, 1),
        "novel": len(keys - train_keys) / max(len(keys), 1) if train_keys else None,
    }
    if out_file is not None:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["index", "string", "finished", "valid", "key"])
        w.writerows(rows)
        atomic_write_text(out_file, buf.getvalue())
        res["out"] = str(out_file)
    novel = "" if res["novel"] is None else f", novel {100 * res['novel']:.1f} %"
    out.print(
        f"{n} prior samples: finished {100 * res['finished']:.1f} %, valid "
        f"{100 * res['valid']:.1f} %, unique {100 * res['unique']:.1f} %{novel}"
    )
    if out_file is None:
        for r in rows[:20]:
            out.print(r[1] if r[2] else "(unfinished)")
    else:
        out.print(f"wrote {n} rows to {out_file}")
    if as_json:
        emit_json(res)
