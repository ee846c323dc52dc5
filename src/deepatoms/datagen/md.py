"""Labelled MD trajectories from a reference calculator (docs/property_models.md §8; docs/decisions.md).

Sampling: Maxwell–Boltzmann velocities at the target temperature (seeded), centre-of-mass
momentum removed (and rotation for molecules), then ASE Langevin dynamics with the centre of mass
fixed (``ase.constraints.FixCom``). After ``equilibration_steps`` a frame is recorded every
``stride`` steps: positions (Å), energy (eV), forces (eV/Å) and, for periodic cells, the cell
(Å) and stress (eV/Å³, Voigt xx yy zz yz xz xy).

Perturbed frames (``rattle`` > 0 or ``strain`` > 0): each recorded MD frame is copied, its cell
is deformed by ``I + ε`` (ε symmetric, entries uniform in [-strain, strain], atoms scaled with
the cell) and its positions are displaced by Gaussian noise of standard deviation ``rattle``
(Å); the copy is labelled with one extra calculator call and stored, while the MD continues
from the unperturbed state. This spreads volumes (stress) and forces beyond one NVT ensemble
at fixed cell; it costs one extra call per frame plus one to return to the MD state.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import CalculationFailed, Calculator
from ase.constraints import FixCom
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import Stationary, ZeroRotation

try:
    from ase.md.velocitydistribution import thermalize_momenta
except ImportError:  # ASE < 3.29
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    def thermalize_momenta(atoms: Atoms, temperature_K: float, *, rng: Any = None) -> None:
        MaxwellBoltzmannDistribution(atoms, temperature_K=temperature_K, rng=rng)


from deepatoms.core.errors import DeepatomsError
from deepatoms.data.packed import PackedSystems
from deepatoms.data.validate import structure_problem
from deepatoms.datagen.resumable import versions

__all__ = ["MD_SOURCE", "generate_md"]

MD_SOURCE = "deepatoms datagen md"
_EQUILIBRATION_CHUNK = 100  # steps between progress reports while equilibrating

Progress = Callable[[int, int], None]


def _check_settings(**kw: Any) -> None:
    problems = []
    for name in ("n_frames", "stride"):
        if not isinstance(kw[name], (int, np.integer)) or kw[name] < 1:
            problems.append(f"{name} must be a positive integer, got {kw[name]!r}")
    if (
        not isinstance(kw["equilibration_steps"], (int, np.integer))
        or kw["equilibration_steps"] < 0
    ):
        problems.append(
            f"equilibration_steps must be a non-negative integer, got {kw['equilibration_steps']!r}"
        )
    for name, unit in (("timestep", "fs"), ("friction", "1/fs")):
        if not kw[name] > 0:
            problems.append(f"{name} must be positive ({unit}), got {kw[name]!r}")
    for name, unit in (("temperature", "K"), ("rattle", "Å"), ("strain", "")):
        if not kw[name] >= 0:
            problems.append(f"{name} must be zero or positive {unit}, got {kw[name]!r}".rstrip())
    if kw["strain"] >= 0.5:
        problems.append(f"strain is a fraction of the cell (e.g. 0.02), got {kw['strain']!r}")
    if problems:
        raise ValueError("invalid MD settings: " + "; ".join(problems))


def _perturbed(atoms: Atoms, rng: np.random.Generator, rattle: float, strain: float) -> Atoms:
    """A copy of ``atoms`` with a random symmetric cell strain and Gaussian displacements."""
    snap = Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    if strain > 0:
        eps = rng.uniform(-strain, strain, size=(3, 3))
        eps = 0.5 * (eps + eps.T)
        snap.set_cell(snap.cell.array @ (np.eye(3) + eps), scale_atoms=True)
    if rattle > 0:
        snap.positions += rng.normal(0.0, rattle, size=snap.positions.shape)
    return snap


def _jsonable(info: Mapping[str, Any]) -> dict[str, Any]:
    """Entries of ``atoms.info`` that are plain JSON values (numbers, str, lists, dicts)."""
    ok = (str, int, float, bool, list, dict, type(None))
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in info.items()
            if isinstance(v, (*ok, np.generic))}  # fmt: skip


def generate_md(
    atoms: Atoms, calculator: Calculator, provenance: Mapping[str, Any], *,
    temperature: float = 500.0, timestep: float = 0.5, n_frames: int = 1000, stride: int = 10,
    seed: int = 0, equilibration_steps: int = 1000, friction: float = 0.01, rattle: float = 0.0,
    strain: float = 0.0, progress: Progress | None = None,
) -> tuple[PackedSystems, dict[str, Any]]:  # fmt: skip
    """Run Langevin MD with ``calculator`` and record labelled frames (see module docstring).

    Args:
        atoms: starting structure (Å); not modified. Periodic cells get stress labels.
        calculator: ASE calculator giving energy (eV), forces (eV/Å) and, for periodic cells,
            stress (eV/Å³).
        provenance: the calculator's provenance record (from ``make_calculator``).
        temperature: thermostat and initial-velocity temperature (K).
        timestep: MD time step (fs).
        n_frames: number of frames to record.
        stride: MD steps between recorded frames.
        seed: seed of velocities, thermostat noise and perturbations.
        equilibration_steps: MD steps run before the first recorded frame.
        friction: Langevin friction (1/fs).
        rattle: standard deviation (Å) of random displacements added to recorded frames.
        strain: amplitude of random symmetric cell strain (fraction) for recorded frames;
            periodic cells only.
        progress: called as ``progress(steps_done, steps_total)`` (MD steps incl. equilibration).

    Returns:
        ``(data, metadata)``: per system ``energy`` (eV) and, for periodic cells, ``stress``
        ([B,6], eV/Å³); per atom ``forces`` (eV/Å). ``metadata`` has ``units``, ``source``
        ("deepatoms datagen md") and ``provenance`` (calculator, MD settings, structure, versions,
        date, wall time and the mean kinetic temperature of the recorded MD frames).
    """
    _check_settings(
        n_frames=n_frames, stride=stride, equilibration_steps=equilibration_steps,
        timestep=timestep, friction=friction, temperature=temperature, rattle=rattle,
        strain=strain,
    )  # fmt: skip
    periodic = bool(np.all(atoms.pbc) and atoms.cell.rank == 3)
    if strain > 0 and not periodic:
        raise ValueError("strain applies to periodic cells (bulk) only; use strain=0 for molecules")
    if len(atoms) < 2:
        raise ValueError(f"MD needs at least 2 atoms, the structure has {len(atoms)}")
    start_time = time.perf_counter()
    rng = np.random.default_rng(seed)
    md_atoms, dyn = _dynamics(atoms, calculator, temperature, timestep, friction, periodic, rng)
    frames = _record(md_atoms, dyn, calculator, rng, n_frames, stride, equilibration_steps,
                     rattle, strain, periodic, progress)  # fmt: skip
    system_props = {"energy": frames["energy"]}
    label_units = {"energy": "eV", "forces": "eV/Å"}
    if periodic:
        system_props["stress"] = frames["stress"]
        label_units["stress"] = "eV/Å^3"
    n_at = len(md_atoms)
    data = PackedSystems(
        numbers=np.tile(md_atoms.numbers, n_frames),
        positions=frames["positions"].reshape(-1, 3),
        offsets=np.arange(n_frames + 1, dtype=np.int64) * n_at,
        cell=frames["cells"] if periodic else np.repeat(atoms.cell.array[None], n_frames, axis=0),
        pbc=np.repeat(np.asarray(atoms.pbc, dtype=bool)[None], n_frames, axis=0),
        system_props=system_props,
        atom_props={"forces": frames["forces"].reshape(-1, 3)},
    )
    md = {
        "integrator": "ase.md.langevin.Langevin with ase.constraints.FixCom",
        "temperature_K": float(temperature), "timestep_fs": float(timestep),
        "friction_per_fs": float(friction), "equilibration_steps": int(equilibration_steps),
        "stride": int(stride), "n_frames": int(n_frames), "seed": seed,
        "initial_velocities": "Maxwell-Boltzmann, zero momentum"
        + ("" if periodic else ", zero angular momentum"),
        "rattle_A": float(rattle), "strain": float(strain),
        "perturbed_frames": rattle > 0 or strain > 0,
    }  # fmt: skip
    metadata = {
        "units": label_units,
        "source": MD_SOURCE,
        "provenance": {
            "calculator": dict(provenance),
            "md": md,
            "structure": {
                "formula": atoms.get_chemical_formula(),
                "n_atoms": n_at,
                "periodic": periodic,
                **_jsonable(atoms.info),
            },
            "observed": {"mean_kinetic_temperature_K": float(frames["kinetic_t"].mean())},
            "versions": versions("ase", "numpy"),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "wall_time_s": round(time.perf_counter() - start_time, 3),
        },
    }
    return data, metadata


def _dynamics(
    atoms: Atoms, calculator: Calculator, temperature: float, timestep: float, friction: float,
    periodic: bool, rng: np.random.Generator,
) -> tuple[Atoms, Any]:  # fmt: skip
    """A copy of ``atoms`` with thermal velocities (no net momentum, no rotation for molecules)
    and its Langevin integrator with the centre of mass fixed."""
    md_atoms = Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    md_atoms.calc = calculator
    md_atoms.set_constraint(FixCom())
    thermalize_momenta(md_atoms, temperature, rng=rng)
    Stationary(md_atoms)
    if not periodic:
        ZeroRotation(md_atoms)
    dyn = Langevin(md_atoms, timestep=timestep * units.fs, temperature_K=temperature,
                   friction=friction / units.fs, fixcm=False, rng=rng)  # fmt: skip
    return md_atoms, dyn


def _record(
    md_atoms: Atoms, dyn: Any, calculator: Calculator, rng: np.random.Generator, n_frames: int,
    stride: int, equilibration_steps: int, rattle: float, strain: float, periodic: bool,
    progress: Progress | None,
) -> dict[str, np.ndarray]:  # fmt: skip
    """Equilibrate, then record ``n_frames`` frames every ``stride`` steps (perturbed copies
    when ``rattle`` or ``strain`` > 0): positions, cells, energy, forces, stress, kinetic T."""
    n_at = len(md_atoms)
    frames = {
        "positions": np.empty((n_frames, n_at, 3)), "forces": np.empty((n_frames, n_at, 3)),
        "energy": np.empty(n_frames), "cells": np.empty((n_frames, 3, 3)),
        "stress": np.empty((n_frames, 6)), "kinetic_t": np.empty(n_frames),
    }  # fmt: skip
    total = equilibration_steps + n_frames * stride
    perturb = rattle > 0 or strain > 0

    def advance(steps: int) -> None:
        try:
            dyn.run(steps)
        except CalculationFailed as exc:
            raise RuntimeError(
                f"the calculator failed at MD step {dyn.nsteps} ({exc}); try a smaller "
                "timestep or temperature, or another seed"
            ) from exc

    done = 0
    while done < equilibration_steps:
        chunk = min(_EQUILIBRATION_CHUNK, equilibration_steps - done)
        advance(chunk)
        done += chunk
        if progress is not None:
            progress(done, total)
    for k in range(n_frames):
        advance(stride)
        frames["kinetic_t"][k] = md_atoms.get_temperature()
        frame = _perturbed(md_atoms, rng, rattle, strain) if perturb else md_atoms
        if perturb:
            frame.calc = calculator
        frames["positions"][k] = frame.positions
        frames["cells"][k] = frame.cell.array
        frames["energy"][k] = frame.get_potential_energy()
        frames["forces"][k] = frame.get_forces(apply_constraint=False)
        if periodic:
            frames["stress"][k] = frame.get_stress(voigt=True)
        why = structure_problem(frame.numbers, frame.positions, frame.cell.array, frame.pbc)
        if why is None and not (np.isfinite(frames["energy"][k]) and np.isfinite(
                frames["forces"][k]).all()):  # fmt: skip
            why = "the calculator returned a non-finite energy or forces"
        if why:
            raise DeepatomsError(
                f"frame {k} (MD step {dyn.nsteps}): {why}; nothing was written. Try a smaller "
                "timestep or temperature, or another seed"
            )
        if progress is not None:
            progress(equilibration_steps + (k + 1) * stride, total)
    return frames
