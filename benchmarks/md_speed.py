#!/usr/bin/env python
"""MD steps per second with a trained SchNet, deepatoms vs SchNetPack 2.1.1 (ASE interface).

    .venv/bin/python benchmarks/md_speed.py              # full run (SchNetPack from .venv-spk)
    .venv/bin/python benchmarks/md_speed.py --quick      # under a minute once models exist
    .venv/bin/python benchmarks/md_speed.py --no-spk     # deepatoms only

Two systems, NVE molecular dynamics with ASE's ``VelocityVerlet`` from the same start (positions
and Maxwell–Boltzmann velocities at 300 K, seeded, zero total momentum):

* molecule: hexane C6H14 (20 atoms), isolated, 0.5 fs;
* bulk: fcc Cu, the cubic cell (a = 3.61 Å) repeated 5×5×5 (500 atoms), periodic, 2 fs.

Model: SchNet of the preset ``schnet-md17-fast`` (F = 64, T = 3, 20 Gaussians on 0–5 Å, cosine
cutoff 5 Å), float32, one model per system, trained with ``deepatoms.workflows.training.train`` on
energies and forces from short Langevin MD (``deepatoms.datagen``): GFN2-xTB (tblite) for hexane
at 500 K, EMT for a 32-atom Cu cell at 500 K with rattled and strained frames. Training is
short (``--train-minutes``): the speed of a model does not depend on how long it was trained.
Models, data and start structures are cached in ``--workdir``; ``--model-molecule`` /
``--model-bulk`` use given ``model.pt`` files instead.

deepatoms runs ``deepatoms.simulate.Calculator(model, skin=0.5)`` (Verlet-skin neighbour list;
stress every step for the periodic cell). SchNetPack runs ``schnetpack.interfaces.SpkCalculator``
on a SchNetPack SchNet with the same architecture and the same trained weights (copied, see
``spk_support.schnet_potential_from_deepatoms``; energies and forces are checked to agree), with
its ``SkinNeighborList`` (same 0.5 Å skin) around ``--spk-neighbors`` and, for the periodic
cell, stress every step (``stress_key``). Both in float32 with torch's default thread count.
SchNetPack runs in ``.venv-spk`` (a worker subprocess of this script, ``--spk-only``).

Each round runs, per system, ``--warmup`` untimed and then ``--steps-*`` timed steps with one
library and then the other (same start, so the same trajectory up to float round-off and the
same neighbour-list rebuilds). Reported: the best round per library (another process can only
slow a run down) and their ratio; also the median over rounds of the ratio of the two
back-to-back runs. Many short rounds suit this shared 2-core machine better than a few long
ones: with another busy process, torch's two threads wait for each other at every parallel
region and a step can take 10x longer, for seconds at a time. The load average is printed
before and after; the last output line is JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from machine import cpu_busy, loadavg  # noqa: E402

PRESET = "schnet-md17-fast"
MOLECULE_SPEC = "smiles:CCCCCC"  # hexane, C6H14: 20 atoms
CU_A = 3.61  # Å, fcc Cu (ASE reference state)
CU_REPEAT = 5  # 5×5×5 cubic cells of 4 atoms = 500 atoms
TEMPERATURE = 300.0  # K, initial Maxwell–Boltzmann velocities
SEED = 0
SYSTEMS = ("molecule", "bulk")
TIMESTEP_FS = {"molecule": 0.5, "bulk": 2.0}
LABEL = {
    "molecule": "hexane C6H14, isolated, 0.5 fs",
    "bulk": f"Cu fcc {CU_REPEAT}x{CU_REPEAT}x{CU_REPEAT} cubic, periodic, 2 fs",
}
# Labelled data for training (deepatoms.datagen.md.generate_md settings).
DATAGEN = {
    "molecule": dict(temperature=500.0, timestep=0.5, n_frames=200, stride=5,
                     equilibration_steps=100, friction=0.01),
    "bulk": dict(temperature=500.0, timestep=2.0, n_frames=200, stride=5,
                 equilibration_steps=100, friction=0.01, rattle=0.05, strain=0.02),
}  # fmt: skip
PROTO = "@@ "  # prefix of protocol lines of the SchNetPack worker


# -- helpers ------------------------------------------------------------------------------------
def venv_python(name: str) -> Path | None:
    """``ROOT/<name>/bin/python`` if it exists."""
    p = ROOT / name / "bin" / "python"
    return p if p.exists() else None


def start_file(workdir: Path, kind: str) -> Path:
    """Cached start structure (positions and momenta) of system ``kind``."""
    return workdir / "start" / f"{kind}.traj"


def default_model(workdir: Path, kind: str) -> Path:
    """Where the benchmark's own trained model of system ``kind`` lives."""
    return workdir / kind / "run" / "model.pt"


