"""Model energies along compression/dilation paths (docs/vimpnn.md §7, §9).

Every sample of a scaled dataset carries ``group`` (its base structure) and ``scale`` s, the
scaling relative to the stable (s = 1) structure. Geometry scaling follows
``deepatoms.datagen.scaling.scale_atoms``: a non-periodic system is scaled about its geometric
centroid c (r ← c + s·(r − c), every pairwise distance × s); a system with a periodic axis scales
its cell, fractional coordinates fixed (r ← s·r, cell ← s·cell). The bond graph is perceived
once at s = 1 and kept for every scaling (§1): only distances change.

* :func:`base_structures` recovers one s = 1 structure per group (``scale_atoms(atoms, 1/s)``),
  with its stored bonds;
* :func:`scaled_pack` replicates base structures over a scaling grid (vectorised numpy), the
  stored edges unchanged;
* :func:`model_curves` evaluates a model on those grids → Ê [C, G] (eV), the input of the DSC
  (``deepatoms.analysis.curve_metrics``); :func:`reference_curves` gives the labelled points;
* :func:`displaced_atom_contributions` moves one atom of a cluster along the line from the
  cluster centroid c through its stable position r_k, r_k(f) = c + f·(r_k − c) for f in
  linspace(0.8, 1.6, 50) (§9), with the s = 1 bond graph fixed, and returns the per-node
  contributions c_v (Σ_v c_v = Ê), normalised c_v / Σ_u |c_u| (Default, §4) or min–max.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from ase import Atoms

from deepatoms.data.graph import collate
from deepatoms.data.neighbors import GraphSpec, build_edges
from deepatoms.data.packed import PackedSystems
from deepatoms.models.inference import predict_packed
from deepatoms.models.loaded import LoadedModel

__all__ = [
    "DEFAULT_FACTORS",
    "base_structures",
    "check_curve_columns",
    "check_graph",
    "cluster_pack",
    "displaced_atom_contributions",
    "displaced_frames",
    "match_bond_types",
    "mean_bond_length",
    "model_curves",
    "model_outputs",
    "normalise_contributions",
    "reference_curves",
    "scale_systems",
    "scaled_pack",
    "timed",
]

#: Displacement factors of the moving atom (docs/vimpnn.md §9: 0.8 to 1.6 times its stable distance).
DEFAULT_FACTORS = np.linspace(0.8, 1.6, 50)
#: Systems per scaled pack built at once by :func:`model_curves` (bounds memory).
CHUNK_SYSTEMS = 20_000

Progress = Callable[[int, int], None] | None


def check_curve_columns(data: PackedSystems, where: str = "the data") -> None:
    """Raise a clear error unless ``data`` has the system properties ``group`` and ``scale``."""
    missing = [k for k in ("group", "scale") if k not in data.system_props]
    if missing:
        raise ValueError(
            f"{where} has no {' or '.join(repr(k) for k in missing)} column (system properties: "
            f"{sorted(data.system_props)}); energy curves need scaled data with the base "
            "structure id 'group' and the scaling factor 'scale': make it with "
            "`deepatoms datagen scaled|crystal|growth`"
        )


def _system_of_atom(pack: PackedSystems) -> np.ndarray:
    return np.repeat(np.arange(len(pack)), pack.n_atoms)


def scale_systems(pack: PackedSystems, s: float | Sequence[float] | np.ndarray) -> PackedSystems:
    """A copy of ``pack`` with system k scaled by ``s[k]`` (the rule of the module docstring).

    Properties and stored edges (topology, cell shifts, bond types) are kept unchanged.
    """
    n_sys = len(pack)
    s = np.broadcast_to(np.asarray(s, dtype=np.float64), (n_sys,))
    if np.any(~np.isfinite(s)) or np.any(s <= 0):
        raise ValueError(f"scaling factors must be finite and > 0, got {s[~(s > 0)][:5]}")
    sys_of = _system_of_atom(pack)
    counts = np.maximum(pack.n_atoms, 1)[:, None]
    centroid = np.stack(
        [np.bincount(sys_of, weights=pack.positions[:, a], minlength=n_sys) for a in range(3)], 1
    )
    periodic = pack.pbc.any(axis=1)
    origin = np.where(periodic[:, None], 0.0, centroid / counts)[sys_of]
    positions = origin + s[sys_of, None] * (pack.positions - origin)
    cell = np.where(periodic[:, None, None], pack.cell * s[:, None, None], pack.cell)
    return PackedSystems(
        pack.numbers,
        positions,
        pack.offsets,
        cell,
        pack.pbc,
        dict(pack.system_props),
        dict(pack.atom_props),
        pack.edges,
    )


def base_structures(
    data: PackedSystems, groups: Sequence[int] | np.ndarray | None = None
) -> PackedSystems:
    """One s = 1 structure per group (sorted ids; Default: every group of ``data``).

    For each group the member with the scale closest to 1 is unscaled with
    ``deepatoms.datagen.scaling.scale_atoms(atoms, 1/s)``; its stored bond graph is kept. The
    result keeps the integer, boolean and string system properties of that member (``group``,
    ``element``, ``smiles``, …), sets ``scale`` = 1 and drops labels (energies, forces).
    """
    from deepatoms.data.scaling import scale_atoms

    check_curve_columns(data)
    gid = np.asarray(data.system_props["group"]).reshape(-1)
    scale = np.asarray(data.system_props["scale"], dtype=np.float64).reshape(-1)
    wanted = np.unique(gid) if groups is None else np.unique(np.asarray(groups))
    missing = np.setdiff1d(wanted, gid)
    if missing.size:
        raise ValueError(f"groups {missing[:10].tolist()} are not in the data")
    # the member nearest s = 1 of each group (ties: the first), found with one sort
    order = np.lexsort((np.arange(len(gid)), np.abs(scale - 1.0), gid))
    ids, first = np.unique(gid[order], return_index=True)
    members = order[first][np.searchsorted(ids, wanted)]
    sub = data.subset(members)
    atoms = [scale_atoms(sub.get_atoms(k), 1.0 / scale[m]) for k, m in enumerate(members)]
    kept = {
        k: v
        for k, v in sub.system_props.items()
        if v.ndim == 1 and v.dtype.kind in "iubUSO" and k != "scale"
    }
    kept["scale"] = np.ones(len(members))
    return PackedSystems(
        sub.numbers,
        np.concatenate([a.positions for a in atoms]) if atoms else sub.positions,
        sub.offsets,
        np.array([a.cell.array for a in atoms]).reshape(-1, 3, 3),
        sub.pbc,
        kept,
        {},
        sub.edges,
    )


def scaled_pack(base: PackedSystems, scales: Sequence[float] | np.ndarray) -> PackedSystems:
    """Every base structure × every scale: system c·G + g is base c scaled by ``scales[g]``.

    Stored edges are replicated unchanged (topology, cell shifts and bond types are fixed under
    scaling); the system property ``scale`` holds s and the other properties are copied.
    """
    scales = np.asarray(scales, dtype=np.float64).reshape(-1)
    which = np.repeat(np.arange(len(base)), len(scales))
    rep = base.subset(which)
    s = np.tile(scales, len(base))
    out = scale_systems(rep, s)
    out.system_props["scale"] = s * np.asarray(rep.system_props.get("scale", 1.0), np.float64)
    return out


def mean_bond_length(base: PackedSystems) -> np.ndarray:
    """Mean bonded distance per system (Å): over its stored edges, else over every atom's
    nearest neighbour (k = 1 nearest-neighbour graph). NaN for a system without edges."""
    if base.edges is not None and getattr(base.edges, "spec", None) is not None:
        el = base.edges.gather(base.offsets)
    else:
        el = build_edges(
            base.positions, base.offsets, base.cell, base.pbc, GraphSpec("knn", None, 1, True)
        )
    i, j = el.edge_index
    sys_of = _system_of_atom(base)[i]
    vec = base.positions[j] - base.positions[i]
    vec = vec + np.einsum("ek,ekl->el", el.edge_shift.astype(np.float64), base.cell[sys_of])
    d = np.linalg.norm(vec, axis=1)
    n = np.bincount(sys_of, minlength=len(base))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.bincount(sys_of, weights=d, minlength=len(base)) / n


def match_bond_types(
    data: PackedSystems, data_types: Sequence[str] | None, model_types: Sequence[str] | None
) -> tuple[PackedSystems, list[str]]:
    """``data`` with its edge ``bond_type`` indices renumbered into the model's vocabulary.

    Returns the pack (unchanged when the vocabularies agree) and warnings. A bond type of the
    data that the model never saw is an error; a missing vocabulary on either side cannot be
    checked and gives a warning (indices are then used as they are).
    """
    edges = data.edges
    if edges is None or "bond_type" not in getattr(edges, "attrs", {}):
        return data, []
    if not model_types or not data_types:
        side = "the model file" if not model_types else "the data"
        return data, [
            f"{side} records no bond-type vocabulary (metadata 'bond_types'); bond types are "
            "used by index, unchecked"
        ]
    data_types, model_types = list(data_types), list(model_types)
    if data_types == model_types:
        return data, []
    unknown = sorted(set(data_types) - set(model_types))
    used = {data_types[t] for t in np.unique(edges.attrs["bond_type"]).astype(int)}
    if used & set(unknown):
        raise ValueError(
            f"the data has bond types {sorted(used & set(unknown))} that the model was not "
            f"trained on (its vocabulary: {model_types}); evaluate it on data made with the "
            "same bond rule"
        )
    lut = np.array([model_types.index(t) if t in model_types else -1 for t in data_types])
    new_attrs = dict(edges.attrs)
    old = edges.attrs["bond_type"]
    new_attrs["bond_type"] = lut[old.astype(np.int64)].astype(old.dtype)
    new_edges = type(edges)(
        edges.spec, edges.offsets, edges.edge_index, edges.edge_shift, new_attrs
    )
    out = PackedSystems(
        data.numbers,
        data.positions,
        data.offsets,
        data.cell,
        data.pbc,
        data.system_props,
        data.atom_props,
        new_edges,
    )
    return out, []


def check_graph(loaded: LoadedModel, data: PackedSystems, where: str) -> None:
    """Raise a clear error when a bond-graph model meets data without its stored bond graph."""
    if loaded.graph.stored_only and getattr(data.edges, "spec", None) != loaded.graph:
        have = getattr(getattr(data.edges, "spec", None), "kind", None)
        raise ValueError(
            f"the model uses the bond graph stored with its data (graph kind 'bonds'), but "
            f"{where} "
            + ("stores no graph" if have is None else f"stores a {have!r} graph")
            + ": evaluate it on a dataset from `deepatoms datagen scaled|crystal|growth`"
        )


def model_curves(
    loaded: LoadedModel,
    base: PackedSystems,
    grid: Sequence[float] | np.ndarray,
    batch_size: int = 100,
    progress: Progress = None,
) -> np.ndarray:
    """Predicted energies Ê [C, G] (model unit, eV) of the C ``base`` structures on ``grid``.

    Built and evaluated in chunks of about :data:`CHUNK_SYSTEMS` structures without gradients;
    ``progress(done, total)`` counts structures.
    """
    grid = np.asarray(grid, dtype=np.float64).reshape(-1)
    check_graph(loaded, base, "the base structures")
    n_c, n_g = len(base), len(grid)
    out = np.empty((n_c, n_g), dtype=np.float64)
    per = max(1, CHUNK_SYSTEMS // max(n_g, 1))
    total = n_c * n_g
    for start in range(0, n_c, per):
        stop = min(start + per, n_c)
        pack = scaled_pack(base.subset(np.arange(start, stop)), grid)
        done = start * n_g

        def tick(k: int, _n: int, done: int = done) -> None:
            if progress is not None:
                progress(done + k, total)

        out[start:stop] = predict_packed(loaded, pack, None, batch_size, tick).reshape(-1, n_g)
    return out


def reference_curves(
    data: PackedSystems,
    groups: Sequence[int] | np.ndarray | None = None,
    target: str = "energy",
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Labelled points per group: ``{group: (s [n], E [n])}`` sorted by s (E in data units)."""
    check_curve_columns(data)
    if target not in data.system_props:
        raise ValueError(
            f"the data has no {target!r} labels; system properties: {sorted(data.system_props)}"
        )
    gid = np.asarray(data.system_props["group"]).reshape(-1)
    s = np.asarray(data.system_props["scale"], dtype=np.float64).reshape(-1)
    e = np.asarray(data.system_props[target], dtype=np.float64).reshape(-1)
    wanted = np.unique(gid) if groups is None else np.asarray(groups).reshape(-1)
    order = np.lexsort((s, gid))
    ids, start, count = np.unique(gid[order], return_index=True, return_counts=True)
    out = {}
    for g in wanted:
        k = np.searchsorted(ids, g)
        if k == len(ids) or ids[k] != g:
            raise ValueError(f"group {g} is not in the data")
        rows = order[start[k] : start[k] + count[k]]
        out[int(g)] = (s[rows], e[rows])
    return out


