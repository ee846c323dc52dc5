"""``deepatoms relax | md | vibrations | scan``: simulations with a trained model.

The commands live on ``simulate_app`` (registered in deepatoms.cli without a group name, so they
are top-level commands).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from deepatoms.core.progress import ProgressBar

# Defined before the import of deepatoms.cli below: that module imports this one at its end,
# and with `python -m deepatoms.cli` the import chain comes back here half-initialised.
simulate_app = typer.Typer()

from deepatoms.cli import (  # noqa: E402
    JsonOpt,
    OverwriteOpt,
    QuietOpt,
    _check_new_output,
    _emit_json,
    _fail_cleanly,
    err,
    out,
)

ModelArg = Annotated[
    Path, typer.Argument(help="Model file (model.pt) or run folder.", metavar="MODEL")
]
StructureArg = Annotated[
    str,
    typer.Argument(
        help="Structure file (xyz, extxyz, cif, POSCAR, traj; FILE@INDEX picks a frame) or a "
        "molecule: ASE name (CH3CH2OH), alias (ethanol) or SMILES (smiles:CCO).",
        metavar="STRUCTURE",
    ),
]
DtypeOpt = Annotated[
    str | None,
    typer.Option(
        help="Model precision: float32 or float64 (unset: the precision the model was saved in).",
        metavar="DTYPE",
    ),
]
ThreadsOpt = Annotated[
    int | None,
    typer.Option(
        help="CPU threads for the model (default: torch's choice). Small systems often run "
        "fastest with 1, especially on a busy machine.",
        min=1,
    ),
]
ForceModelOpt = Annotated[
    Path | None,
    typer.Option(
        help="Second model (model.pt or run folder) for forces and stress; MODEL then gives "
        "only the energies (separate energy and force models, Schütt 2018 thesis Eqs. 5.8-5.11).",
        metavar="MODEL",
    ),
]
ReferenceOpt = Annotated[
    str | None,
    typer.Option(help="Reference calculator for comparison: xtb (GFN2-xTB) or emt."),
]


# -- shared set-up ----------------------------------------------------------------------------
def _model_path(model: Path) -> Path:
    """model.pt of a run folder, or the model file itself, with a clear error if missing."""
    path = model / "model.pt" if model.is_dir() else model
    if not path.is_file():
        where = f"run folder {model} has no model.pt" if model.is_dir() else f"{model} not found"
        raise FileNotFoundError(
            f"model: {where}; pass the model.pt of a training run (deepatoms train --out RUN)"
        )
    return path


def model_calculator(
    model: Path, dtype: str | None, threads: int | None = None, force_model: Path | None = None
) -> Any:
    """A deepatoms Calculator for a model file or run folder, with a clear error if unusable;
    ``threads`` sets torch's CPU threads; ``force_model`` supplies forces and stress."""
    import torch

    from deepatoms.simulate.calculator import Calculator

    path = _model_path(model)
    fpath = _model_path(force_model) if force_model is not None else None
    dtypes = {"float32": torch.float32, "float64": torch.float64, None: None}
    if dtype not in dtypes:
        raise ValueError(f"--dtype must be float32 or float64, got {dtype!r}")
    if threads is not None:
        torch.set_num_threads(threads)
    return Calculator(path, force_model=fpath, dtype=dtypes[dtype])


def load_input(structure: str, calc: Any) -> Any:
    """The structure of the STRUCTURE argument; warns about elements the model never saw."""
    from ase.data import chemical_symbols

    from deepatoms.data.structure_files import load_structure

    atoms = load_structure(structure)
    seen = calc.energy_model.meta.get("elements")
    if seen:
        new = sorted(set(atoms.numbers.tolist()) - set(seen))
        if new:
            err.print(
                f"warning: the model was trained on {' '.join(chemical_symbols[z] for z in seen)}"
                f" only; {' '.join(chemical_symbols[z] for z in new)} in {structure} will give "
                "meaningless results"
            )
    return atoms


def reference_calculator(name: str, atoms: Any) -> tuple[Any, dict]:
    """A reference ASE calculator (xtb or emt) and its provenance, as a clear error if missing."""
    from deepatoms.simulate.reference import make_calculator

    settings = {}
    if name.lower() == "xtb" and atoms.info.get("charge"):
        settings["charge"] = atoms.info["charge"]
    try:
        return make_calculator(name, atoms, **settings)
    except ImportError as exc:
        raise ValueError(f"reference calculator {name!r} is unavailable: {exc}") from exc