# -- preparation: start structures, data, training (a subprocess of the project venv) -----------
def make_start(kind: str, workdir: Path) -> Path:
    """Write the start structure of ``kind`` with 300 K Maxwell–Boltzmann momenta (seeded)."""
    from ase.build import bulk
    from ase.io import write
    from ase.md.velocitydistribution import (
        MaxwellBoltzmannDistribution,
        Stationary,
        ZeroRotation,
    )

    if kind == "molecule":
        from deepatoms.data.structures import molecule_from_spec

        atoms = molecule_from_spec(MOLECULE_SPEC, seed=SEED)
        atoms.info.clear()
    else:
        atoms = bulk("Cu", "fcc", a=CU_A, cubic=True).repeat(CU_REPEAT)
    rng = np.random.default_rng(SEED)
    MaxwellBoltzmannDistribution(atoms, temperature_K=TEMPERATURE, rng=rng)
    Stationary(atoms)
    if kind == "molecule":
        ZeroRotation(atoms)
    path = start_file(workdir, kind)
    path.parent.mkdir(parents=True, exist_ok=True)
    write(path, atoms)
    return path


def make_model(kind: str, workdir: Path, minutes: float, threads: int) -> Path:
    """Label ``DATAGEN[kind]`` MD frames and train ``PRESET`` on them for ``minutes``.

    Run with ``OMP_NUM_THREADS=1``: tblite's OpenMP threads spin against each other (and
    anything else) on a busy 2-core machine, one GFN2-xTB call on hexane then took ~1.4 s
    instead of ~5 ms. Training then uses ``threads`` torch threads (1 unless ``--threads``:
    on a busy machine two threads wait for each other, and a training step took ~4 s instead
    of ~0.5 s; the budget is wall time, so this only changes how far the model gets).
    """
    import torch

    from deepatoms.config.overrides import apply_overrides
    from deepatoms.data.dataset import write_dataset
    from deepatoms.data.structures import bulk_from_spec, molecule_from_spec
    from deepatoms.datagen.md import generate_md
    from deepatoms.models.registry import load_preset
    from deepatoms.simulate.reference import make_calculator
    from deepatoms.workflows.training import train

    folder = workdir / kind
    folder.mkdir(parents=True, exist_ok=True)
    data_path = folder / "data.h5"
    if not data_path.is_file():
        t0 = time.perf_counter()
        if kind == "molecule":
            atoms = molecule_from_spec(MOLECULE_SPEC, seed=SEED)
            calc, prov = make_calculator("xtb", atoms)
        else:
            atoms = bulk_from_spec("Cu", size=32, seed=SEED)
            calc, prov = make_calculator("emt", atoms)
        data, meta = generate_md(atoms, calc, prov, seed=SEED, **DATAGEN[kind])
        write_dataset(data_path, data, meta)
        print(
            f"  {kind}: {len(data)} frames of {atoms.get_chemical_formula()} "
            f"({prov['method']}) in {time.perf_counter() - t0:.1f} s -> {data_path}",
            flush=True,
        )
    torch.set_num_threads(threads)
    n = DATAGEN[kind]["n_frames"]
    config = apply_overrides(
        load_preset(PRESET),
        [f"data.n_train={int(0.8 * n)}", f"data.n_val={n - int(0.8 * n)}",
         f"train.max_time={minutes}", "train.max_epochs=100000", f"train.seed={SEED}"],
    )  # fmt: skip
    summary = train(config, data_path, folder / "run", progress=False)
    print(
        f"  {kind}: trained {PRESET} for {summary['wall_time_s']:.0f} s "
        f"({summary['epochs']} epochs, {summary['steps']} steps): validation force MAE "
        f"{summary.get('val_force_mae', float('nan')):.3f} eV/Å, energy MAE "
        f"{summary.get('val_energy_mae', float('nan')):.4f} eV -> {summary['model_file']}",
        flush=True,
    )
    return Path(summary["model_file"])


