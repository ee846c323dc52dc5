"""Active learning with a committee: the function behind ``deepatoms learn``
(docs/active-learning.md).

Each round, in the resumable run folder ``OUT``:

1. **train** a committee on every frame labelled so far (``round_k/committee``; from round 1 on
   every member starts from the previous round's member: warm start);
2. **evaluate** it on the fixed test set (energy and force MAE, calibration);
3. **explore**: MD with the committee from labelled frames at each temperature, recording a frame
   and its maximum per-atom force deviation d_max every ``interval`` steps (or, with ``rattle``,
   randomly displaced copies of labelled frames; or, with a ``pool``, the pool's unlabelled
   structures); an MD run stops early once d_max passes the upper trust level (the committee
   cannot be trusted beyond it), or once two atoms come closer than ``min_bond_ratio`` × the sum
   of their covalent radii: members trained on the same few frames can agree on a potential
   that lets atoms collapse onto each other, so d_max alone does not catch it, and one such
   frame (tens of eV above the rest) is enough to spoil the next committee. Collapsed rattled
   or pool frames are left out too; every such frame is named in the round's record
   (``unphysical``). A property model (no forces) scores pool structures by the committee std
   of its energy instead;
4. **select** frames with ``trust_low ≤ d_max ≤ trust_high`` (the candidates of DP-GEN, Zhang et
   al. 2020), at most ``per_round`` of them drawn uniformly at random as DP-GEN does (the
   largest deviations alone would be consecutive frames of the one trajectory that went
   furthest, nearly the same structure); property models take the largest std first (query by
   committee, Seung et al. 1992), as ``select="largest"`` does for potentials (up to the upper
   trust level); ``select="random"`` picks as many frames
   uniformly from all explored ones instead (the baseline of ``benchmarks/active_learning.py``);
5. **label** them with the reference calculator (GFN2-xTB for molecules, EMT for metals) and add
   them to ``labelled.h5``.

Every frame has an id (``r<round>/e<run>/T<temperature>/<step>``, ``pool/<index>``) stored with
its label; a frame whose id is already labelled is never labelled again, so a rerun after a kill
at any point goes on without repeating or losing a label. ``rounds.jsonl`` has one line per finished round and
``error_vs_labels.png`` the test force error against the number of labels.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from deepatoms.core.errors import DeepatomsError
from deepatoms.core.files import atomic_write_text, read_json, write_json
from deepatoms.core.progress import note
from deepatoms.core.results import Result
from deepatoms.data.dataset import read_dataset, write_dataset
from deepatoms.data.packed import PackedSystems
from deepatoms.data.validate import COLLAPSE_RATIO, collapsed_pair
from deepatoms.distribute.chunks import MemoryStore, chunk_ranges
from deepatoms.distribute.cluster import on_cluster
from deepatoms.distribute.engine import run_chunks

__all__ = ["LearnResult", "learn"]

SOURCE = "deepatoms learn"
#: Settings that run folders of earlier versions lack; such a run continues with the value given.
_ADDED = ("min_bond_ratio",)


class LearnResult(Result):
    """An active-learning run: ``out``, ``rounds`` (one record per round: ``labels``,
    ``test_energy_mae`` eV, ``test_force_mae`` eV/Å, ``explored``, ``candidates``,
    ``selected``, calibration), ``n_labels`` and ``wall_time_s``."""


class Reference:
    """The reference calculator: a name (``xtb``, ``emt``; built by
    :func:`deepatoms.simulate.reference.make_calculator` with ``settings``) or any ASE calculator
    given from Python (copied for each use; it must pickle to run on Dask workers)."""

    def __init__(self, spec: str | Any, settings: dict | None = None) -> None:
        self.spec = spec.lower() if isinstance(spec, str) else spec
        self.settings = dict(settings or {})

    @property
    def name(self) -> str:
        """``xtb``/``emt``, or ``python:<module>.<class>`` for a given calculator."""
        if isinstance(self.spec, str):
            return self.spec
        return f"python:{type(self.spec).__module__}.{type(self.spec).__qualname__}"

    def make(self, atoms: Atoms | None = None) -> tuple[Any, dict[str, Any]]:
        """A fresh calculator and its provenance record."""
        if isinstance(self.spec, str):
            from deepatoms.simulate.reference import make_calculator

            return make_calculator(self.spec, atoms, **self.settings)
        import copy

        return copy.deepcopy(self.spec), {"name": self.name, "given_from": "Python"}


def _label_frames(frames: Sequence[Atoms], reference: Reference,
                  on_item: Any = None) -> dict[str, Any]:  # fmt: skip
    """A chunk task: energy (eV), forces (eV/Å) and, for periodic cells, stress of each frame
    from the reference calculator (built here). A frame the calculator fails on (an xTB SCF that
    does not converge on a distorted structure) is left out; ``failed`` holds its index and the
    reason."""
    calc, _ = reference.make(frames[0])
    out: dict[str, list] = {"energy": [], "forces": [], "stress": [], "ok": [], "failed": []}
    for n, atoms in enumerate(frames, start=1):
        a = atoms.copy()
        a.calc = calc
        try:
            energy = float(a.get_potential_energy())
            forces = np.asarray(a.get_forces(), dtype=np.float64)
            stress = np.asarray(a.get_stress(voigt=True), dtype=np.float64) if a.pbc.all() else None
        except Exception as exc:  # any reference failure: the frame is dropped
            out["failed"].append((n - 1, f"{type(exc).__name__}: {exc}"))
            calc, _ = reference.make(frames[0])  # a clean state
        else:
            out["ok"].append(n - 1)
            out["energy"].append(energy)
            out["forces"].append(forces)
            if stress is not None:
                out["stress"].append(stress)
        if on_item is not None:
            on_item(n)
    return out


def _pack(frames: Sequence[Atoms], labels: dict[str, list], ids: Sequence[str]) -> PackedSystems:
    system = {"energy": np.asarray(labels["energy"], dtype=np.float64),
              "frame_id": np.asarray(list(ids), dtype=str)}  # fmt: skip
    if labels["stress"] and len(labels["stress"]) == len(frames):
        system["stress"] = np.asarray(labels["stress"], dtype=np.float64)
    return PackedSystems.from_atoms(list(frames), system_props=system,
                                    atom_props={"forces": list(labels["forces"])})  # fmt: skip


def _label(frames: list[Atoms], ids: list[str], reference: Reference,
           cluster: Any) -> tuple[PackedSystems | None, dict[str, str]]:  # fmt: skip
    """The labelled frames (None if every one failed) and ``{id: reason}`` of those the
    reference calculator failed on."""
    store = MemoryStore(len(frames))
    run_chunks(_label_frames, frames, chunk_ranges([(0, len(frames))], 10), store, cluster,
               args=(reference,), name="label")  # fmt: skip
    labels: dict[str, list] = {"energy": [], "forces": [], "stress": []}
    ok, failed = [], {}
    for lo, _, part in store.results():
        for k in labels:
            labels[k] += part[k]
        ok += [lo + i for i in part["ok"]]
        failed.update({ids[lo + i]: why for i, why in part["failed"]})
    if not ok:
        return None, failed
    return _pack([frames[i] for i in ok], labels, [ids[i] for i in ok]), failed


def _explore_md(starts: Sequence[tuple[str, Atoms]], model: str, temperature: float,
                steps: int, interval: int, timestep: float, trust_high: float,
                seed: tuple[int, int], ratio: float = COLLAPSE_RATIO) -> list[dict]:  # fmt: skip
    """Committee MD from each ``(id, start)``; every ``interval`` steps a frame with its d_max,
    stopping a run once d_max passes ``trust_high``, or at a frame with collapsed atoms
    (``ratio``, :func:`collapsed_pair`), which is returned as ``{"id", "unphysical": reason}``.
    ``seed``: (run seed, round)."""
    from ase import units
    from ase.constraints import FixCom
    from ase.md.langevin import Langevin

    from deepatoms.simulate.calculator import Calculator
    from deepatoms.simulate.md import initial_velocities

    calc = Calculator(model)
    out = []
    for n, (sid, start) in enumerate(starts, start=1):
        atoms = start.copy()
        atoms.calc = calc
        atoms.set_constraint(FixCom())
        rng = np.random.default_rng([*seed, n, int(temperature)])
        initial_velocities(atoms, temperature, rng)
        dyn = Langevin(atoms, timestep=timestep * units.fs, temperature_K=temperature,
                       friction=0.01 / units.fs, fixcm=False, rng=rng)  # fmt: skip
        for step in range(interval, steps + 1, interval):
            try:
                dyn.run(interval)
                d = float(calc.results["max_force_deviation"])
            except Exception:  # the committee broke down (e.g. atoms collided): stop here
                break
            fid = f"{sid}/T{temperature:g}/{step}"
            why = _collapsed(atoms, ratio)
            if why:
                out.append({"id": fid, "unphysical": why})
                break
            frame = Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
            out.append({"id": fid, "atoms": frame, "score": d})
            if not math.isfinite(d) or d > trust_high:
                break
    return out


def learn(
    out: str | os.PathLike, *, preset: str = "schnet-md17-fast", molecule: str | None = None,
    bulk: str | None = None, size: int | None = None,
    structure: str | os.PathLike | None = None, data: str | os.PathLike | None = None,
    pool: str | os.PathLike | None = None, calculator: str | Any | None = None,
    initial: int = 20, test: int = 50, test_temperatures: Sequence[float] | None = None,
    rounds: int = 3, ensemble: int = 3, max_epochs: int = 100, batch_size: int = 4,
    temperatures: Sequence[float] = (300.0, 600.0), steps: int = 200, interval: int = 10,
    timestep: float = 1.0, explorers: int = 4, trust_low: float = 0.05, trust_high: float = 0.5,
    per_round: int = 20, select: str = "deviation", explore: str | None = None,
    rattle: float = 0.05, min_bond_ratio: float = COLLAPSE_RATIO, overrides: Sequence[str] = (),
    seed: int = 0, workers: int = 1, scheduler: str | None = None, progress: bool = True,
) -> LearnResult:  # fmt: skip
    """Run (or continue) the active-learning loop of the module docstring in ``out``.

    Args:
        out: run folder.
        preset: preset of the committee members (``deepatoms presets``): a potential (trained on
            energy and forces; explores with MD) or a property model (trained on the energy;
            needs ``pool``).
        molecule, bulk, size, structure: the system: a molecule (name or SMILES; GFN2-xTB), a
            bulk metal or alloy cell of about ``size`` atoms (EMT), or a structure file (any
            ASE format; periodic cells are labelled with EMT, molecules with xTB). Without
            them, the first frame of ``data`` or ``pool``.
        data: labelled start instead of reference MD (a dataset with energy and, for
            potentials, forces).
        pool: candidate structures (a dataset ``.h5`` or any ASE-readable file): each round the
            committee scores the pool's unlabelled frames instead of running MD; the test set
            and (without ``data``) the start are drawn from it at random and never selected.
        calculator: reference calculator: ``xtb`` or ``emt`` (default by the system), or from
            Python any ASE calculator object (copied for each use; it must pickle for Dask).
        initial: frames labelled to start with: reference MD at 500 K, or pool frames.
        test: frames of the fixed test set: separate reference MD (other seeds), shared equally
            among ``test_temperatures`` (default: the exploration temperatures), or pool frames.
        test_temperatures: temperatures (K) of the test MD.
        rounds: rounds to run in all (a rerun with more continues).
        ensemble: committee members.
        max_epochs: training epochs per round.
        batch_size: the members' training batch size. Small, because the labelled set is
            small: a preset's 32 would make one optimiser step per epoch on 20 frames.
        temperatures: exploration MD temperatures (K).
        steps, interval, timestep: exploration MD steps per run, steps between recorded frames
            and time step (fs).
        explorers: MD runs per temperature (each from a labelled frame).
        trust_low, trust_high: trust levels on d_max (eV/Å; potentials).
        per_round: frames labelled per round at most.
        select: ``deviation``: potentials, frames with d_max between the trust levels; property
            models, the largest committee std first; ``largest``: the largest scores first
            (potentials: up to ``trust_high``); ``random``: uniform from the explored frames.
        explore: ``md`` (committee MD; the default), ``rattle`` (``explorers × steps /
            interval`` copies of random labelled frames with Gaussian displacements of
            ``rattle`` Å, scored by the committee) or ``pool`` (the default with ``pool``).
        rattle: displacement (Å, std) of ``explore="rattle"``.
        min_bond_ratio: an explored frame with two atoms closer than this fraction of the sum of
            their covalent radii is unphysical: its MD run stops there, and it is never
            selected (nor, from a pool, put in the test set or the start); 0 checks nothing.
        overrides: ``section.key=value`` settings of the members.
        seed: seed of everything random.
        workers, scheduler: Dask workers or cluster for training, exploration and labelling.
        progress: report on stderr.
    """
    from deepatoms.simulate.reference import DEFAULT_CALCULATOR
    from deepatoms.workflows.training import training_config

    t0 = time.time()
    explore = explore or ("pool" if pool is not None else "md")
    _check_choices(select, explore, rattle, batch_size, trust_low, trust_high, pool)
    _check_ratio(min_bond_ratio)
    _check_counts(ensemble=ensemble, test=test, initial=initial if data is None else 2,
                  per_round=per_round)  # fmt: skip
    potential = bool(training_config(preset, overrides)["data"].get("forces"))
    if not potential and explore != "pool":
        raise DeepatomsError(
            f"preset {preset!r} is a property model (no force labels), which cannot drive MD "
            "or score rattled frames by force deviation; give candidate structures with "
            "--pool, or a potential preset such as schnet-md17-fast"
        )
    pool_data = _read_pool(pool) if pool is not None else None
    pool_bad: dict[str, str] = {}  # the pool's collapsed frames: never labelled
    order = None
    if pool_data is not None:
        pool_bad = _physical(_pool_items(pool_data), min_bond_ratio)[1]
        order = _pool_order(pool_data, seed, pool_bad)
        if len(order) < test + (0 if data else initial) + 1:
            held = f"{len(pool_data)} structures" + (
                f", {len(pool_bad)} of them with collapsed atoms (--min-bond-ratio)"
                if pool_bad else "")  # fmt: skip
            raise DeepatomsError(f"the pool holds {held}, too few for --test {test} and "
                                 f"--initial {initial} with candidates left; give a larger pool "
                                 "or smaller numbers")  # fmt: skip
    if data is not None:
        _check_start(data, potential)
    atoms = _system(molecule, bulk, size, structure, data, pool_data, seed)
    kind = atoms.info.get("kind") or ("bulk" if atoms.pbc.all() else "molecule")
    spec = calculator if calculator is not None else DEFAULT_CALCULATOR[kind]
    reference = Reference(spec)
    if reference.spec == "xtb":
        reference.settings["threads"] = 1  # one per labelling process
    run = Path(out)
    run.mkdir(parents=True, exist_ok=True)
    settings = {"preset": preset, "molecule": molecule, "bulk": bulk, "size": size,
                "structure": str(structure) if structure else None,
                "data": str(data) if data else None, "pool": str(pool) if pool else None,
                "calculator": reference.name, "potential": potential, "initial": initial,
                "test": test,
                "test_temperatures": [float(t) for t in (test_temperatures or temperatures)],
                "ensemble": ensemble, "max_epochs": max_epochs, "batch_size": batch_size,
                "temperatures": [float(t) for t in temperatures], "steps": steps,
                "interval": interval, "timestep": timestep, "explorers": explorers,
                "trust_low": trust_low, "trust_high": trust_high, "per_round": per_round,
                "select": select, "explore": explore, "rattle": rattle,
                "min_bond_ratio": min_bond_ratio, "overrides": list(overrides),
                "seed": seed}  # fmt: skip
    saved = run / "settings.json"
    if saved.is_file():
        old = read_json(saved)
        # a setting added after the run began (``_ADDED``) takes the value given now
        diff = [k for k in settings if (k in old or k not in _ADDED)
                and old.get(k) != json.loads(json.dumps(settings[k]))]  # fmt: skip
        if diff:
            raise DeepatomsError(f"{run} holds a learning run with other settings ({', '.join(diff)}); "
                                 "repeat them to continue (only --rounds may grow) or choose "
                                 "another --out")  # fmt: skip
        if any(k not in old for k in settings):
            write_json(saved, settings)
    else:
        write_json(saved, settings)
    say = note if progress else (lambda _text: None)
    log_path = run / "rounds.jsonl"
    records = [json.loads(line) for line in log_path.read_text().splitlines()] \
        if log_path.is_file() else []  # fmt: skip
    with on_cluster(workers, scheduler, progress) as cluster:
        _make_test_and_start(run, settings, atoms, kind, reference, pool_data, order, cluster,
                             say)  # fmt: skip
        for r in range(len(records), rounds):
            rec = _round(run, r, settings, reference, pool_data, pool_bad, cluster, say)
            records.append(rec)
            atomic_write_text(log_path, "".join(json.dumps(x) + "\n" for x in records))
            _plot(run, records)
    n_labels = len(read_dataset(run / "labelled.h5")[0])
    return LearnResult(out=str(run), rounds=records, n_labels=n_labels,
                       wall_time_s=round(time.time() - t0, 3))  # fmt: skip


def _check_choices(select: str, explore: str, rattle: float, batch_size: int, trust_low: float,
                   trust_high: float, pool: Any) -> None:  # fmt: skip
    """One clear error for a bad option of :func:`learn`."""
    if select not in ("deviation", "largest", "random"):
        raise DeepatomsError(f"--select must be deviation, largest or random, got {select!r}")
    if explore not in ("md", "rattle", "pool"):
        raise DeepatomsError(f"--explore must be md, rattle or pool, got {explore!r}")
    if (explore == "pool") != (pool is not None):
        raise DeepatomsError("--explore pool needs --pool FILE, and --pool is explored only "
                             "with --explore pool (the default when --pool is given)")  # fmt: skip
    if explore == "rattle" and not rattle > 0:
        raise DeepatomsError(f"--rattle must be > 0 Å, got {rattle!r}")
    if batch_size < 1:
        raise DeepatomsError(f"--batch-size must be ≥ 1, got {batch_size}")
    if not 0 <= trust_low < trust_high:
        raise DeepatomsError(f"need 0 ≤ --trust-low < --trust-high, got {trust_low}, {trust_high}")


def _check_ratio(ratio: float) -> None:
    """One clear error for a ``min_bond_ratio`` that cannot be meant."""
    if not (isinstance(ratio, int | float) and 0 <= ratio < 1):
        raise DeepatomsError(f"--min-bond-ratio must be ≥ 0 and < 1 (a fraction of the covalent "
                             f"bond length; 0 switches the check off), got {ratio!r}")  # fmt: skip


def _check_counts(**counts: int) -> None:
    """A committee needs 2 members, training 2 labelled frames (one for validation), the test
    set and each round at least one frame."""
    least = {"ensemble": 2, "test": 1, "initial": 2, "per_round": 1}
    for name, n in counts.items():
        if not isinstance(n, int) or n < least[name]:
            flag = "--" + name.replace("_", "-")
            raise DeepatomsError(f"{flag} must be an integer ≥ {least[name]}, got {n!r}")


def _check_start(data: str | os.PathLike, potential: bool) -> None:
    """Refuse a labelled start without the labels the members train on."""
    start, _ = read_dataset(data)
    missing = [] if "energy" in start.system_props else ["energy"]
    missing += ["forces"] if potential and "forces" not in start.atom_props else []
    if missing:
        raise DeepatomsError(f"the labelled start --data {data} has no {' or '.join(missing)} "
                             "labels; label it first (deepatoms datagen) or give --molecule, "
                             "--bulk or --structure to start from reference MD")  # fmt: skip


def _read_pool(path: str | os.PathLike) -> PackedSystems:
    """The candidate structures of ``path``: a deepatoms dataset or any ASE-readable file."""
    from deepatoms.data.sources.ase_io import read_structures

    p = Path(path)
    try:
        pool = read_dataset(p)[0] if p.suffix == ".h5" else read_structures(p, progress=False)[0]
    except (OSError, ValueError) as exc:
        raise DeepatomsError(f"cannot read the candidate pool --pool {p}: {exc}") from None
    if len(pool) == 0:
        raise DeepatomsError(f"the candidate pool {p} holds no structures")
    return pool


def _system(molecule: str | None, bulk: str | None, size: int | None,
            structure: str | os.PathLike | None, data: str | os.PathLike | None,
            pool: PackedSystems | None, seed: int) -> Atoms:  # fmt: skip
    """The system's structure (``info["kind"]``: molecule or bulk), from exactly one source."""
    from deepatoms.workflows.datagen import starting_structure

    given = [o for o, v in (("--molecule", molecule), ("--bulk", bulk), ("--structure", structure))
             if v is not None]  # fmt: skip
    if len(given) > 1:
        raise DeepatomsError(f"give one of {', '.join(given)}, not several")
    if molecule is not None or bulk is not None:
        return starting_structure(molecule, bulk, None, size, None, seed)
    if size is not None:
        raise DeepatomsError("--size applies to --bulk only")
    if structure is not None:
        import ase.io

        from deepatoms.core.files import check_input_file

        path = check_input_file(structure, "--structure file")
        try:
            atoms = ase.io.read(path, index=0)
        except Exception as exc:
            raise DeepatomsError(f"cannot read a structure from --structure {path}: "
                                 f"{type(exc).__name__}: {exc}") from None  # fmt: skip
    elif data is not None:
        atoms = read_dataset(data)[0].get_atoms(0)
    elif pool is not None:
        atoms = pool.get_atoms(0)
    else:
        raise DeepatomsError("give the system: --molecule, --bulk, --structure FILE, a labelled "
                             "start --data FILE.h5 or candidates --pool FILE")  # fmt: skip
    atoms = Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    atoms.info["kind"] = "bulk" if atoms.pbc.all() else "molecule"
    return atoms


