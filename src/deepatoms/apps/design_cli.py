"""``deepatoms design`` (run · check · baselines) and the data commands ``deepatoms data
qm9-smiles`` / ``deepatoms data polymers`` (specs/grammar-vae.md §6–§9).

* ``design run``: ICM inverse design (Paper D Algorithm 1, :mod:`deepatoms.design.icm`) with a
  trained grammar VAE and its latent regressors → a ranked CSV (and 3-D structures of SMILES
  candidates for ``deepatoms predict`` / ``relax``).
* ``design check``: the independent evaluator of :mod:`deepatoms.design.candidates` on the
  candidates and on a reference sample of training molecules → hit rates per window.
* ``design baselines``: ridge / MLP / random forest on fixed-length features with k-fold CV
  (:mod:`deepatoms.design.baselines`) → MAE table in meV (Paper D Table III layout).

:func:`register` adds the ``design`` group to the main app and :func:`register_data` the two
data commands to the ``data`` sub-app; both are idempotent and importing this module registers
nothing.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from deepatoms.cli_support import (
    JsonOpt,
    OverwriteOpt,
    QuietOpt,
    add_group_once,
    check_new_output,
    emit_json,
    err,
    fail_cleanly,
    has_command,
    out,
)
from deepatoms.core.progress import ProgressBar

design_app = typer.Typer(
    help="Inverse design with a grammar VAE: ICM search, candidate checks, baselines.",
    no_args_is_help=True,
)

__all__ = ["design_app", "register", "register_data"]


def register(app: typer.Typer) -> None:
    """Add the ``design`` command group to ``app`` once."""
    add_group_once(app, design_app, "design")


def register_data(data_app: typer.Typer) -> None:
    """Add ``qm9-smiles`` and ``polymers`` to the ``deepatoms data`` sub-app once."""
    if not has_command(data_app, "qm9-smiles"):
        data_app.command("qm9-smiles")(data_qm9_smiles)
    if not has_command(data_app, "polymers"):
        data_app.command("polymers")(data_polymers)


#: CPU-friendly sample count of ``design run`` (specs/grammar-vae.md §6: "a CPU preset uses 10⁴").
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


def _require_file(path: Path, what: str, hint: str) -> None:
    if not path.exists():
        raise FileNotFoundError(f"{what} {path} does not exist; {hint}")


# ---------------------------------------------------------------------------------------------
# design run
# ---------------------------------------------------------------------------------------------
class _IterationBars:
    """``progress(iteration, done, total)`` of ICM → one progress bar per iteration."""

    def __init__(self, n_iter: int, quiet: bool) -> None:
        self.n_iter, self.quiet = n_iter, quiet
        self.bar: ProgressBar | None = None
        self.iteration = 0

    def __call__(self, iteration: int, done: int, total: int) -> None:
        if iteration != self.iteration:
            self.close()
            self.bar = ProgressBar(f"ICM {iteration}/{self.n_iter}", self.quiet)
            self.iteration = iteration
        self.bar(done, total)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


def _iteration_line(stats: Any, n_iter: int) -> str:
    counts = (
        f"ICM {stats.iteration}/{n_iter}: decoded {stats.population}, unfinished "
        f"{stats.unfinished}, invalid {stats.invalid}, duplicates {stats.duplicate}, training "
        f"{stats.training}, kept {stats.kept}"
    )
    if stats.kept == 0:
        return counts + "; population empty: stopping with the previous one"
    return counts + f"; objective best {stats.best:.4g}, median {stats.median:.4g} eV²"


def _candidate_columns(
    result: Any, windows: Mapping[str, tuple[float, float]], is_valid: Any
) -> dict[str, list]:
    """Columns of the candidates CSV: rank, string, canonical, predictions, objective, flags."""
    from deepatoms.design.qm9_smiles import in_windows

    k = len(result.strings)
    cols: dict[str, list] = {
        "rank": list(range(1, k + 1)),
        "string": list(result.strings),
        "canonical": list(result.keys),
    }
    for name, values in result.predictions.items():
        cols[f"{name}_pred"] = [float(v) for v in values]
    cols["objective"] = [float(v) for v in result.objective]
    cols["valid"] = [bool(is_valid(s)) for s in result.strings]
    if windows and k:
        masks = in_windows(result.predictions, windows)
        for name, mask in masks.items():
            cols[f"in_{name}" if name != "all" else "in_all_windows"] = [bool(m) for m in mask]
    return cols


def _embed_candidates(strings: Sequence[str], seed: int, quiet: bool) -> tuple[list, int]:
    """3-D structures (ETKDG + MMFF) of the candidates; ``atoms.info["index"]`` = CSV rank."""
    from deepatoms.design.candidates import embed_smiles

    molecules, failed = [], 0
    with ProgressBar("embedding candidates", quiet) as bar:
        for rank, s in enumerate(strings, start=1):
            try:
                atoms = embed_smiles(s, seed=seed)
            except ValueError:
                failed += 1
            else:
                atoms.info["index"] = rank
                molecules.append(atoms)
            bar(rank, len(strings))
    return molecules, failed


def _training_strings(latent: Any, training: Path | None) -> tuple[list[str], str | None]:
    """Strings to exclude and where they came from: the ``--training`` CSV, else the run's
    ``training_strings.txt`` (one string per line, written by ``deepatoms vae train``)."""
    from deepatoms.data.strings import read_string_csv

    if training is not None:
        return read_string_csv(training).strings, str(training)
    model_file = latent.meta.get("model_file") or latent.meta.get("training_strings")
    if model_file:
        strings = latent.training_strings()
        if strings:
            return strings, str(Path(model_file).parent / "training_strings.txt")
    return [], None


@design_app.command("run")
@fail_cleanly
def design_run(
    run: Annotated[
        Path, typer.Argument(help="Grammar-VAE run folder or its model.pt.", metavar="RUN")
    ],
    out_file: Annotated[
        Path, typer.Option("--out", help="Candidates CSV to write.", metavar="FILE.csv")
    ],
    regressors: Annotated[
        Path | None,
        typer.Option(
            help="Latent regressors (`deepatoms vae regress`; default: RUN/regressors.pt).",
            metavar="FILE",
        ),
    ] = None,
    target: Annotated[
        list[str] | None,
        typer.Option(
            help="Target NAME=VALUE in eV (repeat per property); default: window midpoints.",
            metavar="NAME=VALUE",
        ),
    ] = None,
    window: WindowOpt = None,
    training: Annotated[
        Path | None,
        typer.Option(
            help="CSV of strings never proposed (default: the run's training_strings.txt).",
            metavar="CSV",
        ),
    ] = None,
    samples: Annotated[
        int,
        typer.Option(
            help=f"Prior samples z ~ N(0, I) (Paper D: 10⁶; about {CPU_SAMPLES} for a CPU run)."
        ),
    ] = 1_000_000,
    iterations: Annotated[int, typer.Option(help="ICM iterations (Paper D: 20).")] = 20,
    top: Annotated[int, typer.Option(help="Candidates kept (Paper D: 100).")] = 100,
    seed: Annotated[int, typer.Option(help="Seed of the prior samples and embeddings.")] = 0,
    chunk: Annotated[int, typer.Option(help="Latent points decoded/encoded together.")] = 10_000,
    batch_size: Annotated[int, typer.Option(help="Network batch inside a chunk.")] = 1024,
    xyz: Annotated[
        Path | None,
        typer.Option(
            help="Also write 3-D structures of SMILES candidates (.xyz/.extxyz or .db).",
            metavar="FILE",
        ),
    ] = None,
    device: Annotated[
        str, typer.Option(help="Torch device of the VAE: cpu, or cuda (a GPU) for 10⁶ samples.")
    ] = "cpu",
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Propose new strings whose predicted properties hit the targets (Paper D Algorithm 1).

    QM9 demo: --window lumo=-1:0 --window gap=4:6 (targets: the midpoints).

    Paper D samples 10⁶ points; use --samples 10000 on a CPU.
    """
    from deepatoms.design.icm import run_design
    from deepatoms.design.qm9_smiles import window_midpoints, write_table_csv
    from deepatoms.generate.cli import _device
    from deepatoms.generate.output import check_output_path, write_molecules
    from deepatoms.grammar.validity import validity_checker
    from deepatoms.models.loading import load_model

    for name, value in (("--samples", samples), ("--iterations", iterations), ("--top", top),
                        ("--chunk", chunk), ("--batch-size", batch_size)):  # fmt: skip
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    targets, windows = parse_targets(target), parse_windows(window)
    if not targets:
        if not windows:
            raise ValueError(
                "give the design targets: --target NAME=VALUE (eV) and/or --window NAME=LO:HI "
                "(targets default to the window midpoints), e.g. --window lumo=-1:0 "
                "--window gap=4:6"
            )
        targets = window_midpoints(windows)
    check_new_output(out_file, overwrite)
    if xyz is not None:
        check_output_path(xyz, overwrite)
    _require_file(run, "grammar-VAE run", "train one with `deepatoms vae train`")
    if regressors is None:
        regressors = (run if run.is_dir() else run.parent) / "regressors.pt"
    _require_file(regressors, "regressors file", "train them with `deepatoms vae regress RUN`")
    latent = load_model(run, expect="grammar-vae")
    latent.model.to(_device(device))
    regs = load_model(regressors, expect="latent-regressors")
    unknown = sorted((set(targets) | set(windows)) - set(regs.properties))
    if unknown:
        raise ValueError(
            f"{regressors} has no regressor for {unknown}; it predicts {list(regs.properties)} "
            "(use these names in --target / --window)"
        )
    if xyz is not None and latent.grammar.tokenizer != "smiles":
        raise ValueError(
            f"--xyz needs SMILES candidates; this model's grammar {latent.grammar.name!r} has "
            f"the {latent.grammar.tokenizer!r} tokenizer"
        )
    train_strings, train_source = _training_strings(latent, training)
    if train_source is None and not quiet:
        err.print("note: no --training CSV and no training_strings.txt in the run; training "
                  "strings are not excluded")  # fmt: skip
    bars = _IterationBars(iterations, quiet)

    def report(stats: Any) -> None:
        bars.close()
        if not quiet:
            err.print(_iteration_line(stats, iterations), markup=False)

    t0 = time.perf_counter()
    try:
        result = run_design(
            latent, regs, targets, n_samples=samples, seed=seed, n_iter=iterations, top_k=top,
            training_strings=train_strings, chunk=chunk, batch_size=batch_size, progress=bars,
            on_iteration=report,
        )  # fmt: skip
    finally:
        bars.close()
    seconds = time.perf_counter() - t0
    is_valid = validity_checker(latent.grammar)
    n_rows = write_table_csv(out_file, _candidate_columns(result, windows, is_valid))
    out.print(
        f"ICM: {samples} samples, {len(result.history)} iterations, final population "
        f"{len(result.population_strings)} in {seconds:.1f} s"
    )
    out.print(f"wrote {n_rows} candidates to {out_file}")
    summary: dict[str, Any] = {
        "out": str(out_file),
        "run": str(run),
        "regressors": str(regressors),
        "training": train_source,
        "n_training": len(train_strings),
        "targets": targets,
        "windows": {k: list(v) for k, v in windows.items()},
        "samples": samples,
        "iterations": iterations,
        "top": top,
        "seed": seed,
        "device": device,
        "seconds": seconds,
        "n_candidates": n_rows,
        "history": [h.as_dict() for h in result.history],
    }
    if windows and n_rows:
        from deepatoms.design.qm9_smiles import window_fractions

        summary["predicted_in_window"] = window_fractions(result.predictions, windows)
    if xyz is not None:
        molecules, failed = _embed_candidates(result.strings, seed, quiet)
        meta = {"generator": "deepatoms design run", "run": str(run), "targets": targets,
                "index": "rank in the candidates CSV"}  # fmt: skip
        n_xyz = write_molecules(xyz, molecules, model=str(run), seed=seed, temperature=0.0,
                                metadata=meta, overwrite=overwrite)  # fmt: skip
        out.print(f"wrote {n_xyz} embedded candidates to {xyz} ({failed} failed to embed)")
        summary.update(xyz=str(xyz), n_embedded=n_xyz, n_embed_failed=failed)
    if as_json:
        emit_json(summary)


