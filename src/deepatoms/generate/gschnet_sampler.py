"""Batched atom-by-atom generation with a trained G-SchNet (docs/gschnet.md §8).

Gebauer et al. 2019, Eqs. 1–5; per-molecule state as in the authors' public code. Many molecules
(a chunk, default 1,000) are generated together; each iteration advances every unfinished one by
one step:

1. Step 1: focus and origin tokens at the origin. Sample the first type from the plain softmax
   of the type head with **stop masked**; sample the first position on the 300-point x-axis grid
   (0–15 Å) from the product of the two tokens' distance distributions (no temperature).
2. Later steps: pick the focus uniformly among the molecule's placed atoms that are not finished
   (the focus token moves onto it). Sample the type (plain softmax, no temperature). If it is
   **stop**, mark the focus finished; else sample the position on the shell grid around the focus
   (0.9–1.7 Å, 140,214 points) from the tempered product over all atoms and both tokens of their
   distance distributions (``deepatoms.generate.grid``, Eqs. 3 and 5).
3. A molecule is finished when no unfinished atoms remain. Molecules reaching ``max_atoms``
   placed atoms (35) are discarded and counted, as are molecules whose type or position density
   is NaN (or nowhere finite).

The origin token stays at the origin, so output coordinates are relative to it ("re-centred on
the origin token"). Every random draw (focus, type, position) of chunk k (molecules
k·chunk … (k+1)·chunk − 1) comes from one ``torch.Generator`` seeded with :func:`chunk_seed`
(``seed`` itself for chunk 0): the same model, arguments (``chunk`` included) and seed give the
same molecules, whether the chunks run in turn here or at once on Dask workers.

Cost: the type and the distance head are read from two model calls per placement step (the
distance head is conditioned on the type just sampled). On a CPU the grid dominates: about 80 %
(paper size) to 95 % (fast size) of the time, ~10 ns per (node, grid point) on one thread
(benchmarks/generation_throughput.py).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch
from ase import Atoms
from torch import nn

from deepatoms.data.graph import Batch
from deepatoms.generate.grid import (
    apply_temperature,
    first_step_grid,
    grid_log_density,
    sample_grid,
    shell_grid,
)
from deepatoms.generate.steps import steps_batch
from deepatoms.models.gschnet import FOCUS_TOKEN, ORIGIN_TOKEN, STOP, TYPE_CLASSES

__all__ = ["chunk_seed", "generate_chunk", "generate_molecules", "joined_stats"]

#: Bound on grid values (steps × points) held at once: groups of ≈ 120 steps on the shell grid.
GRID_ELEMENTS = 1 << 24
#: Bound on (node × point) values per chunk of nodes in the density sum.
NODE_ELEMENTS = 1 << 23
#: Bound on the edges of one model call (all pairs: a step of n nodes has n(n − 1) edges).
MODEL_EDGES = 1 << 17

_RUNNING, _FINISHED, _CAP, _NAN = 0, 1, 2, 3


def chunk_seed(seed: int, k: int) -> int:
    """The generator seed of chunk ``k``: ``seed`` for k = 0, else drawn from the seed sequence
    ``(seed, k)`` (numpy ``SeedSequence``), so chunks are independent of each other."""
    if k == 0:
        return int(seed)
    import numpy as np

    return int(np.random.SeedSequence([int(seed), int(k)]).generate_state(1, np.uint64)[0] >> 1)


def _check_arguments(n: int, temperature: float, max_atoms: int, chunk: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"number of molecules must be a whole number >= 1, got {n!r}")
    if not (
        isinstance(temperature, int | float) and math.isfinite(temperature) and temperature > 0
    ):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    if isinstance(max_atoms, bool) or not isinstance(max_atoms, int) or max_atoms < 2:
        raise ValueError(f"max_atoms must be a whole number >= 2, got {max_atoms!r}")
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk must be a whole number of molecules >= 1, got {chunk!r}")


def generate_molecules(
    model: nn.Module, n: int, temperature: float = 0.1, seed: int = 0, max_atoms: int = 35,
    chunk: int = 1000, progress: Callable[[int, int], None] | None = None,
) -> tuple[list[Atoms], dict]:  # fmt: skip
    """Generate ``n`` molecules with a G-SchNet ``model``; returns (finished molecules, stats).

    ``temperature`` T > 0 of the position distribution (Eq. 5); ``max_atoms``: molecules reaching
    this many atoms are discarded (finished ones have 1 … max_atoms − 1 atoms); ``chunk``
    molecules are generated together; ``progress(done, n)`` is called as molecules complete.
    Each molecule's ``info`` holds ``index`` (its number among the n attempts), ``seed`` and
    ``temperature``; positions in Å relative to the origin token. ``stats``: ``requested``,
    ``finished``, ``discarded_cap``, ``discarded_nan``, ``steps`` (type draws, all molecules),
    ``placements`` (atoms placed, discarded molecules included), ``wall_s``,
    ``molecules_per_minute`` (finished molecules per minute of wall time).
    """
    _check_arguments(n, temperature, max_atoms, chunk)
    t0 = time.perf_counter()
    molecules: list[Atoms] = []
    parts = []
    for lo in range(0, n, chunk):
        size = min(chunk, n - lo)

        def report(done: int, _size: int, lo: int = lo) -> None:
            if progress is not None:
                progress(lo + done, n)

        mols, part = generate_chunk(model, lo, size, lo // chunk, temperature=temperature,
                                    seed=seed, max_atoms=max_atoms, progress=report)  # fmt: skip
        molecules += mols
        parts.append(part)
    return molecules, joined_stats(parts, n, time.perf_counter() - t0)


def joined_stats(parts: list[dict], n: int, wall: float) -> dict:
    """The stats of a whole generation from those of its chunks and the wall time (s)."""
    stats: dict = {"requested": n}
    for key in ("finished", "discarded_cap", "discarded_nan", "steps", "placements"):
        stats[key] = int(sum(int(p[key]) for p in parts))
    stats["wall_s"] = round(wall, 3)
    stats["molecules_per_minute"] = round(60.0 * stats["finished"] / wall, 2) if wall > 0 else None
    return stats


def generate_chunk(
    model: nn.Module, lo: int, size: int, k: int, *, temperature: float, seed: int,
    max_atoms: int, progress: Callable[[int, int], None] | None = None,
) -> tuple[list[Atoms], dict]:  # fmt: skip
    """Molecules ``lo … lo+size−1``, chunk ``k`` of a generation (its generator seeded with
    :func:`chunk_seed`); returns the finished molecules and the chunk's counts."""
    param = next(iter(model.parameters()), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None else torch.get_default_dtype()
    generator = torch.Generator(device=device)
    generator.manual_seed(chunk_seed(seed, k))
    bins = model.bins.to(device=device, dtype=dtype)
    grids = (
        first_step_grid(bins.shape[0], float(bins[-1]), dtype).to(device),
        shell_grid(dtype=dtype).to(device),
    )
    stats = {"finished": 0, "discarded_cap": 0, "discarded_nan": 0, "steps": 0, "placements": 0}
    molecules: list[Atoms] = []
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            state = _Chunk(size, max_atoms, device, dtype)
            while bool((state.status == _RUNNING).any()):
                steps, placed = _advance(model, state, grids, bins, temperature, generator)
                stats["steps"] += steps
                stats["placements"] += placed
                if progress is not None:
                    progress(int((state.status != _RUNNING).sum()), size)
            for i in range(size):
                code = int(state.status[i])
                if code == _FINISHED:
                    molecules.append(state.atoms(i, lo + i, seed, temperature))
                key = {_FINISHED: "finished", _CAP: "discarded_cap", _NAN: "discarded_nan"}
                stats[key[code]] += 1
    finally:
        model.train(was_training)
    return molecules, stats


class _Chunk:
    """Per-molecule state of a chunk: atoms placed so far, unfinished atoms, status."""

    def __init__(self, size: int, max_atoms: int, device: torch.device, dtype: torch.dtype):
        self.positions = torch.zeros(size, max_atoms, 3, dtype=dtype, device=device)
        self.numbers = torch.zeros(size, max_atoms, dtype=torch.long, device=device)
        self.count = torch.zeros(size, dtype=torch.long, device=device)
        self.unfinished = torch.zeros(size, max_atoms, dtype=torch.bool, device=device)
        self.status = torch.full((size,), _RUNNING, dtype=torch.long, device=device)
        self.max_atoms = max_atoms

    def atoms(self, i: int, index: int, seed: int, temperature: float) -> Atoms:
        """Molecule ``i`` as ASE Atoms (Å, relative to the origin token at 0)."""
        k = int(self.count[i])
        mol = Atoms(
            numbers=self.numbers[i, :k].cpu().numpy(),
            positions=self.positions[i, :k].double().cpu().numpy(),
        )
        mol.info.update({"index": int(index), "seed": int(seed), "temperature": float(temperature)})
        return mol


def _advance(
    model: nn.Module,
    state: _Chunk,
    grids: tuple[torch.Tensor, torch.Tensor],
    bins: torch.Tensor,
    temperature: float,
    generator: torch.Generator,
) -> tuple[int, int]:
    """One step (type, then stop or position) for every running molecule; returns the number
    of steps and of atoms placed."""
    mols = torch.nonzero(state.status == _RUNNING).squeeze(1)
    count = state.count[mols]
    first = bool((count == 0).any())  # every molecule starts together: step 1 is chunk-wide
    assert not first or bool((count == 0).all()), "step 1 must be shared by the whole chunk"
    if first:
        focus_atom = torch.zeros_like(mols)
        focus = torch.zeros(mols.shape[0], 3, dtype=bins.dtype, device=bins.device)
    else:
        weights = state.unfinished[mols].to(bins.dtype)
        focus_atom = torch.multinomial(weights, 1, generator=generator).squeeze(1)
        focus = state.positions[mols, focus_atom]

    # type of the next atom: plain softmax of Eq. 4, stop masked at the first step
    placeholder = torch.full_like(mols, TYPE_CLASSES[1])
    type_logp = _predict(model, state, mols, focus, placeholder)[0]
    if first:
        type_logp = type_logp.clone()
        type_logp[:, TYPE_CLASSES.index(STOP)] = -math.inf
    cls, ok = sample_grid(type_logp, generator)
    state.status[mols[~ok]] = _NAN
    z = torch.tensor(TYPE_CLASSES, device=cls.device)[cls]

    stop = ok & (z == STOP)
    if bool(stop.any()):
        m, f = mols[stop], focus_atom[stop]
        state.unfinished[m, f] = False
        state.status[m[~state.unfinished[m].any(dim=1)]] = _FINISHED

    place = ok & (z != STOP)
    n_placed = 0
    if bool(place.any()):
        m = mols[place]
        nodes = _predict(model, state, m, focus[place], z[place])[1:]
        new, ok_pos = _sample_positions(
            grids[0] if first else grids[1],
            focus[place],
            nodes,
            bins,
            None if first else temperature,
            generator,
        )
        state.status[m[~ok_pos]] = _NAN
        m, new = m[ok_pos], new[ok_pos]
        k = state.count[m]
        state.positions[m, k] = new
        state.numbers[m, k] = z[place][ok_pos]
        state.unfinished[m, k] = True
        state.count[m] = k + 1
        n_placed = int(m.shape[0])
        state.status[m[state.count[m] >= state.max_atoms]] = _CAP
    return int(mols.shape[0]), n_placed


def _predict(
    model: nn.Module,
    state: _Chunk,
    mols: torch.Tensor,
    focus: torch.Tensor,
    next_type: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Model outputs for the partial molecules ``mols``, in calls of at most ``MODEL_EDGES``
    edges (a step larger than that gets a call of its own).

    Returns (type_logp [S, 6], node positions [N, 3] Å, node step [N], dist_logp [N, bins]).
    """
    n_nodes = state.count[mols] + 2
    group = torch.div(
        torch.cumsum(n_nodes * (n_nodes - 1), 0) - 1, MODEL_EDGES, rounding_mode="floor"
    )
    bounds = torch.nonzero(torch.diff(group, prepend=group[:1] - 1)).squeeze(1).tolist()
    parts = []
    for lo, hi in zip(bounds, [*bounds[1:], mols.shape[0]], strict=True):
        batch = _batch(state, mols[lo:hi], focus[lo:hi])
        out = model(batch, next_type[lo:hi])
        parts.append((out["type_logp"], batch.positions, batch.batch + lo, out["dist_logp"]))
    if len(parts) == 1:
        return parts[0]
    return tuple(torch.cat(p, dim=0) for p in zip(*parts, strict=True))


def _batch(state: _Chunk, mols: torch.Tensor, focus: torch.Tensor) -> Batch:
    """Partial molecules of ``mols``: focus token at ``focus``, origin token at 0, placed atoms
    (the node order of ``deepatoms.generate.steps``), built without a per-molecule loop."""
    count = state.count[mols]
    n_mols, width = mols.shape[0], state.max_atoms + 2
    pos = torch.zeros(n_mols, width, 3, dtype=focus.dtype, device=focus.device)
    pos[:, 0] = focus
    pos[:, 2:] = state.positions[mols]
    num = torch.empty(n_mols, width, dtype=torch.long, device=focus.device)
    num[:, 0], num[:, 1] = FOCUS_TOKEN, ORIGIN_TOKEN
    num[:, 2:] = state.numbers[mols]
    slot = torch.arange(width, device=focus.device)
    keep = slot.unsqueeze(0) < (count + 2).unsqueeze(1)
    return steps_batch(num[keep], pos[keep], count + 2, dtype=focus.dtype, device=focus.device)


def _sample_positions(
    offsets: torch.Tensor,
    centres: torch.Tensor,
    nodes: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    bins: torch.Tensor,
    temperature: float | None,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample one grid point per step in groups of steps; returns (positions [S, 3] Å, ok [S]).

    ``nodes`` = (positions [N, 3], step [N], dist_logp [N, bins]); ``temperature`` None = plain
    normalised product (step 1).
    """
    node_pos, node_step, dist_logp = nodes
    n_steps = centres.shape[0]
    group = max(1, GRID_ELEMENTS // offsets.shape[0])
    idx = torch.zeros(n_steps, dtype=torch.long, device=centres.device)
    ok = torch.zeros(n_steps, dtype=torch.bool, device=centres.device)
    for g0 in range(0, n_steps, group):
        g1 = min(g0 + group, n_steps)
        sel = (node_step >= g0) & (node_step < g1)
        log_p = grid_log_density(
            offsets, centres[g0:g1], node_pos[sel], node_step[sel] - g0, dist_logp[sel], bins,
            max_elements=NODE_ELEMENTS,
        )  # fmt: skip
        if temperature is not None:
            log_p = apply_temperature(log_p, temperature)
        idx[g0:g1], ok[g0:g1] = sample_grid(log_p, generator)
    return centres + offsets[idx], ok
