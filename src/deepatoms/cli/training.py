"""``deepatoms train``, ``deepatoms cv`` and ``deepatoms presets``: training runs
(``deepatoms.workflows.training``) and k-fold cross-validation (``deepatoms.workflows.crossval``)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from deepatoms.cli.common import (
    Run,
    SetOpt,
    Workers,
    cluster_options,
    command,
    commands,
    number,
    out,
    run_options,
    training_verb,
)

app = commands()

__all__ = ["app"]


@command(app, "train", run_options(overwrite=False), cluster_options())
def train_command(
    preset: Annotated[str, typer.Option()], data: Annotated[Path, typer.Option(metavar="FILE.h5")],
    out_dir: Annotated[Path, typer.Option("--out")], target: str | None = None,
    forces: str | None = None, rho: float | None = None, max_epochs: int | None = None,
    max_time: float | None = None, n_train: str | None = None, n_val: str | None = None,
    seed: int | None = None, set_: SetOpt = None,
    init: Annotated[Path | None, typer.Option(metavar="MODEL.pt")] = None,
    force: Annotated[bool, typer.Option("--force")] = False,
    refit_statistics: Annotated[bool, typer.Option("--refit-statistics")] = False,
    accelerator: str | None = None, devices: int | None = None, strategy: str | None = None,
    precision: str | None = None, ensemble: Annotated[int, typer.Option(min=1)] = 1,
    bootstrap: Annotated[bool, typer.Option("--bootstrap")] = False,
    variance_scale: Annotated[bool, typer.Option("--variance-scale/--no-variance-scale")] = True,
    *, run: Run, dask: Workers,
) -> None:  # fmt: skip
    """Train a model on a dataset; writes a run folder with checkpoints, metrics and model.pt.

    Running the same command again on a run folder with checkpoints/last.ckpt resumes it.

    Args:
        preset: Preset name (see `deepatoms presets`).
        data: Dataset file (.h5).
        out_dir: Run folder (created; resumed if it holds a run).
        target: Property to learn, e.g. U0 (default: the preset's).
        forces: Per-atom force label to train on with the energy (thesis Eq. 5.7), e.g. forces;
            'none' trains on energies only (default: the preset's).
        rho: Energy weight ρ of the energy–force loss (0: forces only).
        max_epochs: Stop after this many epochs.
        max_time: Stop after this many minutes of training in total (a resumed run counts the
            time already spent).
        n_train: Training systems (count or fraction).
        n_val: Validation systems (count or fraction).
        seed: Seed for split, initialisation, shuffling.
        init: Fine-tune: start from this model.pt (same preset and overrides); the optimiser
            starts fresh. Refused when the model never saw an element of the data or learned
            another target (see --force).
        force: With --init: fine-tune even from a model whose elements or target do not match.
        refit_statistics: With --init: fit the output statistics (mean, scale, atom references)
            to this data instead of keeping the model's.
        accelerator: auto (a GPU when there is one), cpu or gpu (train.accelerator).
        devices: Number of devices, e.g. 2 GPUs or 2 CPU processes (train.devices).
        strategy: auto or ddp (one process per device; train.strategy).
        precision: 32, bf16-mixed or 16-mixed (train.precision).
        ensemble: Train a committee of N members (seeds seed … seed+N-1) into one model.pt
            whose predictions carry a standard deviation; members run in parallel with
            --workers (on GPUs: one GPU per member, worker i on GPU i mod the GPU count).
        bootstrap: Committee: each member trains on a resample (with replacement) of the
            training set.
        variance_scale: Committee: scale its variance by a factor fitted on the validation
            set, so that its σ matches the errors there (--no-variance-scale: the members'
            own spread).
    """
    from deepatoms.workflows.training import train

    options = {"target": target, "forces": forces, "rho": rho, "max_epochs": max_epochs,
               "max_time": max_time, "seed": seed, "n_train": number(n_train, "--n-train"),
               "n_val": number(n_val, "--n-val"), "init_force": True if force else None,
               "init_statistics": "refit" if refit_statistics else None,
               "accelerator": accelerator, "devices": devices, "strategy": strategy,
               "precision": precision}  # fmt: skip
    if run.progress:
        logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    summary = train(preset, data, out_dir, overrides=list(set_ or []), init=init,
                    progress=run.progress, command="deepatoms train", ensemble=ensemble,
                    bootstrap=bootstrap, variance_scale=variance_scale, **dask.kwargs(),
                    **options)  # fmt: skip
    if "n_members" in summary:
        _report_committee(summary)
        run.emit(summary)
        return
    if summary.get("rank"):  # another process of a multi-process run: rank 0 reports
        return
    verb = training_verb(summary)
    u = summary["unit"] or "(no unit)"
    if summary.get("model") == "gschnet":
        score = f"best validation loss {summary['best_val_loss']:.5g} nats"
    elif summary.get("forces"):
        score = (
            f"best validation loss {summary['best_val_loss']:.5g}; energy MAE "
            f"{summary['val_energy_mae']:.5g} {u}, force MAE {summary['val_force_mae']:.5g} {u}/Å"
        )
    else:
        score = f"best validation MAE {summary['best_val_mae']:.5g} {u}"
    out.print(
        f"{verb} {summary['preset']} on {summary['target'] or 'molecule generation'}: "
        f"{summary['epochs']} epochs, "
        f"{summary['steps']} steps, {score} ({summary['wall_time_s']} s)"
    )
    out.print(f"stopped: {summary['stopped']}; model: {summary['model_file']}")
    run.emit(summary)


def _report_committee(summary: dict) -> None:
    v, u = summary["val"], summary["unit"] or "(no unit)"
    members = ", ".join(f"{m:.4g}" for m in v["member_mae"])
    scale, fit = summary["variance_scale"], summary["variance_scale_fit"]
    scale_text = f"{scale:.3g}" if scale == fit else f"{scale:.3g} (not fitted; the fit: {fit:.3g})"
    out.print(
        f"trained a committee of {summary['n_members']} on {summary['property']}: validation "
        f"MAE {v['mae']:.5g} {u} (members {members}); σ scale {scale_text}, "
        f"Spearman ρ(|error|, σ) {v.get('spearman_abs_error_std', float('nan')):.2f}, "
        f"miscalibration area {v.get('miscalibration_area', float('nan')):.3f} "
        f"({summary['wall_time_s']} s)"
    )
    out.print(f"model: {summary['model_file']}")


@command(app, "cv", run_options(overwrite=False))
def cv_command(
    preset: Annotated[str, typer.Option()], data: Annotated[Path, typer.Option(metavar="FILE.h5")],
    out_dir: Annotated[Path, typer.Option("--out")], target: str | None = None,
    folds: Annotated[int, typer.Option(min=2)] = 5,
    stratify: Annotated[str | None, typer.Option(metavar="COL")] = None,
    val_fraction: Annotated[str, typer.Option("--val-fraction", "--n-val")] = "0.1",
    seed: int | None = None, init: Annotated[Path | None, typer.Option(metavar="MODEL")] = None,
    bootstrap: Annotated[int, typer.Option(min=1)] = 10_000, set_: SetOpt = None, *, run: Run,
) -> None:  # fmt: skip
    """Cross-validate a preset: k training runs, each tested on one fold; pooled test errors.

    Writes OUT/fold{i}/ (run folders), OUT/predictions.csv and OUT/cv_summary.json. The config's
    data.n_train/n_val/n_test are ignored: the folds and --val-fraction set the split.

    Args:
        preset: Preset name (see `deepatoms presets`).
        data: Dataset file (.h5).
        out_dir: CV folder (created; a rerun reuses finished folds and resumes the rest).
        target: Property to learn (default: the preset's).
        folds: Number of folds k.
        stratify: Per-system column whose classes are spread evenly over the folds (e.g. icsd).
        val_fraction: Validation systems held out of each fold's training part for early
            stopping: a fraction (0.1) or a count (5000).
        seed: Seed of the folds, validation subsets and training (train.seed).
        init: Start every fold from this model.pt (transfer learning).
        bootstrap: Bootstrap resamples for the 95th percentile of the MAE (the paper: 10⁶).
    """
    from deepatoms.workflows.crossval import cross_validate
    from deepatoms.workflows.training import training_config

    cfg = training_config(preset, list(set_ or []), target=target, seed=seed)
    n_val = number(val_fraction, "--val-fraction")
    if run.progress:
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
        progress=run.progress,
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
    run.emit(res)


@command(app, "presets", run_options(overwrite=False))
def presets_command(
    *,
    run: Run,
) -> None:
    """List the shipped presets by model family, with the command that trains them."""
    from deepatoms.workflows.training import list_presets

    res = list_presets()
    for group in res.families:
        out.print(f"{group['title']} — {group['summary']}; train with `{group['command']}`")
        for row in group["presets"]:
            out.print(f"  {row['name']:<22} {row['description']}")
    run.emit(res)


@command(app, "learn", run_options(overwrite=False), cluster_options())
def learn_command(
    out_dir: Annotated[Path, typer.Option("--out")], molecule: str | None = None,
    bulk: str | None = None, size: int | None = None,
    structure: Annotated[Path | None, typer.Option(metavar="FILE")] = None,
    data: Annotated[Path | None, typer.Option(metavar="FILE.h5")] = None,
    pool: Annotated[Path | None, typer.Option(metavar="FILE")] = None,
    preset: str = "schnet-md17-fast", calculator: str | None = None, initial: int = 20,
    test: int = 50, test_temperatures: str | None = None, rounds: int = 3, ensemble: int = 3,
    max_epochs: int = 100, batch_size: int = 4,
    temperatures: str = "300,600", steps: int = 200, interval: int = 10, timestep: float = 1.0,
    explorers: int = 4, trust_low: float = 0.05, trust_high: float = 0.5, per_round: int = 20,
    select: str = "deviation", explore: str | None = None, rattle: float = 0.05,
    min_bond_ratio: float = 0.6, seed: int = 0, set_: SetOpt = None, *, run: Run,
    dask: Workers,
) -> None:  # fmt: skip
    """Active learning: train a committee, explore, label where it disagrees, retrain.

    Each round trains a committee on all labelled frames (warm start from the last round),
    measures it on a fixed test set, explores with it (MD, rattled frames or a candidate
    pool), picks frames whose maximum force deviation lies between the trust levels (property
    models: the largest energy std), labels them with GFN2-xTB (molecules) or EMT (metals) and
    adds them. The run folder is resumable; give the same command (with more --rounds) to
    continue. Logs: OUT/rounds.jsonl and OUT/error_vs_labels.png.

    Args:
        out_dir: Run folder.
        molecule: Molecule: name, alias or SMILES (labelled with GFN2-xTB).
        bulk: Bulk metal or alloy, e.g. Cu or Cu3Au (labelled with EMT).
        size: Bulk: about this many atoms in the cell (default 32).
        structure: The system from a structure file (any ASE format; periodic cells get EMT).
        data: Labelled start (energies and forces) instead of reference MD.
        pool: Candidate structures (dataset .h5 or any ASE format) scored each round instead
            of MD; the test set and the start are drawn from it.
        preset: Preset of the members: a potential (default), or a property model with --pool.
        calculator: Reference calculator: xtb or emt (default by the system).
        initial: Frames labelled to start with (reference MD at 500 K, or pool frames).
        test: Frames of the fixed test set (separate reference MD, or pool frames).
        test_temperatures: Temperatures (K) of the test MD, comma-separated (default: the
            exploration temperatures).
        rounds: Rounds in all.
        ensemble: Committee members.
        max_epochs: Training epochs per round.
        batch_size: Training batch size of the members (small: the labelled set is small).
        temperatures: Exploration temperatures (K), comma-separated.
        steps: MD steps per exploration run.
        interval: MD steps between explored frames.
        timestep: Exploration time step (fs).
        explorers: Exploration runs per temperature.
        trust_low: Lower trust level on the maximum force deviation (eV/Å).
        trust_high: Upper trust level (eV/Å); exploration runs stop above it.
        per_round: Frames labelled per round at most.
        select: deviation (trust levels; property models: largest std), largest (largest
            deviation first, up to --trust-high) or random (uniform from the explored frames).
        explore: md (committee MD), rattle (random displacements of labelled frames) or pool
            (the default with --pool).
        rattle: Displacement of --explore rattle (Å, std).
        min_bond_ratio: Explored frames with two atoms closer than this fraction of the sum of
            their covalent radii are unphysical: MD stops there and they are never labelled
            (0: no check).
        seed: Seed of everything random.
    """
    from deepatoms.workflows.learn import learn

    temps = _temperatures(temperatures, "--temperatures")
    test_temps = (
        _temperatures(test_temperatures, "--test-temperatures") if test_temperatures else None
    )
    res = learn(out_dir, preset=preset, molecule=molecule, bulk=bulk, size=size,
                structure=structure, data=data, pool=pool,
                calculator=calculator, initial=initial, test=test,
                test_temperatures=test_temps, rounds=rounds,
                ensemble=ensemble, max_epochs=max_epochs, batch_size=batch_size, temperatures=temps, steps=steps,
                interval=interval, timestep=timestep, explorers=explorers, trust_low=trust_low,
                trust_high=trust_high, per_round=per_round, select=select, explore=explore,
                rattle=rattle, min_bond_ratio=min_bond_ratio, overrides=list(set_ or []),
                seed=seed, progress=run.progress,
                **dask.kwargs())  # fmt: skip
    for r in res["rounds"]:
        force = r["test_force_mae"]
        f_text = f", force MAE {force:.4g} eV/Å" if force is not None else ""
        out.print(f"round {r['round']}: {r['labels']} labels, test energy MAE "
                  f"{r['test_energy_mae']:.4g} eV{f_text}; explored {r['explored']}, "
                  f"candidates {r['candidates']}, labelled {r.get('labelled', r['selected'])}"
                  + (f", {len(r['unphysical'])} unphysical left out" if r.get("unphysical") else "")
                  + (f" ({len(r['label_failed'])} failed)" if r.get("label_failed") else ""))  # fmt: skip
    out.print(f"{res['n_labels']} labelled frames in {res['out']}/labelled.h5; "
              f"{res['out']}/error_vs_labels.png")  # fmt: skip
    run.emit(res)


def _temperatures(text: str, option: str) -> list[float]:
    """Temperatures (K) from a comma list, or one clear error naming ``option``."""
    try:
        temps = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise ValueError(f"{option} takes numbers such as 300,600; got {text!r}") from None
    if not temps or min(temps) < 0:
        raise ValueError(f"{option} takes temperatures ≥ 0 K such as 300,600; got {text!r}")
    return temps