def _pool_items(pool: PackedSystems, skip: Collection[str] = ()) -> list[tuple[str, Atoms]]:
    """The pool's frames as ``(id, atoms)`` (ids ``pool/<index>``), except the ids in ``skip``."""
    return [(f"pool/{k}", _plain(pool.get_atoms(k))) for k in range(len(pool))
            if f"pool/{k}" not in skip]  # fmt: skip


def _pool_order(pool: PackedSystems, seed: int, bad: dict[str, str]) -> np.ndarray:
    """The pool's frames in the run's random order, the test set first, then the start; the
    collapsed frames ``bad`` are left out (they are never candidates either)."""
    order = np.random.default_rng([seed, 2]).permutation(len(pool))
    return np.array([k for k in order if f"pool/{k}" not in bad], dtype=int)


def _make_test_and_start(run: Path, s: dict, atoms: Atoms, kind: str, reference: Reference,
                         pool: PackedSystems | None, order: np.ndarray | None, cluster: Any,
                         say: Any) -> None:  # fmt: skip
    """``test.h5`` and ``labelled.h5`` (module docstring), unless they exist; with a pool, they
    are drawn in the order ``order`` (:func:`_pool_order`)."""
    from deepatoms.datagen.md import generate_md

    labelled_path, test_path = run / "labelled.h5", run / "test.h5"
    strain = 0.02 if kind == "bulk" else 0.0
    if not test_path.is_file():
        if order is not None:
            say(f"labelling the test set: {s['test']} pool frames with {reference.name}")
            tdata = _label_pool(pool, order[: s["test"]], reference, cluster, say, "test")
            tmeta = {"units": _label_units(tdata), "source": SOURCE,
                     "provenance": {"calculator": reference.name}}  # fmt: skip
        else:
            temps = s["test_temperatures"]
            say(f"labelling the test set: {s['test']} frames of reference MD at "
                f"{', '.join(f'{t:g}' for t in temps)} K")  # fmt: skip
            parts, tmeta = [], {}
            for k, temp in enumerate(temps):
                n = s["test"] // len(temps) + (k < s["test"] % len(temps))
                if n:
                    calc, prov = reference.make(atoms)
                    part, tmeta = generate_md(atoms, calc, prov, temperature=temp, n_frames=n,
                                              stride=5, equilibration_steps=50,
                                              seed=s["seed"] + 1000 + k, strain=strain)  # fmt: skip
                    parts.append(part)
            tmeta["provenance"]["test_temperatures_K"] = temps
            tdata = PackedSystems.concatenate(parts) if len(parts) > 1 else parts[0]
        write_dataset(test_path, tdata, tmeta)
    if labelled_path.is_file():
        return
    if s["data"] is not None:
        start, meta = read_dataset(s["data"])
    elif order is not None:
        say(f"labelling the start: {s['initial']} pool frames with {reference.name}")
        idx = order[s["test"] : s["test"] + s["initial"]]
        start = _label_pool(pool, idx, reference, cluster, say, "start")
        meta = {"units": _label_units(start), "source": SOURCE,
                "provenance": {"calculator": reference.name}}  # fmt: skip
    else:
        say(f"labelling the start: {s['initial']} frames of reference MD")
        calc, prov = reference.make(atoms)
        start, meta = generate_md(atoms, calc, prov, temperature=500.0, n_frames=s["initial"],
                                  stride=5, equilibration_steps=20, seed=s["seed"],
                                  strain=strain)  # fmt: skip
    if "frame_id" not in start.system_props or s["data"] is not None:
        start.system_props["frame_id"] = np.array([f"start/{k}" for k in range(len(start))])
    meta["units"] = {**meta.get("units", {}), "frame_id": ""}
    write_dataset(labelled_path, start, meta)


