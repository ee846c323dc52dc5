"""Batched inference of a loaded model over packed systems (no gradients)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from deepatoms.data.edge_store import attach_edges
from deepatoms.data.graph import collate
from deepatoms.data.neighbors import GraphSpec
from deepatoms.data.packed import PackedSystems
from deepatoms.models.loaded import LoadedModel
from deepatoms.models.potential import inference_potential, stress_to_voigt


def predict_packed(
    loaded: LoadedModel,
    data: PackedSystems,
    indices: Sequence[int] | np.ndarray | None = None,
    batch_size: int = 100,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Predict ``loaded.property`` for ``indices`` of ``data`` (all by default), in target units.

    ``progress(done, total)`` is called after each batch with the number of systems done so far.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    idx = np.arange(len(data)) if indices is None else np.asarray(indices, dtype=np.int64)
    if loaded.graph.precomputed and (data.edges is None or data.edges.spec != loaded.graph):
        # e.g. Voronoi graphs: once per structure (reported through the same callback)
        data = attach_edges(data.subset(idx), loaded.graph, progress)
        idx = np.arange(len(data))
    model = loaded.model.eval()
    dtype, device = next(model.parameters()).dtype, next(model.parameters()).device
    out = np.empty(len(idx), dtype=np.float64)
    with torch.inference_mode():
        for s in range(0, len(idx), batch_size):
            chunk = idx[s : s + batch_size]
            batch = collate(data, chunk, loaded.graph, dtype=dtype, targets=()).to(device)
            out[s : s + len(chunk)] = model(batch)[loaded.property].double().cpu().numpy()
            if progress is not None:
                progress(s + len(chunk), len(idx))
    return out


def predict_members(
    graph: GraphSpec,
    committee: torch.nn.Module,
    data: PackedSystems,
    indices: Sequence[int] | np.ndarray | None = None,
    batch_size: int = 100,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Every member's prediction of a :class:`~deepatoms.models.committee.Committee` for
    ``indices`` of ``data``: [N members, M systems], in target units."""
    idx = np.arange(len(data)) if indices is None else np.asarray(indices, dtype=np.int64)
    if graph.precomputed and (data.edges is None or data.edges.spec != graph):
        data = attach_edges(data.subset(idx), graph, progress)
        idx = np.arange(len(data))
    model = committee.eval()
    dtype, device = next(model.parameters()).dtype, next(model.parameters()).device
    key = f"{model.property}_members"
    out = np.empty((len(model.members), len(idx)), dtype=np.float64)
    with torch.inference_mode():
        for s in range(0, len(idx), batch_size):
            chunk = idx[s : s + batch_size]
            batch = collate(data, chunk, graph, dtype=dtype, targets=()).to(device)
            out[:, s : s + len(chunk)] = model(batch)[key].double().cpu().numpy()
            if progress is not None:
                progress(s + len(chunk), len(idx))
    return out


def predict_with_std(
    loaded: LoadedModel, data: PackedSystems, indices: Sequence[int] | np.ndarray | None = None,
    batch_size: int = 100, progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:  # fmt: skip
    """The property for ``indices`` of ``data`` (model units) and, for a committee, its
    standard deviation σ = sqrt(s · member variance) (same units; None for a single model;
    :mod:`deepatoms.models.committee`)."""
    from deepatoms.models.committee import committee_info, member_std

    info = committee_info(loaded)
    if info is None:
        return np.asarray(predict_packed(loaded, data, indices, batch_size, progress)), None
    members = predict_members(loaded.graph, loaded.model, data, indices, batch_size, progress)
    return members.mean(0), member_std(members, info["variance_scale"])


def predict_potential(
    model: torch.nn.Module, graph: GraphSpec, data: PackedSystems,
    indices: Sequence[int] | np.ndarray | None = None, batch_size: int = 50, stress: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, np.ndarray]:  # fmt: skip
    """Energies [M] (eV), forces [N_sel,3] (eV/Å) and optionally Voigt stress [M,6] (eV/Å³).

    ``model`` is an energy model (``model.property`` names the energy); forces are −∂E/∂R of the
    whole batch (:func:`deepatoms.models.potential.inference_potential`). Atoms of the selected
    systems are returned in selection order. For a committee also ``members``: ``energy``
    [N, M] and ``forces`` [N, N_sel, 3] of every member. ``progress(done, total)`` as in
    :func:`predict_packed`.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    idx = np.arange(len(data)) if indices is None else np.asarray(indices, dtype=np.int64)
    model = model.eval()
    dtype, device = next(model.parameters()).dtype, next(model.parameters()).device
    potential = inference_potential(model)
    energy = np.empty(len(idx), dtype=np.float64)
    forces, voigt = [], []
    members: dict[str, list[np.ndarray]] = {}
    for s in range(0, len(idx), batch_size):
        chunk = idx[s : s + batch_size]
        batch = collate(data, chunk, graph, dtype=dtype, targets=()).to(device)
        out = potential(batch, forces=True, stress=stress)
        energy[s : s + len(chunk)] = out["energy"].detach().double().cpu().numpy()
        for k, v in out.get("members", {}).items():
            if k in ("energy", "forces"):
                members.setdefault(k, []).append(v.double().cpu().numpy())
        forces.append(out["forces"].detach().double().cpu().numpy())
        if stress:
            voigt.append(stress_to_voigt(out["stress"].double().cpu()))
        if progress is not None:
            progress(s + len(chunk), len(idx))
    result = {"energy": energy, "forces": np.concatenate(forces) if forces else np.zeros((0, 3))}
    if stress:
        result["stress"] = np.concatenate(voigt) if voigt else np.zeros((0, 6))
    if members:  # a committee: the member values too
        result["members"] = {k: np.concatenate(v, axis=1) for k, v in members.items()}
    return result


def unseen_elements(loaded: LoadedModel, numbers: np.ndarray) -> list[int]:
    """Atomic numbers in ``numbers`` that the model never saw in training."""
    seen = set(loaded.meta.get("elements") or [])
    if not seen:
        return []
    return sorted(set(np.unique(numbers).tolist()) - seen)


def is_potential(loaded: LoadedModel) -> bool:
    """True for a potential: an energy model in eV trained on forces, whose forces −∂E/∂R come
    from a sum readout on a distance-cutoff or all-pairs graph (not Voronoi or bond graphs).
    A property model such as QM9's U0 is not one: its gradients were never fitted."""
    readout = getattr(getattr(loaded.model, "head", None), "readout", "sum")
    trained = ((loaded.meta or {}).get("stats") or {}).get("forces")
    smooth = loaded.graph.kind in ("all", "cutoff")
    return bool(trained) and loaded.unit == "eV" and readout == "sum" and smooth
