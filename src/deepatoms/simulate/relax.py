"""Geometry (and cell) relaxation with ASE optimisers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator
from ase.calculators.singlepoint import SinglePointCalculator

from deepatoms.core.errors import DeepatomsError
from deepatoms.data.structure_files import PartialFile
from deepatoms.simulate.guards import SimulationStopped, simulation_problem

#: Optimisers by name (``ase.optimize``).
OPTIMIZERS = ("bfgs", "fire", "lbfgs")

_EV_A3_TO_GPA = 1.0 / units.GPa  # eV/Å³ → GPa


def is_periodic(atoms: Atoms) -> bool:
    """True for a 3-D periodic cell (all ``pbc`` and a full-rank cell)."""
    return bool(atoms.pbc.all() and atoms.cell.rank == 3)


def optimizer_class(name: str) -> type:
    """The ASE optimiser class for ``name`` (bfgs, fire or lbfgs)."""
    from ase.optimize import BFGS, FIRE, LBFGS

    classes = dict(zip(OPTIMIZERS, (BFGS, FIRE, LBFGS), strict=True))
    key = str(name).lower()
    if key not in classes:
        raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")
    return classes[key]


def max_force(forces: np.ndarray) -> float:
    """Largest per-atom force norm (same unit as ``forces``, eV/Å)."""
    forces = np.asarray(forces).reshape(-1, 3)
    return float(np.linalg.norm(forces, axis=1).max(initial=0.0))


def frozen_copy(atoms: Atoms, calculator: Calculator) -> Atoms:
    """A copy of ``atoms`` holding the energy (eV), forces (eV/Å) and stress of ``calculator``
    as a single-point result (written to extxyz / traj files)."""
    results = {
        k: calculator.results[k]
        for k in ("energy", "free_energy", "forces", "stress")
        if k in calculator.results
    }
    copy = atoms.copy()
    copy.calc = SinglePointCalculator(copy, **results)
    return copy


def relax(
    atoms: Atoms, calculator: Calculator, *, fmax: float = 0.05, optimizer: str = "bfgs",
    steps: int = 1000, relax_cell: bool = False, trajectory: str | Path | None = None,
    logfile: str | Path | None = None, progress: Any = None,
    max_force_deviation: float | None = None, on_deviation: str = "stop",
) -> dict:  # fmt: skip
    """Relax ``atoms`` (not modified) with ``calculator`` until the max force is below ``fmax``.

    Args:
        atoms: starting structure (Å).
        calculator: any ASE calculator giving energy (eV) and forces (eV/Å); stress (eV/Å³) too
            for ``relax_cell``.
        fmax: tolerance on the largest per-atom force norm (eV/Å); with ``relax_cell`` also on
            the stress × volume (eV) per ``ase.filters.FrechetCellFilter``.
        optimizer: ``bfgs``, ``fire`` or ``lbfgs``.
        steps: maximum number of optimiser steps.
        relax_cell: relax the cell as well (periodic structures only).
        trajectory: optional ASE ``.traj`` file of every step (moved into place at the end).
        logfile: optional optimiser log file (None: no log).
        progress: called as ``progress(step, steps)`` after every optimiser step.
        max_force_deviation: trust level (eV/Å) on a committee calculator's maximum per-atom
            force deviation: above it the relaxation stops (``on_deviation="stop"``, reported
            in ``stopped_untrusted``) or the step is listed in ``flagged_steps`` (``"flag"``).
        on_deviation: ``stop`` or ``flag``.

    Returns:
        dict with ``converged``, ``steps``, ``initial_energy`` / ``final_energy`` (eV),
        ``initial_fmax`` / ``final_fmax`` (eV/Å), ``fmax`` (tolerance), ``optimizer``,
        ``relax_cell``, for cell relaxations ``final_stress_GPa`` (max |σ|) and ``volume``
        (initial, final in Å³), and ``atoms`` (the final structure with its energy and forces).
        With a committee calculator also ``force_deviation`` (per step, eV/Å).
    """
    if not fmax > 0:
        raise ValueError(f"fmax must be > 0 eV/Å, got {fmax}")
    if not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
    cls = optimizer_class(optimizer)
    if relax_cell and not is_periodic(atoms):
        raise ValueError(
            "cell relaxation needs a 3-D periodic structure (pbc on all axes and a full cell); "
            "relax molecules without relax_cell (--cell)"
        )
    work = atoms.copy()
    work.calc = calculator
    initial_energy = float(work.get_potential_energy())
    initial_fmax = max_force(work.get_forces())
    if not (np.isfinite(initial_energy) and np.isfinite(initial_fmax)):
        raise DeepatomsError(
            f"the model gives a non-finite energy ({initial_energy}) or forces for this "
            "structure; check the model file (e.g. `deepatoms evaluate`) and the structure"
        )
    committee = "max_force_deviation" in calculator.results
    if on_deviation not in ("stop", "flag"):
        raise ValueError(f"on_deviation must be stop or flag, got {on_deviation!r}")
    if max_force_deviation is not None and not committee:
        raise ValueError(
            "--max-force-deviation needs a committee model (train one with --ensemble N): this "
            "model gives no force deviation"
        )
    deviations: list[float] = []
    flagged: list[int] = []
    untrusted: dict | None = None
    initial_volume = float(work.get_volume()) if relax_cell else None
    target = work
    if relax_cell:
        from ase.filters import FrechetCellFilter

        target = FrechetCellFilter(work)
    traj = PartialFile(trajectory) if trajectory is not None else None
    opt = cls(
        target,
        logfile=str(logfile) if logfile is not None else None,
        trajectory=str(traj.part) if traj is not None else None,
    )

    def guard() -> None:
        nonlocal untrusted
        why = simulation_problem(work, work.get_potential_energy())
        if why:
            raise SimulationStopped(opt.nsteps, why)
        if committee:
            d = float(calculator.results["max_force_deviation"])
            deviations.append(d)
            if max_force_deviation is not None and d > max_force_deviation:
                if on_deviation == "stop":
                    untrusted = {"step": int(opt.nsteps), "max_force_deviation": d}
                    raise _Untrusted
                flagged.append(int(opt.nsteps))
        if progress is not None:
            progress(opt.nsteps, steps)

    opt.attach(guard, interval=1)
    try:
        converged = bool(opt.run(fmax=fmax, steps=steps))
    except _Untrusted:
        converged = False
    except SimulationStopped as stop:
        kept = f"; the steps so far are in {trajectory}" if trajectory is not None else ""
        raise DeepatomsError(f"relaxation stopped at step {stop.step}: {stop.reason}{kept}. "
                             "The model is outside its training data here") from None  # fmt: skip
    finally:
        opt.close()
        if traj is not None:
            traj.finish()
    final_energy = float(work.get_potential_energy())
    forces = work.get_forces()
    result = {
        "converged": converged,
        "steps": int(opt.nsteps),
        "optimizer": str(optimizer).lower(),
        "fmax": float(fmax),
        "relax_cell": bool(relax_cell),
        "initial_energy": initial_energy,
        "final_energy": final_energy,
        "initial_fmax": initial_fmax,
        "final_fmax": max_force(forces),
    }
    if relax_cell:
        stress = work.get_stress(voigt=True)
        result["final_stress_GPa"] = float(np.abs(stress).max() * _EV_A3_TO_GPA)
        result["volume"] = {"initial": initial_volume, "final": float(work.get_volume())}
    if committee:
        result.update(force_deviation=deviations, trust_level=max_force_deviation,
                      stopped_untrusted=untrusted, flagged_steps=flagged)  # fmt: skip
    result["atoms"] = frozen_copy(work, calculator)
    return result


class _Untrusted(Exception):
    """The committee's force deviation passed the trust level."""


__all__ = ["OPTIMIZERS", "frozen_copy", "is_periodic", "max_force", "optimizer_class", "relax"]