def prepare(args) -> dict[str, Path]:
    """Model files and start structures, made (in a subprocess) where they are not cached."""
    workdir = args.workdir
    models = {"molecule": args.model_molecule, "bulk": args.model_bulk}
    todo = [k for k in SYSTEMS if models[k] is None and not default_model(workdir, k).is_file()]
    todo_start = [k for k in SYSTEMS if not start_file(workdir, k).is_file()]
    if args.retrain:
        todo = [k for k in SYSTEMS if models[k] is None]
    if todo or todo_start:
        py = venv_python(".venv") or Path(sys.executable)
        cmd = [str(py), __file__, "--prepare", "--workdir", str(workdir)]
        cmd += ["--train-minutes", str(args.train_minutes), "--threads", str(args.threads)]
        cmd += ["--make", ",".join(todo) or "none"] + (["--retrain"] if args.retrain else [])
        print(
            f"preparing in {workdir}: start structures {todo_start or 'cached'}, "
            f"models to train {todo or 'none'} ({args.train_minutes} min each)",
            flush=True,
        )
        t0 = time.perf_counter()
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        for line in proc.stdout.splitlines():
            if line.startswith("  "):
                print(line)
        if proc.returncode != 0:
            sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
            raise SystemExit(
                f"preparation failed ({' '.join(cmd)}); pass --model-molecule/--model-bulk to "
                "use existing models"
            )
        print(f"preparation took {time.perf_counter() - t0:.0f} s")
    return {k: Path(models[k] or default_model(workdir, k)) for k in SYSTEMS}


def prepare_cmd(args) -> None:
    """``--prepare``: start structures that are missing, then the models in ``--make``."""
    for kind in SYSTEMS:
        if not start_file(args.workdir, kind).is_file():
            make_start(kind, args.workdir)
    for kind in [k for k in args.make.split(",") if k in SYSTEMS]:
        run = args.workdir / kind / "run"
        if args.retrain or (run.exists() and not (run / "model.pt").is_file()):
            import shutil

            shutil.rmtree(run, ignore_errors=True)
        make_model(kind, args.workdir, args.train_minutes, args.threads or 1)


# -- the MD measurement (both libraries) --------------------------------------------------------
def read_start(workdir: Path, kind: str):
    """The cached start structure (with momenta) of ``kind``."""
    from ase.io import read

    return read(start_file(workdir, kind))


