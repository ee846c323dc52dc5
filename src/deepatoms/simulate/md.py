"""Molecular dynamics with ASE integrators: NVE (velocity Verlet) and NVT (Langevin).

Defaults (docs/decisions.md; the sources state none): Langevin thermostat, 0.5 fs time
step. Initial velocities are drawn from the Maxwell–Boltzmann distribution at the given
temperature (seeded), with zero total momentum (and zero angular momentum for molecules); the
centre of mass is held fixed (``ase.constraints.FixCom``) unless the structure brings its own
constraints.

Outputs are written while the run goes, into hidden partial files next to the targets, and
renamed into place when the run ends (also when it stops early with an error or Ctrl-C: the
frames written so far are complete). A killed process leaves no half-written file under the
target names.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator
from ase.constraints import FixCom
from ase.io.trajectory import Trajectory
from ase.md import velocitydistribution as _vd
from ase.md.langevin import Langevin
from ase.md.verlet import VelocityVerlet

from deepatoms.core.errors import DeepatomsError
from deepatoms.data.structure_files import PartialFile
from deepatoms.simulate.analysis import energy_drift
from deepatoms.simulate.guards import SimulationStopped, simulation_problem
from deepatoms.simulate.relax import frozen_copy, is_periodic

#: Ensembles by name: NVE (velocity Verlet) and NVT (Langevin thermostat).
ENSEMBLES = ("nve", "nvt")
#: Columns of the MD log (whitespace-separated text, readable with ``numpy.loadtxt``).
LOG_COLUMNS = ("step", "time[ps]", "Etot[eV]", "Epot[eV]", "Ekin[eV]", "T[K]")

Progress = Callable[[int, int], None]


def _check(
    ensemble: str, temperature_K: float, timestep_fs: float, steps: int, friction: float,
    interval: int,
) -> str:  # fmt: skip
    """The ensemble's key; all problems with the settings in one ``ValueError``."""
    key = str(ensemble).lower()
    problems = []
    if key not in ENSEMBLES:
        problems.append(f"unknown ensemble {ensemble!r}; choose nve or nvt")
    if not timestep_fs > 0:
        problems.append(f"timestep must be > 0 fs, got {timestep_fs}")
    if not temperature_K >= 0:
        problems.append(f"temperature must be >= 0 K, got {temperature_K}")
    if not isinstance(steps, (int, np.integer)) or steps < 0:
        problems.append(f"steps must be a non-negative integer, got {steps!r}")
    if not isinstance(interval, (int, np.integer)) or interval < 1:
        problems.append(f"interval must be a positive integer, got {interval!r}")
    if key == "nvt" and not friction > 0:
        problems.append(f"the Langevin friction must be > 0 1/fs, got {friction}")
    if problems:
        raise ValueError("; ".join(problems))
    return key


def initial_velocities(atoms: Atoms, temperature_K: float, rng: np.random.Generator) -> None:
    """Set Maxwell–Boltzmann momenta at ``temperature_K`` (K) in place, with zero total momentum
    (and zero angular momentum for non-periodic systems); zero momenta at 0 K."""
    if temperature_K <= 0 or len(atoms) < 2:
        atoms.set_momenta(np.zeros((len(atoms), 3)))
        return
    if hasattr(_vd, "thermalize_momenta"):  # ASE >= 3.29
        _vd.thermalize_momenta(atoms, temperature_K, rng=rng)
    else:
        _vd.MaxwellBoltzmannDistribution(atoms, temperature_K=temperature_K, rng=rng)
    _vd.Stationary(atoms)
    if not is_periodic(atoms):
        _vd.ZeroRotation(atoms)