def _outputs(overwrite: bool, *paths: Path | None) -> None:
    for p in paths:
        if p is not None:
            _check_new_output(p, overwrite)


def _public(d: dict) -> dict:
    """A result without its structures and arrays (for --json)."""
    import numpy as np

    res = {}
    for k, v in d.items():
        if k == "atoms" or k == "series":
            continue
        if isinstance(v, np.ndarray):
            v = v.tolist()
        elif isinstance(v, dict):
            v = _public(v)
        res[k] = v
    return res


# -- relax --------------------------------------------------------------------------------------
@simulate_app.command("relax")
@_fail_cleanly
def relax_command(
    model: ModelArg,
    structure: StructureArg,
    fmax: Annotated[float, typer.Option(help="Force tolerance: max |F_i| (eV/Å).")] = 0.05,
    optimizer: Annotated[str, typer.Option(help="bfgs, fire or lbfgs.")] = "bfgs",
    steps: Annotated[int, typer.Option(help="Maximum optimiser steps.")] = 1000,
    cell: Annotated[
        bool, typer.Option("--cell", help="Relax the cell too (periodic structures).")
    ] = False,
    out_file: Annotated[
        Path | None,
        typer.Option("--out", help="Relaxed structure (extxyz, cif, POSCAR, …).", metavar="FILE"),
    ] = None,
    traj: Annotated[
        Path | None, typer.Option(help="ASE trajectory of every step.", metavar="FILE.traj")
    ] = None,
    dtype: DtypeOpt = "float64",
    force_model: ForceModelOpt = None,
    threads: ThreadsOpt = None,
    overwrite: OverwriteOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Relax a structure with the model until the largest force is below --fmax."""
    from deepatoms.data.structure_files import structure_format, write_structures
    from deepatoms.simulate.relax import relax

    _outputs(overwrite, out_file, traj)
    if out_file is not None:
        structure_format(out_file)  # a bad name fails now, not after the relaxation
    calc = model_calculator(model, dtype, threads, force_model)
    atoms = load_input(structure, calc)
    res = relax(
        atoms, calc, fmax=fmax, optimizer=optimizer, steps=steps, relax_cell=cell, trajectory=traj
    )
    status = "converged" if res["converged"] else "NOT converged"
    out.print(
        f"{status} in {res['steps']} {res['optimizer'].upper()} steps: energy "
        f"{res['initial_energy']:.6f} → {res['final_energy']:.6f} eV, max force "
        f"{res['initial_fmax']:.4g} → {res['final_fmax']:.4g} eV/Å (tolerance {fmax:g})"
    )
    if cell:
        v = res["volume"]
        out.print(
            f"volume {v['initial']:.4f} → {v['final']:.4f} Å³, max |stress| "
            f"{res['final_stress_GPa']:.4g} GPa"
        )
    if out_file is not None:
        write_structures(out_file, res["atoms"])
        out.print(f"wrote {out_file}")
    else:
        out.print("(pass --out FILE to save the relaxed structure)")
    if not res["converged"]:
        err.print(f"warning: not converged after {steps} steps; raise --steps or --fmax")
    if as_json:
        _emit_json(
            {
                **_public(res),
                "out": str(out_file) if out_file else None,
                "traj": str(traj) if traj else None,
            }
        )


# -- md -------------------------------------------------------------------------------------------
@simulate_app.command("md")
@_fail_cleanly
def md_command(
    model: ModelArg,
    structure: StructureArg,
    out_file: Annotated[
        Path, typer.Option("--out", help="Trajectory to write (ASE .traj).", metavar="TRAJ.traj")
    ],
    ensemble: Annotated[
        str, typer.Option(help="nvt (Langevin thermostat) or nve (velocity Verlet).")
    ] = "nvt",
    temperature: Annotated[
        float, typer.Option(help="Initial-velocity and thermostat temperature (K).")
    ] = 300.0,
    timestep: Annotated[float, typer.Option(help="Time step (fs).")] = 0.5,
    steps: Annotated[int, typer.Option(help="Number of MD steps.")] = 1000,
    friction: Annotated[float, typer.Option(help="Langevin friction (1/fs), NVT only.")] = 0.01,
    interval: Annotated[int, typer.Option(help="Steps between frames and log lines.")] = 10,
    seed: Annotated[int, typer.Option(help="Seed of velocities and thermostat noise.")] = 0,
    log: Annotated[
        Path | None,
        typer.Option(help="Energy/temperature log (default: TRAJ with .log).", metavar="FILE"),
    ] = None,
    dtype: DtypeOpt = None,
    force_model: ForceModelOpt = None,
    threads: ThreadsOpt = None,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Run MD with the model (NVT Langevin by default, 0.5 fs steps); writes a .traj and a log.

    Reports the mean temperature and the total-energy drift (eV/atom/ps, a linear fit).
    """
    from deepatoms.simulate.md import run_md

    if out_file.suffix != ".traj":
        raise ValueError(
            f"--out {out_file}: MD trajectories are ASE .traj files; end the name in .traj "
            "(convert afterwards with `ase convert`)"
        )
    log = log if log is not None else out_file.with_suffix(".log")
    _outputs(overwrite, out_file, log)
    calc = model_calculator(model, dtype, threads, force_model)
    atoms = load_input(structure, calc)
    with ProgressBar("MD steps", quiet) as bar:
        res = run_md(
            atoms, calc, ensemble=ensemble, temperature_K=temperature, timestep_fs=timestep,
            steps=steps, friction=friction, seed=seed, trajectory=out_file, log=log,
            interval=interval, progress=bar,
        )  # fmt: skip
    d = res["energy_drift"]
    out.print(
        f"{res['ensemble'].upper()} MD of {atoms.get_chemical_formula()} ({res['n_atoms']} atoms): "
        f"{steps} steps × {timestep:g} fs = {res['duration_ps']:.4g} ps in {res['wall_time_s']:.1f} s "
        f"({res['steps_per_s']:.0f} steps/s, {res['ns_per_day']:.3g} ns/day)"
    )
    out.print(
        f"mean T {res['mean_temperature_K']:.1f} K (σ {res['std_temperature_K']:.1f}); "
        f"Etot drift {d['drift'] * 1e3:+.4g} meV/atom/ps, fluctuation {d['std'] * 1e3:.3g} "
        "meV/atom"
    )
    out.print(f"wrote {res['n_frames']} frames to {out_file}, log {log}")
    if as_json:
        _emit_json(_public(res))


# -- vibrations ---------------------------------------------------------------------------------
def _frequency_rows(res: dict) -> tuple[list[str], list[list]]:
    model, ref = res["model"], res["reference"]
    names = ["mode", "model_cm1"] + (["reference_cm1", "error_cm1"] if ref is not None else [])
    rows = []
    for k, f in enumerate(model.frequencies):
        row = [k + 1, float(f)]
        if ref is not None:
            row += [float(ref.frequencies[k]), float(f - ref.frequencies[k])]
        rows.append(row)
    return names, rows


@simulate_app.command("vibrations")
@_fail_cleanly
def vibrations_command(
    model: ModelArg,
    structure: StructureArg,
    reference: ReferenceOpt = None,
    relax_first: Annotated[
        bool,
        typer.Option(
            "--relax/--no-relax",
            help="Relax first to --fmax (the model with the model, the reference with the reference).",
        ),
    ] = True,
    fmax: Annotated[float, typer.Option(help="Relaxation tolerance (eV/Å).")] = 1e-3,
    method: Annotated[
        str, typer.Option(help="Model Hessian: autograd (exact) or fd (finite differences).")
    ] = "autograd",
    delta: Annotated[float, typer.Option(help="Finite-difference step (Å).")] = 0.005,
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Frequency table (CSV).", metavar="FILE.csv")
    ] = None,
    dtype: DtypeOpt = "float64",
    force_model: ForceModelOpt = None,
    threads: ThreadsOpt = None,
    overwrite: OverwriteOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Harmonic frequencies (cm⁻¹) from the mass-weighted Hessian, optionally vs a reference."""
    import csv
    import io

    from deepatoms.core.files import atomic_write_text
    from deepatoms.simulate.relax import is_periodic
    from deepatoms.simulate.vibrations import vibrational_analysis

    _outputs(overwrite, out_file)
    calc = model_calculator(model, dtype, threads, force_model)
    atoms = load_input(structure, calc)
    ref_calc = ref_name = None
    if reference is not None:
        ref_calc, prov = reference_calculator(reference, atoms)
        ref_name = prov["method"]
    res = vibrational_analysis(
        atoms, calc, reference=ref_calc, relax_first=relax_first, fmax=fmax, method=method,
        delta=delta,
    )  # fmt: skip
    m, ref = res["model"], res["reference"]
    where = f"each at its own minimum (relaxed to {fmax:g} eV/Å)" if relax_first else "unrelaxed"
    kind = "periodic" if is_periodic(atoms) else "linear" if m.linear else "non-linear"
    out.print(
        f"{len(m.frequencies)} vibrational modes of {atoms.get_chemical_formula()}, {where}; "
        f"{m.n_rigid} rigid-body modes removed ({kind})"
    )
    if relax_first:
        for label, r in (("model", m), (ref_name, ref)):
            if r is not None:
                rl = r.info["relax"]
                state = "converged" if rl["converged"] else "NOT converged"
                out.print(
                    f"  {label} relaxation: {state}, {rl['steps']} steps, max force {rl['final_fmax']:.2g} eV/Å"
                )
    names, rows = _frequency_rows(res)
    header = f"{'mode':>5} {'model':>10}" + (f" {ref_name:>10} {'error':>9}" if ref else "")
    out.print(header + "   [cm⁻¹]")
    for row in rows:
        line = f"{row[0]:>5} {row[1]:>10.1f}"
        if ref is not None:
            line += f" {row[2]:>10.1f} {row[3]:>+9.1f}"
        out.print(line)
    out.print(
        "rigid-body modes (model): " + " ".join(f"{f:.1f}" for f in m.rigid_frequencies) + " cm⁻¹"
    )
    for label, r in (("the model", m), (ref_name, ref)):
        n_imag = 0 if r is None else int((r.frequencies < 0).sum())
        if n_imag:
            out.print(
                f"note: {label} has {n_imag} imaginary mode(s) (negative numbers): the structure "
                "is a saddle point, not a minimum, of it"
            )
    c = res["comparison"]
    if c is not None:
        out.print(
            f"model vs {ref_name}: MAE {c['mae_cm1']:.1f} cm⁻¹, max |error| {c['max_abs_cm1']:.1f} "
            f"cm⁻¹, max relative error {c['max_rel_percent']:.2f} %"
        )
    if out_file is not None:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(names)
        writer.writerows(rows)
        atomic_write_text(out_file, buf.getvalue())
        out.print(f"wrote {out_file}")
    if as_json:
        _emit_json(
            {
                "formula": atoms.get_chemical_formula(),
                "relaxed": relax_first,
                "model": m.to_dict(),
                "reference": {**ref.to_dict(), "name": ref_name} if ref is not None else None,
                "comparison": c,
                "out": str(out_file) if out_file else None,
            }
        )


# -- scan -----------------------------------------------------------------------------------------
@simulate_app.command("scan")
@_fail_cleanly
def scan_command(
    model: ModelArg,
    structure: StructureArg,
    scale: Annotated[
        str,
        typer.Option(help="Scale factors: START:STOP:N (e.g. 0.9:1.5:10) or a list 0.95,1,1.05."),
    ],
    reference: ReferenceOpt = None,
    plot: Annotated[Path | None, typer.Option(help="Plot (PNG).", metavar="FILE.png")] = None,
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Table (CSV).", metavar="FILE.csv")
    ] = None,
    dtype: DtypeOpt = None,
    force_model: ForceModelOpt = None,
    threads: ThreadsOpt = None,
    overwrite: OverwriteOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Energy (and pressure for crystals) of the structure scaled uniformly, vs a reference."""
    from deepatoms.simulate.scan import parse_scale, plot_scan, scan, scan_table, write_scan_csv

    scales = parse_scale(scale)
    _outputs(overwrite, out_file, plot)
    calc = model_calculator(model, dtype, threads, force_model)
    atoms = load_input(structure, calc)
    ref_calc = ref_name = None
    if reference is not None:
        ref_calc, prov = reference_calculator(reference, atoms)
        ref_name = prov["method"]
    res = scan(atoms, calc, scales, reference=ref_calc)
    names, rows = scan_table(res)
    out.print("  ".join(f"{n:>16}" for n in names))
    for row in rows:
        out.print("  ".join(f"{v:>16.6g}" for v in row))
    line = f"lowest model energy at scale {res['min_scale']:.4g}"
    if ref_calc is not None:
        line += f"; {ref_name}: {res['reference_min_scale']:.4g}"
    out.print(line)
    if out_file is not None:
        write_scan_csv(res, out_file)
        out.print(f"wrote {out_file}")
    if plot is not None:
        plot_scan(res, plot, ref_label=ref_name or "reference")
        out.print(f"plot: {plot}")
    if as_json:
        _emit_json(
            {
                **_public(res),
                "reference_name": ref_name,
                "out": str(out_file) if out_file else None,
                "plot": str(plot) if plot else None,
            }
        )