def run_md(atoms0, calc, kind: str, warmup: int, steps: int, builds) -> dict:
    """NVE MD from ``atoms0``: ``warmup`` untimed steps, then ``steps`` timed ones.

    ``builds()`` counts the calculator's neighbour-list builds. Returns steps/s, ms/step,
    rebuilds in the timed part, the final temperature and the total-energy change per atom
    over the whole run (a check that the dynamics is sane; both untimed).
    """
    from ase import units
    from ase.md.verlet import VelocityVerlet

    atoms = atoms0.copy()
    atoms.calc = calc
    n = len(atoms)
    dyn = VelocityVerlet(atoms, timestep=TIMESTEP_FS[kind] * units.fs)
    e_start = atoms.get_potential_energy() + atoms.get_kinetic_energy()
    dyn.run(warmup)
    b0 = builds()
    t0 = time.perf_counter()
    dyn.run(steps)
    seconds = time.perf_counter() - t0
    rebuilds = builds() - b0
    e_end = atoms.get_potential_energy() + atoms.get_kinetic_energy()
    return {
        "steps_per_s": steps / seconds,
        "ms_per_step": 1000.0 * seconds / steps,
        "rebuilds": rebuilds,
        "steps": steps,
        "T_end": float(atoms.get_temperature()),
        "dE_meV_per_atom": 1000.0 * (e_end - e_start) / n,
    }


def pairs_within(atoms, cutoff: float) -> int:
    """Directed neighbour pairs (i, j, S) with |r_ij| ≤ cutoff (ASE's neighbour list)."""
    from ase.neighborlist import neighbor_list

    return len(neighbor_list("i", atoms, cutoff))


class DeepatomsSide:
    """deepatoms' ASE calculator for both systems."""

    name = "deepatoms"

    def __init__(self, models: dict[str, Path], workdir: Path, skin: float) -> None:
        import torch

        from deepatoms.simulate import Calculator

        self.calcs = {k: Calculator(models[k], skin=skin, dtype=torch.float32) for k in SYSTEMS}
        self.start = {k: read_start(workdir, k) for k in SYSTEMS}
        self.info = {}
        for k in SYSTEMS:
            calc, atoms = self.calcs[k], self.start[k].copy()
            atoms.calc = calc
            atoms.get_forces()
            self.info[k] = {
                "n_atoms": len(atoms),
                "edges_list": int(calc._nbrs.edge_index.shape[1]),
                "cutoff": float(calc.graph.cutoff),
                "skin": float(calc.skin),
            }

    def measure(self, kind: str, warmup: int, steps: int) -> dict:
        calc = self.calcs[kind]
        return run_md(self.start[kind], calc, kind, warmup, steps, lambda: calc.n_builds)


