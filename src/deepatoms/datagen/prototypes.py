"""Labelled benchmark set: EMT formation energies of ordered alloys on crystal prototypes.

Candidates come from :mod:`deepatoms.screen.candidates` (AFLOW prototypes bundled with pymatgen,
elements substituted onto species sites, cell rescaled by the ``volume`` rule), so their ids
match those of ``deepatoms screen``. Default set (:data:`DEFAULT_PROTOTYPES`) for the EMT metals
Al, Cu, Ni, Pd, Ag, Pt, Au:

- elements: A1 fcc (Cu), A2 bcc (W), A3 hcp (Mg);
- binaries: AB: L1₀ (CuAu), L1₁ (CuPt), B2 (CsCl), B1 (NaCl), B32 (NaTl); AB₂: C11_b (MoSi₂),
  C15 (cubic Laves MgCu₂); AB₃: L1₂ (Cu₃Au), D0₃ (BiF₃), D0₂₂ (TiAl₃), D0₁₉ (Ni₃Sn), A15 (Cr₃Si);
- ternaries: L2₁ Heusler (Cu₂MnAl), C1_b half-Heusler (MgAgAs).

That is 21 unary, 294 binary and 210 ternary candidates (525).

Every candidate is relaxed with ASE's EMT, cell and positions together
(:func:`deepatoms.simulate.relax.relax`: ``ase.filters.FrechetCellFilter`` and BFGS/FIRE/LBFGS
until the largest force, and stress × volume, is below ``fmax``, at most ``steps`` steps).
Unconverged relaxations are kept and marked (``converged`` = False); a relaxation that fails
keeps its initial structure with NaN energies. Formation energy per atom of a structure with
n_e atoms of element e and total energy E (eV):

    E_f = (E − Σ_e n_e μ_e) / Σ_e n_e,   μ_e = min over A1/A2/A3 of the relaxed energy per atom

where the elemental references are relaxed exactly like the candidates (the lowest structure of
each element has E_f = 0; note that EMT puts hcp below fcc for Al, Cu, Ni, Pd and Pt).

Output folder: ``initial.h5`` (the unrelaxed, rescaled prototypes) and ``relaxed.h5`` (the
relaxed structures), same row order, both with string columns ``composition``, ``prototype``,
``assignment``, ``candidate_id``, ``geometry`` (initial|relaxed) and numeric
``formation_energy_per_atom`` (eV/atom, of the relaxed structure, in both files), ``energy``
(eV, EMT energy of the file's geometry), ``n_elements``, ``converged``, ``relax_steps``,
``final_fmax`` (eV/Å). Candidates are relaxed in chunks of ``flush_every`` (here or on Dask
workers) and each chunk's rows are appended as it arrives, so an interrupted run continues with
``resume``; once all are in, the rows are put in enumeration order. ``rattle`` > 0 displaces the atoms of the relaxation start by a
Gaussian (Å, std) seeded by ``seed`` and the candidate id, letting relaxations leave the
prototype's symmetry; with the default 0 the run is deterministic and ``seed`` has no effect.
"""

from __future__ import annotations

import datetime
import math
import time
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from deepatoms.core.progress import Progress, reporting
from deepatoms.data.dataset import read_dataset, write_dataset
from deepatoms.data.packed import PackedSystems
from deepatoms.data.prototypes.library import (
    filter_prototypes,
    load_aflow_prototypes,
    resolve_prototypes,
    select_prototypes,
)
from deepatoms.data.prototypes.substitution import Candidate, CandidateSpace, CompositionRequest
from deepatoms.datagen.defaults import DEFAULT_ARITIES, DEFAULT_ELEMENTS, DEFAULT_PROTOTYPES
from deepatoms.datagen.resumable import DatagenResult, versions
from deepatoms.distribute.chunks import MemoryStore, chunk_ranges
from deepatoms.distribute.cluster import Cluster, on_cluster
from deepatoms.distribute.engine import run_chunks

