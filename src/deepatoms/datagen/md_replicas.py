"""Labelled MD as independent replicas: the unit of work of ``deepatoms datagen md``.

One MD trajectory is a chain and cannot be split. ``replicas`` R independent trajectories of the
same starting structure can: replica k records ``frames // R`` frames (one more for
``k < frames % R``), with its own equilibration, and the seed ``seed`` for k = 0 and the seed
sequence ``(seed, k)`` otherwise (``numpy.random.default_rng``). With R = 1 the data are those of
one trajectory with ``seed``. Each replica is a chunk (:mod:`deepatoms.distribute`): it runs in
this process or on a Dask worker, is written to ``OUT.parts`` as it finishes, and a rerun of the
same command after a kill runs only the missing replicas. The dataset ``OUT`` is written once,
from the replicas in order, when all are done; so the result does not depend on where or in which
order the replicas ran.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from deepatoms.core.progress import Progress
from deepatoms.data.dataset import read_dataset, write_dataset
from deepatoms.data.packed import PackedSystems
from deepatoms.datagen.md import MD_SOURCE, _check_settings, generate_md
from deepatoms.distribute.chunks import ChunkStore, chunk_ranges, parts_folder
from deepatoms.distribute.cluster import Cluster
from deepatoms.distribute.engine import run_chunks

__all__ = ["frames_per_replica", "generate_md_replicas", "replica_seed"]


def frames_per_replica(frames: int, replicas: int) -> list[int]:
    """Frames recorded by each of ``replicas`` replicas (``frames`` in all, earlier ones first)."""
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1:
        raise ValueError(f"replicas must be a whole number ≥ 1, got {replicas!r}")
    if replicas > frames:
        raise ValueError(f"replicas ({replicas}) cannot exceed frames ({frames}): every replica "
                         "records at least one frame")  # fmt: skip
    return [frames // replicas + (k < frames % replicas) for k in range(replicas)]


def replica_seed(seed: int, k: int) -> int | list[int]:
    """The seed of replica ``k``: ``seed`` itself for k = 0, else ``[seed, k]``."""
    return int(seed) if k == 0 else [int(seed), int(k)]


def _save(path: Path, result: tuple[PackedSystems, dict]) -> None:
    write_dataset(path, *result)


def _run_replicas(
    replicas: Sequence[int], atoms: Atoms, calculator: str, settings: Mapping[str, Any],
    md: Mapping[str, Any], frames: Sequence[int], seed: int, on_item: Any = None,
) -> tuple[PackedSystems, dict]:  # fmt: skip
    """A chunk task: the replicas ``replicas`` (one per chunk), with a calculator built here
    (calculators do not travel between processes)."""
    from deepatoms.simulate.reference import make_calculator

    (k,) = replicas
    calc, prov = make_calculator(calculator, atoms, **settings)

    def steps(done: int, total: int) -> None:
        if on_item is not None:
            on_item(done / total)

    return generate_md(atoms, calc, prov, n_frames=frames[k], seed=replica_seed(seed, k),
                       progress=steps, **md)  # fmt: skip


def generate_md_replicas(
    out: str | Path, atoms: Atoms, calculator: str, settings: Mapping[str, Any], *,
    frames: int, replicas: int = 1, seed: int = 0, md: Mapping[str, Any],
    cluster: Cluster | None = None, overwrite: bool = False, progress: Progress | None = None,
) -> tuple[PackedSystems, dict[str, Any], dict[str, Any]]:  # fmt: skip
    """Run the ``replicas`` (module docstring) and write ``out``.

    Args:
        out: output dataset (.h5).
        atoms: starting structure (Å).
        calculator: reference calculator name (``xtb``, ``emt``) and its ``settings``
            (:func:`deepatoms.simulate.reference.make_calculator`).
        frames: frames in all.
        replicas: independent trajectories.
        seed: seed of replica 0 (the others: module docstring).
        md: further :func:`deepatoms.datagen.md.generate_md` settings (temperature, timestep,
            stride, equilibration_steps, friction, rattle, strain).
        cluster: where the replicas run (default this process).
        overwrite: discard the replicas of an unfinished earlier run.
        progress: ``progress(done, total)`` over replicas (fractions while one runs here).

    Returns:
        ``(data, metadata, run)``: the data written, their metadata and what the chunk engine
        did (``n_done_before``, ``n_new``, ``workers``).
    """
    _check_settings(n_frames=frames, **md)
    per = frames_per_replica(frames, replicas)
    job_settings = {
        "calculator": calculator, "calculator_settings": dict(settings), "frames": frames,
        "replicas": replicas, "seed": seed, "md": dict(md),
        "formula": atoms.get_chemical_formula(), "numbers": atoms.numbers.tolist(),
        "positions": np.round(atoms.positions, 8).tolist(),
        "cell": np.round(atoms.cell.array, 8).tolist(), "pbc": atoms.pbc.tolist(),
    }  # fmt: skip
    store = ChunkStore(parts_folder(out), job=MD_SOURCE, n_items=replicas, settings=job_settings,
                       save=_save, load=read_dataset, overwrite=overwrite)  # fmt: skip
    t0 = time.perf_counter()
    run = run_chunks(_run_replicas, list(range(replicas)), chunk_ranges(store.missing(), 1),
                     store, cluster, args=(atoms, calculator, dict(settings), dict(md), per, seed),
                     progress=progress, name="md-replica")  # fmt: skip
    parts = [result for _, _, result in store.results()]
    data = PackedSystems.concatenate([p for p, _ in parts]) if len(parts) > 1 else parts[0][0]
    meta = _joined_metadata([m for _, m in parts], per, seed, time.perf_counter() - t0)
    write_dataset(out, data, meta)
    store.remove()
    return data, meta, dict(run)


def _joined_metadata(metas: list[dict], per: list[int], seed: int, wall: float) -> dict:
    """Replica 0's metadata with the frame count, replica seeds, frame-weighted mean kinetic
    temperature and summed MD wall time of all replicas."""
    meta = metas[0]
    prov = meta["provenance"]
    temps = [m["provenance"]["observed"]["mean_kinetic_temperature_K"] for m in metas]
    prov["md"].update(n_frames=int(sum(per)), seed=seed, replicas=len(per),
                      frames_per_replica=per,
                      replica_seeds=[replica_seed(seed, k) for k in range(len(per))])  # fmt: skip
    prov["observed"]["mean_kinetic_temperature_K"] = float(np.average(temps, weights=per))
    prov["wall_time_s"] = round(sum(m["provenance"]["wall_time_s"] for m in metas), 3)
    prov["run_wall_time_s"] = round(wall, 3)
    return meta