# -- SchNetPack side (runs in .venv-spk) --------------------------------------------------------
class SchNetPackSide:
    """SchNetPack's ``SpkCalculator`` on the SchNetPack twin of each deepatoms model."""

    name = "SchNetPack"

    def __init__(self, models: dict[str, Path], workdir: Path, args) -> None:
        import torch

        import spk_support
        from deepatoms.models.loading import load_model
        from deepatoms.simulate import Calculator

        spk, version = spk_support.import_schnetpack()
        if spk is None:
            raise RuntimeError(f"SchNetPack is not importable: {version}")
        self.version = version
        self.calcs, self.start, self.info, self._builds = {}, {}, {}, {}
        folder = workdir / "spk"
        folder.mkdir(parents=True, exist_ok=True)
        for k in SYSTEMS:
            loaded = load_model(models[k])
            twin = spk_support.schnet_potential_from_deepatoms(spk, loaded.model)
            path = folder / f"{k}.pt"
            torch.save(twin, path)
            cutoff = float(loaded.model.config["cutoff"])
            calc = spk_support.spk_calculator(
                spk, path, args.spk_neighbors, cutoff, args.skin, stress=(k == "bulk")
            )
            skin_nl = calc.converter.transforms[0]
            counter = {"n": 0}
            if hasattr(skin_nl, "_build"):
                build = skin_nl._build

                def counted(inputs, _build=build, _c=counter):
                    _c["n"] += 1
                    return _build(inputs)

                skin_nl._build = counted
            else:  # no skin: a new list every call
                nl_forward = skin_nl.forward

                def counted(inputs, _f=nl_forward, _c=counter):
                    _c["n"] += 1
                    return _f(inputs)

                skin_nl.forward = counted
            self._builds[k] = counter
            self.calcs[k] = calc
            atoms = read_start(workdir, k)
            self.start[k] = atoms
            inputs = calc.converter(atoms)  # builds the list at the start structure
            nl_cache = getattr(skin_nl, "previous_inputs", None)
            self.info[k] = {
                "n_atoms": len(atoms),
                "edges_list": len(nl_cache[0]["_idx_i"]) if nl_cache else None,
                "edges_model": int(inputs["_idx_i"].shape[0]),
                "check": self._check(calc, Calculator(loaded, skin=args.skin), atoms, k),
            }

    @staticmethod
    def _check(calc, dp_calc, atoms, kind: str) -> dict:
        """Energy, force (and stress) differences between the twin and deepatoms, on the start
        structure with random displacements (the perfect Cu lattice has zero forces)."""
        probe = atoms.copy()
        probe.positions += np.random.default_rng(SEED).normal(0.0, 0.05, probe.positions.shape)
        a_spk, a_dp = probe.copy(), probe.copy()
        a_spk.calc, a_dp.calc = calc, dp_calc
        f_spk, f_dp = a_spk.get_forces(), a_dp.get_forces()
        check = {
            "max_dF": float(np.abs(f_spk - f_dp).max()),
            "max_F": float(np.abs(f_dp).max()),
            "dE": float(abs(a_spk.get_potential_energy() - a_dp.get_potential_energy())),
        }
        if kind == "bulk":
            check["max_dstress"] = float(np.abs(a_spk.get_stress() - a_dp.get_stress()).max())
        return check

    def measure(self, kind: str, warmup: int, steps: int) -> dict:
        c = self._builds[kind]
        return run_md(self.start[kind], self.calcs[kind], kind, warmup, steps, lambda: c["n"])


def spk_only_cmd(args, models: dict[str, Path]) -> None:
    """``--spk-only``: the SchNetPack side alone. With ``--serve``, a worker: one JSON line of
    set-up info, then one measurement per request line ``{"system", "warmup", "steps"}``."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    side = SchNetPackSide(models, args.workdir, args)
    ready = {"version": side.version, "threads": torch.get_num_threads(), "info": side.info}
    ready["neighbors"] = args.spk_neighbors
    if args.serve:
        print(PROTO + json.dumps(ready), flush=True)
        for line in sys.stdin:
            req = json.loads(line)
            res = side.measure(req["system"], req["warmup"], req["steps"])
            print(PROTO + json.dumps(res), flush=True)
        return
    out = dict(ready)
    for k in SYSTEMS:
        runs = [side.measure(k, args.warmup[k], args.steps[k]) for _ in range(args.repeats)]
        out[k] = max(runs, key=lambda r: r["steps_per_s"])
        print(f"SchNetPack {k}: " + ", ".join(f"{r['steps_per_s']:.1f}" for r in runs) + " steps/s")
    print(json.dumps(out))


class SpkWorker:
    """The SchNetPack side as a subprocess (``--spk-only --serve``) in the SchNetPack venv."""

    name = "SchNetPack"

    def __init__(self, python: Path, models: dict[str, Path], args) -> None:
        cmd = [str(python), __file__, "--spk-only", "--serve", "--workdir", str(args.workdir)]
        cmd += ["--model-molecule", str(models["molecule"]), "--model-bulk", str(models["bulk"])]
        cmd += ["--skin", str(args.skin), "--spk-neighbors", args.spk_neighbors]
        cmd += ["--threads", str(args.threads)]
        self.log = open(args.workdir / "spk_worker.log", "w")
        env = dict(os.environ)
        if args.spk_malloc_tuned:  # the glibc settings the deepatoms Calculator applies itself
            from deepatoms.core.allocator import MMAP_THRESHOLD, TRIM_THRESHOLD

            env.update(
                MALLOC_MMAP_THRESHOLD_=str(MMAP_THRESHOLD),
                MALLOC_TRIM_THRESHOLD_=str(TRIM_THRESHOLD),
            )
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True, env=env
        )
        ready = self._read()
        self.version, self.threads = ready["version"], ready["threads"]
        self.info = ready["info"]

    def _read(self) -> dict:
        for line in self.proc.stdout:
            if line.startswith(PROTO):
                return json.loads(line[len(PROTO) :])
        self.log.flush()
        tail = Path(self.log.name).read_text()[-3000:]
        raise RuntimeError(f"the SchNetPack worker stopped (log {self.log.name}):\n{tail}")

    def measure(self, kind: str, warmup: int, steps: int) -> dict:
        req = {"system": kind, "warmup": warmup, "steps": steps}
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
        self.log.close()


def find_spk_python() -> tuple[Path | None, str]:
    """Interpreter with SchNetPack: ``.venv-spk``'s, else this one if it imports schnetpack."""
    py = venv_python(".venv-spk")
    if py is not None:
        return py, f"{py.relative_to(ROOT)}"
    import importlib.util

    if importlib.util.find_spec("schnetpack") is not None:
        return Path(sys.executable), sys.executable
    return (
        None,
        "no .venv-spk and no schnetpack in this interpreter (benchmarks/setup_schnetpack_env.sh)",
    )