__all__ = [
    "DEFAULT_ARITIES",
    "DEFAULT_ELEMENTS",
    "DEFAULT_PROTOTYPES",
    "FILES",
    "REFERENCE_PROTOTYPES",
    "SOURCE",
    "candidate_space",
    "formation_energy_per_atom",
    "generate_prototype_set",
    "relax_candidate",
]

SOURCE = "deepatoms datagen prototypes"
#: Elemental reference structures: fcc, bcc, hcp.
REFERENCE_PROTOTYPES = ("A1", "A2", "A3")
#: Output files, same row order.
FILES = {"initial": "initial.h5", "relaxed": "relaxed.h5"}
_UNITS = {"formation_energy_per_atom": "eV/atom", "energy": "eV", "final_fmax": "eV/Å"}
# settings that must match for --resume
_RESUME_KEYS = ("elements", "arities", "prototypes", "fmax", "steps", "optimizer", "rescale",
                "rattle", "seed", "calculator")  # fmt: skip


def candidate_space(
    elements: Sequence[str] = DEFAULT_ELEMENTS,
    arities: Sequence[int] = DEFAULT_ARITIES,
    prototypes: Sequence[str] = DEFAULT_PROTOTYPES,
    rescale: str = "volume",
) -> CandidateSpace:
    """The candidates: every ``arities``-element combination of ``elements`` on every prototype
    (AFLOW names/designations or CIF files) with that many species sites."""
    from deepatoms.simulate.reference import check_elements

    check_elements("emt", [e.strip() for e in elements])
    request = CompositionRequest.parse(list(elements), list(arities))
    chosen = filter_prototypes(resolve_prototypes(prototypes), set(request.arity))
    space = CandidateSpace(chosen, request, rescale=rescale)
    if len(space) == 0:
        raise ValueError(
            f"no candidates: none of the prototypes {', '.join(prototypes)} has "
            f"{' or '.join(map(str, request.arity))} species sites; add prototypes or change "
            "the arities"
        )
    return space