def model_outputs(
    loaded: LoadedModel, data: PackedSystems, batch_size: int = 50
) -> tuple[np.ndarray, np.ndarray]:
    """(prediction [B], per-atom contributions [N]) of every system, without gradients."""
    check_graph(loaded, data, "the structures")
    model = loaded.model.eval()
    dtype = next(model.parameters()).dtype
    pred, contrib = [], []
    with torch.inference_mode():
        for s in range(0, len(data), batch_size):
            idx = np.arange(s, min(s + batch_size, len(data)))
            res = model(collate(data, idx, loaded.graph, dtype=dtype, targets=()))
            if "contributions" not in res:
                raise ValueError(
                    "the model returns no per-atom 'contributions'; contribution plots need a "
                    "model with an atom-wise or gated readout"
                )
            pred.append(res[loaded.property].double().numpy())
            contrib.append(res["contributions"].double().reshape(-1).numpy())
    return np.concatenate(pred), np.concatenate(contrib)


def normalise_contributions(c: np.ndarray, mode: str = "sum_abs") -> np.ndarray:
    """Per row: ``"sum_abs"`` c_v / Σ_u |c_u| (Default, §4), ``"minmax"`` (c − min)/(max − min),
    or ``"none"``. Rows of zeros (or constant rows for min–max) give zeros."""
    c = np.atleast_2d(np.asarray(c, dtype=np.float64))
    if mode == "none":
        return c.copy()
    if mode == "sum_abs":
        den = np.abs(c).sum(axis=1, keepdims=True)
        num = c
    elif mode == "minmax":
        lo = c.min(axis=1, keepdims=True)
        den = c.max(axis=1, keepdims=True) - lo
        num = c - lo
    else:
        raise ValueError(f"normalisation must be 'sum_abs', 'minmax' or 'none', got {mode!r}")
    return np.divide(num, den, out=np.zeros_like(c), where=den > 0)