# -- main -----------------------------------------------------------------------------------------
def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--quick", action="store_true", help="short run (under a minute with cached models)"
    )
    p.add_argument(
        "--workdir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "deepatoms-md-speed",
        help="cache of data, models and start structures (default: %(default)s)",
    )
    p.add_argument("--model-molecule", type=Path, help="deepatoms model.pt for hexane (C, H)")
    p.add_argument("--model-bulk", type=Path, help="deepatoms model.pt for Cu")
    p.add_argument(
        "--train-minutes",
        type=float,
        default=None,
        help="training budget per model made here (default 2; 0.1 with --quick)",
    )
    p.add_argument("--retrain", action="store_true", help="train the models again")
    p.add_argument(
        "--steps-molecule",
        type=int,
        default=None,
        help="timed MD steps per round (default 1000; 200 quick)",
    )
    p.add_argument(
        "--steps-bulk",
        type=int,
        default=None,
        help="timed MD steps per round (default 100; 15 quick)",
    )
    p.add_argument(
        "--warmup", type=int, default=None, help="untimed steps per round (default 10; 5 quick)"
    )
    p.add_argument(
        "--repeats", type=int, default=None, help="rounds, best reported (default 8; 3 quick)"
    )
    p.add_argument(
        "--skin", type=float, default=0.5, help="Verlet skin (Å) of both neighbour lists"
    )
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch.set_num_threads for both (default 0: torch's default)",
    )
    p.add_argument(
        "--spk-neighbors",
        choices=["ase", "matscipy", "torch"],
        default="matscipy",
        help="SchNetPack neighbour list inside its SkinNeighborList (default: %(default)s, its "
        "fastest; torch fails on periodic cells with torch 2.13)",
    )
    p.add_argument("--no-spk", action="store_true", help="skip SchNetPack")
    p.add_argument(
        "--spk-malloc-tuned",
        action="store_true",
        help="give the SchNetPack worker the glibc malloc thresholds that deepatoms' Calculator "
        "sets for itself (deepatoms.core.allocator), to separate that effect",
    )
    p.add_argument(
        "--spk-only", action="store_true", help="run only the SchNetPack side (in .venv-spk)"
    )
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--prepare", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--make", default="none", help=argparse.SUPPRESS)
    args = p.parse_args(argv)  # fmt: skip
    q = args.quick
    args.train_minutes = args.train_minutes or (0.1 if q else 2.0)
    args.steps = {
        "molecule": args.steps_molecule or (200 if q else 1000),
        "bulk": args.steps_bulk or (15 if q else 100),
    }
    w = args.warmup if args.warmup is not None else (5 if q else 10)
    args.warmup = {"molecule": w, "bulk": w}
    args.repeats = args.repeats or (3 if q else 8)
    args.workdir = args.workdir.resolve()
    return args