def run_md(
    atoms: Atoms, calculator: Calculator, *, ensemble: str = "nvt", temperature_K: float = 300.0,
    timestep_fs: float = 0.5, steps: int = 1000, friction: float = 0.01, seed: int = 0,
    trajectory: str | Path | None = None, log: str | Path | None = None, interval: int = 10,
    progress: Progress | None = None, max_force_deviation: float | None = None,
    on_deviation: str = "stop",
) -> dict:  # fmt: skip
    """Run MD from ``atoms`` (not modified) with ``calculator``.

    Args:
        atoms: starting structure (Å); initial velocities are drawn, not read.
        calculator: ASE calculator giving energy (eV) and forces (eV/Å).
        ensemble: ``nve`` (velocity Verlet) or ``nvt`` (Langevin).
        temperature_K: initial-velocity temperature and, for NVT, thermostat temperature (K).
        timestep_fs: time step (fs).
        steps: number of MD steps.
        friction: Langevin friction (1/fs; NVT only).
        seed: seed of the initial velocities and the Langevin noise.
        trajectory: ASE ``.traj`` file (positions, momenta, energy, forces) written every
            ``interval`` steps, from step 0; readable by ``ase gui`` and ``ase.io.read``.
        log: text log written every ``interval`` steps, columns :data:`LOG_COLUMNS`.
        interval: steps between trajectory frames and log lines.
        progress: called as ``progress(steps_done, steps)``.
        max_force_deviation: trust level (eV/Å) on a committee's maximum per-atom force
            deviation (:mod:`deepatoms.models.committee`); needs a committee calculator. Above
            it the run stops (``on_deviation="stop"``: the result says where, it is no error)
            or the step is listed in ``flagged_steps`` (``"flag"``). With a committee the log
            has a column ``max_dev[eV/Å]`` and the result ``series["max_force_deviation"]``.
        on_deviation: ``stop`` or ``flag`` (above).

    Returns:
        dict with the settings, ``duration_ps``, ``n_frames`` (trajectory), ``mean_temperature_K``
        and ``std_temperature_K`` (over all steps after step 0), ``energy_drift`` (from
        :func:`~deepatoms.simulate.analysis.energy_drift` of Etot over every step: ``drift`` in
        eV/atom/ps, ``std`` and ``max_deviation`` in eV/atom), ``initial_etot`` / ``final_etot``
        (eV), ``wall_time_s``, ``steps_per_s``, ``ns_per_day``, ``series`` (per step arrays
        ``time_ps``, ``etot``, ``epot``, ``ekin`` in eV and ``temperature`` in K) and ``atoms``
        (final structure with momenta, energy and forces).
    """
    ensemble = _check(ensemble, temperature_K, timestep_fs, steps, friction, interval)
    if on_deviation not in ("stop", "flag"):
        raise ValueError(f"on_deviation must be stop or flag, got {on_deviation!r}")
    if max_force_deviation is not None and not max_force_deviation > 0:
        raise ValueError(f"max_force_deviation must be > 0 eV/Å, got {max_force_deviation!r}")
    work = atoms.copy()
    work.calc = calculator
    work.get_forces()
    committee = "max_force_deviation" in calculator.results
    if max_force_deviation is not None and not committee:
        raise ValueError(
            "--max-force-deviation needs a committee model (train one with --ensemble N): this "
            "model gives no force deviation"
        )
    if not work.constraints:
        work.set_constraint(FixCom())
    rng = np.random.default_rng(seed)
    initial_velocities(work, temperature_K, rng)
    dt = timestep_fs * units.fs
    if ensemble == "nvt":
        dyn = Langevin(
            work,
            timestep=dt,
            temperature_K=temperature_K,
            friction=friction / units.fs,
            fixcm=False,
            rng=rng,
        )
    else:
        dyn = VelocityVerlet(work, timestep=dt)

    n = steps + 1
    epot, ekin, temp = np.empty(n), np.empty(n), np.empty(n)
    dev = np.full(n, np.nan)
    flagged: list[int] = []
    report_every = max(1, steps // 500)
    files: list[PartialFile] = []
    traj: Trajectory | None = None
    log_fh: IO[str] | None = None
    n_frames = 0

    def record() -> None:
        k = dyn.nsteps
        epot[k] = work.get_potential_energy()
        ekin[k] = work.get_kinetic_energy()
        temp[k] = work.get_temperature()
        why = simulation_problem(work, epot[k], check_distances=k % interval == 0)
        if why:
            raise SimulationStopped(k, why)
        if committee:
            dev[k] = calculator.results["max_force_deviation"]
        beyond = max_force_deviation is not None and dev[k] > max_force_deviation
        if (k % interval == 0 or beyond) and log_fh is not None:
            etot = epot[k] + ekin[k]
            t_ps = k * timestep_fs / 1000.0
            extra = f" {dev[k]:12.6f}" if committee else ""
            log_fh.write(
                f"{k:10d} {t_ps:12.6f} {etot:16.8f} {epot[k]:16.8f} {ekin[k]:14.8f} "
                f"{temp[k]:10.3f}{extra}\n"
            )
        if beyond:
            if on_deviation == "stop":
                raise _Untrusted(k, float(dev[k]))
            flagged.append(k)
        if progress is not None and (k % report_every == 0 or k == steps):
            progress(k, steps)

    def write_frame() -> None:
        nonlocal n_frames
        traj.write(work)
        n_frames += 1

    stopped: SimulationStopped | None = None
    untrusted: _Untrusted | None = None
    start = time.perf_counter()
    try:
        dyn.attach(record, interval=1)  # first: a frame is written only after its checks
        if trajectory is not None:
            files.append(PartialFile(trajectory))
            traj = Trajectory(str(files[-1].part), "w", work)
            dyn.attach(write_frame, interval=interval)
        if log is not None:
            files.append(PartialFile(log))
            log_fh = open(files[-1].part, "w")  # closed in the finally block
            columns = (*LOG_COLUMNS, "max_dev[eV/Å]") if committee else LOG_COLUMNS
            log_fh.write("# " + "  ".join(columns) + "\n")
        try:
            dyn.run(steps)
        except SimulationStopped as stop:
            stopped = stop
        except _Untrusted as stop:
            untrusted = stop
    finally:
        wall = time.perf_counter() - start
        if traj is not None:
            traj.close()
        if log_fh is not None:
            log_fh.close()
        for f in files:
            f.finish()

    if stopped is not None:
        kept = f"; the {n_frames} frames written so far are in {trajectory}" if n_frames else ""
        raise DeepatomsError(f"MD stopped at step {stopped.step}: {stopped.reason}{kept}. "
                             "Use a smaller --timestep, or a model trained on such structures")  # fmt: skip
    if untrusted is not None:  # the run ends at the first untrusted step
        steps, n = untrusted.step, untrusted.step + 1
        epot, ekin, temp, dev = epot[:n], ekin[:n], temp[:n], dev[:n]
    times = np.arange(n) * timestep_fs / 1000.0
    etot = epot + ekin
    tail = temp[1:] if steps > 0 else temp
    duration_ps = steps * timestep_fs / 1000.0
    return {
        "ensemble": ensemble,
        "integrator": "Langevin" if ensemble == "nvt" else "VelocityVerlet",
        "temperature_K": float(temperature_K),
        "timestep_fs": float(timestep_fs),
        "friction_per_fs": float(friction) if ensemble == "nvt" else None,
        "steps": int(steps),
        "seed": seed,
        "n_atoms": len(work),
        "duration_ps": duration_ps,
        "interval": int(interval),
        "trajectory": str(trajectory) if trajectory is not None else None,
        "log": str(log) if log is not None else None,
        "n_frames": n_frames,
        "mean_temperature_K": float(tail.mean()),
        "std_temperature_K": float(tail.std()),
        "energy_drift": energy_drift(times, etot, len(work)),
        "initial_etot": float(etot[0]),
        "final_etot": float(etot[-1]),
        "wall_time_s": round(wall, 3),
        "steps_per_s": steps / wall if wall > 0 else float("nan"),
        "ns_per_day": duration_ps * 1e-3 / wall * 86400 if wall > 0 else float("nan"),
        "series": {"time_ps": times, "etot": etot, "epot": epot, "ekin": ekin, "temperature": temp,
                   **({"max_force_deviation": dev} if committee else {})},
        "max_force_deviation": float(np.nanmax(dev)) if committee else None,
        "trust_level": max_force_deviation,
        "stopped_untrusted": (
            {"step": untrusted.step, "max_force_deviation": untrusted.deviation}
            if untrusted is not None else None
        ),
        "flagged_steps": flagged,
        "atoms": frozen_copy(work, calculator),
    }  # fmt: skip


class _Untrusted(Exception):
    """A committee's force deviation passed the trust level at ``step``."""

    def __init__(self, step: int, deviation: float) -> None:
        super().__init__(step, deviation)
        self.step, self.deviation = step, deviation


__all__ = ["ENSEMBLES", "LOG_COLUMNS", "initial_velocities", "run_md"]
