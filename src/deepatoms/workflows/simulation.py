"""Simulations with a trained energy model: the functions behind ``deepatoms relax``, ``md``,
``vibrations`` and ``scan``.

The model (a run folder or model file) becomes an ASE calculator
(:class:`deepatoms.simulate.Calculator`); a structure is a file (``FILE@INDEX`` picks a frame)
or a molecule (ASE name, alias or ``smiles:...``). Energies are in eV, forces in eV/Å,
frequencies in cm⁻¹.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from deepatoms.core.errors import DeepatomsError
from deepatoms.core.files import atomic_write_text, check_new_file
from deepatoms.core.progress import ProgressBar
from deepatoms.core.results import Result

__all__ = [
    "SimulationResult",
    "model_calculator",
    "molecular_dynamics",
    "relax_structure",
    "scan_structure",
    "vibrations",
]

_DTYPES = ("float32", "float64", None)


class SimulationResult(Result):
    """The result of a simulation (keys per function: see its docstring). ``atoms`` holds the
    final structure(s) where there is one, ``warnings`` things the user should know."""


def model_calculator(
    model: str | os.PathLike,
    dtype: str | None = None,
    threads: int | None = None,
    force_model: str | os.PathLike | None = None,
    device: str = "cpu",
) -> Any:
    """An ASE calculator of a model (run folder or model file): ``dtype`` float32/float64 casts
    the weights, ``threads`` sets torch's CPU threads, ``force_model`` supplies forces and
    stress (separate energy and force models, Schütt 2018 thesis Eqs. 5.8–5.11), ``device``
    is the torch device (cpu, cuda)."""
    import torch

    from deepatoms.core.device import resolve_device
    from deepatoms.models.loading import resolve_model_path
    from deepatoms.simulate.calculator import Calculator

    if dtype not in _DTYPES:
        raise DeepatomsError(f"--dtype must be float32 or float64, got {dtype!r}")
    path = resolve_model_path(model)
    fpath = resolve_model_path(force_model) if force_model is not None else None
    if threads is not None:
        torch.set_num_threads(int(threads))
    dtypes = {"float32": torch.float32, "float64": torch.float64, None: None}
    return Calculator(path, force_model=fpath, dtype=dtypes[dtype], device=resolve_device(device))


def _structure(spec: str, calc: Any) -> tuple[Any, list[str]]:
    """The structure of ``spec`` and a warning for elements the model never saw."""
    from ase.data import chemical_symbols

    from deepatoms.data.structure_files import read_structure_spec

    atoms, note = read_structure_spec(spec)
    seen = calc.energy_model.meta.get("elements")
    warnings = [note] if note else []
    if seen:
        new = sorted(set(atoms.numbers.tolist()) - set(seen))
        if new:
            warnings.append(
                f"the model was trained on {' '.join(chemical_symbols[z] for z in seen)} only; "
                f"{' '.join(chemical_symbols[z] for z in new)} in {spec} will give meaningless "
                "results"
            )
    return atoms, warnings


def _reference(name: str | None, atoms: Any) -> tuple[Any, str | None]:
    """A reference calculator (xtb or emt) and its name, or (None, None)."""
    if name is None:
        return None, None
    from deepatoms.simulate.reference import make_calculator

    settings = {}
    if name.lower() == "xtb" and atoms.info.get("charge"):
        settings["charge"] = atoms.info["charge"]
    try:
        calc, prov = make_calculator(name, atoms, **settings)
    except ImportError as exc:
        raise DeepatomsError(f"reference calculator {name!r} is unavailable: {exc}") from exc
    return calc, prov["method"]


def _outputs(overwrite: bool, *paths: str | os.PathLike | None) -> None:
    for p in paths:
        if p is not None:
            check_new_file(p, overwrite)


def relax_structure(
    model: str | os.PathLike, structure: str, *, fmax: float = 0.05, optimizer: str = "bfgs",
    steps: int = 1000, cell: bool = False, out: str | os.PathLike | None = None,
    trajectory: str | os.PathLike | None = None, dtype: str | None = "float64",
    force_model: str | os.PathLike | None = None, threads: int | None = None,
    overwrite: bool = False, device: str = "cpu", progress: bool = False,
    max_force_deviation: float | None = None, on_deviation: str = "stop",
) -> SimulationResult:  # fmt: skip
    """Relax ``structure`` with the model until the largest force is below ``fmax`` (eV/Å);
    ``cell`` relaxes the cell of a periodic structure too. Writes ``out`` (any ASE format) and
    the ``trajectory`` of every step when given. Keys: ``converged``, ``steps``,
    ``initial_energy``, ``final_energy`` (eV), ``initial_fmax``, ``final_fmax`` (eV/Å),
    ``volume`` and ``final_stress_GPa`` (cell relaxations), ``atoms``.

    ``FILE@SLICE`` (e.g. ``frames.xyz@:``) relaxes every selected frame: ``out`` then holds all
    relaxed frames, ``frames`` the result of each (the keys above without ``atoms``), and
    ``converged`` is True when all converged; ``trajectory`` is for one structure only.

    With a committee model every step's maximum per-atom force deviation is in
    ``force_deviation`` (eV/Å); ``max_force_deviation`` stops the relaxation above it
    (``on_deviation="stop"``, in ``stopped_untrusted``) or flags the steps (``"flag"``)."""
    from deepatoms.data.structure_files import (
        is_frame_range,
        read_structure_frames,
        structure_format,
        write_structures,
    )
    from deepatoms.simulate.relax import relax

    _outputs(overwrite, out, trajectory)
    if out is not None:
        structure_format(out)  # a bad name fails now, not after the relaxation
    if is_frame_range(structure):
        if trajectory is not None:
            raise DeepatomsError(f"--traj records one relaxation; {structure} selects several "
                                 "frames (drop --traj, or pick one frame with FILE@INDEX)")  # fmt: skip
        frames = read_structure_frames(structure)
        calc = model_calculator(model, dtype, threads, force_model, device)
        results = []
        with ProgressBar("structures", quiet=not progress) as bar:
            for k, atoms in enumerate(frames):
                results.append(relax(atoms, calc, fmax=fmax, optimizer=optimizer, steps=steps,
                                     relax_cell=cell, max_force_deviation=max_force_deviation,
                                     on_deviation=on_deviation))  # fmt: skip
                bar(k + 1, len(frames))
        if out is not None:
            write_structures(out, [r["atoms"] for r in results])
        failed = [k for k, r in enumerate(results) if not r["converged"]]
        warnings = [f"frames {failed} did not converge after {steps} steps"] if failed else []
        return SimulationResult(
            frames=[{k: v for k, v in r.items() if k != "atoms"} for r in results],
            n_frames=len(results), converged=not failed, atoms=[r["atoms"] for r in results],
            out=str(out) if out else None, warnings=warnings,
        )  # fmt: skip
    calc = model_calculator(model, dtype, threads, force_model, device)
    atoms, warnings = _structure(structure, calc)
    with ProgressBar("optimiser steps", quiet=not progress) as bar:
        res = relax(atoms, calc, fmax=fmax, optimizer=optimizer, steps=steps, relax_cell=cell,
                    trajectory=trajectory, progress=bar, max_force_deviation=max_force_deviation,
                    on_deviation=on_deviation)  # fmt: skip
    if out is not None:
        write_structures(out, res["atoms"])
    if res.get("stopped_untrusted"):
        u = res["stopped_untrusted"]
        warnings.append(f"stopped at step {u['step']}: the committee's force deviation "
                        f"{u['max_force_deviation']:.4g} eV/Å passed {max_force_deviation:g} eV/Å")  # fmt: skip
    elif not res["converged"]:
        warnings.append(f"not converged after {steps} steps; raise --steps or --fmax")
    return SimulationResult(**res, out=str(out) if out else None,
                            traj=str(trajectory) if trajectory else None, warnings=warnings)  # fmt: skip


def molecular_dynamics(
    model: str | os.PathLike, structure: str, out: str | os.PathLike, *, ensemble: str = "nvt",
    temperature: float = 300.0, timestep: float = 0.5, steps: int = 1000, friction: float = 0.01,
    interval: int = 10, seed: int = 0, log: str | os.PathLike | None = None,
    dtype: str | None = None, force_model: str | os.PathLike | None = None,
    threads: int | None = None, overwrite: bool = False, progress: bool = True, device: str = "cpu",
    max_force_deviation: float | None = None, on_deviation: str = "stop",
) -> SimulationResult:  # fmt: skip
    """MD with the model (Langevin NVT at ``temperature`` K, or NVE), ``timestep`` fs, a frame
    and a log line every ``interval`` steps to the trajectory ``out`` (ASE .traj, or .extxyz
    with energies and forces) and ``log`` (default: ``out`` with .log). The run stops with an
    error, keeping the frames so far, when energies or positions turn non-finite or atoms
    collide. Keys: ``n_atoms``, ``duration_ps``, ``wall_time_s``,
    ``steps_per_s``, ``ns_per_day``, ``mean_temperature_K``, ``std_temperature_K``,
    ``energy_drift`` (``drift`` eV/atom/ps of a linear fit, ``std`` eV/atom), ``n_frames``.

    With a committee model the log has the maximum per-atom force deviation (eV/Å) of every
    logged step; ``max_force_deviation`` (eV/Å) stops the run at the first step above it
    (``on_deviation="stop"``, reported in ``stopped_untrusted``, not an error) or lists such
    steps in ``flagged_steps`` (``"flag"``)."""
    from deepatoms.simulate.md import run_md

    out = Path(out)
    if out.suffix.lower() not in (".traj", ".extxyz", ".xyz"):
        raise DeepatomsError(
            f"--out {out}: MD writes an ASE .traj or an .extxyz trajectory; end the name in one "
            "of these"
        )
    log = Path(log) if log is not None else out.with_suffix(".log")
    _outputs(overwrite, out, log)
    calc = model_calculator(model, dtype, threads, force_model, device)
    atoms, warnings = _structure(structure, calc)
    traj = out if out.suffix.lower() == ".traj" else out.with_name(f".{out.name}.traj")
    try:
        with ProgressBar("MD steps", quiet=not progress) as bar:
            res = run_md(
                atoms, calc, ensemble=ensemble, temperature_K=temperature, timestep_fs=timestep,
                steps=steps, friction=friction, seed=seed, trajectory=traj, log=log,
                interval=interval, progress=bar, max_force_deviation=max_force_deviation,
                on_deviation=on_deviation,
            )  # fmt: skip
    finally:
        if traj != out and traj.exists():  # the frames so far, also when the run stopped
            _traj_to_extxyz(traj, out)
    res["trajectory"] = str(out)
    return SimulationResult(**res, formula=atoms.get_chemical_formula(), warnings=warnings)


def _traj_to_extxyz(traj: Path, out: Path) -> None:
    """Convert the ASE trajectory ``traj`` (removed afterwards) to the extxyz file ``out``."""
    from ase.io import read

    from deepatoms.data.structure_files import write_structures

    try:
        write_structures(out, read(traj, index=":"))
    finally:
        traj.unlink(missing_ok=True)


def vibrations(
    model: str | os.PathLike, structure: str, *, reference: str | None = None,
    relax_first: bool = True, fmax: float = 1e-3, method: str = "autograd", delta: float = 0.005,
    out: str | os.PathLike | None = None, dtype: str | None = "float64",
    force_model: str | os.PathLike | None = None, threads: int | None = None,
    overwrite: bool = False, device: str = "cpu",
) -> SimulationResult:  # fmt: skip
    """Harmonic frequencies (cm⁻¹) from the mass-weighted Hessian of the model (``method``:
    autograd, exact, or fd: finite differences of step ``delta`` Å), optionally beside those of
    a ``reference`` calculator (xtb or emt), each at its own minimum when ``relax_first``.
    Writes the frequency table to ``out`` (CSV). Keys: ``model``, ``reference`` (frequency
    sets), ``reference_name``, ``comparison`` (MAE, max error), ``table`` (header, rows),
    ``periodic``."""
    from deepatoms.simulate.relax import is_periodic
    from deepatoms.simulate.vibrations import vibrational_analysis

    _outputs(overwrite, out)
    calc = model_calculator(model, dtype, threads, force_model, device)
    atoms, warnings = _structure(structure, calc)
    ref_calc, ref_name = _reference(reference, atoms)
    res = vibrational_analysis(atoms, calc, reference=ref_calc, relax_first=relax_first,
                               fmax=fmax, method=method, delta=delta)  # fmt: skip
    names, rows = _frequency_rows(res)
    if out is not None:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(names)
        writer.writerows(rows)
        atomic_write_text(out, buf.getvalue())
    return SimulationResult(
        model=res["model"], reference=res["reference"], reference_name=ref_name,
        comparison=res["comparison"], table={"header": names, "rows": rows},
        formula=atoms.get_chemical_formula(), atoms=atoms, relaxed=relax_first,
        periodic=is_periodic(atoms), out=str(out) if out else None, warnings=warnings,
    )  # fmt: skip


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


def scan_structure(
    model: str | os.PathLike, structure: str, scale: str, *, reference: str | None = None,
    plot: str | os.PathLike | None = None, out: str | os.PathLike | None = None,
    dtype: str | None = None, force_model: str | os.PathLike | None = None,
    threads: int | None = None, overwrite: bool = False, device: str = "cpu",
) -> SimulationResult:  # fmt: skip
    """Energy (and pressure of crystals) of ``structure`` scaled uniformly by the factors
    ``scale`` (``START:STOP:N`` or ``a,b,c``), beside a ``reference`` calculator (xtb or emt).
    Writes the table to ``out`` (CSV) and a ``plot`` (PNG). Keys: ``scales``, ``energy`` (eV),
    ``min_scale``, ``reference_min_scale``, ``table`` (header, rows), ``reference_name``."""
    from deepatoms.simulate.scan import parse_scale, plot_scan, scan, scan_table, write_scan_csv

    scales = parse_scale(scale)
    _outputs(overwrite, out, plot)
    calc = model_calculator(model, dtype, threads, force_model, device)
    atoms, warnings = _structure(structure, calc)
    ref_calc, ref_name = _reference(reference, atoms)
    res = scan(atoms, calc, scales, reference=ref_calc)
    names, rows = scan_table(res)
    if out is not None:
        write_scan_csv(res, out)
    if plot is not None:
        plot_scan(res, plot, ref_label=ref_name or "reference")
    return SimulationResult(**res, table={"header": names, "rows": rows},
                            reference_name=ref_name, out=str(out) if out else None,
                            plot=str(plot) if plot else None, warnings=warnings)  # fmt: skip


def public(result: dict) -> dict:
    """A result without its structures and arrays (what ``--json`` prints)."""
    res = {}
    for k, v in result.items():
        if k in ("atoms", "series", "table"):
            continue
        if isinstance(v, np.ndarray):
            v = v.tolist()
        elif isinstance(v, dict):
            v = public(v)
        elif hasattr(v, "to_dict"):
            v = v.to_dict()
        res[k] = v
    return res
