"""``deepatoms design run | check | baselines``: inverse design with a grammar VAE
(``deepatoms.workflows.design``)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from deepatoms.cli.common import Run, command, commands, err, out, run_options

app = commands("Inverse design with a grammar VAE: ICM search, candidate checks, baselines.")

__all__ = ["app", "parse_models", "parse_targets", "parse_windows"]


#: CPU-friendly sample count of ``design run`` (Paper D samples 10⁶; docs/grammar_vae.md §6).
CPU_SAMPLES = 10_000

WindowOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--window",
        help="Design window NAME=LO:HI in eV, e.g. lumo=-1:0 (repeat per property).",
        metavar="NAME=LO:HI",
    ),
]


# ---------------------------------------------------------------------------------------------
# argument parsing
# ---------------------------------------------------------------------------------------------
def _split_assignment(text: str, option: str, example: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip() or not value.strip():
        raise ValueError(f"{option} {text!r}: expected NAME=VALUE, e.g. {option} {example}")
    return name.strip(), value.strip()


def parse_targets(items: Sequence[str] | None) -> dict[str, float]:
    """``["lumo=-0.5", …]`` → {name: value in eV}; ValueError names the bad item."""
    targets: dict[str, float] = {}
    for text in items or ():
        name, value = _split_assignment(text, "--target", "lumo=-0.5")
        try:
            targets[name] = float(value)
        except ValueError:
            raise ValueError(f"--target {text!r}: {value!r} is not a number (eV)") from None
        if not math.isfinite(targets[name]):
            raise ValueError(f"--target {text!r}: the value must be finite")
    return targets


def parse_windows(items: Sequence[str] | None) -> dict[str, tuple[float, float]]:
    """``["lumo=-1:0", …]`` → {name: (lo, hi) in eV}; ValueError names the bad item."""
    windows: dict[str, tuple[float, float]] = {}
    for text in items or ():
        name, value = _split_assignment(text, "--window", "lumo=-1:0")
        lo_text, sep, hi_text = value.partition(":")
        try:
            if not sep:
                raise ValueError
            lo, hi = float(lo_text), float(hi_text)
        except ValueError:
            raise ValueError(
                f"--window {text!r}: expected NAME=LO:HI with numbers in eV, e.g. lumo=-1:0"
            ) from None
        if not lo <= hi:
            raise ValueError(f"--window {text!r}: LO ({lo}) must not exceed HI ({hi})")
        windows[name] = (lo, hi)
    return windows


def parse_models(items: Sequence[str] | None) -> dict[str, Path]:
    """``["lumo=model.pt", …]`` → {name: path}; ValueError names the bad item."""
    models: dict[str, Path] = {}
    for text in items or ():
        name, value = _split_assignment(text, "--model", "lumo=runs/lumo/model.pt")
        models[name] = Path(value)
    return models


# ---------------------------------------------------------------------------------------------
# design run
# ---------------------------------------------------------------------------------------------
def _iteration_line(stats: Any, n_iter: int) -> str:
    counts = (
        f"ICM {stats.iteration}/{n_iter}: decoded {stats.population}, unfinished "
        f"{stats.unfinished}, invalid {stats.invalid}, duplicates {stats.duplicate}, training "
        f"{stats.training}, kept {stats.kept}"
    )
    if stats.kept == 0:
        return counts + "; population empty: stopping with the previous one"
    return counts + f"; objective best {stats.best:.4g}, median {stats.median:.4g} eV²"


@command(app, "run", run_options(device=True))
def design_run(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN")],
    out_file: Annotated[Path, typer.Option("--out", metavar="FILE.csv")],
    regressors: Annotated[Path | None, typer.Option(metavar="FILE")] = None,
    target: Annotated[list[str] | None, typer.Option(metavar="NAME=VALUE")] = None,
    window: WindowOpt = None, training: Annotated[Path | None, typer.Option(metavar="CSV")] = None,
    samples: Annotated[int, typer.Option(help=f"Prior samples z ~ N(0, I) (Paper D: 10⁶; about {CPU_SAMPLES} for a CPU run).")] = 1_000_000,
    iterations: int = 20, top: int = 100, seed: int = 0, chunk: int = 10_000,
    batch_size: int = 1024, xyz: Annotated[Path | None, typer.Option(metavar="FILE")] = None, *,
    run: Run,
) -> None:  # fmt: skip
    """Propose new strings whose predicted properties hit the targets (Paper D Algorithm 1).

    QM9 demo: --window lumo=-1:0 --window gap=4:6 (targets: the midpoints).

    Paper D samples 10⁶ points; use --samples 10000 on a CPU.

    Args:
        run_dir: Grammar-VAE run folder or its model.pt.
        out_file: Candidates CSV to write.
        regressors: Latent regressors (`deepatoms vae regress`; default: RUN/regressors.pt).
        target: Target NAME=VALUE in eV (repeat per property); default: window midpoints.
        training: CSV of strings never proposed (default: the run's training_strings.txt).
        iterations: ICM iterations (Paper D: 20).
        top: Candidates kept (Paper D: 100).
        seed: Seed of the prior samples and embeddings.
        chunk: Latent points decoded/encoded together.
        batch_size: Network batch inside a chunk.
        xyz: Also write 3-D structures of SMILES candidates (.xyz/.extxyz or .db).
    """
    from deepatoms.workflows.design import design_run as run_design

    def report(stats: Any) -> None:
        if run.progress:
            err.print(_iteration_line(stats, iterations), markup=False)

    res = run_design(
        run_dir, out_file, targets=parse_targets(target), windows=parse_windows(window),
        regressors=regressors, training=training, samples=samples, iterations=iterations,
        top=top, seed=seed, chunk=chunk, batch_size=batch_size, xyz=xyz, device=run.device,
        overwrite=run.overwrite, progress=run.progress, on_iteration=report,
    )  # fmt: skip
    if res["training"] is None and run.progress:
        err.print("note: no --training CSV and no training_strings.txt in the run; training "
                  "strings were not excluded")  # fmt: skip
    out.print(
        f"ICM: {samples} samples, {len(res['history'])} iterations, final population "
        f"{res['n_population']} in {res['seconds']:.1f} s"
    )
    out.print(f"wrote {res['n_candidates']} candidates to {out_file}")
    if xyz is not None:
        out.print(f"wrote {res['n_embedded']} embedded candidates to {xyz} "
                  f"({res['n_embed_failed']} failed to embed)")  # fmt: skip
    run.emit(res)


# ---------------------------------------------------------------------------------------------
# design check
# ---------------------------------------------------------------------------------------------
def _rate_line(label: str, rates: Mapping[str, Any], windows: Sequence[str]) -> str:
    cells = "  ".join(f"{w} {100 * rates['fraction'][w]:5.1f} %" for w in [*windows, "all"])
    return f"{label:<22} n {rates['n']:>5}  evaluated {rates['n_evaluated']:>5}  {cells}"


@command(app, "check", run_options())
def design_check(
    candidates: Annotated[Path, typer.Argument(metavar="CANDIDATES.csv")],
    out_dir: Annotated[Path, typer.Option("--out", metavar="DIR")],
    model: Annotated[list[str] | None, typer.Option(metavar="NAME=PATH")] = None,
    window: WindowOpt = None, reference: Annotated[Path | None, typer.Option(metavar="CSV")] = None,
    reference_sample: int = 500, reference_split: str = "train",
    top: Annotated[int | None, typer.Option(min=1)] = None,
    xtb_relax: Annotated[bool, typer.Option("--xtb-relax")] = False,
    xtb_orbitals: Annotated[bool, typer.Option("--xtb-orbitals")] = False, seed: int = 0, *,
    run: Run,
) -> None:  # fmt: skip
    """Hit rates of SMILES candidates vs training molecules under one independent evaluator.

    RDKit validity → ETKDG + MMFF → (--xtb-relax) GFN2-xTB → property models (--model).

    Default windows: the QM9 demo, lumo=-1:0 and gap=4:6 eV.

    Args:
        candidates: Candidates CSV (column 'string').
        out_dir: Output folder for metrics.json and tables.
        model: Property model NAME=PATH (eV), e.g. lumo=runs/lumo/model.pt (repeat).
        reference: Training table (e.g. from `deepatoms data qm9-smiles`) for reference rates.
        reference_sample: Reference molecules evaluated.
        reference_split: Split of the reference rows ('' = all rows).
        top: Evaluate only the first N candidates.
        xtb_relax: Relax with GFN2-xTB before predicting.
        xtb_orbitals: Also report raw GFN2-xTB orbital energies (eV).
        seed: Seed of the embeddings and the sample.
    """
    from deepatoms.workflows.design import design_check as run_check

    windows = parse_windows(window)
    metrics = run_check(
        candidates, out_dir, models=parse_models(model), windows=windows or None,
        reference=reference, reference_sample=reference_sample, reference_split=reference_split,
        top=top, xtb_relax=xtb_relax, xtb_orbitals=xtb_orbitals, seed=seed, overwrite=run.overwrite,
        progress=run.progress,
    )  # fmt: skip
    names = list(metrics["windows"])
    for source in ("models", "xtb"):
        if source not in metrics["candidates"]:
            continue
        out.print(f"hit rates ({'property models' if source == 'models' else 'raw GFN2-xTB'}):")
        out.print(_rate_line("  candidates", metrics["candidates"][source], names))
        if "reference" in metrics:
            out.print(_rate_line("  reference", metrics["reference"][source], names))
            out.print(f"  candidates / reference inside all windows: "
                      f"{metrics['enrichment'][source]:.2f}x")  # fmt: skip
    if "reference_labels" in metrics:
        out.print("hit rates (reference table labels):")
        for part in ("sample", "all"):
            out.print(_rate_line(f"  reference ({part})", metrics["reference_labels"][part], names))
    out.print(f"wrote {metrics['metrics_file']}")
    run.emit(metrics, drop=("metrics_file",))


# ---------------------------------------------------------------------------------------------
# design baselines
# ---------------------------------------------------------------------------------------------
@command(app, "baselines", run_options())
def design_baselines(
    data: Annotated[Path, typer.Option()],
    prop: Annotated[list[str], typer.Option("--property", metavar="NAME")],
    features: str = "morgan",
    models: Annotated[list[str] | None, typer.Option("--model", metavar="NAME")] = None,
    folds: int = 5, limit: Annotated[int | None, typer.Option(min=2)] = None, seed: int = 0,
    mlp_solver: str = "lbfgs", n_jobs: int = 1, rf_max_features: str = "1.0",
    out_file: Annotated[Path | None, typer.Option("--out", metavar="FILE.json")] = None, *,
    run: Run,
) -> None:  # fmt: skip
    """k-fold CV of ridge / MLP / random forest on fixed-length features (MAE in meV).

    The table has the layout of Paper D Table III.

    Args:
        data: String table CSV with property columns (eV).
        prop: Property column to fit (repeat).
        features: Fixed-length features: morgan (SMILES) or polymer.
        models: ridge, mlp, rf (repeat; default all).
        folds: Cross-validation folds.
        limit: Seeded random subset of N rows.
        seed: Seed of folds, subset and models.
        mlp_solver: lbfgs (paper) or adam (sklearn early stopping on 10 %).
        n_jobs: Random-forest worker processes.
        rf_max_features: Random-forest features tried per split: a fraction in (0, 1] (1: all,
            the scikit-learn default; 0.333: Breiman's rule for regression, ~3x faster), sqrt or
            log2.
        out_file: Results JSON to write.
    """
    from deepatoms.workflows.design import fingerprint_baselines

    rf_features: float | str = rf_max_features
    if rf_max_features not in ("sqrt", "log2"):
        try:
            rf_features = float(rf_max_features)
        except ValueError:
            raise ValueError(
                f"--rf-max-features {rf_max_features!r}: give a fraction in (0, 1], sqrt or log2"
            ) from None
    res = fingerprint_baselines(
        data, prop, features=features, models=models, folds=folds, limit=limit, seed=seed,
        mlp_solver=mlp_solver, n_jobs=n_jobs, rf_max_features=rf_features, out=out_file,
        overwrite=run.overwrite, progress=run.progress,
    )  # fmt: skip
    out.print(
        f"{folds}-fold CV on {res['n_rows']} rows of {data} ({features} features), MAE in meV:"
    )
    out.print(res["table"])
    if out_file is not None:
        out.print(f"wrote {out_file}")
    run.emit(res)
