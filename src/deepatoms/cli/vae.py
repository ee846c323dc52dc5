"""``deepatoms vae``: train, evaluate and sample grammar VAEs; fit latent property regressors
(``deepatoms.workflows.training`` and ``deepatoms.workflows.grammar_vae``).

CSV: a ``string`` (or ``smiles``) column, an optional ``split`` column (train/val/test) and
property columns in eV.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from deepatoms.cli.common import Run, command, commands, out, run_options, training_verb

app = commands(
    "Grammar variational autoencoders over strings (SMILES, polymers): train, evaluate, "
    "sample, latent property regressors."
)


__all__ = ["app"]


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


@command(app, "train", run_options(overwrite=False))
def train_command(
    data: DataOpt, out_dir: Annotated[Path, typer.Option("--out")], preset: str = "grammar-vae-qm9",
    grammar: str | None = None, max_epochs: int | None = None, seed: int | None = None,
    set_: SetOpt = None, *, run: Run,
) -> None:  # fmt: skip
    """Train a grammar VAE on a CSV of strings (run folder with model.pt and metrics).

    Running the same command again on a run folder with checkpoints/last.ckpt resumes it.

    Args:
        out_dir: Run folder (created; resumed if it holds a run).
        preset: Grammar-VAE preset (see `deepatoms presets`).
        grammar: Grammar: smiles, polymer, polymer-typed or a .cfg file (default: the preset's).
        max_epochs: Stop after this many epochs.
        seed: Seed for split, init, shuffling.
    """
    import logging

    from deepatoms.workflows.training import train

    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    s = train(preset, data, out_dir, overrides=list(set_ or []), max_epochs=max_epochs, seed=seed,
              grammar=grammar, progress=run.progress, command="deepatoms vae train")  # fmt: skip
    verb = training_verb(s)
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
    run.emit(s)


@command(app, "regress", run_options())
def regress_command(
    run_dir: RunArg,
    data: DataOpt,
    properties: Annotated[list[str], typer.Option("--property")],
    out_file: Annotated[Path | None, typer.Option("--out", metavar="FILE")] = None,
    set_: RegressorSetOpt = None,
    *,
    run: Run,
) -> None:
    """Train one latent property regressor per property (MLP 512-512-256-1, Paper D).

    Settings: the run's regressor section (--set regressor.KEY=VALUE). The CSV's train rows are
    fitted, its val rows stop early, its test rows give the reported MAE (eV).

    Args:
        properties: Property column (eV), repeatable.
        out_file: Regressor file (default: RUN/regressors.pt).
    """
    from deepatoms.workflows.grammar_vae import regress

    result = regress(run_dir, data, properties, out=out_file, overrides=list(set_ or []),
                     overwrite=run.overwrite, progress=run.progress)  # fmt: skip
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
    run.emit(result)


@command(app, "evaluate", run_options(overwrite=False))
def evaluate_command(
    run_dir: RunArg, data: DataOpt, split: str = "test", samples: int = 1000, iw_samples: int = 0,
    seed: int = 0, out_file: Annotated[Path | None, typer.Option("--out", metavar="FILE")] = None,
    *, run: Run,
) -> None:  # fmt: skip
    """Evaluate a grammar VAE: reconstruction, ELBO, active dimensions, prior validity.

    Measured as in Paper D App. B and Kusner et al. 2017 on the CSV rows of --split (all rows
    without a split column); novelty against the run's training strings. Writes
    RUN/metrics.json.

    Args:
        split: Rows to evaluate: train, val, test (all rows without a split).
        samples: Prior samples for validity (0: skip).
        iw_samples: Importance samples K of the log-likelihood bound (0: skip).
        seed: Seed of the prior and posterior samples.
        out_file: Metrics file (default: RUN/metrics.json).
    """
    from deepatoms.workflows.grammar_vae import evaluate_vae

    metrics = evaluate_vae(run_dir, data, split=split, samples=samples, iw_samples=iw_samples,
                           seed=seed, out=out_file, progress=run.progress)  # fmt: skip
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
    out.print(f"wrote {metrics['out']}")
    run.emit(metrics)


@command(app, "sample", run_options())
def sample_command(
    run_dir: RunArg,
    n: Annotated[int, typer.Option("-n", "--n")],
    seed: int = 0,
    sample_rules: bool = False,
    out_file: Annotated[Path | None, typer.Option("--out", metavar="CSV")] = None,
    *,
    run: Run,
) -> None:
    """Decode N samples of the prior z ~ N(0, I) into strings.

    Greedy masked decoding by default; reports validity, uniqueness and novelty against the
    run's training strings and writes them to --out (CSV) or prints the first 20.

    Args:
        n: Latent points z ~ N(0, I) to decode.
        seed: Random seed; the same seed gives the same set.
        sample_rules: Sample each production from the masked softmax instead of argmax.
        out_file: CSV: index, string, finished, valid, key.
    """
    from deepatoms.workflows.grammar_vae import sample_vae

    res = sample_vae(run_dir, n, seed=seed, sample_rules=sample_rules, out=out_file,
                     overwrite=run.overwrite, progress=run.progress)  # fmt: skip
    novel = "" if res["novel"] is None else f", novel {100 * res['novel']:.1f} %"
    out.print(
        f"{n} prior samples: finished {100 * res['finished']:.1f} %, valid "
        f"{100 * res['valid']:.1f} %, unique {100 * res['unique']:.1f} %{novel}"
    )
    if out_file is None:
        for r in res["rows"][:20]:
            out.print(r[1] if r[2] else "(unfinished)")
    else:
        out.print(f"wrote {n} rows to {out_file}")
    run.emit(res, drop=("rows",))
