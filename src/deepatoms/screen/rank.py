"""Predicted energies of candidates, their ranking per composition and the ground-state gap.

docs/position_free_crystals.md §5: for each composition c (reduced formula) with candidate set S_c the ML ground state is
G_ML = argmin E_ML(G); every candidate gets its rank (1 = G_ML) and its gap E_ML(G) − E_ML(G_ML)
(eV/atom); candidates whose gap is within a window (default 0.05 eV/atom; the paper's numbers
suggest 42–62 meV/atom) are flagged for DFT. With reference energies (DFT, or EMT from
``deepatoms datagen prototypes``) :func:`ground_state_delta` gives ΔE_c = E_ML(G_DFT) − E_ML(G_ML)
through :func:`deepatoms.analysis.crystal_metrics.ground_state_ranking`.

Predictions stream through chunks of candidates, so only one chunk of structures is in memory;
the ranking keeps a compact record per candidate (:class:`CandidateTable`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase.data import atomic_numbers, chemical_symbols

from deepatoms.data.packed import PackedSystems
from deepatoms.data.prototypes.substitution import Candidate, CandidateSpace, pack
from deepatoms.distribute.chunks import ChunkStore, MemoryStore, chunk_ranges
from deepatoms.distribute.cluster import Cluster
from deepatoms.distribute.engine import chunk_size, run_chunks

__all__ = [
    "DEFAULT_WINDOW",
    "CandidateTable",
    "ModelPredictor",
    "Predictor",
    "Ranking",
    "Ranks",
    "ground_state_delta",
    "predict_candidates",
    "rank_candidates",
    "rank_energies",
    "reference_energies",
]

#: Default DFT window (eV/atom).
DEFAULT_WINDOW = 0.05

Progress = Callable[[int, int], None]
#: ``predictor(structures, candidates, progress)`` → energy per atom [B] (eV/atom); ``progress``
#: (may be None) takes ``(done, total)`` within the chunk. Models use the structures; fakes in
#: tests or external codes may use the candidates.
Predictor = Callable[[PackedSystems, Sequence[Candidate], Progress | None], np.ndarray]


class ModelPredictor:
    """Energies per atom from a trained model file (through ``predict_packed``, which builds each
    batch's graph from the model's own graph settings).

    Args:
        loaded: the model (:func:`deepatoms.models.loading.load_model`).
        batch_size: systems per inference batch.
        per_atom: ``auto`` (default): values are per atom when the model's unit ends in
            ``/atom`` or its readout is the mean; otherwise (sum readout, e.g. a total energy in
            eV) they are divided by the number of atoms. ``yes``: always per atom as predicted;
            ``no``: always divide.
    """

    def __init__(self, loaded: Any, batch_size: int = 100, per_atom: str = "auto") -> None:
        if per_atom not in ("auto", "yes", "no"):
            raise ValueError(f"per_atom must be auto, yes or no, got {per_atom!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive number of systems, got {batch_size!r}")
        self.loaded, self.batch_size = loaded, batch_size
        readout = getattr(getattr(loaded.model, "head", None), "readout", "unknown")
        intensive = str(loaded.unit).endswith("/atom") or readout == "mean"
        self.divide = per_atom == "no" or (per_atom == "auto" and not intensive)
        unit = str(loaded.unit)
        self.info = {
            "property": loaded.property,
            "model_unit": unit,
            "readout": readout,
            "divided_by_atoms": self.divide,
            "unit": f"{unit}/atom" if self.divide and unit else unit,
        }

    def check_elements(self, numbers: np.ndarray) -> None:
        """Raise ``ValueError`` for elements the model never saw in training."""
        from ase.data import chemical_symbols

        from deepatoms.models.inference import unseen_elements

        unseen = unseen_elements(self.loaded, numbers)
        if unseen:
            seen = [chemical_symbols[z] for z in self.loaded.meta.get("elements") or []]
            raise ValueError(
                f"the model was never trained on {', '.join(chemical_symbols[z] for z in unseen)}; "
                f"screen only elements it knows ({','.join(seen)}) or train on data with them"
            )

    def __call__(
        self,
        data: PackedSystems,
        candidates: Sequence[Candidate],
        progress: Progress | None = None,
    ) -> np.ndarray:
        return self.predict_with_std(data, candidates, progress)[0]

    def predict_with_std(
        self, data: PackedSystems, candidates: Sequence[Candidate],
        progress: Progress | None = None,
    ) -> tuple[np.ndarray, np.ndarray | None]:  # fmt: skip
        """Energies per atom and, for a committee, their standard deviation (same unit; None
        for a single model)."""
        from deepatoms.models.inference import predict_with_std

        self.check_elements(data.numbers)
        values, std = predict_with_std(self.loaded, data, None, self.batch_size, progress)
        if self.divide:
            values = values / data.n_atoms
            std = std / data.n_atoms if std is not None else None
        return values, std


@dataclass
class CandidateTable:
    """Compact records of predicted candidates, in enumeration order (about 30 bytes each, so
    millions fit in memory; strings are made only when rows are written).

    Attributes:
        space: the candidate space the rows come from.
        prototype: index into ``space.prototypes`` [N] (int32).
        elements: atomic number on each site [N, max sites] (int16; 0 pads unused sites).
        composition: index into ``names`` [N] (int32); ``names`` are sorted.
        names: reduced formulas.
        n_atoms: atoms in the cell [N] (int32).
        energy: predicted energy per atom [N] (eV/atom).
        std: its standard deviation [N] (eV/atom) for a committee model, else None.
    """

    space: CandidateSpace
    prototype: np.ndarray
    elements: np.ndarray
    composition: np.ndarray
    names: np.ndarray
    n_atoms: np.ndarray
    energy: np.ndarray
    std: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.energy)

    def candidate(self, k: int) -> Candidate:
        """The candidate of row ``k`` (rebuilt, with its structure)."""
        proto = self.space.prototypes[int(self.prototype[k])]
        z = self.elements[k, : proto.n_sites]
        return self.space.make(proto, tuple(chemical_symbols[int(x)] for x in z))

    def candidate_ids(self) -> np.ndarray:
        """``<prototype>:<assignment>`` of every row (str)."""
        return np.array([self.candidate(k).candidate_id for k in range(len(self))], dtype=str)


def _predict_slice(
    indices: range, space: CandidateSpace, predictor: Predictor, on_item: Any = None
) -> dict[str, np.ndarray]:
    """A chunk task: energies per atom (eV/atom), atom counts, prototype indices, site atomic
    numbers and compositions of candidates ``indices``."""
    cands = space.slice(indices.start, indices.stop)
    data = pack(cands)

    def inner(k: int, _n: int) -> None:
        if on_item is not None:
            on_item(k)

    with_std = getattr(predictor, "predict_with_std", None)
    values, std = (
        with_std(data, cands, inner) if with_std else (predictor(data, cands, inner), None)
    )
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if values.shape != (len(cands),):
        raise ValueError(f"the predictor returned {values.size} values for {len(cands)} candidates")
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise ValueError(
            f"the predictor gave non-finite energies for {bad.size} candidates, e.g. "
            f"{cands[bad[0]].candidate_id}; check the model and the candidate structures"
        )
    index = {p.name: i for i, p in enumerate(space.prototypes)}
    elements = np.zeros((len(cands), max(p.n_sites for p in space.prototypes)), dtype=np.int16)
    for k, c in enumerate(cands):
        elements[k, : len(c.elements)] = [atomic_numbers[e] for e in c.elements]
    extra = {"std": np.asarray(std, dtype=np.float64)} if std is not None else {}
    return {
        **extra,
        "energy": values,
        "n_atoms": np.asarray(data.n_atoms, dtype=np.int32),
        "prototype": np.array([index[c.prototype.name] for c in cands], dtype=np.int32),
        "elements": elements,
        "composition": np.array([c.composition for c in cands], dtype=str),
    }


def predict_candidates(
    space: CandidateSpace, predictor: Predictor, chunk: int = 10_000,
    progress: Progress | None = None, *, cluster: Cluster | None = None,
    store: ChunkStore | None = None,
) -> CandidateTable:  # fmt: skip
    """Predict every candidate of ``space``, ``chunk`` candidates (structures) at a time; only
    one chunk of structures is in memory per process. ``progress(done, total)`` counts
    candidates. With a Dask ``cluster`` the chunks (at most ``chunk``, and small enough for
    about four per worker) run on its workers; ``store`` keeps finished chunks (an unfinished
    screen continues from them), by default in memory."""
    total = len(space)
    if total == 0:
        raise ValueError(
            "no candidates to screen: no prototype fits the requested compositions (check the "
            "arity / stoichiometry / formulas and --max-atoms)"
        )
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk size must be a positive number of candidates, got {chunk!r}")
    store = store if store is not None else MemoryStore(total)
    size = chunk_size(chunk, total, cluster)
    run_chunks(_predict_slice, range(total), chunk_ranges(store.missing(), size), store, cluster,
               args=(space, predictor), progress=progress, name="screen")  # fmt: skip
    parts = [r for _, _, r in store.results()]
    energy = np.concatenate([r["energy"] for r in parts]).astype(np.float64)
    n_atoms = np.concatenate([r["n_atoms"] for r in parts]).astype(np.int32)
    prototype = np.concatenate([r["prototype"] for r in parts]).astype(np.int32)
    elements = np.concatenate([r["elements"] for r in parts]).astype(np.int16)
    names, composition = np.unique(np.concatenate([r["composition"] for r in parts]),
                                   return_inverse=True)  # fmt: skip
    std = np.concatenate([r["std"] for r in parts]) if "std" in parts[0] else None
    return CandidateTable(
        space,
        prototype,
        elements,
        composition.astype(np.int32),
        names.astype(str),
        n_atoms,
        energy,
        std,
    )


@dataclass
class Ranks:
    """Ranking of rows per composition. ``order``: input rows sorted by composition, then
    energy (ties: input order); ``rank`` (1 = lowest), ``gap`` (eV/atom above the
    composition's minimum), ``n_candidates`` (of the composition) and ``flagged``
    (gap ≤ ``window``) are given in that sorted order."""

    order: np.ndarray
    rank: np.ndarray
    gap: np.ndarray
    n_candidates: np.ndarray
    flagged: np.ndarray
    window: float


def rank_energies(
    composition: Sequence | np.ndarray,
    energy: Sequence[float] | np.ndarray,
    window: float = DEFAULT_WINDOW,
) -> Ranks:
    """Rank candidates per composition (labels of any kind) by ``energy`` (eV/atom).

    ``window`` (eV/atom, ≥ 0): candidates with gap ≤ window are flagged, the minimum always.
    """
    if not window >= 0:
        raise ValueError(f"window must be zero or positive (eV/atom), got {window!r}")
    e = np.asarray(energy, dtype=np.float64)
    comp = np.asarray(composition)
    n = len(e)
    if n == 0:
        raise ValueError("no candidates to rank")
    if comp.shape != (n,):
        raise ValueError(f"composition has shape {comp.shape}; need one label per energy ({n})")
    if not np.all(np.isfinite(e)):
        raise ValueError("energies must be finite")
    _, code = np.unique(comp, return_inverse=True)
    code = code.reshape(-1)
    order = np.lexsort((np.arange(n), e, code))
    sizes = np.bincount(code)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    sorted_code = code[order]
    gap = e[order] - e[order][starts][sorted_code]
    return Ranks(
        order=order,
        rank=(np.arange(n) - starts[sorted_code] + 1).astype(np.int64),
        gap=gap,
        n_candidates=sizes[sorted_code].astype(np.int64),
        flagged=gap <= window,
        window=float(window),
    )


@dataclass
class Ranking:
    """Predicted candidates with their ranks (:func:`rank_candidates`)."""

    table: CandidateTable
    ranks: Ranks

    def __len__(self) -> int:
        return len(self.table)

    def rows(self, top: int | None = None) -> Iterator[dict[str, Any]]:
        """Rows sorted by composition, then rank (only ranks ≤ ``top`` if given): composition,
        prototype, assignment, candidate_id, n_atoms, energy and gap (eV/atom), rank,
        n_candidates, flagged, and the ``candidate`` itself; ``std`` (eV/atom) for a committee."""
        t, r = self.table, self.ranks
        for i, k in enumerate(r.order.tolist()):
            if top is not None and r.rank[i] > top:
                continue
            cand = t.candidate(k)
            yield {
                "composition": str(t.names[t.composition[k]]),
                "prototype": cand.prototype.name,
                "assignment": cand.assignment,
                "candidate_id": cand.candidate_id,
                "n_atoms": int(t.n_atoms[k]),
                "energy": float(t.energy[k]),
                **({"std": float(t.std[k])} if t.std is not None else {}),
                "gap": float(r.gap[i]),
                "rank": int(r.rank[i]),
                "n_candidates": int(r.n_candidates[i]),
                "flagged": bool(r.flagged[i]),
                "candidate": cand,
            }

    def ground_states(self) -> list[dict[str, Any]]:
        """The ML minimum of each composition: composition, candidate_id, energy (eV/atom),
        n_candidates and n_flagged."""
        t, r = self.table, self.ranks
        flagged = np.bincount(t.composition[r.order][r.flagged], minlength=len(t.names))
        keys = ("composition", "candidate_id", "energy", "n_candidates")
        return [
            {k: row[k] for k in keys}
            | {"n_flagged": int(flagged[np.searchsorted(t.names, row["composition"])])}
            for row in self.rows(top=1)
        ]

    def summary(self) -> dict[str, Any]:
        """Counts: candidates, compositions, flagged candidates; the window (eV/atom)."""
        return {
            "n_candidates": len(self),
            "n_compositions": len(self.table.names),
            "n_flagged": int(self.ranks.flagged.sum()),
            "window_eV_per_atom": self.ranks.window,
        }

    def ground_state_delta(self, reference: Mapping[str, float]) -> dict[str, Any]:
        """:func:`ground_state_delta` of all rows against ``reference`` (candidate id → eV/atom)."""
        t = self.table
        return ground_state_delta(t.names[t.composition], t.candidate_ids(), t.energy, reference)


def rank_candidates(table: CandidateTable, window: float = DEFAULT_WINDOW) -> Ranking:
    """Rank the predicted candidates of ``table`` per composition (:func:`rank_energies`)."""
    return Ranking(table, rank_energies(table.composition, table.energy, window))


def reference_energies(
    path: str | Path, column: str = "formation_energy_per_atom"
) -> dict[str, float]:
    """``{candidate_id: energy}`` (eV/atom) from a dataset with a ``candidate_id`` string column,
    e.g. ``relaxed.h5`` of ``deepatoms datagen prototypes``."""
    from deepatoms.data.dataset import read_dataset

    data, _ = read_dataset(path)
    props = data.system_props
    missing = [k for k in ("candidate_id", column) if k not in props]
    if missing:
        raise ValueError(
            f"reference dataset {path} lacks {', '.join(missing)}; it needs a candidate_id "
            f"column and the energy column {column!r} (as written by `deepatoms datagen "
            "prototypes`)"
        )
    ids = np.asarray(props["candidate_id"]).astype(str)
    values = np.asarray(props[column], dtype=np.float64)
    return dict(zip(ids.tolist(), values.tolist(), strict=True))


def ground_state_delta(
    composition: Sequence | np.ndarray,
    candidate_id: Sequence[str] | np.ndarray,
    e_ml: Sequence[float] | np.ndarray,
    reference: Mapping[str, float],
    gs_energy_error: str = "min",
) -> dict[str, Any]:
    """ΔE_c = E_ML(G_DFT) − E_ML(G_ML) per composition (eV/atom) against reference energies.

    One row per candidate: ``composition``, ``candidate_id``, predicted ``e_ml`` (eV/atom).
    ``reference`` maps candidate ids to reference energies (eV/atom); candidates without one are
    left out (``n_without_reference``). Returns the result of
    :func:`deepatoms.analysis.crystal_metrics.ground_state_ranking` (per-composition arrays and
    the summaries: correct compositions, random-guess expectation Σ 1/|S_c|, MAD, max ΔE, …)
    plus ``n_with_reference`` and ``n_without_reference``.
    """
    from deepatoms.analysis.crystal_metrics import ground_state_ranking

    ids = np.asarray(candidate_id).astype(str)
    comp, em = np.asarray(composition), np.asarray(e_ml, dtype=np.float64)
    have = np.array([i in reference for i in ids.tolist()], dtype=bool)
    if not have.any():
        raise ValueError(
            "no screened candidate has a reference energy; the reference must use the same "
            "candidate ids (<prototype>:<assignment>, e.g. AB3_cP4_221_a_c:A=Au,B=Cu)"
        )
    e_ref = np.array([reference[i] for i in ids[have].tolist()], dtype=np.float64)
    result = ground_state_ranking(
        comp[have], ids[have], em[have], e_ref, gs_energy_error=gs_energy_error
    )
    result["n_with_reference"] = int(have.sum())
    result["n_without_reference"] = int((~have).sum())
    return result