def cluster_pack(
    atoms: Atoms,
    loaded: LoadedModel,
    bond_types: Sequence[str] | None = None,
    bond_rule: str | None = None,
) -> PackedSystems:
    """A one-system pack of ``atoms`` (its stable, s = 1 geometry) ready for ``loaded``.

    For a bond-graph model the bonds are perceived with ``deepatoms.data.bonds.pack_with_bonds``
    using the model's bond vocabulary (model metadata ``bond_types``, else ``bond_types``) and
    rule (metadata ``bond_rule``, else ``bond_rule``, else "rdkit").
    """
    if not loaded.graph.stored_only:
        return PackedSystems.from_atoms([atoms])
    vocab = loaded.meta.get("bond_types") or (list(bond_types) if bond_types else None)
    if not vocab:
        raise ValueError(
            "the model file records no bond-type vocabulary (metadata 'bond_types'), so the bond "
            "types of a new cluster cannot be numbered as in training: pass the training dataset "
            "(--data), whose metadata has them"
        )
    rule = next(
        (r for r in (loaded.meta.get("bond_rule"), bond_rule) if isinstance(r, str)), "rdkit"
    )
    from deepatoms.data.bonds import pack_with_bonds

    pack, got = pack_with_bonds([atoms], rule=rule, vocabulary=list(vocab))
    pack, _ = match_bond_types(pack, got, vocab)
    return pack


