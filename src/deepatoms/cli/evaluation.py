"""``deepatoms evaluate``, ``predict``, ``curves`` and ``evaluate-generated``: scores of trained
models (``deepatoms.workflows.evaluation``, ``.curves``, ``.generated``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from deepatoms.cli.common import (
    Run,
    Workers,
    cluster_options,
    command,
    commands,
    out,
    print_notes,
    run_options,
)

app = commands()

__all__ = ["app"]


@command(app, "evaluate", run_options(overwrite=False, device=True))
def evaluate_command(
    run_or_model: Annotated[Path, typer.Argument(metavar="RUN_DIR_OR_MODEL")],
    data: Annotated[Path | None, typer.Option(metavar="FILE.h5")] = None, split: str = "test",
    plot: Path | None = None, batch_size: int = 100, forces: str = "auto", *, run: Run,
) -> None:  # fmt: skip
    """Report MAE and RMSE of a trained model on a split, with a parity plot.

    For energy models on datasets with forces, component-wise force errors are reported too.

    Args:
        run_or_model: Run folder or model.pt.
        data: Dataset file (.h5); default: the dataset the run was trained on.
        split: train, val, test or all.
        plot: Parity plot path (PNG).
        batch_size: Systems per inference batch.
        forces: Force label to score an energy model against: auto (the trained one, else
            'forces' if present), a per-atom property name, or none.
    """
    from deepatoms.workflows.evaluation import evaluate

    res = evaluate(
        run_or_model,
        data,
        split,
        plot,
        batch_size,
        progress=run.progress,
        forces=forces,
        device=run.device,
    )
    u = res["unit"]
    line = f"{res['target']} on {res['split']} ({res['n']} systems): MAE {res['mae']:.5g} {u}, RMSE {res['rmse']:.5g} {u}"
    if u == "eV":
        line += f"  [MAE {res['mae_meV']:.2f} meV = {res['mae_kcal_mol']:.3f} kcal/mol]"
    out.print(line)
    for ref in res["published"]:
        scale, unit = (1e3, "meV") if u == "eV" else (1.0, u)
        out.print(
            f"  published: {ref['mae'] * scale:.4g} {unit} with {ref['n_train']:,} training examples ({ref['source']})"
        )
    if res.get("forces"):
        out.print(
            f"forces ({res['forces']}, all components): MAE {res['force_mae']:.5g} eV/Å, "
            f"RMSE {res['force_rmse']:.5g} eV/Å  [MAE {res['force_mae_kcal_mol']:.3f} kcal/mol/Å]"
        )
    out.print(f"parity plot: {res['plot']}")
    if res.get("force_plot"):
        out.print(f"force parity plot: {res['force_plot']}")
    if res.get("uncertainty"):
        _report_uncertainty(res["uncertainty"])
    run.emit(res)


def _report_uncertainty(unc: dict) -> None:
    """The committee's calibration lines of ``evaluate``."""
    u = unc["unit"]
    out.print(
        f"committee of {unc['n_members']} (σ scale {unc['variance_scale']:.3g}): mean σ "
        f"{unc.get('mean_std', float('nan')):.4g} {u}, Spearman ρ(|error|, σ) "
        f"{unc.get('spearman_abs_error_std', float('nan')):.2f}, NLL {unc.get('nll', float('nan')):.3g}, "
        f"miscalibration area {unc.get('miscalibration_area', float('nan')):.3f}, within ±1σ "
        f"{100 * unc.get('coverage_1sigma', float('nan')):.0f} % (68 % if calibrated)"
    )
    if unc.get("forces"):
        f = unc["forces"]
        rho = f["spearman_force_error_deviation"]
        out.print(
            f"force deviation: mean {f['mean_force_deviation']:.4g} eV/Å, max "
            f"{f['max_force_deviation']:.4g} eV/Å, Spearman ρ(|ΔF_i|, d_i) "
            f"{rho if rho is None else round(rho, 2)}"
        )
    out.print(f"calibration plot: {unc['plot']}")