def relax_candidate(
    atoms: Atoms, calculator: Any, *, fmax: float, steps: int, optimizer: str, rattle: float = 0.0,
    rng: np.random.Generator | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Relax cell and positions of ``atoms`` (Å) with ``calculator``.

    Returns ``atoms`` (relaxed; the initial structure if the calculator failed), ``energy``
    (eV, relaxed), ``initial_energy`` (eV, of ``atoms`` as given, before any rattle),
    ``converged``, ``steps`` (−1 on failure), ``final_fmax`` (eV/Å) and ``error`` (str or None).
    """
    from deepatoms.simulate.relax import relax

    start = atoms.copy()
    try:
        start.calc = calculator
        initial = float(start.get_potential_energy())
        start.calc = None
        if rattle > 0:
            start.positions += (rng or np.random.default_rng()).normal(0.0, rattle, (len(start), 3))
        with np.errstate(all="raise"):
            res = relax(
                start, calculator, fmax=fmax, optimizer=optimizer, steps=steps, relax_cell=True
            )
    except Exception as exc:  # any calculator or optimiser failure is recorded, not fatal
        return {
            "atoms": atoms.copy(), "energy": math.nan, "initial_energy": math.nan,
            "converged": False, "steps": -1, "final_fmax": math.nan,
            "error": f"{type(exc).__name__}: {exc}",
        }  # fmt: skip
    final = res["atoms"]
    final.calc = None
    return {
        "atoms": final,
        "energy": res["final_energy"],
        "initial_energy": initial,
        "converged": res["converged"],
        "steps": res["steps"],
        "final_fmax": res["final_fmax"],
        "error": None,
    }


def formation_energy_per_atom(
    energy: float, symbols: Sequence[str], references: dict[str, float]
) -> float:
    """(E − Σ_e n_e μ_e) / N in eV/atom for total energy ``energy`` (eV) of atoms ``symbols``
    and elemental references ``references`` (eV/atom)."""
    return (energy - sum(references[s] for s in symbols)) / len(symbols)


def _rng(seed: int, candidate_id: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(candidate_id.encode())])


def _check(fmax: float, steps: int, rattle: float, limit: int | None, flush_every: int) -> None:
    problems = []
    if not fmax > 0:
        problems.append(f"fmax must be positive (eV/Å), got {fmax!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        problems.append(f"steps must be a positive number of optimiser steps, got {steps!r}")
    if not rattle >= 0:
        problems.append(f"rattle must be zero or positive (Å), got {rattle!r}")
    if rattle >= 0.5:
        problems.append(f"rattle is a displacement of a few hundredths of an Å, got {rattle!r}")
    if limit is not None and (isinstance(limit, bool) or limit < 1):
        problems.append(f"limit must be a positive number of candidates, got {limit!r}")
    if flush_every < 1:
        problems.append(f"flush_every must be positive, got {flush_every!r}")
    if problems:
        raise ValueError("invalid settings: " + "; ".join(problems))


class _Rows:
    """Finished candidates waiting to be written (both geometries)."""

    def __init__(self) -> None:
        self.atoms: dict[str, list[Atoms]] = {"initial": [], "relaxed": []}
        self.props: dict[str, list[Any]] = {}

    def __len__(self) -> int:
        return len(self.atoms["initial"])

    def add(self, cand: Candidate, res: dict[str, Any], e_f: float) -> None:
        initial = cand.atoms()
        relaxed = res["atoms"]
        self.atoms["initial"].append(Atoms(initial.numbers, initial.positions, cell=initial.cell,
                                           pbc=True))  # fmt: skip
        self.atoms["relaxed"].append(Atoms(relaxed.numbers, relaxed.positions, cell=relaxed.cell,
                                           pbc=True))  # fmt: skip
        row = {
            "composition": cand.composition,
            "prototype": cand.prototype.name,
            "assignment": cand.assignment,
            "candidate_id": cand.candidate_id,
            "formation_energy_per_atom": e_f,
            "n_elements": len(set(cand.elements)),
            "converged": bool(res["converged"]),
            "relax_steps": int(res["steps"]),
            "final_fmax": float(res["final_fmax"]),
            "initial_energy": float(res["initial_energy"]),
            "relaxed_energy": float(res["energy"]),
        }
        for k, v in row.items():
            self.props.setdefault(k, []).append(v)

    def packs(self) -> dict[str, PackedSystems]:
        base = {k: np.asarray(v) for k, v in self.props.items()
                if k not in ("initial_energy", "relaxed_energy")}  # fmt: skip
        base["n_elements"] = base["n_elements"].astype(np.int64)
        base["relax_steps"] = base["relax_steps"].astype(np.int64)
        out = {}
        for geometry in FILES:
            props = dict(base)
            props["geometry"] = np.full(len(self), geometry)
            props["energy"] = np.asarray(self.props[f"{geometry}_energy"], dtype=np.float64)
            out[geometry] = PackedSystems.from_atoms(self.atoms[geometry], system_props=props)
        return out


def _references(
    elements: Sequence[str],
    done: dict[str, dict[str, Any]],
    relax_one: Callable[[Candidate], dict[str, Any]],
    space: CandidateSpace,
) -> dict[str, dict[str, Any]]:
    """μ_e per element: the lowest relaxed energy per atom over fcc, bcc and hcp."""
    refs_protos = select_prototypes(load_aflow_prototypes(), REFERENCE_PROTOTYPES)
    table: dict[str, dict[str, Any]] = {}
    for el in elements:
        best: dict[str, Any] | None = None
        for proto in refs_protos:
            cand = space.make(proto, (el,))
            res = done.get(cand.candidate_id)
            if res is None:
                res = done[cand.candidate_id] = relax_one(cand)
            e = res["energy"] / len(res["atoms"])
            if not math.isfinite(e):
                raise RuntimeError(
                    f"the EMT relaxation of the {el} reference {proto.name} failed "
                    f"({res['error']}); the formation energies need it"
                )
            if best is None or e < best["energy_per_atom"]:
                best = {
                    "energy_per_atom": e,
                    "prototype": proto.name,
                    "structure": proto.tags.get("strukturbericht", ""),
                    "converged": bool(res["converged"]),
                }
        table[el] = best
    return table


def _settings(space: CandidateSpace, calc_prov: dict, **kw: Any) -> dict[str, Any]:
    return {
        "elements": list(space.request.elements),
        "arities": list(space.request.arity),
        "prototypes": [p.name for p in space.prototypes],
        "rescale": space.rescale,
        "calculator": {k: calc_prov[k] for k in ("calculator", "method", "settings")},
        **kw,
    }


def _load_existing(out: Path, settings: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """Candidate ids already written (common prefix of both files) and the stored metadata;
    the longer file is cut back if an interruption left them different."""
    paths = {g: out / name for g, name in FILES.items()}
    data, meta = {}, {}
    for g, p in paths.items():
        data[g], meta[g] = read_dataset(p)
    prev = meta["relaxed"].get("provenance", {})
    if meta["relaxed"].get("source") != SOURCE or "settings" not in prev:
        raise ValueError(f"{paths['relaxed']} was not written by `deepatoms datagen prototypes`")
    diff = [
        f"{k}: {prev['settings'].get(k)!r} (saved) vs {settings.get(k)!r}"
        for k in _RESUME_KEYS
        if prev["settings"].get(k) != settings.get(k)
    ]
    if diff:
        raise ValueError(
            f"cannot resume {out}: the settings differ ({'; '.join(diff)}); use the saved "
            "settings or a new --out folder"
        )
    ids = {g: data[g].system_props["candidate_id"].tolist() for g in FILES}
    n = min(len(ids["initial"]), len(ids["relaxed"]))
    if ids["initial"][:n] != ids["relaxed"][:n]:
        raise ValueError(f"{out}: initial.h5 and relaxed.h5 hold different candidates")
    for g in FILES:
        if len(ids[g]) > n:
            write_dataset(paths[g], data[g].subset(np.arange(n)), meta[g])
    return ids["relaxed"][:n], prev


def _flush(out: Path, rows: _Rows, provenance: dict[str, Any]) -> None:
    """Append ``rows`` to both files (initial first) with the updated provenance."""
    if not len(rows):
        return
    for geometry, pack in rows.packs().items():
        path = out / FILES[geometry]
        meta = {
            "units": dict(_UNITS),
            "source": SOURCE,
            "provenance": {**provenance, "geometry": geometry,
                           "companion": FILES["relaxed" if geometry == "initial" else "initial"]},
        }  # fmt: skip
        if path.exists():
            old, _ = read_dataset(path)
            pack = PackedSystems.concatenate([old, pack])
        write_dataset(path, pack, meta)


def generate_prototype_set(
    out_dir: str | Path, *, elements: Sequence[str] = DEFAULT_ELEMENTS,
    arities: Sequence[int] = DEFAULT_ARITIES, prototypes: Sequence[str] = DEFAULT_PROTOTYPES,
    fmax: float = 0.01, steps: int = 500, optimizer: str = "bfgs", rescale: str = "volume",
    rattle: float = 0.0, seed: int = 0, resume: bool = False, overwrite: bool = False,
    limit: int | None = None, flush_every: int = 50, progress: bool | Progress = True,
    workers: int = 1, scheduler: str | None = None,
) -> DatagenResult:  # fmt: skip
    """Relax every candidate with EMT and write ``initial.h5`` and ``relaxed.h5`` (module
    docstring) into ``out_dir``.

    Args:
        out_dir: output folder (created).
        elements: EMT elements to combine.
        arities: numbers of distinct elements per candidate (1: the elemental structures).
        prototypes: AFLOW names/designations or CIF files (:data:`DEFAULT_PROTOTYPES`).
        fmax: force tolerance (eV/Å; stress × volume per atom for the cell).
        steps: maximum optimiser steps per candidate.
        optimizer: ``bfgs``, ``fire`` or ``lbfgs``.
        rescale: initial cell rule, ``volume``, ``contact`` or ``none``
            (:mod:`deepatoms.screen.scaling`).
        rattle: Gaussian displacement (Å, std) of the relaxation start; 0 keeps the symmetry.
        seed: seed of the rattle (with the candidate id).
        resume: continue the run in ``out_dir`` (same settings), skipping written candidates.
        overwrite: start again, replacing existing files.
        limit: stop after this many new candidates (None: all).
        flush_every: candidates per chunk: the unit of work, of ``workers`` and of writing.
        progress: a progress bar on stderr (True), none (False) or a ``progress(done, total)``
            callback over the relaxations of this call.
        workers: local Dask worker processes for the chunks (1: this process).
        scheduler: address (tcp://HOST:8786) or scheduler file of a running Dask cluster to
            use instead. The files do not depend on where the chunks run.

    Returns:
        summary: counts (``n_candidates``, ``n_written``, ``n_new``, ``n_skipped``,
        ``n_unconverged``, ``n_failed``), ``unconverged`` ids, ``references`` (eV/atom),
        ``files``, ``wall_time_s`` of this call and ``complete`` (all candidates written).
    """
    from deepatoms.simulate.reference import make_calculator
    from deepatoms.simulate.relax import optimizer_class

    t0 = time.perf_counter()
    _check(fmax, steps, rattle, limit, flush_every)
    optimizer_class(optimizer)  # refuses unknown names now
    if resume and overwrite:
        raise ValueError("--resume and --overwrite exclude each other")
    space = candidate_space(elements, arities, prototypes, rescale)
    calc, calc_prov = make_calculator("emt")
    relaxation = {"fmax": float(fmax), "steps": int(steps), "optimizer": optimizer.lower(),
                  "rattle": float(rattle), "seed": int(seed)}  # fmt: skip
    settings = _settings(space, calc_prov, **relaxation)
    out = Path(out_dir)
    written, prev = _open_output(out, settings, resume, overwrite)
    unknown = set(written) - {c.candidate_id for c in space}
    if unknown:
        raise ValueError(f"{out} holds candidates outside this set, e.g. {sorted(unknown)[0]}")
    todo = [c for c in space if c.candidate_id not in set(written)]
    with (
        on_cluster(workers, scheduler, bool(progress)) as cluster,
        reporting(progress, "relaxations") as report,
    ):
        run = _Run(space, calc, calc_prov, settings, relaxation, written, prev, t0, report)
        run.relax_all(todo[:limit] if limit is not None else todo, out, flush_every, cluster)
    return run.summary(out)


def _open_output(out: Path, settings: dict, resume: bool, overwrite: bool) -> tuple[list, dict]:
    """Prepare the folder ``out``: refuse existing files unless resuming or overwriting;
    returns the candidate ids already written and the saved provenance."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder for initial.h5 and relaxed.h5")
    paths = [out / name for name in FILES.values()]
    present = [p for p in paths if p.exists()]
    written: list[str] = []
    prev: dict[str, Any] = {}
    if present and not (resume or overwrite):
        raise ValueError(
            f"{', '.join(map(str, present))} already exist(s); pass --resume to continue that "
            "run or --overwrite to start again"
        )
    if overwrite or (resume and len(present) < len(paths)):
        for p in present:  # a run cut off between its first two writes starts again
            p.unlink()
    elif resume and present:
        written, prev = _load_existing(out, settings)
    out.mkdir(parents=True, exist_ok=True)
    return written, prev


def _relax_chunk(
    cands: Sequence[Candidate],
    relaxation: dict[str, Any],
    cached: dict[str, dict[str, Any]],
    on_item: Any = None,
) -> list[dict[str, Any]]:
    """A chunk task: the relaxation record of each candidate (``cached`` ones reused), with an
    EMT calculator made here."""
    from deepatoms.simulate.reference import make_calculator

    calc, _ = make_calculator("emt")
    r = relaxation
    out = []
    for n, cand in enumerate(cands, start=1):
        res = cached.get(cand.candidate_id) or relax_candidate(
            cand.atoms(), calc, fmax=r["fmax"], steps=r["steps"], optimizer=r["optimizer"],
            rattle=r["rattle"], rng=_rng(r["seed"], cand.candidate_id),
        )  # fmt: skip
        out.append(res)
        if on_item is not None:
            on_item(n)
    return out


class _AppendStore(MemoryStore):
    """The run's two files as the chunk store: each chunk's rows are appended as it arrives
    (the chunks themselves are not kept)."""

    def __init__(self, run: _Run, out: Path, todo: Sequence[Candidate]) -> None:
        super().__init__(len(todo))
        self.run, self.out, self.todo = run, out, todo

    def save(self, start: int, stop: int, result: Any) -> Path:
        rows = _Rows()
        for cand, res in zip(self.todo[start:stop], result, strict=True):
            self.run.add(cand, res, rows)
        _flush(self.out, rows, self.run.provenance())
        self._chunks[(start, stop)] = None
        return self.out


def _enumeration_order(out: Path, rank: dict[str, int], provenance: dict[str, Any]) -> None:
    """Rewrite both files with their rows in the candidates' enumeration order ``rank`` (chunks
    from workers arrive in any order) and the final ``provenance``; nothing is written when the
    rows are in order already."""
    for geometry, name in FILES.items():
        data, meta = read_dataset(out / name)
        order = np.argsort([rank[i] for i in data.system_props["candidate_id"].tolist()],
                           kind="stable")  # fmt: skip
        if np.any(order != np.arange(len(order))):
            meta["provenance"] = {**meta["provenance"], **provenance, "geometry": geometry}
            write_dataset(out / name, data.subset(order), meta)


class _Run:
    """One call of :func:`generate_prototype_set`: references, relaxations, flushes, summary."""

    def __init__(self, space: CandidateSpace, calc: Any, calc_prov: dict, settings: dict,
                 relaxation: dict, written: list[str], prev: dict, t0: float,
                 progress: Progress | None) -> None:  # fmt: skip
        self.space, self.calc, self.calc_prov = space, calc, calc_prov
        self.settings, self.relaxation, self.written, self.t0 = settings, relaxation, written, t0
        self.progress = progress
        self.references = prev.get("references") or {}
        self.unconverged = list(prev.get("unconverged", []))
        self.failed = list(prev.get("failed", []))
        self.wall = float(prev.get("wall_time_s", 0.0))
        self.cache: dict[str, dict[str, Any]] = {}
        self.n_new = self.count = self.total = 0

    def relax_one(self, cand: Candidate) -> dict[str, Any]:
        r = self.relaxation
        res = relax_candidate(cand.atoms(), self.calc, fmax=r["fmax"], steps=r["steps"],
                              optimizer=r["optimizer"], rattle=r["rattle"],
                              rng=_rng(r["seed"], cand.candidate_id))  # fmt: skip
        self.count += 1
        if self.progress is not None:
            self.progress(self.count, self.total)
        return res

    def relax_all(self, todo: list[Candidate], out: Path, flush_every: int,
                  cluster: Cluster | None = None) -> None:  # fmt: skip
        """Relax the references (unless saved) here, then ``todo`` in chunks of
        ``flush_every`` (here or on ``cluster``), appending each chunk's rows to both files as
        it arrives; once every candidate is written, the rows are put in enumeration order."""
        ref_ids: set[str] = set()
        if not self.references:  # relaxed first; unary candidates among them are reused
            for proto in select_prototypes(load_aflow_prototypes(), REFERENCE_PROTOTYPES):
                ref_ids.update(self.space.make(proto, (el,)).candidate_id
                               for el in self.space.request.elements)  # fmt: skip
        self.total = len(ref_ids) + sum(c.candidate_id not in ref_ids for c in todo)
        if not self.references:
            self.references = _references(self.space.request.elements, self.cache,
                                          self.relax_one, self.space)  # fmt: skip
        cached = {c.candidate_id: self.cache[c.candidate_id] for c in todo
                  if c.candidate_id in self.cache}  # fmt: skip
        n_refs = self.count

        def report(done: int, _total: int) -> None:
            if self.progress is not None and todo:  # cached candidates counted with the refs
                self.progress(n_refs + done * (self.total - n_refs) // len(todo), self.total)

        store = _AppendStore(self, out, todo)
        run_chunks(_relax_chunk, todo, chunk_ranges([(0, len(todo))], flush_every), store,
                   cluster, args=(self.relaxation, cached), progress=report,
                   name="relax")  # fmt: skip
        if len(self.written) + self.n_new == len(self.space):
            rank = {c.candidate_id: k for k, c in enumerate(self.space)}
            self.unconverged.sort(key=rank.__getitem__)
            self.failed.sort(key=rank.__getitem__)
            _enumeration_order(out, rank, self.provenance())

    def add(self, cand: Candidate, res: dict[str, Any], rows: _Rows) -> None:
        """Record one relaxed candidate in ``rows``."""
        mu = {el: r["energy_per_atom"] for el, r in self.references.items()}
        symbols = res["atoms"].get_chemical_symbols()
        rows.add(cand, res, formation_energy_per_atom(res["energy"], symbols, mu))
        self.n_new += 1
        if res["error"] is not None:
            self.failed.append(cand.candidate_id)
        elif not res["converged"]:
            self.unconverged.append(cand.candidate_id)

    def provenance(self) -> dict[str, Any]:
        r, n_written = self.relaxation, len(self.written) + self.n_new
        return {
            "settings": self.settings,
            "calculator": self.calc_prov,
            "relaxation": {
                "method": "deepatoms.simulate.relax.relax: ase.filters.FrechetCellFilter (cell "
                "and positions) + ASE optimizer",
                "fmax_eV_per_A": r["fmax"], "max_steps": r["steps"], "optimizer": r["optimizer"],
                "rattle_A": r["rattle"], "seed": r["seed"],
            },
            "formation_energy": "E_f = (E - sum_e n_e mu_e) / N, mu_e = lowest relaxed energy "
            "per atom of element e over A1 (fcc), A2 (bcc), A3 (hcp), relaxed the same way",
            "references": self.references,
            "candidates": self.space.describe(),
            "n_candidates": len(self.space),
            "n_written": n_written,
            "complete": n_written == len(self.space),
            "unconverged": self.unconverged,
            "failed": self.failed,
            "versions": versions("ase", "numpy", "pymatgen"),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "wall_time_s": round(self.wall + time.perf_counter() - self.t0, 3),
        }  # fmt: skip

    def summary(self, out: Path) -> DatagenResult:
        n_written = len(self.written) + self.n_new
        return DatagenResult(
            {
                "out": str(out),
                "files": {g: str(out / name) for g, name in FILES.items()},
                "n_candidates": len(self.space),
                "n_written": n_written,
                "n_new": self.n_new,
                "n_skipped": len(self.written),
                "n_unconverged": len(self.unconverged),
                "n_failed": len(self.failed),
                "unconverged": self.unconverged,
                "failed": self.failed,
                "references": self.references,
                "complete": n_written == len(self.space),
                "wall_time_s": round(time.perf_counter() - self.t0, 3),
            }
        )