def main(argv=None) -> dict | None:
    args = parse_args(argv)
    if args.prepare:
        prepare_cmd(args)
        return None
    if args.spk_only:
        models = {k: Path(getattr(args, f"model_{k}") or default_model(args.workdir, k))
                  for k in SYSTEMS}  # fmt: skip
        spk_only_cmd(args, models)
        return None

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    print(f"MD speed benchmark ({'quick' if args.quick else 'full'}), torch {torch.__version__}")
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    print(f"machine load before: {loadavg()}")
    busy = cpu_busy()
    if busy is not None:
        print(f"CPU busy right now (other processes): {100 * busy:.0f} %")
        if busy > 0.1:
            print("  warning: the machine is busy; the numbers below may be low and noisy")
    models = prepare(args)

    spk_py, spk_why = (None, "skipped (--no-spk)") if args.no_spk else find_spk_python()
    sides = [DeepatomsSide(models, args.workdir, args.skin)]
    worker = None
    if spk_py is not None:
        try:
            worker = SpkWorker(spk_py, models, args)
            sides.append(worker)
            print(f"SchNetPack {worker.version} ({spk_why}, {worker.threads} torch threads)")
        except RuntimeError as err:
            print(f"SchNetPack: not run ({err})")
    else:
        print(f"SchNetPack: not run ({spk_why})")
    dp = sides[0]
    print(f"deepatoms: {torch.get_num_threads()} torch threads, float32, skin {args.skin} Å")
    for k in SYSTEMS:
        i = dp.info[k]
        start = read_start(args.workdir, k)
        n_rc = pairs_within(start, i["cutoff"])
        i["edges_cutoff"] = n_rc
        line = (
            f"  {k:8s} {LABEL[k]}: {i['n_atoms']} atoms; directed edges at start: "
            f"{n_rc} within {i['cutoff']:g} Å, deepatoms list {i['edges_list']} "
            "(cutoff + skin, pruned to the cutoff every step)"
        )
        if worker is not None:
            s = worker.info[k]
            line += (
                f", SchNetPack list {s['edges_list']}, model input {s['edges_model']} "
                "(pruned to the cutoff every step)"
            )
        print(line)
    if worker is not None:
        for k in SYSTEMS:
            c = worker.info[k]["check"]
            extra = f", stress {c['max_dstress']:.2e} eV/Å³" if "max_dstress" in c else ""
            print(
                f"  same weights check ({k}): |ΔE| {c['dE']:.2e} eV, max |ΔF| {c['max_dF']:.2e} "
                f"eV/Å (max |F| {c['max_F']:.2f}){extra}"
            )

    runs: dict[str, dict[str, list[dict]]] = {s.name: {k: [] for k in SYSTEMS} for s in sides}
    try:
        for r in range(args.repeats):
            for k in SYSTEMS:
                for s in sides:
                    res = s.measure(k, args.warmup[k], args.steps[k])
                    runs[s.name][k].append(res)
                    print(
                        f"  round {r + 1}/{args.repeats} {k:8s} {s.name:10s}: "
                        f"{res['steps_per_s']:8.1f} steps/s ({res['ms_per_step']:7.2f} ms/step, "
                        f"{res['rebuilds']} rebuilds in {res['steps']} steps, T_end "
                        f"{res['T_end']:.0f} K, ΔE_tot {res['dE_meV_per_atom']:+.2f} meV/atom; "
                        f"load {os.getloadavg()[0]:.2f})",
                        flush=True,
                    )
    finally:
        if worker is not None:
            worker.close()

    best = {s.name: {k: max(runs[s.name][k], key=lambda x: x["steps_per_s"]) for k in SYSTEMS}
            for s in sides}  # fmt: skip
    d = best["deepatoms"]
    sp = best.get("SchNetPack")
    paired = {}  # median over rounds of the ratio of the two back-to-back measurements
    if sp:
        for k in SYSTEMS:
            pairs = zip(runs["deepatoms"][k], runs["SchNetPack"][k], strict=True)
            paired[k] = float(np.median([x["steps_per_s"] / y["steps_per_s"] for x, y in pairs]))
    print()
    for s in sides:
        for k in SYSTEMS:
            rates = ", ".join(f"{x['steps_per_s']:.1f}" for x in runs[s.name][k])
            print(f"{s.name} {k} steps/s per round: {rates}")
    head = f"{'best of ' + str(args.repeats) + ' rounds':34s} {'deepatoms':>10s}"
    if sp:
        head += f" {'SchNetPack':>11s} {'ratio':>7s} {'median paired ratio':>20s}"
    print(head)
    for k in SYSTEMS:
        label = f"{k} steps/s ({dp.info[k]['n_atoms']} atoms)"
        line = f"{label:34s} {d[k]['steps_per_s']:10.1f}"
        if sp:
            ratio = d[k]["steps_per_s"] / sp[k]["steps_per_s"]
            line += f" {sp[k]['steps_per_s']:11.1f} {ratio:7.2f} {paired[k]:20.2f}"
        print(line)
    for k in SYSTEMS:
        line = f"{k + ' ms/step':34s} {d[k]['ms_per_step']:10.2f}"
        if sp:
            line += f" {sp[k]['ms_per_step']:11.2f}"
        print(line)
    if sp:
        ok = all(d[k]["steps_per_s"] >= 2.0 * sp[k]["steps_per_s"] for k in SYSTEMS)
        print(f"target >= 2x SchNetPack's steps/s on both systems: {'met' if ok else 'NOT met'}")
    print(f"machine load after: {loadavg()}; wall time {time.perf_counter() - t_start:.0f} s")

    out: dict = {
        "steps_per_s_molecule": round(d["molecule"]["steps_per_s"], 2),
        "steps_per_s_bulk": round(d["bulk"]["steps_per_s"], 2),
    }
    if sp:
        out["ratio_molecule"] = round(
            d["molecule"]["steps_per_s"] / sp["molecule"]["steps_per_s"], 3
        )
        out["ratio_bulk"] = round(d["bulk"]["steps_per_s"] / sp["bulk"]["steps_per_s"], 3)
        out["spk_steps_per_s_molecule"] = round(sp["molecule"]["steps_per_s"], 2)
        out["spk_steps_per_s_bulk"] = round(sp["bulk"]["steps_per_s"], 2)
        out["spk_neighbors"] = f"SkinNeighborList({args.spk_neighbors}, skin {args.skin})"
        out["spk_malloc_tuned"] = bool(args.spk_malloc_tuned)
        out["spk_weights"] = "copied from the deepatoms models"
        out["spk_max_dF_molecule"] = worker.info["molecule"]["check"]["max_dF"]
        out["spk_max_dF_bulk"] = worker.info["bulk"]["check"]["max_dF"]
        out["ratio_molecule_median_paired"] = round(paired["molecule"], 3)
        out["ratio_bulk_median_paired"] = round(paired["bulk"], 3)
    out.update(
        n_atoms_molecule=dp.info["molecule"]["n_atoms"],
        n_atoms_bulk=dp.info["bulk"]["n_atoms"],
        rebuilds_molecule=d["molecule"]["rebuilds"],
        rebuilds_bulk=d["bulk"]["rebuilds"],
        steps_molecule=args.steps["molecule"],
        steps_bulk=args.steps["bulk"],
        repeats=args.repeats,
        threads=torch.get_num_threads(),
        loadavg_before=round(load_before, 2) if load_before is not None else None,
        loadavg_after=round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    )
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        main()