def _label_units(data: PackedSystems) -> dict[str, str]:
    """The units of the reference labels present in ``data``."""
    units = {"energy": "eV", "forces": "eV/Å", "stress": "eV/Å^3", "frame_id": ""}
    return {k: u for k, u in units.items() if k in data.system_props or k in data.atom_props}


def _label_pool(pool: PackedSystems, idx: np.ndarray, reference: Reference, cluster: Any,
                say: Any, what: str) -> PackedSystems:  # fmt: skip
    """Pool frames ``idx`` labelled, with ids ``pool/<index>``; failures are left out."""
    frames = [_plain(pool.get_atoms(int(i))) for i in idx]
    packed, failed = _label(frames, [f"pool/{int(i)}" for i in idx], reference, cluster)
    if failed:
        say(f"{reference.name} failed on {len(failed)} {what} frame(s), left out: "
            f"{', '.join(sorted(failed)[:5])}")  # fmt: skip
    if packed is None:
        raise DeepatomsError(f"the reference calculator {reference.name} failed on every {what} "
                             f"frame of the pool (first: {next(iter(failed.values()))})")  # fmt: skip
    return packed


def _plain(atoms: Atoms) -> Atoms:
    """``atoms`` without labels or calculator: numbers, positions, cell and pbc."""
    return Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=atoms.pbc)


