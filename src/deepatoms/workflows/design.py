"""Inverse design with a grammar VAE: the functions behind ``deepatoms design run | check |
baselines`` (Jørgensen et al. 2018, Paper D).

- :func:`design_run`: iterated conditional modes in the latent space (Paper D Algorithm 1,
  ``deepatoms.design.icm``) with the VAE's latent regressors → a ranked CSV of candidates (and
  3-D structures of SMILES candidates for ``predict``/``relax``);
- :func:`design_check`: one independent evaluator (RDKit validity → ETKDG + MMFF → optional
  GFN2-xTB relaxation → trained property models and/or xTB orbitals) on the candidates and on
  a sample of training molecules → hit rates per design window and their ratio;
- :func:`fingerprint_baselines`: ridge / MLP / random forest on fixed-length features with
  k-fold CV (the layout of Paper D Table III), MAE in meV.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deepatoms.core.device import resolve_device
from deepatoms.core.errors import DeepatomsError
from deepatoms.core.files import check_new_file, write_json
from deepatoms.core.progress import ProgressBar
from deepatoms.core.results import Result
from deepatoms.models.loading import PROPERTY_FAMILIES, load_model

__all__ = ["DesignResult", "design_check", "design_run", "fingerprint_baselines"]

Windows = Mapping[str, tuple[float, float]]


class DesignResult(Result):
    """The result of a design function (keys: see its docstring)."""


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


def _candidate_columns(result: Any, windows: Windows, is_valid: Callable[[str], bool]) -> dict:
    """Columns of the candidates CSV: rank, string, canonical, predictions, objective, flags."""
    from deepatoms.design.qm9_smiles import in_windows

    k = len(result.strings)
    cols: dict[str, list] = {"rank": list(range(1, k + 1)), "string": list(result.strings),
                             "canonical": list(result.keys)}  # fmt: skip
    for name, values in result.predictions.items():
        cols[f"{name}_pred"] = [float(v) for v in values]
    cols["objective"] = [float(v) for v in result.objective]
    cols["valid"] = [bool(is_valid(s)) for s in result.strings]
    if windows and k:
        for name, mask in in_windows(result.predictions, windows).items():
            cols[f"in_{name}" if name != "all" else "in_all_windows"] = [bool(m) for m in mask]
    return cols


def _embed_candidates(strings: Sequence[str], seed: int, progress: bool) -> tuple[list, int]:
    """3-D structures (ETKDG + MMFF) of the candidates; ``atoms.info["index"]`` = CSV rank."""
    from deepatoms.design.candidates import embed_smiles

    molecules, failed = [], 0
    with ProgressBar("embedding candidates", quiet=not progress) as bar:
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


def _training_strings(
    latent: Any, training: str | os.PathLike | None
) -> tuple[list[str], str | None]:
    """Strings never proposed and where they came from: the ``training`` CSV, else the run's
    ``training_strings.txt``."""
    from deepatoms.data.strings import read_string_csv

    if training is not None:
        return read_string_csv(training).strings, str(training)
    strings = latent.training_strings()
    if strings:
        return strings, str(Path(latent.meta["model_file"]).parent / "training_strings.txt")
    return [], None


def design_run(
    run: str | os.PathLike, out: str | os.PathLike, *, targets: Mapping[str, float] | None = None,
    windows: Windows | None = None, regressors: str | os.PathLike | None = None,
    training: str | os.PathLike | None = None, samples: int = 1_000_000, iterations: int = 20,
    top: int = 100, seed: int = 0, chunk: int = 10_000, batch_size: int = 1024,
    xyz: str | os.PathLike | None = None, device: str = "cpu", overwrite: bool = False,
    progress: bool = True, on_iteration: Callable[[Any], None] | None = None,
) -> DesignResult:  # fmt: skip
    """Propose new strings whose predicted properties hit ``targets`` (eV; default: the
    midpoints of ``windows``), by ICM from ``samples`` prior draws over ``iterations``
    iterations, keeping ``top`` candidates (Paper D: 10⁶, 20, 100). ``regressors``: the latent
    regressors (default ``RUN/regressors.pt``). Writes the ranked candidates CSV ``out`` and,
    for SMILES, their 3-D structures to ``xyz``. ``on_iteration(stats)`` after each iteration.
    Keys: ``n_candidates``, ``history``, ``predicted_in_window``, ``seconds``, ``n_embedded``."""
    from deepatoms.design.icm import run_design
    from deepatoms.design.qm9_smiles import window_fractions, window_midpoints, write_table_csv
    from deepatoms.generate.output import check_output_path, write_molecules
    from deepatoms.grammar.validity import validity_checker

    for name, value in (("--samples", samples), ("--iterations", iterations), ("--top", top),
                        ("--chunk", chunk), ("--batch-size", batch_size)):  # fmt: skip
        if value < 1:
            raise DeepatomsError(f"{name} must be at least 1, got {value}")
    windows = dict(windows or {})
    targets = dict(targets or {}) or window_midpoints(windows)
    if not targets:
        raise DeepatomsError(
            "give the design targets: --target NAME=VALUE (eV) and/or --window NAME=LO:HI "
            "(targets default to the window midpoints), e.g. --window lumo=-1:0 --window gap=4:6"
        )
    check_new_file(out, overwrite)
    if xyz is not None:
        check_output_path(xyz, overwrite)
    latent = load_model(run, expect="grammar-vae")
    folder = Path(latent.meta["model_file"]).parent
    regressors = Path(regressors) if regressors is not None else folder / "regressors.pt"
    _require(regressors, "regressors file", "train them with `deepatoms vae regress RUN`")
    latent.model.to(resolve_device(device))
    regs = load_model(regressors, expect="latent-regressors")
    unknown = sorted((set(targets) | set(windows)) - set(regs.properties))
    if unknown:
        raise DeepatomsError(
            f"{regressors} has no regressor for {unknown}; it predicts {list(regs.properties)} "
            "(use these names in --target / --window)"
        )
    if xyz is not None and latent.grammar.tokenizer != "smiles":
        raise DeepatomsError(
            f"--xyz needs SMILES candidates; this model's grammar {latent.grammar.name!r} has "
            f"the {latent.grammar.tokenizer!r} tokenizer"
        )
    train_strings, train_source = _training_strings(latent, training)
    bars = _IterationBars(iterations, not progress)

    def report(stats: Any) -> None:
        bars.close()
        if on_iteration is not None:
            on_iteration(stats)

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
    n_rows = write_table_csv(out, _candidate_columns(result, windows, is_valid))
    summary = DesignResult(
        out=str(out), run=str(run), regressors=str(regressors), training=train_source,
        n_training=len(train_strings), targets=targets,
        windows={k: list(v) for k, v in windows.items()}, samples=samples,
        iterations=iterations, top=top, seed=seed, device=device, seconds=seconds,
        n_candidates=n_rows, n_population=len(result.population_strings),
        history=[h.as_dict() for h in result.history],
    )  # fmt: skip
    if windows and n_rows:
        summary["predicted_in_window"] = window_fractions(result.predictions, windows)
    if xyz is not None:
        molecules, failed = _embed_candidates(result.strings, seed, progress)
        meta = {"generator": "deepatoms design run", "run": str(run), "targets": targets,
                "index": "rank in the candidates CSV"}  # fmt: skip
        n_xyz = write_molecules(xyz, molecules, model=str(run), seed=seed, temperature=0.0,
                                metadata=meta, overwrite=overwrite)  # fmt: skip
        summary.update(xyz=str(xyz), n_embedded=n_xyz, n_embed_failed=failed)
    return summary


def _sample_reference(
    path: str | os.PathLike, split: str | None, n: int, seed: int, windows: Sequence[str]
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
        raise DeepatomsError(f"{path} has no rows with split {split!r}")
    pick = np.sort(np.random.default_rng(seed).choice(rows, size=min(n, len(rows)), replace=False))
    labels = {}
    if labelled:
        labels = {"sample": {k: table.properties[k][pick] for k in windows},
                  "all": {k: table.properties[k][rows] for k in windows}}  # fmt: skip
    return [table.strings[i] for i in pick], labels


def _counts(values: Sequence[str]) -> dict[str, int]:
    keys, counts = np.unique(np.asarray(values, dtype=str), return_counts=True)
    return {str(k): int(c) for k, c in zip(keys, counts, strict=True)}


def design_check(
    candidates: str | os.PathLike, out_dir: str | os.PathLike, *,
    models: Mapping[str, str | os.PathLike] | None = None, windows: Windows | None = None,
    reference: str | os.PathLike | None = None, reference_sample: int = 500,
    reference_split: str | None = "train", top: int | None = None, xtb_relax: bool = False,
    xtb_orbitals: bool = False, seed: int = 0, overwrite: bool = False, progress: bool = True,
) -> DesignResult:  # fmt: skip
    """Hit rates of SMILES ``candidates`` (the first ``top``) and of a seeded sample of the
    ``reference`` table under one evaluator: RDKit validity → ETKDG + MMFF → (``xtb_relax``)
    GFN2-xTB → property ``models`` {name: model file} and/or raw xTB orbital energies. Default
    windows: the QM9 demo, lumo −1…0 and gap 4…6 eV. Writes OUT/metrics.json,
    OUT/candidates.csv and OUT/reference.csv. Keys: ``candidates``, ``reference`` (status
    counts, hit rates), ``reference_labels``, ``enrichment`` (candidates / reference inside all
    windows)."""
    from deepatoms.data.strings import read_string_csv
    from deepatoms.design.candidates import evaluate_smiles, hit_rates
    from deepatoms.design.qm9_smiles import QM9_DESIGN_WINDOWS, write_table_csv

    windows = dict(windows or QM9_DESIGN_WINDOWS)
    models = dict(models or {})
    _check_evaluator(windows, models, xtb_orbitals)
    _require(candidates, "candidates file", "write one with `deepatoms design run`")
    for name, path in models.items():
        _require(path, f"--model {name}:", "train one with `deepatoms train`")
    if reference is not None:
        _require(reference, "reference table", "write one with `deepatoms data qm9-smiles`")
    out_dir = Path(out_dir)
    for name in ("metrics.json", "candidates.csv", "reference.csv"):
        check_new_file(out_dir / name, overwrite)
    loaded = {name: load_model(path, expect=PROPERTY_FAMILIES) for name, path in models.items()}
    strings = read_string_csv(candidates).strings[:top]
    relax = "xtb" if xtb_relax else None

    def evaluate(label: str, smiles: list[str]) -> dict[str, Any]:
        with ProgressBar(f"checking {label}", quiet=not progress) as bar:
            _, cols = evaluate_smiles(smiles, loaded, relax, xtb_orbitals, seed, progress=bar)
        write_table_csv(out_dir / f"{label}.csv", cols)
        res: dict[str, Any] = {"status": _counts(cols["status"])}
        if loaded:
            res["models"] = hit_rates(cols, windows)
        if xtb_orbitals:
            res["xtb"] = hit_rates({k: cols[f"xtb_{k}"] for k in windows}, windows)
        return res

    t0 = time.perf_counter()
    metrics = DesignResult(
        candidates_file=str(candidates), windows={k: list(v) for k, v in windows.items()},
        models={k: str(v) for k, v in models.items()}, xtb_relax=xtb_relax, seed=seed,
        candidates=evaluate("candidates", strings),
    )  # fmt: skip
    if metrics["candidates"]["status"].get("invalid", 0) == len(strings):
        raise DeepatomsError(
            f"none of the {len(strings)} strings of {candidates} is a valid SMILES; design "
            "check evaluates SMILES candidates (grammar 'smiles')"
        )
    if reference is not None:
        ref_strings, labels = _sample_reference(reference, reference_split or None,
                                                reference_sample, seed, list(windows))  # fmt: skip
        metrics["reference_file"] = str(reference)
        metrics["reference"] = evaluate("reference", ref_strings)
        if labels:  # the table's own labels (e.g. QM9 DFT), sample and whole split
            metrics["reference_labels"] = {k: hit_rates(v, windows) for k, v in labels.items()}
        for source in ("models", "xtb"):  # Paper D: 61 % vs 11 %, "more than a factor of five"
            if source in metrics["candidates"]:
                cand = metrics["candidates"][source]["fraction"]["all"]
                ref = metrics["reference"][source]["fraction"]["all"]
                metrics.setdefault("enrichment", {})[source] = (
                    cand / ref if ref > 0 else float("nan")
                )
    metrics["seconds"] = time.perf_counter() - t0
    write_json(out_dir / "metrics.json", metrics)
    metrics["metrics_file"] = str(out_dir / "metrics.json")
    return metrics


def _require(path: str | os.PathLike, what: str, hint: str) -> None:
    if not Path(path).exists():
        raise FileNotFoundError(f"{what} {path} does not exist; {hint}")


def _check_evaluator(windows: Windows, models: Mapping[str, Any], xtb_orbitals: bool) -> None:
    if not models and not xtb_orbitals:
        raise DeepatomsError(
            "nothing to evaluate with: give --model NAME=PATH (e.g. lumo=… gap=…) and/or "
            "--xtb-orbitals"
        )
    if models:
        missing = sorted(set(windows) - set(models))
        if missing:
            raise DeepatomsError(
                f"window(s) {missing} have no property model; add --model NAME=PATH for each "
                f"(models given: {sorted(models)})"
            )
    elif not set(windows) <= {"homo", "lumo", "gap"}:
        raise DeepatomsError(f"xTB orbitals give homo, lumo and gap; windows {sorted(windows)}")


def fingerprint_baselines(
    data: str | os.PathLike, properties: Sequence[str], *, features: str = "morgan",
    models: Sequence[str] | None = None, folds: int = 5, limit: int | None = None, seed: int = 0,
    mlp_solver: str = "lbfgs", n_jobs: int = 1, rf_max_features: float | str = 1.0,
    out: str | os.PathLike | None = None, overwrite: bool = False, progress: bool = True,
) -> DesignResult:  # fmt: skip
    """k-fold CV of ridge / MLP / random forest on fixed-length ``features`` (Morgan
    fingerprints of SMILES, or polymer features) of the CSV ``data`` (a seeded subset of
    ``limit`` rows); MAE in meV in the layout of Paper D Table III. ``rf_max_features``: the
    features tried per random-forest split (a fraction, ``sqrt`` or ``log2``; 0.333 is
    Breiman's rule for regression). Keys: ``results``, ``table`` (Markdown), ``n_rows``,
    ``n_features``, ``seconds``; written to ``out`` (JSON) when given."""
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
        raise DeepatomsError(f"--features {features!r}: choose one of {sorted(FEATURE_KINDS)}")
    names = list(models or BASELINE_MODELS)
    bad = [m for m in names if m not in BASELINE_MODELS]
    if bad:
        raise DeepatomsError(f"--model {bad}: choose from {list(BASELINE_MODELS)}")
    make_model("rf", rf_max_features=rf_max_features)  # checks the value before any work
    if out is not None:
        check_new_file(out, overwrite)
    table = read_string_csv(data, properties=list(properties))
    rows = np.arange(len(table.strings))
    if limit is not None and limit < len(rows):
        rows = np.sort(np.random.default_rng(seed).choice(rows, size=limit, replace=False))
    strings = [table.strings[i] for i in rows]
    with ProgressBar("features", quiet=not progress) as bar:
        x = string_features(strings, features, progress=bar)
    targets = {p: table.properties[p][rows] for p in properties}
    t0 = time.perf_counter()
    with ProgressBar("cross-validation fits", quiet=not progress) as bar:
        results = cross_validate(x, targets, names, folds, seed, mlp_solver, n_jobs, bar,
                                 rf_max_features)  # fmt: skip
    summary = DesignResult(
        data=str(data), features=features, n_features=int(x.shape[1]), n_rows=len(rows),
        folds=folds, seed=seed, mlp_solver=mlp_solver, rf_max_features=rf_max_features,
        seconds=time.perf_counter() - t0, results=results,
        table=format_mae_table(results, features),
    )  # fmt: skip
    if out is not None:
        write_json(out, summary)
    return summary
