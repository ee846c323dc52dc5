"""Generate molecules with a trained G-SchNet: the function behind ``deepatoms generate gschnet``
(Gebauer, Gastegger & Schütt 2019)."""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
from ase import Atoms

from deepatoms import __version__
from deepatoms.core.device import resolve_device
from deepatoms.core.errors import DeepatomsError
from deepatoms.core.progress import ProgressBar
from deepatoms.core.results import Result
from deepatoms.distribute.chunks import (
    ChunkStore,
    chunk_ranges,
    load_arrays,
    parts_folder,
    save_arrays,
)
from deepatoms.distribute.cluster import on_cluster
from deepatoms.distribute.engine import run_chunks

__all__ = ["GenerationResult", "generate_gschnet"]


class GenerationResult(Result):
    """Generated molecules: ``out``, ``model``, the settings (``seed``, ``temperature``,
    ``max_atoms``, ``chunk``, ``device``) and the counts ``requested``, ``finished``,
    ``discarded_cap``, ``discarded_nan``, ``molecules_per_minute``, ``wall_s``, ``written``."""


def generate_gschnet(
    model: str | os.PathLike, n: int, out: str | os.PathLike, *, temperature: float = 0.1,
    seed: int = 0, max_atoms: int = 35, chunk: int = 1000, device: str = "cpu",
    overwrite: bool = False, progress: bool = True, workers: int = 1,
    scheduler: str | None = None,
) -> GenerationResult:  # fmt: skip
    """Generate ``n`` molecules atom by atom in 3-D with a G-SchNet (run folder or model file)
    at ``temperature`` (Eq. 5 of the paper) and write the finished ones to ``out`` (ASE
    database .db or extended XYZ). Molecules that reach ``max_atoms`` atoms or whose densities
    turn NaN are discarded and counted.

    Molecules are made in chunks of ``chunk`` (each with its own seed, so the molecules do not
    depend on where the chunks run): on ``workers`` local Dask processes or the cluster at
    ``scheduler`` when given; finished chunks wait in ``OUT.parts`` and the same call after a
    kill continues from them. Give at least as many chunks as workers (``n / chunk``)."""
    from deepatoms.generate.gschnet_sampler import joined_stats
    from deepatoms.generate.output import check_output_path, write_molecules
    from deepatoms.models.loading import load_model

    if n < 1:
        raise DeepatomsError(f"-n must be at least 1 molecule, got {n}")
    if not temperature > 0:
        raise DeepatomsError(f"--temperature must be > 0, got {temperature}")
    if max_atoms < 2:
        raise DeepatomsError(f"--max-atoms must be at least 2, got {max_atoms}")
    if chunk < 1:
        raise DeepatomsError(f"--chunk must be at least 1 molecule, got {chunk}")
    check_output_path(out, overwrite)  # fail before the generation, not after
    loaded = load_model(model, expect="gschnet")
    net = loaded.model.to(resolve_device(device))
    model_file = loaded.meta["model_file"]
    store = ChunkStore(
        parts_folder(out), job="deepatoms generate gschnet", n_items=n,
        settings={"model": str(model_file), "model_sha256": _sha256(model_file), "seed": seed, "temperature": temperature,
                  "max_atoms": max_atoms, "chunk": chunk},
        save=save_arrays, load=load_arrays, overwrite=overwrite,
    )  # fmt: skip
    t0 = time.perf_counter()
    with (
        on_cluster(workers, scheduler, progress) as cluster,
        ProgressBar("generating", quiet=not progress) as bar,
    ):
        run_chunks(_generate_range, range(n), chunk_ranges(store.missing(), chunk), store, cluster,
                   args=(net, temperature, seed, max_atoms, chunk), progress=bar,
                   name="generate")  # fmt: skip
    molecules, parts = [], []
    for _, _, arrays in store.results():
        molecules += _molecules(arrays, seed, temperature)
        parts.append({k: int(arrays[k]) for k in _COUNTS})
    stats = joined_stats(parts, n, time.perf_counter() - t0)
    settings = {"seed": seed, "temperature": temperature, "max_atoms": max_atoms, "chunk": chunk,
                "device": device}  # fmt: skip
    metadata = {"generator": "deepatoms generate gschnet", "deepatoms_version": __version__,
                "model": model_file, **settings, "stats": stats, "units": {"positions": "Å"}}  # fmt: skip
    written = write_molecules(out, molecules, model=model_file, seed=seed, temperature=temperature,
                              metadata=metadata, overwrite=overwrite)  # fmt: skip
    store.remove()
    return GenerationResult(out=str(out), model=model_file, **settings, **stats, written=written,
                            workers=cluster.n_workers)  # fmt: skip


def _sha256(path: str | os.PathLike) -> str:
    import hashlib

    return hashlib.sha256(open(path, "rb").read()).hexdigest()


_COUNTS = ("finished", "discarded_cap", "discarded_nan", "steps", "placements")


def _generate_range(
    indices: range, net: Any, temperature: float, seed: int, max_atoms: int, chunk: int,
    on_item: Any = None,
) -> dict[str, np.ndarray]:  # fmt: skip
    """A chunk task: the molecules ``indices`` (one whole chunk) as arrays (``numbers``,
    ``positions`` Å, ``count`` and ``index`` per finished molecule) and the chunk's counts."""
    from deepatoms.generate.gschnet_sampler import generate_chunk

    def report(done: int, _size: int) -> None:
        if on_item is not None:
            on_item(done)

    mols, stats = generate_chunk(net, indices.start, len(indices), indices.start // chunk,
                                 temperature=temperature, seed=seed, max_atoms=max_atoms,
                                 progress=report)  # fmt: skip
    return {
        "numbers": np.concatenate([m.numbers for m in mols] or [np.zeros(0, int)]),
        "positions": np.concatenate([m.positions for m in mols] or [np.zeros((0, 3))]),
        "count": np.array([len(m) for m in mols], dtype=np.int64),
        "index": np.array([m.info["index"] for m in mols], dtype=np.int64),
        **{k: np.array(stats[k]) for k in _COUNTS},
    }


def _molecules(arrays: dict[str, np.ndarray], seed: int, temperature: float) -> list[Atoms]:
    """The finished molecules of one stored chunk, as the sampler made them."""
    out, start = [], 0
    for count, index in zip(arrays["count"].tolist(), arrays["index"].tolist(), strict=True):
        mol = Atoms(numbers=arrays["numbers"][start : start + count],
                    positions=arrays["positions"][start : start + count])  # fmt: skip
        mol.info.update({"index": int(index), "seed": int(seed), "temperature": float(temperature)})
        out.append(mol)
        start += count
    return out