def _round(run: Path, r: int, s: dict, reference: Reference, pool: PackedSystems | None,
           pool_bad: dict[str, str], cluster: Any, say: Any) -> dict[str, Any]:  # fmt: skip
    """One round (module docstring); each stage's result is kept in ``round_<r>/``.
    ``pool_bad``: the pool's collapsed frames with the reason."""
    from deepatoms.workflows.evaluation import evaluate
    from deepatoms.workflows.training import train

    folder = run / f"round_{r}"
    folder.mkdir(exist_ok=True)
    labelled, meta = read_dataset(run / "labelled.h5")
    if (folder / "record.json").is_file():  # labelled already; add the labels if a kill lost them
        rec = read_json(folder / "record.json")
        done = [i for i in rec["selected_ids"] if i not in rec.get("label_failed", {})]
        if done and done[0] not in set(labelled.system_props["frame_id"].tolist()):
            new, _ = read_dataset(folder / "labels.h5")
            write_dataset(run / "labelled.h5",
                          PackedSystems.concatenate([labelled, _like(new, labelled)]), meta)  # fmt: skip
        return rec
    n_labels = len(labelled)
    say(f"round {r}: training a committee of {s['ensemble']} on {n_labels} labelled frames")
    n_val = max(1, round(0.1 * n_labels))
    init = run / f"round_{r - 1}" / "committee" if r > 0 else None
    own = [f"train.batch_size={s['batch_size']}"]
    if not s["potential"]:
        # a property model learns the reference energy, with per-element offsets fitted
        own += ["data.target=energy", "data.atomref=fit"]
    overrides = [*own, *s["overrides"], f"data.n_train={n_labels - n_val}", f"data.n_val={n_val}",
                 "data.n_test=0", f"train.seed={s['seed']}"]  # fmt: skip
    train(s["preset"], str(run / "labelled.h5"), folder / "committee", overrides=overrides,
          max_epochs=s["max_epochs"], ensemble=s["ensemble"], init=init, progress=False,
          scheduler=cluster.address)  # fmt: skip
    model = str(folder / "committee" / "model.pt")
    ev = evaluate(model, run / "test.h5", split="all", progress=False,
                  plot=folder / "test_parity.png", forces="auto" if s["potential"] else "none")  # fmt: skip
    unc = ev.get("uncertainty", {})
    rec: dict[str, Any] = {
        "round": r, "labels": n_labels, "test_energy_mae": ev["mae"],
        "test_force_mae": ev.get("force_mae"),
        "test_spearman_abs_error_std": unc.get("spearman_abs_error_std"),
        "test_miscalibration_area": unc.get("miscalibration_area"),
        "test_nll": unc.get("nll"),
    }  # fmt: skip
    seen = set(labelled.system_props["frame_id"].tolist())
    if pool is not None:  # the test frames are pool frames too; never candidates
        seen |= set(read_dataset(run / "test.h5")[0].system_props["frame_id"].tolist())
    explored, unphysical = _explore(folder, labelled, model, s, r, pool, pool_bad, seen,
                                    cluster, say)  # fmt: skip
    fresh = [f for f in explored if f["id"] not in seen]
    chosen = _select(fresh, s, r)
    inside = [f for f in fresh if s["trust_low"] <= f["score"] <= s["trust_high"]]
    rec.update(explored=len(explored), candidates=len(inside) if s["potential"] else len(fresh),
               selected=len(chosen), score=_score_name(s), unphysical=unphysical)  # fmt: skip
    rec["selected_scores"] = [float(f["score"]) for f in chosen]
    rec["selected_ids"] = [f["id"] for f in chosen]
    rec["label_failed"] = {}
    new = None
    if not chosen and s["select"] == "deviation" and fresh:
        low = sum(f["score"] < s["trust_low"] for f in fresh)
        say(f"round {r}: no explored frame lies between the trust levels ({low} below "
            f"{s['trust_low']:g}, {len(fresh) - low} above {s['trust_high']:g} eV/Å); "
            + ("the committee is confident on all of them: lower --trust-low or explore further"
               if low == len(fresh) else
               "the committee breaks down at once: raise --trust-high or train longer "
               "(--max-epochs)"))  # fmt: skip
    if chosen:
        say(f"round {r}: labelling {len(chosen)} of {len(explored)} explored frames with "
            f"{reference.name}")  # fmt: skip
        new, rec["label_failed"] = _label([f["atoms"] for f in chosen], rec["selected_ids"],
                                          reference, cluster)  # fmt: skip
        if rec["label_failed"]:
            say(f"round {r}: {reference.name} failed on {len(rec['label_failed'])} frame(s), "
                "left out (record.json: label_failed)")  # fmt: skip
        if new is not None:
            new = _like(new, labelled)
            write_dataset(folder / "labels.h5", new, meta)
    rec["labelled"] = len(chosen) - len(rec["label_failed"])
    write_json(folder / "record.json", rec)  # from here on the round's labels are kept
    if new is not None:
        write_dataset(run / "labelled.h5", PackedSystems.concatenate([labelled, new]), meta)
    return rec


