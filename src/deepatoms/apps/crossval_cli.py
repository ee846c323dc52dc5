"""``deepatoms cv``: k-fold cross-validation of a preset on a dataset (position-free-crystals §4).

The command lives on ``cv_app``; importing this module registers it on ``deepatoms.cli.app`` as
the top-level command ``cv`` (:func:`register` is idempotent, so ``deepatoms.cli`` may also call
it on its own ``app``, which keeps ``python -m deepatoms.cli cv`` working).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from deepatoms.cli_support import add_group_once

# Defined before the import of deepatoms.cli below: that module imports this one at its end,
# and with `python -m deepatoms.cli` the import chain comes back here half-initialised.
cv_app = typer.Typer()


def register(app: typer.Typer) -> None:
    """Add the ``cv`` command to ``app`` (once)."""
    add_group_once(app, cv_app)


from deepatoms.cli import JsonOpt, QuietOpt, _emit_json, _fail_cleanly, _number, out  # noqa: E402
from deepatoms.cli import app as _main_app  # noqa: E402


@cv_app.command("cv")
@_fail_cleanly
def cv(
    preset: Annotated[str, typer.Option(help="Preset name (see `deepatoms presets`).")],
    data: Annotated[Path, typer.Option(help="Dataset file (.h5).", metavar="FILE.h5")],
    out_dir: Annotated[
        Path,
        typer.Option(
            "--out", help="CV folder (created; a rerun reuses finished folds and resumes the rest)."
        ),
    ],
    target: Annotated[
        str | None, typer.Option(help="Property to learn (default: the preset's).")
    ] = None,
    folds: Annotated[int, typer.Option(help="Number of folds k.", min=2)] = 5,
    stratify: Annotated[
        str | None,
        typer.Option(
            help="Per-system column whose classes are spread evenly over the folds (e.g. icsd).",
            metavar="COL",
        ),
    ] = None,
    val_fraction: Annotated[
        str,
        typer.Option(
            "--val-fraction",
            "--n-val",
            help="Validation systems held out of each fold's training part for early stopping: "
            "a fraction (0.1) or a count (5000).",
        ),
    ] = "0.1",
    seed: Annotated[
        int | None,
        typer.Option(help="Seed of the folds, validation subsets and training (train.seed)."),
    ] = None,
    init: Annotated[
        Path | None,
        typer.Option(
            help="Start every fold from this model.pt (transfer learning).", metavar="MODEL"
        ),
    ] = None,
    bootstrap: Annotated[
        int, typer.Option(help="Bootstrap resamples for the 95th percentile of the MAE.", min=1)
    ] = 10**6,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set", help="Override a config value, e.g. --set train.lr=1e-4 (repeatable)."
        ),
    ] = None,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Cross-validate a preset: k training runs, each tested on one fold; pooled test errors.

    Writes OUT/fold{i}/ (run folders), OUT/predictions.csv and OUT/cv_summary.json. The config's
    data.n_train/n_val/n_test are ignored: the folds and --val-fraction set the split.
    """
    from deepatoms.config.overrides import apply_overrides
    from deepatoms.models.registry import load_preset
    from deepatoms.workflows.crossval import cross_validate

    cfg = load_preset(preset)
    extra = [f"data.target={target}"] if target is not None else []
    if seed is not None:
        extra.append(f"train.seed={seed}")
    cfg = apply_overrides(cfg, extra + list(set_ or []))
    n_val = _number(val_fraction, "--val-fraction")
    if not quiet:
        logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)

    def report(rec: dict) -> None:
        out.print(
            f"fold {rec['fold']}: {rec['n_train']} train / {rec['n_val']} val / {rec['n_test']} "
            f"test, test MAE {rec['mae']:.4g} {rec['unit']}, RMSE {rec['rmse']:.4g} {rec['unit']}"
            + ("" if rec["trained_now"] else " (finished run reused)")
        )

    res = cross_validate(
        cfg,
        data,
        out_dir,
        k=folds,
        seed=0 if seed is None else seed,
        stratify_column=stratify,
        n_val=n_val,
        progress=not quiet,
        n_bootstrap=bootstrap,
        init=init,
        on_fold=report,
    )
    u, p = res["unit"], res["pooled"]
    out.print(
        f"{res['k']}-fold CV of {res['preset']} on {res['target']} ({res['n_systems']} systems): "
        f"MAE {p['mae']:.4g} {u} (bootstrap 95th percentile {p['mae_bootstrap_p95']:.4g}), "
        f"RMSE {p['rmse']:.4g} {u}"
    )
    for column, table in res["subsets"].items():
        for name, s in table.items():
            out.print(
                f"  {column}={name} ({s['n']}): MAE {s['mae']:.4g} {u}, RMSE {s['rmse']:.4g} {u}"
            )
    out.print(f"summary: {Path(out_dir) / 'cv_summary.json'}; predictions: {res['predictions']}")
    if as_json:
        _emit_json(res)


register(_main_app)