@command(app, "predict", run_options(device=True), cluster_options())
def predict_command(
    model: Annotated[Path, typer.Argument(metavar="MODEL")],
    inputs: Annotated[list[Path], typer.Argument(metavar="INPUT...")],
    out_file: Annotated[Path | None, typer.Option("--out", metavar="OUT.csv")] = None,
    batch_size: int = 100,
    chunk: Annotated[int, typer.Option(min=1)] = 10_000,
    *,
    run: Run,
    dask: Workers,
) -> None:
    """Predict the model's property for every structure in the input files.

    Args:
        model: Model file (model.pt) or run folder.
        inputs: ASE-readable structure files.
        out_file: CSV of the predictions (potentials: forces in OUT_forces.csv too), or an
            .extxyz file of the structures with predicted energy, forces and stress.
        batch_size: Systems per inference batch.
        chunk: Structures per chunk (the unit of --workers and of continuing after a kill).
    """
    from deepatoms.workflows.evaluation import predict

    res = predict(model, inputs, out_file, batch_size, progress=run.progress,
                  overwrite=run.overwrite, device=run.device, chunk=chunk,
                  **dask.kwargs())  # fmt: skip
    print_notes(res["warnings"], "warning")
    print_notes(res["notes"])
    col = res["column"]
    shown = res["rows"][:20]
    for r in shown:
        out.print(f"{r['file']}[{r['frame']}]  {r['formula']:<12} {col} = {r[col]:.6g}")
    if len(res["rows"]) > len(shown):
        out.print(f"… {len(res['rows']) - len(shown)} more")
    if out_file is not None:
        out.print(f"wrote {res['n']} predictions to {', '.join(res['written'])}")
    big = ("rows", "predicted", "forces", "stress")
    run.emit({k: v for k, v in res.items() if k not in big or res["n"] <= 1000})


CurvesOverwriteOpt = Annotated[
    bool, typer.Option("--overwrite", help="Replace an existing DIR/metrics.json.")
]


@command(app, "curves", run_options(overwrite=CurvesOverwriteOpt))
def curves_command(
    models: Annotated[list[Path], typer.Argument(metavar="MODEL...")],
    out_dir: Annotated[Path, typer.Option("--out", metavar="DIR")],
    data: Annotated[Path | None, typer.Option(metavar="DATA.h5")] = None, split: str = "test",
    split_run: Annotated[Path | None, typer.Option("--run", metavar="RUN_DIR")] = None,
    systems: Annotated[str | None, typer.Option(metavar="IDS")] = None,
    plot_curves: Annotated[int | None, typer.Option(min=0)] = None, step: float = 0.005,
    s_min: float = 0.9, s_max: float = 1.5, s_eq: str = "one",
    displace_cluster: Annotated[Path | None, typer.Option(metavar="FILE")] = None,
    atom: int | None = None, normalise: str = "sum_abs",
    batch_size: Annotated[int, typer.Option(min=1)] = 100, *, run: Run,
) -> None:  # fmt: skip
    """Energy curves of models on scaled data: MAE/MSE/RE, DSC, error vs size, plots.

    Writes DIR/metrics.json, DIR/curves.csv, DIR/curves_<group>.png, DIR/error_vs_size.png
    (and DIR/contributions_<model>.png with --displace-cluster).

    Args:
        models: Model files (model.pt) or run folders.
        out_dir: Output folder.
        data: Scaled dataset (.h5).
        split: Samples to score: train, val, test or all.
        split_run: Take the split from this run's split.json instead of the data's 'split'
            column.
        systems: Only these base structures (group ids, e.g. 3,17).
        plot_curves: Groups to plot (half smallest, half largest by size; default 4).
        step: Step of the dense scaling grid.
        s_min: Start of the dense grid.
        s_max: End of the dense grid.
        s_eq: DSC target: 'one' (s = 1) or 'reference' (argmin of the labels).
        displace_cluster: Stable (s = 1) cluster file (any ASE format) for the displaced-atom
            contribution plot.
        atom: Index of the atom to move (with --displace-cluster).
        normalise: Contribution normalisation: sum_abs, minmax or none.
        batch_size: Systems per inference batch.
    """
    ids = None
    if systems is not None:
        try:
            ids = [int(x) for x in systems.split(",") if x.strip()]
        except ValueError:
            raise ValueError(
                f"--systems must be comma-separated group ids, got {systems!r}"
            ) from None
    from deepatoms.workflows.curves import curves_report, format_table

    res = curves_report(
        models,
        data,
        out_dir,
        split=split,
        run_dir=split_run,
        systems=ids,
        plot_curves=plot_curves,
        step=step,
        s_range=(s_min, s_max),
        s_eq=s_eq,
        batch_size=batch_size,
        displace_cluster=displace_cluster,
        atom=atom,
        normalise=normalise,
        progress=run.progress,
        overwrite=run.overwrite,
    )
    for m in res["models"]:
        for w in m.get("warnings") or []:
            out.print(f"warning ({m['name']}): {w}")
    if data is not None:
        out.print(
            f"{res['n_samples']} samples of {res['n_groups']} groups ({res['split']}), "
            f"DSC over {len(res['dsc_groups'])} groups (s_eq: {res['s_eq']})"
        )
        for line in format_table(res):
            out.print(line)
    if "displaced" in res:
        d = res["displaced"]
        for name in (m["name"] for m in res["models"]):
            out.print(f"contributions ({name}, atom {d['atom_index']}): {d[name]['plot']}")
    out.print(f"wrote {res['metrics_file']}")
    run.emit(res)