# ---------------------------------------------------------------------------------------------
# design check
# ---------------------------------------------------------------------------------------------
def _rate_line(label: str, rates: Mapping[str, Any], windows: Sequence[str]) -> str:
    cells = "  ".join(f"{w} {100 * rates['fraction'][w]:5.1f} %" for w in [*windows, "all"])
    return f"{label:<22} n {rates['n']:>5}  evaluated {rates['n_evaluated']:>5}  {cells}"


def _sample_reference(
    path: Path, split: str | None, n: int, seed: int, windows: Sequence[str]
) -> tuple[list[str], dict[str, dict[str, np.ndarray]]]:
    """Up to ``n`` seeded reference strings (rows of ``split`` when the table has a split
    column) and the table's own labels of the window properties, when it has them all, for the
    sample (``"sample"``) and for every row of the split (``"all"``)."""
    from deepatoms.data.strings import read_string_csv

    table = read_string_csv(path)
    labelled = all(k in table.columns for k in windows)
    if labelled:
        table = read_string_csv(path, properties=list(windows))
    rows = table.rows(split) if split else np.arange(len(table.strings))
    if len(rows) == 0:
        raise ValueError(f"{path} has no rows with split {split!r}")
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(rows, size=min(n, len(rows)), replace=False))
    labels = {}
    if labelled:
        labels = {"sample": {k: table.properties[k][pick] for k in windows},
                  "all": {k: table.properties[k][rows] for k in windows}}  # fmt: skip
    return [table.strings[i] for i in pick], labels