def _score_name(s: dict) -> str:
    """What a frame's score is: d_max for potentials, the energy std for property models."""
    return "max_force_deviation [eV/Å]" if s["potential"] else "energy std [eV]"


def _like(new: PackedSystems, old: PackedSystems) -> PackedSystems:
    """``new`` with exactly the property columns of ``old`` (stress only where both have it)."""
    new.system_props = {k: new.system_props[k] for k in old.system_props}
    new.atom_props = {k: new.atom_props[k] for k in old.atom_props}
    return new


def _explore(folder: Path, labelled: PackedSystems, model: str, s: dict, r: int,
             pool: PackedSystems | None, pool_bad: dict[str, str], seen: set[str], cluster: Any,
             say: Any) -> tuple[list[dict], dict[str, str]]:  # fmt: skip
    """The explored frames of round ``r``, each ``{"id", "atoms", "score"}``, and the ids of the
    unphysical ones left out with the reason (kept in ``folder/explored.h5``, or for a pool the
    ids and scores in ``folder/explored.json``). A pool's unphysical frames are ``pool_bad``."""
    saved = folder / ("explored.json" if pool is not None else "explored.h5")
    if saved.is_file() and pool is not None:
        kept = read_json(saved)
        return [{"id": i, "atoms": _plain(pool.get_atoms(int(i.split("/")[1]))), "score": x}
                for i, x in zip(kept["ids"], kept["scores"], strict=True)], \
            kept.get("unphysical", {})  # fmt: skip
    if saved.is_file():
        data, meta = read_dataset(saved)
        score = meta["provenance"]["scores"]
        ids = data.system_props["frame_id"].tolist()
        return [{"id": i, "atoms": data.get_atoms(k), "score": score[k]}
                for k, i in enumerate(ids)], meta["provenance"].get("unphysical", {})  # fmt: skip
    rng = np.random.default_rng([s["seed"], r])
    ratio = s["min_bond_ratio"]
    if pool is not None:
        items, bad = _pool_items(pool, seen | set(pool_bad)), pool_bad
        say(f"round {r}: scoring {len(items)} unlabelled pool structures with the committee"
            + (f" ({len(bad)} with collapsed atoms left out)" if bad else ""))  # fmt: skip
        frames = _score(items, model, s, cluster)
        write_json(saved, {"ids": [f["id"] for f in frames],
                           "scores": [f["score"] for f in frames], "score": _score_name(s),
                           "unphysical": bad})  # fmt: skip
        return frames, bad
    if s["explore"] == "rattle":
        n = s["explorers"] * max(1, s["steps"] // s["interval"])
        picks = rng.integers(0, len(labelled), n)
        items = []
        for k, i in enumerate(picks):
            a = labelled.get_atoms(int(i))
            a.positions = a.positions + rng.normal(0.0, s["rattle"], a.positions.shape)
            items.append((f"r{r}/rattle{k}", _plain(a)))
        items, bad = _physical(items, ratio)
        say(f"round {r}: scoring {len(items)} rattled frames with the committee"
            + (f" ({len(bad)} with collapsed atoms left out)" if bad else ""))  # fmt: skip
        frames = _score(items, model, s, cluster)
    else:
        picks = rng.integers(0, len(labelled), s["explorers"])
        jobs = [(T, [(f"r{r}/e{n}", labelled.get_atoms(int(k))) for n, k in enumerate(picks)])
                for T in s["temperatures"]]  # fmt: skip
        say(f"round {r}: exploring with committee MD at {', '.join(f'{T:g}' for T, _ in jobs)} K")
        store = MemoryStore(len(jobs))
        run_chunks(_explore_task, jobs, chunk_ranges([(0, len(jobs))], 1), store, cluster,
                   args=(model, s, r), name="explore")  # fmt: skip
        found = [f for _, _, part in store.results() for f in part]
        frames = [f for f in found if "unphysical" not in f]
        bad = {f["id"]: f["unphysical"] for f in found if "unphysical" in f}
        if bad:
            say(f"round {r}: {len(bad)} exploration run(s) stopped where atoms collapsed "
                f"(closer than {ratio:g} × their covalent radii)")  # fmt: skip
    if frames:  # (none: the round records no selection, so a rerun never comes here again)
        pack = PackedSystems.from_atoms([f["atoms"] for f in frames],
                                        system_props={"frame_id": np.array([f["id"] for f in frames])})  # fmt: skip
        write_dataset(saved, pack, {"units": {}, "source": SOURCE,
                                    "provenance": {"scores": [f["score"] for f in frames],
                                                   "score": _score_name(s), "round": r,
                                                   "unphysical": bad}})  # fmt: skip
    return frames, bad


def _score(items: list[tuple[str, Atoms]], model: str, s: dict, cluster: Any) -> list[dict]:
    """Each ``(id, frame)`` with the committee's score (d_max or energy std; ``inf`` where it is
    not finite), predicted in batches and chunks on the cluster by :func:`predict`."""
    from deepatoms.workflows.evaluation import predict

    if not items:
        return []
    res = predict(model, [a for _, a in items], progress=False, scheduler=cluster.address)
    scores = np.asarray(res["max_force_deviation"] if s["potential"] else res["std"], dtype=float)
    scores = np.where(np.isfinite(scores), scores, math.inf)
    return [{"id": i, "atoms": a, "score": float(x)}
            for (i, a), x in zip(items, scores, strict=True)]  # fmt: skip


def _explore_task(jobs: Sequence[tuple[float, list]], model: str, s: dict, r: int,
                  on_item: Any = None) -> list[dict]:  # fmt: skip
    """A chunk task: :func:`_explore_md` of round ``r`` at each ``(temperature, starts)``."""
    out = []
    for T, starts in jobs:
        out += _explore_md(starts, model, T, s["steps"], s["interval"], s["timestep"],
                           s["trust_high"], (s["seed"], r), s["min_bond_ratio"])  # fmt: skip
    return out


def _collapsed(atoms: Atoms, ratio: float) -> str | None:
    """Why ``atoms`` is unphysical (two atoms collapsed onto each other), or None."""
    return collapsed_pair(atoms.numbers, atoms.positions, atoms.cell.array, atoms.pbc, ratio)


def _physical(items: list[tuple[str, Atoms]], ratio: float) -> tuple[list, dict[str, str]]:
    """``items`` (``(id, atoms)``) without the collapsed ones, and those ids with the reason
    (``ratio`` 0: all of them)."""
    if ratio <= 0:
        return items, {}
    bad = {i: why for i, a in items if (why := _collapsed(a, ratio))}
    return [(i, a) for i, a in items if i not in bad], bad


def _select(frames: list[dict], s: dict, r: int) -> list[dict]:
    """The frames to label (module docstring, step 4)."""
    if s["select"] == "random":
        rng = np.random.default_rng([s["seed"], r, 7])
        idx = rng.permutation(len(frames))[: s["per_round"]]
        return [frames[k] for k in sorted(idx)]
    if s["select"] == "largest" or not s["potential"]:  # query by committee: largest first
        usable = [f for f in frames if not s["potential"] or f["score"] <= s["trust_high"]]
        return sorted(usable, key=lambda f: -f["score"])[: s["per_round"]]
    inside = [f for f in frames if s["trust_low"] <= f["score"] <= s["trust_high"]]
    rng = np.random.default_rng([s["seed"], r, 11])
    idx = rng.permutation(len(inside))[: s["per_round"]]
    return [inside[k] for k in sorted(idx)]


def _plot(run: Path, records: list[dict]) -> None:
    """``error_vs_labels.png``: test force (and energy) MAE against the labels used."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from deepatoms.core.files import atomic_target

    x = [r["labels"] for r in records]
    fig, ax = plt.subplots(figsize=(5, 4))
    if all(r.get("test_force_mae") is not None for r in records):
        ax.plot(x, [r["test_force_mae"] for r in records], "o-", label="force MAE (eV/Å)")
    ax.plot(x, [r["test_energy_mae"] for r in records], "s--", label="energy MAE (eV)")
    ax.set(xlabel="labelled frames", ylabel="test error", yscale="log",
           title="active learning")  # fmt: skip
    ax.legend()
    fig.tight_layout()
    with atomic_target(run / "error_vs_labels.png") as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