@command(app, "evaluate-generated", run_options(overwrite=False), cluster_options())
def evaluate_generated_command(
    generated: Annotated[Path, typer.Argument(metavar="MOLS.db")],
    reference: Annotated[Path, typer.Option(metavar="QM9GEN.h5")],
    train_split: Annotated[list[Path] | None, typer.Option(metavar="RUN_DIR")] = None,
    relax: str = "xtb", relax_sample: Annotated[int, typer.Option(min=0)] = 100,
    gap_model: Annotated[Path | None, typer.Option(metavar="RUN_OR_MODEL")] = None,
    xtb_gap: Annotated[bool, typer.Option("--xtb-gap")] = False, seed: int = 0,
    out_dir: Annotated[Path | None, typer.Option("--out", metavar="DIR")] = None, *, run: Run,
    dask: Workers,
) -> None:  # fmt: skip
    """Evaluate generated molecules: validity, uniqueness, novelty (G-SchNet Table 1).

    Also atom and bond statistics, distributions, RMSD after relaxation and gaps. Writes
    DIR/metrics.json, DIR/table1.md, DIR/molecules.csv and plots.

    Args:
        generated: Generated molecules: ASE db or extxyz.
        reference: QM9 reference made by `deepatoms data qm9-generative`.
        train_split: Training run folder (or its split.json) whose training set defines
            'unseen'; repeatable. Default: the reference's 'split' column.
        relax: Relaxation of the sample: xtb (GFN2-xTB), mmff or none.
        relax_sample: Unique valid molecules (seeded sample) to relax / give xTB gaps.
        gap_model: Gap model (model.pt or run folder) trained on QM9 gaps.
        xtb_gap: GFN2-xTB orbital gaps of the sample.
        seed: Seed of the relaxation sample.
        out_dir: Output folder.
    """
    from deepatoms.workflows.generated import evaluate_report, format_table1, write_report

    report = evaluate_report(
        generated,
        reference,
        train_splits=train_split or (),
        relax=relax.lower(),
        relax_sample=relax_sample,
        gap_model=gap_model,
        xtb_gaps=xtb_gap,
        seed=seed,
        progress=run.progress,
        out_dir=out_dir,
        **dask.kwargs(),
    )
    metrics = report["metrics"]
    out.print(format_table1(metrics).rstrip())
    gs, qs = metrics["statistics"]["generated_unique"], metrics["statistics"]["qm9"]
    out.print("\nmean per molecule   " + "  ".join(f"{k:>5}" for k in gs if len(k) <= 2))
    for label, s in (("generated (unique)", gs), ("QM9", qs)):
        out.print(f"{label:<19} " + "  ".join(f"{v:5.2f}" for k, v in s.items() if len(k) <= 2))
    for name, d in metrics["distributions"].items():
        out.print(f"{name:<14} W1 = {d['w1']:.4g} {d['unit']}, TV = {d['tv']:.3f}")
    rel = metrics["relaxation"]
    if rel["n_relaxed"]:
        for tag, g in rel["rmsd_by_tag"].items():
            if g["all_atoms"]["n"]:
                out.print(
                    f"RMSD {tag:<6} ({rel['method']}, n={g['all_atoms']['n']}): all "
                    f"{g['all_atoms']['median']:.3f} Å, heavy {g['heavy_atoms']['median']:.3f}"
                    " Å (median)"
                )
    if out_dir is not None:
        files = write_report(report, out_dir)
        out.print(f"wrote {', '.join(p.name for p in files)} to {out_dir}")
    run.emit(metrics)