@design_app.command("check")
@fail_cleanly
def design_check(
    candidates: Annotated[
        Path, typer.Argument(help="Candidates CSV (column 'string').", metavar="CANDIDATES.csv")
    ],
    out_dir: Annotated[
        Path,
        typer.Option("--out", help="Output folder for metrics.json and tables.", metavar="DIR"),
    ],
    model: Annotated[
        list[str] | None,
        typer.Option(
            help="Property model NAME=PATH (eV), e.g. lumo=runs/lumo/model.pt (repeat).",
            metavar="NAME=PATH",
        ),
    ] = None,
    window: WindowOpt = None,
    reference: Annotated[
        Path | None,
        typer.Option(
            help="Training table (e.g. from `deepatoms data qm9-smiles`) for reference rates.",
            metavar="CSV",
        ),
    ] = None,
    reference_sample: Annotated[int, typer.Option(help="Reference molecules evaluated.")] = 500,
    reference_split: Annotated[
        str, typer.Option(help="Split of the reference rows ('' = all rows).")
    ] = "train",
    top: Annotated[
        int | None, typer.Option(help="Evaluate only the first N candidates.", min=1)
    ] = None,
    xtb_relax: Annotated[
        bool, typer.Option("--xtb-relax", help="Relax with GFN2-xTB before predicting.")
    ] = False,
    xtb_orbitals: Annotated[
        bool,
        typer.Option("--xtb-orbitals", help="Also report raw GFN2-xTB orbital energies (eV)."),
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed of the embeddings and the sample.")] = 0,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Hit rates of SMILES candidates vs training molecules under one independent evaluator.

    RDKit validity → ETKDG + MMFF → (--xtb-relax) GFN2-xTB → property models (--model).

    Default windows: the QM9 demo, lumo=-1:0 and gap=4:6 eV.
    """
    from deepatoms.core.files import write_json
    from deepatoms.data.strings import read_string_csv
    from deepatoms.design.candidates import evaluate_smiles, hit_rates
    from deepatoms.design.qm9_smiles import QM9_DESIGN_WINDOWS, write_table_csv
    from deepatoms.models.loading import PROPERTY_FAMILIES, load_model

    windows = parse_windows(window) or dict(QM9_DESIGN_WINDOWS)
    model_paths = parse_models(model)
    if not model_paths and not xtb_orbitals:
        raise ValueError(
            "nothing to evaluate with: give --model NAME=PATH (e.g. lumo=… gap=…) and/or "
            "--xtb-orbitals"
        )
    if model_paths:
        missing = sorted(set(windows) - set(model_paths))
        if missing:
            raise ValueError(
                f"window(s) {missing} have no property model; add --model NAME=PATH for each "
                f"(models given: {sorted(model_paths)})"
            )
    elif not set(windows) <= {"homo", "lumo", "gap"}:
        raise ValueError(f"xTB orbitals give homo, lumo and gap; windows {sorted(windows)}")
    _require_file(candidates, "candidates file", "write one with `deepatoms design run`")
    for name, path in model_paths.items():
        _require_file(path, f"--model {name}:", "train one with `deepatoms train`")
    if reference is not None:
        _require_file(reference, "reference table", "write one with `deepatoms data qm9-smiles`")
    metrics_file = out_dir / "metrics.json"
    for name in ("metrics.json", "candidates.csv", "reference.csv"):
        check_new_output(out_dir / name, overwrite)
    loaded = {
        name: load_model(path, expect=PROPERTY_FAMILIES) for name, path in model_paths.items()
    }
    strings = read_string_csv(candidates).strings[:top]
    relax = "xtb" if xtb_relax else None

    def evaluate(label: str, smiles: list[str]) -> dict[str, Any]:
        with ProgressBar(f"checking {label}", quiet) as bar:
            _, cols = evaluate_smiles(smiles, loaded, relax, xtb_orbitals, seed, progress=bar)
        write_table_csv(out_dir / f"{label}.csv", cols)
        res: dict[str, Any] = {"status": _counts(cols["status"])}
        if loaded:
            res["models"] = hit_rates(cols, windows)
        if xtb_orbitals:
            res["xtb"] = hit_rates({k: cols[f"xtb_{k}"] for k in windows}, windows)
        return res

    t0 = time.perf_counter()
    metrics: dict[str, Any] = {
        "candidates_file": str(candidates),
        "windows": {k: list(v) for k, v in windows.items()},
        "models": {k: str(v) for k, v in model_paths.items()},
        "xtb_relax": xtb_relax,
        "seed": seed,
        "candidates": evaluate("candidates", strings),
    }
    if metrics["candidates"]["status"].get("invalid", 0) == len(strings):
        raise ValueError(
            f"none of the {len(strings)} strings of {candidates} is a valid SMILES; design "
            "check evaluates SMILES candidates (grammar 'smiles')"
        )
    if reference is not None:
        ref_strings, labels = _sample_reference(
            reference, reference_split or None, reference_sample, seed, list(windows)
        )
        metrics["reference_file"] = str(reference)
        metrics["reference"] = evaluate("reference", ref_strings)
        if labels:  # the table's own labels (e.g. QM9 DFT), sample and whole split
            metrics["reference_labels"] = {k: hit_rates(v, windows) for k, v in labels.items()}
        for source in ("models", "xtb"):  # Paper D: 61 % vs 11 %, "more than a factor of five"
            if source in metrics["candidates"]:
                cand = metrics["candidates"][source]["fraction"]["all"]
                ref = metrics["reference"][source]["fraction"]["all"]
                ratio = cand / ref if ref > 0 else float("nan")
                metrics.setdefault("enrichment", {})[source] = ratio
    metrics["seconds"] = time.perf_counter() - t0
    write_json(metrics_file, metrics)
    for source in ("models", "xtb"):
        if source not in metrics["candidates"]:
            continue
        out.print(f"hit rates ({'property models' if source == 'models' else 'raw GFN2-xTB'}):")
        out.print(_rate_line("  candidates", metrics["candidates"][source], list(windows)))
        if "reference" in metrics:
            out.print(_rate_line("  reference", metrics["reference"][source], list(windows)))
            ratio = metrics["enrichment"][source]
            out.print(f"  candidates / reference inside all windows: {ratio:.2f}x")
    if "reference_labels" in metrics:
        out.print("hit rates (reference table labels):")
        for part in ("sample", "all"):
            rates = metrics["reference_labels"][part]
            out.print(_rate_line(f"  reference ({part})", rates, list(windows)))
    out.print(f"wrote {metrics_file}")
    if as_json:
        emit_json(metrics)


def _counts(values: Sequence[str]) -> dict[str, int]:
    keys, counts = np.unique(np.asarray(values, dtype=str), return_counts=True)
    return {str(k): int(c) for k, c in zip(keys, counts, strict=True)}


# ---------------------------------------------------------------------------------------------
# design baselines
# ---------------------------------------------------------------------------------------------
@design_app.command("baselines")
@fail_cleanly
def design_baselines(
    data: Annotated[Path, typer.Option(help="String table CSV with property columns (eV).")],
    prop: Annotated[
        list[str],
        typer.Option("--property", help="Property column to fit (repeat).", metavar="NAME"),
    ],
    features: Annotated[
        str, typer.Option(help="Fixed-length features: morgan (SMILES) or polymer.")
    ] = "morgan",
    models: Annotated[
        list[str] | None,
        typer.Option("--model", help="ridge, mlp, rf (repeat; default all).", metavar="NAME"),
    ] = None,
    folds: Annotated[int, typer.Option(help="Cross-validation folds.")] = 5,
    limit: Annotated[
        int | None, typer.Option(help="Seeded random subset of N rows.", min=2)
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of folds, subset and models.")] = 0,
    mlp_solver: Annotated[
        str, typer.Option(help="lbfgs (paper) or adam (sklearn early stopping on 10 %).")
    ] = "lbfgs",
    n_jobs: Annotated[int, typer.Option(help="Random-forest worker processes.")] = 1,
    rf_max_features: Annotated[
        str,
        typer.Option(
            help="Random-forest features tried per split: a fraction in (0, 1] (1: all, the "
            "scikit-learn default; 0.333: Breiman's rule for regression, ~3x faster), sqrt or log2."
        ),
    ] = "1.0",
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Results JSON to write.", metavar="FILE.json")
    ] = None,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """k-fold CV of ridge / MLP / random forest on fixed-length features (MAE in meV).

    The table has the layout of Paper D Table III.
    """
    from deepatoms.core.files import write_json
    from deepatoms.data.strings import read_string_csv
    from deepatoms.design.baselines import (
        BASELINE_MODELS,
        FEATURE_KINDS,
        cross_validate,
        format_mae_table,
        make_model,
        string_features,
    )

    if features not in FEATURE_KINDS:
        raise ValueError(f"--features {features!r}: choose one of {sorted(FEATURE_KINDS)}")
    names = list(models or BASELINE_MODELS)
    bad = [m for m in names if m not in BASELINE_MODELS]
    if bad:
        raise ValueError(f"--model {bad}: choose from {list(BASELINE_MODELS)}")
    rf_features: float | str = rf_max_features
    if rf_max_features not in ("sqrt", "log2"):
        try:
            rf_features = float(rf_max_features)
        except ValueError:
            raise ValueError(
                f"--rf-max-features {rf_max_features!r}: give a fraction in (0, 1], sqrt or log2"
            ) from None
    make_model("rf", rf_max_features=rf_features)  # checks the value before any work
    if out_file is not None:
        check_new_output(out_file, overwrite)
    table = read_string_csv(data, properties=prop)
    rows = np.arange(len(table.strings))
    if limit is not None and limit < len(rows):
        rows = np.sort(np.random.default_rng(seed).choice(rows, size=limit, replace=False))
    strings = [table.strings[i] for i in rows]
    with ProgressBar("features", quiet) as bar:
        x = string_features(strings, features, progress=bar)
    targets = {p: table.properties[p][rows] for p in prop}
    t0 = time.perf_counter()
    with ProgressBar("cross-validation fits", quiet) as bar:
        results = cross_validate(
            x, targets, names, folds, seed, mlp_solver, n_jobs, bar, rf_features
        )
    text = format_mae_table(results, features)
    out.print(f"{folds}-fold CV on {len(rows)} rows of {data} ({features} features), MAE in meV:")
    out.print(text)
    summary = {
        "data": str(data),
        "features": features,
        "n_features": int(x.shape[1]),
        "n_rows": len(rows),
        "folds": folds,
        "seed": seed,
        "mlp_solver": mlp_solver,
        "rf_max_features": rf_features,
        "seconds": time.perf_counter() - t0,
        "results": results,
        "table": text,
    }
    if out_file is not None:
        write_json(out_file, summary)
        out.print(f"wrote {out_file}")
    if as_json:
        emit_json(summary)


# ---------------------------------------------------------------------------------------------
# data commands (registered by register_data)
# ---------------------------------------------------------------------------------------------
@fail_cleanly
def data_qm9_smiles(
    out_file: Annotated[Path, typer.Argument(help="Output CSV.", metavar="OUT.csv")],
    limit: Annotated[
        int | None, typer.Option(help="Seeded random subset of N molecules.", min=1)
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the subset and of the split.")] = 0,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """QM9 SMILES with HOMO, LUMO and gap (eV) and a seeded 80/10/10 split, for the grammar VAE.

    Columns: string, homo, lumo, gap, qm9_index, split.
    """
    from deepatoms.design.qm9_smiles import (
        QM9_DESIGN_WINDOWS,
        qm9_smiles_table,
        window_fractions,
        write_table_csv,
    )

    check_new_output(out_file, overwrite)
    table = qm9_smiles_table(limit=limit, seed=seed, progress=not quiet)
    n = write_table_csv(out_file, table)
    sizes = {s: int((table["split"] == s).sum()) for s in ("train", "val", "test")}
    fractions = window_fractions(table, QM9_DESIGN_WINDOWS)
    out.print(f"wrote {n} SMILES to {out_file} (train {sizes['train']}, val {sizes['val']}, "
              f"test {sizes['test']})")  # fmt: skip
    out.print(
        f"design windows: lumo [-1, 0] eV {100 * fractions['lumo']:.1f} %, gap [4, 6] eV "
        f"{100 * fractions['gap']:.1f} %, both {100 * fractions['all']:.1f} %"
    )
    if as_json:
        emit_json({"out": str(out_file), "n": n, "split": sizes, "window_fractions": fractions})


@fail_cleanly
def data_polymers(
    out_file: Annotated[Path, typer.Argument(help="Output CSV.", metavar="OUT.csv")],
    n: Annotated[int, typer.Option("--n", "-n", help="Strings to generate.", min=1)] = 4000,
    seed: Annotated[int, typer.Option(help="Seed of the strings, labels and split.")] = 0,
    max_groups: Annotated[int, typer.Option(help="Side groups per list: 0..N.", min=0)] = 3,
    synthetic_labels: Annotated[
        bool,
        typer.Option(
            "--synthetic-labels",
            help="Add SYNTHETIC homo/lumo/gap/opt labels (eV) to exercise regressors and ICM.",
        ),
    ] = False,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Generated donor–acceptor polymer strings with a seeded 80/10/10 split.

    Paper D Fig. 2 syntax and Table I building blocks; Paper D's DFT data is not available.
    """
    from deepatoms.data.splits import random_split
    from deepatoms.design.qm9_smiles import write_table_csv
    from deepatoms.grammar.polymer import generate_polymer_strings, synthetic_polymer_labels

    check_new_output(out_file, overwrite)
    strings = generate_polymer_strings(n, seed=seed, max_groups=max_groups)
    columns: dict[str, Any] = {"string": strings}
    if synthetic_labels:
        columns.update(synthetic_polymer_labels(strings, seed=seed))
    split = np.empty(len(strings), dtype="<U5")
    for name, idx in random_split(len(strings), 0.8, 0.1, None, seed=seed).items():
        split[idx] = name
    columns["split"] = split
    rows = write_table_csv(out_file, columns)
    unique = len(set(strings))
    labels = " with SYNTHETIC labels" if synthetic_labels else ""
    out.print(f"wrote {rows} polymer strings ({unique} distinct){labels} to {out_file}")
    if as_json:
        emit_json({"out": str(out_file), "n": rows, "unique": unique, "seed": seed,
                    "synthetic_labels": synthetic_labels})  # fmt: skip