def displaced_frames(
    cluster: PackedSystems, atom_index: int, factors: Sequence[float] | np.ndarray
) -> PackedSystems:
    """F copies of the one-system ``cluster`` with atom k at c + f·(r_k − c) (c: centroid of
    the stable cluster), the stored bond graph kept; system property ``factor`` = f."""
    if len(cluster) != 1:
        raise ValueError(f"the cluster pack must hold one system, got {len(cluster)}")
    n = int(cluster.n_atoms[0])
    if not -n <= atom_index < n:
        raise ValueError(f"atom index {atom_index} is out of range for a {n}-atom cluster")
    k = atom_index % n
    f = np.asarray(factors, dtype=np.float64).reshape(-1)
    c = cluster.positions.mean(axis=0)
    if np.linalg.norm(cluster.positions[k] - c) < 1e-8:
        raise ValueError(f"atom {k} sits at the cluster centroid: there is no line to move it on")
    frames = cluster.subset(np.zeros(len(f), dtype=np.int64))
    frames.positions[k::n] = c + f[:, None] * (cluster.positions[k] - c)
    frames.system_props["factor"] = f
    return frames


def displaced_atom_contributions(
    loaded: LoadedModel,
    cluster: PackedSystems,
    atom_index: int,
    factors: Sequence[float] | np.ndarray = DEFAULT_FACTORS,
    normalise: str = "sum_abs",
    batch_size: int = 50,
) -> dict[str, np.ndarray | int | str]:
    """Per-node contributions while atom ``atom_index`` moves out of its stable position.

    ``cluster``: the stable cluster as a one-system pack (:func:`cluster_pack`). Returns
    ``factor`` [F], ``distance`` [F] (Å from the centroid), ``energy`` [F] (model unit),
    ``contributions`` [F, N] raw (Σ_v = energy), ``normalised`` [F, N], ``atom_index`` and
    ``normalisation``.
    """
    frames = displaced_frames(cluster, atom_index, factors)
    n = int(cluster.n_atoms[0])
    k = atom_index % n
    energy, contrib = model_outputs(loaded, frames, batch_size)
    c = contrib.reshape(len(frames), n)
    centroid = cluster.positions.mean(axis=0)
    return {
        "factor": frames.system_props["factor"],
        "distance": np.linalg.norm(frames.positions[k::n] - centroid, axis=1),
        "energy": energy,
        "contributions": c,
        "normalised": normalise_contributions(c, normalise),
        "atom_index": k,
        "normalisation": normalise,
    }


def timed(fn: Callable, *args, **kwargs) -> tuple[object, float]:
    """(``fn(*args, **kwargs)``, wall-clock seconds)."""
    t0 = time.perf_counter()
    res = fn(*args, **kwargs)
    return res, time.perf_counter() - t0
