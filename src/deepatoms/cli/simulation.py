"""``deepatoms relax | md | vibrations | scan``: simulations with a trained model
(``deepatoms.workflows.simulation``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from deepatoms.cli.common import (
    DeviceOpt,
    Group,
    Run,
    command,
    commands,
    out,
    print_notes,
    run_options,
)

app = commands()

__all__ = ["app"]


ModelArg = Annotated[
    Path, typer.Argument(help="Model file (model.pt) or run folder.", metavar="MODEL")
]
StructureArg = Annotated[
    str,
    typer.Argument(
        help="Structure file (xyz, extxyz, cif, POSCAR, traj; the last frame unless FILE@INDEX "
        "picks one; relax also takes FILE@: for every frame) or a molecule: ASE name "
        "(CH3CH2OH), alias (ethanol) or SMILES (smiles:CCO).",
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


def calculator_options(dtype: str | None) -> Group:
    """How the model becomes a calculator: ``--dtype`` (default ``dtype``), ``--force-model``,
    ``--threads``, ``--device``; the command receives them as keyword arguments (``calc``)."""
    return Group("calc", dict, dtype=(DtypeOpt, dtype), force_model=(ForceModelOpt, None),
                 threads=(ThreadsOpt, None), device=(DeviceOpt, "cpu"))  # fmt: skip


EXACT = calculator_options("float64")  # relaxations and Hessians
NATIVE = calculator_options(None)  # MD and scans: the precision the model was saved in


# -- relax --------------------------------------------------------------------------------------
@command(app, "relax", EXACT, run_options())
def relax_command(
    model: ModelArg, structure: StructureArg, fmax: float = 0.05, optimizer: str = "bfgs",
    steps: int = 1000, cell: Annotated[bool, typer.Option("--cell")] = False,
    out_file: Annotated[Path | None, typer.Option("--out", metavar="FILE")] = None,
    traj: Annotated[Path | None, typer.Option(metavar="FILE.traj")] = None,
    max_force_deviation: Annotated[float | None, typer.Option(metavar="EV_PER_A")] = None,
    flag: Annotated[bool, typer.Option("--flag")] = False, *, calc: dict, run: Run,
) -> None:  # fmt: skip
    """Relax a structure with the model until the largest force is below --fmax.

    Args:
        fmax: Force tolerance: max |F_i| (eV/Å).
        optimizer: bfgs, fire or lbfgs.
        steps: Maximum optimiser steps.
        cell: Relax the cell too (periodic structures).
        out_file: Relaxed structure (extxyz, cif, POSCAR, …).
        traj: ASE trajectory of every step.
        max_force_deviation: Committee models: stop when the maximum per-atom force deviation
            exceeds this (eV/Å).
        flag: With --max-force-deviation: go on and list the steps above it instead.
    """
    from deepatoms.workflows.simulation import public, relax_structure

    res = relax_structure(model, structure, fmax=fmax, optimizer=optimizer, steps=steps,
                          cell=cell, out=out_file, trajectory=traj, **calc,
                          overwrite=run.overwrite, progress=run.progress,
                          max_force_deviation=max_force_deviation,
                          on_deviation="flag" if flag else "stop")  # fmt: skip
    if "frames" in res:
        for k, r in enumerate(res["frames"]):
            out.print(f"frame {k}: {'converged' if r['converged'] else 'NOT converged'} in "
                      f"{r['steps']} steps, energy {r['initial_energy']:.6f} → "
                      f"{r['final_energy']:.6f} eV, max force {r['final_fmax']:.4g} eV/Å")  # fmt: skip
        out.print(f"wrote {out_file}" if out_file else "(pass --out FILE to save the frames)")
        print_notes(res["warnings"], "warning")
        run.emit(public(res))
        return
    status = "converged" if res["converged"] else "NOT converged"
    if res.get("force_deviation"):
        out.print(f"committee: largest per-atom force deviation {max(res['force_deviation']):.4g} "
                  "eV/Å over the steps")  # fmt: skip
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
    out.print(
        f"wrote {out_file}" if out_file else "(pass --out FILE to save the relaxed structure)"
    )
    print_notes(res["warnings"], "warning")
    run.emit(public(res))


# -- md -------------------------------------------------------------------------------------------
@command(app, "md", NATIVE, run_options())
def md_command(
    model: ModelArg, structure: StructureArg,
    out_file: Annotated[Path, typer.Option("--out", metavar="TRAJ")], ensemble: str = "nvt",
    temperature: float = 300.0, timestep: float = 0.5, steps: int = 1000, friction: float = 0.01,
    interval: int = 10, seed: int = 0,
    log: Annotated[Path | None, typer.Option(metavar="FILE")] = None,
    max_force_deviation: Annotated[float | None, typer.Option(metavar="EV_PER_A")] = None,
    flag: Annotated[bool, typer.Option("--flag")] = False, *, calc: dict, run: Run,
) -> None:  # fmt: skip
    """Run MD with the model (NVT Langevin by default, 0.5 fs steps); writes a trajectory and a log.

    Reports the mean temperature and the total-energy drift (eV/atom/ps, a linear fit).

    Args:
        out_file: Trajectory to write: ASE .traj, or .extxyz (energies and forces in each frame).
        ensemble: nvt (Langevin thermostat) or nve (velocity Verlet).
        temperature: Initial-velocity and thermostat temperature (K).
        timestep: Time step (fs).
        steps: Number of MD steps.
        friction: Langevin friction (1/fs), NVT only.
        interval: Steps between frames and log lines.
        seed: Seed of velocities and thermostat noise.
        log: Energy/temperature log (default: TRAJ with .log); with a committee model also the
            maximum per-atom force deviation (eV/Å).
        max_force_deviation: Committee models: stop at the first step whose maximum per-atom
            force deviation exceeds this (eV/Å), e.g. 0.3.
        flag: With --max-force-deviation: keep running and list the steps above it instead.
    """
    from deepatoms.workflows.simulation import molecular_dynamics, public

    res = molecular_dynamics(
        model, structure, out_file, ensemble=ensemble, temperature=temperature,
        timestep=timestep, steps=steps, friction=friction, interval=interval, seed=seed, log=log,
        **calc, overwrite=run.overwrite, progress=run.progress,
        max_force_deviation=max_force_deviation, on_deviation="flag" if flag else "stop",
    )  # fmt: skip
    print_notes(res["warnings"], "warning")
    d = res["energy_drift"]
    out.print(
        f"{res['ensemble'].upper()} MD of {res['formula']} ({res['n_atoms']} atoms): "
        f"{res['steps']} steps × {timestep:g} fs = {res['duration_ps']:.4g} ps in {res['wall_time_s']:.1f} s "
        f"({res['steps_per_s']:.0f} steps/s, {res['ns_per_day']:.3g} ns/day)"
    )
    out.print(
        f"mean T {res['mean_temperature_K']:.1f} K (σ {res['std_temperature_K']:.1f}); "
        f"Etot drift {d['drift'] * 1e3:+.4g} meV/atom/ps, fluctuation {d['std'] * 1e3:.3g} "
        "meV/atom"
    )
    if res["max_force_deviation"] is not None:
        out.print(f"committee: largest per-atom force deviation {res['max_force_deviation']:.4g} "
                  "eV/Å")  # fmt: skip
    if res["stopped_untrusted"]:
        u = res["stopped_untrusted"]
        out.print(f"stopped at step {u['step']}: force deviation {u['max_force_deviation']:.4g} "
                  f"eV/Å above the trust level {res['trust_level']:g} eV/Å")  # fmt: skip
    elif res["flagged_steps"]:
        out.print(f"{len(res['flagged_steps'])} steps above {res['trust_level']:g} eV/Å, the "
                  f"first {res['flagged_steps'][0]} (flagged_steps)")  # fmt: skip
    out.print(f"wrote {res['n_frames']} frames to {out_file}, log {res['log']}")
    run.emit(public(res), drop=("formula", "warnings"))


# -- vibrations ---------------------------------------------------------------------------------


@command(app, "vibrations", EXACT, run_options())
def vibrations_command(
    model: ModelArg, structure: StructureArg, reference: ReferenceOpt = None,
    relax_first: Annotated[bool, typer.Option("--relax/--no-relax")] = True, fmax: float = 1e-3,
    method: str = "autograd", delta: float = 0.005,
    out_file: Annotated[Path | None, typer.Option("--out", metavar="FILE.csv")] = None, *,
    calc: dict, run: Run,
) -> None:  # fmt: skip
    """Harmonic frequencies (cm⁻¹) from the mass-weighted Hessian, optionally vs a reference.

    Args:
        relax_first: Relax first to --fmax (the model with the model, the reference with the
            reference).
        fmax: Relaxation tolerance (eV/Å).
        method: Model Hessian: autograd (exact) or fd (finite differences).
        delta: Finite-difference step (Å).
        out_file: Frequency table (CSV).
    """
    from deepatoms.workflows.simulation import vibrations

    res = vibrations(model, structure, reference=reference, relax_first=relax_first, fmax=fmax,
                     method=method, delta=delta, out=out_file, **calc,
                     overwrite=run.overwrite)  # fmt: skip
    print_notes(res["warnings"], "warning")
    _print_vibrations(res, fmax)
    m, ref = res["model"], res["reference"]
    run.emit({
        "formula": res["formula"], "relaxed": relax_first, "model": m.to_dict(),
        "reference": {**ref.to_dict(), "name": res["reference_name"]} if ref is not None else None,
        "comparison": res["comparison"], "out": res["out"],
    })  # fmt: skip


def _print_vibrations(res, fmax: float) -> None:
    m, ref, ref_name = res["model"], res["reference"], res["reference_name"]
    where = f"each at its own minimum (relaxed to {fmax:g} eV/Å)" if res["relaxed"] else "unrelaxed"
    kind = "periodic" if res["periodic"] else "linear" if m.linear else "non-linear"
    out.print(
        f"{len(m.frequencies)} vibrational modes of {res['formula']}, {where}; "
        f"{m.n_rigid} rigid-body modes removed ({kind})"
    )
    if res["relaxed"]:
        for label, r in (("model", m), (ref_name, ref)):
            if r is not None:
                rl = r.info["relax"]
                state = "converged" if rl["converged"] else "NOT converged"
                out.print(f"  {label} relaxation: {state}, {rl['steps']} steps, max force "
                          f"{rl['final_fmax']:.2g} eV/Å")  # fmt: skip
    header = f"{'mode':>5} {'model':>10}" + (f" {ref_name:>10} {'error':>9}" if ref else "")
    out.print(header + "   [cm⁻¹]")
    for row in res["table"]["rows"]:
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
    if res["out"] is not None:
        out.print(f"wrote {res['out']}")


# -- scan -----------------------------------------------------------------------------------------
@command(app, "scan", NATIVE, run_options())
def scan_command(
    model: ModelArg, structure: StructureArg, scale: Annotated[str, typer.Option()],
    reference: ReferenceOpt = None,
    plot: Annotated[Path | None, typer.Option(metavar="FILE.png")] = None,
    out_file: Annotated[Path | None, typer.Option("--out", metavar="FILE.csv")] = None, *,
    calc: dict, run: Run,
) -> None:  # fmt: skip
    """Energy (and pressure for crystals) of the structure scaled uniformly, vs a reference.

    Args:
        scale: Scale factors: START:STOP:N (e.g. 0.9:1.5:10) or a list 0.95,1,1.05.
        plot: Plot (PNG).
        out_file: Table (CSV).
    """
    from deepatoms.workflows.simulation import public, scan_structure

    res = scan_structure(model, structure, scale, reference=reference, plot=plot, out=out_file,
                         **calc, overwrite=run.overwrite)  # fmt: skip
    print_notes(res["warnings"], "warning")
    out.print("  ".join(f"{n:>16}" for n in res["table"]["header"]))
    for row in res["table"]["rows"]:
        out.print("  ".join(f"{v:>16.6g}" for v in row))
    line = f"lowest model energy at scale {res['min_scale']:.4g}"
    if res["reference_name"] is not None:
        line += f"; {res['reference_name']}: {res['reference_min_scale']:.4g}"
    out.print(line)
    if out_file is not None:
        out.print(f"wrote {out_file}")
    if plot is not None:
        out.print(f"plot: {plot}")
    run.emit(public(res))
