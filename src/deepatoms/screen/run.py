"""One screening run: prototypes × compositions → predictions → ranking → files (docs/position_free_crystals.md §5).

Writes into the output folder:

- ``ranking.csv``: every candidate with its predicted energy (eV/atom), gap to the ML minimum of
  its composition, rank and DFT flag (:func:`deepatoms.screen.output.write_ranking_csv`);
- ``best.db``: ASE database of the ``top`` candidates per composition (unrelaxed, rescaled
  prototype structures) with the ranking as key-value pairs;
- ``screen.json``: settings, model, counts, timings, versions and, with reference energies, the
  ground-state summary (ΔE_c statistics).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deepatoms import __version__
from deepatoms.core.files import atomic_target
from deepatoms.data.prototypes.library import filter_prototypes, resolve_prototypes
from deepatoms.data.prototypes.substitution import CandidateSpace, CompositionRequest
from deepatoms.distribute.chunks import ChunkStore, load_arrays, save_arrays
from deepatoms.distribute.cluster import Cluster
from deepatoms.screen.output import write_best_db, write_ranking_csv
from deepatoms.screen.rank import (
    DEFAULT_WINDOW,
    ModelPredictor,
    Predictor,
    predict_candidates,
    rank_candidates,
    reference_energies,
)

__all__ = ["OUTPUT_FILES", "build_space", "model_predictor", "run_screen"]

#: Files of a screening run, inside its output folder.
OUTPUT_FILES = ("ranking.csv", "best.db", "screen.json")


def build_space(
    request: CompositionRequest,
    prototypes: Sequence[str] = ("aflow",),
    max_atoms: int | None = 8,
    rescale: str = "volume",
) -> CandidateSpace:
    """The candidates of ``request`` on the prototypes named by ``prototypes`` (``aflow``, AFLOW
    names or designations, CIF files) with at most ``max_atoms`` atoms per cell."""
    arities = {len(f) for f in request.formulas} if request.formulas else set(request.arity)
    chosen = filter_prototypes(resolve_prototypes(prototypes), arities, max_atoms)
    space = CandidateSpace(chosen, request, rescale=rescale)
    if len(space) == 0:
        what = ", ".join(f"{k} sites" for k in sorted(arities))
        limit = f" and at most {max_atoms} atoms" if max_atoms is not None else ""
        raise ValueError(
            f"no candidates: none of the given prototypes has {what}{limit} and a site "
            "stoichiometry matching the request; add prototypes, raise --max-atoms or change "
            "the arity / stoichiometry / formulas"
        )
    return space


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"deepatoms": __version__}
    for package in ("torch", "numpy", "ase", "pymatgen"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "unknown"
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def run_screen(
    space: CandidateSpace, out_dir: str | Path, predictor: Predictor, *,
    model_info: dict[str, Any] | None = None, window: float = DEFAULT_WINDOW, top: int = 3,
    chunk: int = 10_000, reference: str | Path | None = None,
    reference_column: str = "formation_energy_per_atom", overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None, cluster: Cluster | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Predict, rank and write the files of :data:`OUTPUT_FILES` into ``out_dir``.

    Args:
        space: the candidates (:func:`build_space`).
        out_dir: output folder (created).
        predictor: energies per atom (:class:`~deepatoms.screen.rank.ModelPredictor`, or any
            :data:`~deepatoms.screen.rank.Predictor`).
        model_info: what the predictor is (recorded in ``screen.json`` and ``best.db``).
        window: DFT window (eV/atom): candidates within it of their composition's minimum are
            flagged.
        top: candidates per composition written to ``best.db``.
        chunk: candidates per prediction chunk (bounds memory).
        reference: optional dataset with ``candidate_id`` and ``reference_column`` (eV/atom),
            e.g. ``relaxed.h5`` of ``deepatoms datagen prototypes``: adds ΔE_c statistics.
        overwrite: replace existing output files.
        progress: ``progress(done, total)`` over candidates.
        cluster: where the prediction chunks run (default this process). Finished chunks wait
            in ``out_dir/.parts``; the same call after a kill continues from them.

    Returns:
        the summary written to ``screen.json`` (without the per-composition ΔE arrays).
    """
    start = time.perf_counter()
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder for the screening results")
    existing = [str(out / name) for name in OUTPUT_FILES if (out / name).exists()]
    if existing and not overwrite:
        raise ValueError(f"{', '.join(existing)} already exist(s); pass --overwrite to replace")
    if isinstance(top, bool) or not isinstance(top, int) or top < 0:
        raise ValueError(f"top must be a non-negative number of candidates, got {top!r}")
    if not window >= 0:
        raise ValueError(f"window must be zero or positive (eV/atom), got {window!r}")
    check = getattr(predictor, "check_elements", None)
    if check is not None:  # fail before any work on elements the model never saw
        from ase.data import atomic_numbers

        check(np.array([atomic_numbers[e] for e in space.request.all_elements]))
    refs = reference_energies(reference, reference_column) if reference is not None else None
    out.mkdir(parents=True, exist_ok=True)
    store = ChunkStore(
        out / ".parts", job="deepatoms screen", n_items=len(space),
        settings={"candidates": space.describe(), "model": model_info or {}},
        save=save_arrays, load=load_arrays, overwrite=overwrite,
    )  # fmt: skip
    resumed = store.n_done()
    table = predict_candidates(space, predictor, chunk=chunk, progress=progress, cluster=cluster,
                               store=store)  # fmt: skip
    t_predict = time.perf_counter() - start
    ranking = rank_candidates(table, window=window)
    write_ranking_csv(out / "ranking.csv", ranking)
    meta = {"model": model_info or {}, "window_eV_per_atom": window, "energy_unit": "eV/atom"}
    n_db = write_best_db(out / "best.db", ranking, top, _jsonable(meta))

    summary: dict[str, Any] = {
        **ranking.summary(),
        "top": top,
        "n_best_rows": n_db,
        "files": {name: str(out / name) for name in OUTPUT_FILES},
        "ground_states": ranking.ground_states(),
    }
    if refs is not None:
        delta = ranking.ground_state_delta(refs)
        summary["ground_state"] = {k: v for k, v in delta.items() if k != "per_composition"} | {
            "reference": str(reference),
            "reference_column": reference_column,
        }
    summary["wall_time_s"] = round(time.perf_counter() - start, 3)
    summary["predict_time_s"] = round(t_predict, 3)
    summary["n_resumed"] = resumed
    summary["workers"] = cluster.n_workers if cluster is not None else 1
    record = {
        "source": "deepatoms screen",
        "summary": summary,
        "settings": {"chunk": chunk, "window_eV_per_atom": window, "top": top},
        "candidates": space.describe(),
        "model": model_info or {},
        "versions": _versions(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    with atomic_target(out / "screen.json") as tmp:
        tmp.write_text(json.dumps(_jsonable(record), indent=2) + "\n", encoding="utf-8")
    store.remove()
    return _jsonable(summary)


def model_predictor(
    model: str | Path, batch_size: int = 100, per_atom: str = "auto", device: Any = "cpu"
) -> tuple[ModelPredictor, dict[str, Any]]:
    """A :class:`ModelPredictor` for a model file or run folder (on the torch ``device``) and
    its provenance record."""
    from deepatoms.models.loading import PROPERTY_FAMILIES, load_model, resolve_model_path

    path = resolve_model_path(model)
    loaded = load_model(path, expect=PROPERTY_FAMILIES)
    loaded.model.to(device)
    predictor = ModelPredictor(loaded, batch_size=batch_size, per_atom=per_atom)
    info = {
        "path": str(path.resolve()),
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        **predictor.info,
        "graph": predictor.loaded.graph.to_config(),
    }
    return predictor, info
