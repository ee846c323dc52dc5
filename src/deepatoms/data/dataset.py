"""Datasets on disk: one HDF5 file of packed, columnar arrays (docs/architecture.md).

Layout (format ``deepatoms-dataset``, version :data:`FORMAT_VERSION`)::

    /numbers          [N]      atomic numbers (smallest fitting unsigned int on disk)
    /positions        [N,3]    float64, Å
    /offsets          [B+1]    int64; atoms of system k are offsets[k]:offsets[k+1]
    /cell             [B,3,3]  float64, Å, rows are lattice vectors
    /pbc              [B,3]    bool
    /system_props/<name>  [B,...]  numbers, or variable-length UTF-8 strings (e.g. SMILES)
    /atom_props/<name>    [N,...]
    /edges            optional stored graph (e.g. a VIMPNN bond graph), see ``StoredEdges``:
        offsets [B+1], edge_index [2,E] (local atom indices), edge_shift [E,3],
        attrs/<name> [E,...]; attrs: spec=<GraphSpec config as JSON>
    attrs: format="deepatoms-dataset", format_version, metadata=<JSON string>

The metadata holds at least ``units`` ({property: unit}), ``source`` (str) and ``provenance``
(dict); optionally ``atomrefs`` ({property: {"Z": value}}). Large arrays are chunked (~1 MiB)
and compressed with shuffle + gzip level 4; all of QM9 (130,831 molecules) is an 86 MB file that
reads in well under a second.

Files are written atomically: into a temporary file in the target folder, then ``os.replace``.
Everything is read into memory (:func:`read_dataset`); :func:`dataset_info` reads only what its
summary needs.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from ase.data import chemical_symbols

from deepatoms.core.files import atomic_target, check_input_file
from deepatoms.data.packed import PackedSystems

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "append_dataset",
    "dataset_info",
    "format_info",
    "read_dataset",
    "write_dataset",
]

FORMAT_NAME = "deepatoms-dataset"
FORMAT_VERSION = 1
_CORE = ("numbers", "positions", "offsets", "cell", "pbc")
_GROUPS = ("system_props", "atom_props")
_COMPRESS_MIN_BYTES = 64 * 1024
_CHUNK_BYTES = 1 << 20


# -- helpers ----------------------------------------------------------------------------------
def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serialisable")


def _prepare_metadata(metadata: Mapping[str, Any], path: Path) -> tuple[dict[str, Any], str]:
    """Validate ``metadata``; return a normalised copy and its JSON text."""
    if not isinstance(metadata, Mapping):
        raise TypeError(f"metadata for '{path}' must be a dict, got {type(metadata).__name__}")
    meta = copy.deepcopy(dict(metadata))
    missing = [k for k in ("units", "source", "provenance") if k not in meta]
    if missing:
        raise ValueError(
            f"metadata for '{path}' lacks {missing}; give at least 'units' "
            "({property: unit}), 'source' (str) and 'provenance' (dict)"
        )
    if not isinstance(meta["units"], Mapping) or not all(
        isinstance(u, str) for u in meta["units"].values()
    ):
        raise ValueError(f"metadata['units'] for '{path}' must map property names to unit strings")
    if not isinstance(meta["source"], str):
        raise ValueError(f"metadata['source'] for '{path}' must be a string")
    if not isinstance(meta["provenance"], Mapping):
        raise ValueError(f"metadata['provenance'] for '{path}' must be a dict")
    if "atomrefs" in meta and meta["atomrefs"] is not None:
        refs = meta["atomrefs"]
        try:
            meta["atomrefs"] = {
                str(prop): {str(int(z)): float(v) for z, v in table.items()}
                for prop, table in refs.items()
            }
        except (AttributeError, TypeError, ValueError) as err:
            raise ValueError(
                f"metadata['atomrefs'] for '{path}' must be {{property: {{atomic_number: value}}}}"
            ) from err
    meta["format_version"] = FORMAT_VERSION
    try:
        text = json.dumps(meta, default=_json_default)
    except (TypeError, ValueError) as err:
        raise ValueError(f"metadata for '{path}' is not JSON serialisable: {err}") from err
    return json.loads(text), text


def _is_str_array(a: np.ndarray) -> bool:
    return a.dtype.kind in "USO"


def _write_array(group: h5py.Group, name: str, arr: np.ndarray, where: str) -> None:
    """Write one array, compressing large numeric ones; strings become variable-length UTF-8."""
    arr = np.asarray(arr)
    if _is_str_array(arr):
        flat = arr.reshape(-1)
        if arr.dtype.kind == "O" and not all(isinstance(s, str) for s in flat):
            bad = next(type(s).__name__ for s in flat if not isinstance(s, str))
            raise TypeError(
                f"property {where!r} is an object array holding {bad}; only numbers and str "
                "can be stored"
            )
        if arr.dtype.kind == "S":
            arr = np.char.decode(arr, "utf-8")
        group.create_dataset(name, data=arr.astype(object), dtype=h5py.string_dtype("utf-8"))
        return
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"property {where!r} has unsupported dtype {arr.dtype} (numbers or str)")
    kwargs: dict[str, Any] = {}
    if arr.nbytes >= _COMPRESS_MIN_BYTES and arr.ndim >= 1:
        row_bytes = max(1, arr.nbytes // max(1, len(arr)))
        rows = int(min(len(arr), max(1, _CHUNK_BYTES // row_bytes)))
        kwargs = {
            "chunks": (rows, *arr.shape[1:]),
            "compression": "gzip",
            "compression_opts": 4,
            "shuffle": True,
        }
    group.create_dataset(name, data=arr, **kwargs)


def _read_array(ds: h5py.Dataset) -> np.ndarray:
    if h5py.check_string_dtype(ds.dtype) is not None:
        values = ds.asstr()[()]
        return np.asarray(values, dtype=str).reshape(ds.shape)
    return ds[()]


def _small_uint(numbers: np.ndarray) -> np.ndarray:
    if len(numbers) and (numbers.min() < 0 or numbers.max() > np.iinfo(np.uint16).max):
        return numbers
    if len(numbers) == 0 or numbers.max() <= np.iinfo(np.uint8).max:
        return numbers.astype(np.uint8)
    return numbers.astype(np.uint16)


def _write_file(h5path: Path, data: PackedSystems, meta_json: str) -> None:
    with h5py.File(h5path, "w") as f:
        f.attrs["format"] = FORMAT_NAME
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["metadata"] = meta_json
        f.attrs["n_systems"] = len(data)
        f.attrs["n_atoms"] = len(data.numbers)
        _write_array(f, "numbers", _small_uint(data.numbers), "numbers")
        _write_array(f, "positions", data.positions, "positions")
        _write_array(f, "offsets", data.offsets, "offsets")
        _write_array(f, "cell", data.cell, "cell")
        _write_array(f, "pbc", data.pbc, "pbc")
        for gname, props in (("system_props", data.system_props), ("atom_props", data.atom_props)):
            g = f.create_group(gname, track_order=True)
            for name, arr in props.items():
                if not isinstance(name, str) or not name or "/" in name:
                    raise ValueError(f"invalid property name {name!r}: use a non-empty str, no '/'")
                _write_array(g, name, arr, f"{gname}/{name}")
        if data.edges is not None and data.edges.spec.stored_only:
            _write_edges(f, data.edges)


def _write_edges(f: h5py.File, edges: Any) -> None:
    """Store a graph that cannot be rebuilt from positions (a fixed bond graph)."""
    g = f.create_group("edges")
    g.attrs["spec"] = json.dumps(edges.spec.to_config())
    _write_array(g, "offsets", np.asarray(edges.offsets, np.int64), "edges/offsets")
    _write_array(g, "edge_index", np.asarray(edges.edge_index, np.int64), "edges/edge_index")
    _write_array(g, "edge_shift", np.asarray(edges.edge_shift, np.int64), "edges/edge_shift")
    ga = g.create_group("attrs", track_order=True)
    for name, arr in edges.attrs.items():
        _write_array(ga, name, np.asarray(arr), f"edges/attrs/{name}")


def _read_edges(f: h5py.File) -> Any:
    from deepatoms.data.edge_store import StoredEdges
    from deepatoms.data.neighbors import GraphSpec

    g = f.get("edges")
    if g is None:
        return None
    spec = GraphSpec.from_config(json.loads(g.attrs["spec"]))
    return StoredEdges(
        spec,
        _read_array(g["offsets"]),
        _read_array(g["edge_index"]),
        _read_array(g["edge_shift"]),
        {name: _read_array(g["attrs"][name]) for name in g["attrs"]},
    )


@contextlib.contextmanager
def _open(path: str | os.PathLike) -> Iterator[tuple[h5py.File, Path]]:
    """Open a deepatoms dataset for reading, with clear errors for missing or foreign files."""
    p = check_input_file(path, "dataset file")
    try:
        f = h5py.File(p, "r")
    except OSError as err:
        raise ValueError(
            f"'{p}' is not a deepatoms dataset: it cannot be opened as HDF5 ({err}). "
            "Create datasets with `deepatoms data import` or deepatoms.data.dataset.write_dataset."
        ) from err
    with f:
        missing = [k for k in _CORE if k not in f]
        missing += [f"attribute '{k}'" for k in ("metadata",) if k not in f.attrs]
        fmt = f.attrs.get("format")
        if missing or fmt != FORMAT_NAME:
            what = (
                f"it lacks {', '.join(missing)}"
                if missing
                else f"its 'format' attribute is {fmt!r}, expected {FORMAT_NAME!r}"
            )
            raise ValueError(
                f"'{p}' is not a deepatoms dataset: {what}. "
                "Create datasets with deepatoms.data.dataset.write_dataset."
            )
        version = int(f.attrs.get("format_version", 0))
        if version > FORMAT_VERSION:
            raise ValueError(
                f"'{p}' has dataset format version {version}, newer than this deepatoms "
                f"(reads up to {FORMAT_VERSION}); upgrade deepatoms"
            )
        yield f, p


def _load_metadata(f: h5py.File, p: Path) -> dict[str, Any]:
    raw = f.attrs["metadata"]
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as err:
        raise ValueError(f"'{p}': the 'metadata' attribute is not valid JSON ({err})") from err
    if not isinstance(meta, dict):
        raise ValueError(f"'{p}': the 'metadata' attribute is not a JSON object")
    return meta


# -- public API -------------------------------------------------------------------------------
def write_dataset(
    path: str | os.PathLike, data: PackedSystems, metadata: Mapping[str, Any]
) -> None:
    """Write ``data`` and ``metadata`` to the HDF5 file ``path`` atomically (see module docstring).

    Positions and cells are in Å; property units are declared in ``metadata["units"]``. The
    metadata must contain ``units`` (dict), ``source`` (str) and ``provenance`` (dict); it is
    stored as JSON (``format_version`` is set). An existing file is replaced only when the new
    one is complete; if writing fails, no partial file is left behind.
    """
    path = Path(path)
    if not isinstance(data, PackedSystems):
        raise TypeError(f"data for '{path}' must be PackedSystems, got {type(data).__name__}")
    _, meta_json = _prepare_metadata(metadata, path)
    try:
        with atomic_target(path) as tmp:
            _write_file(tmp, data, meta_json)
    except (TypeError, ValueError) as err:
        raise type(err)(f"cannot write dataset '{path}': {err}") from err


def read_dataset(path: str | os.PathLike) -> tuple[PackedSystems, dict[str, Any]]:
    """Load a whole dataset into memory: ``(PackedSystems, metadata)``.

    Numbers come back as int64, positions/cells as float64 (Å), string properties as numpy str
    arrays; metadata is the JSON-decoded dict (atomref keys are strings).
    """
    with _open(path) as (f, p):
        meta = _load_metadata(f, p)
        core = {k: _read_array(f[k]) for k in _CORE}
        props: dict[str, dict[str, np.ndarray]] = {}
        for gname in _GROUPS:
            g = f.get(gname)
            props[gname] = {name: _read_array(g[name]) for name in g} if g is not None else {}
        try:
            data = PackedSystems(
                core["numbers"],
                core["positions"],
                core["offsets"],
                core["cell"],
                core["pbc"],
                props["system_props"],
                props["atom_props"],
                _read_edges(f),
            )
        except ValueError as err:
            raise ValueError(f"'{p}' is corrupt: {err}") from err
    return data, meta


def append_dataset(
    path: str | os.PathLike,
    data: PackedSystems,
    metadata_update: Mapping[str, Any] | None = None,
) -> None:
    """Append the systems of ``data`` to the dataset ``path`` (rewritten atomically).

    ``data`` must have exactly the same per-system and per-atom property names as the file, with
    the same trailing shapes and kinds (number vs string). ``metadata_update`` is merged into the
    stored metadata (top-level keys replaced); the append is recorded in ``metadata["history"]``.
    """
    p = Path(path)
    old, meta = read_dataset(p)
    problems: list[str] = []
    for level, a, b in (
        ("per-system", old.system_props, data.system_props),
        ("per-atom", old.atom_props, data.atom_props),
    ):
        if set(a) != set(b):
            only_file, only_new = sorted(set(a) - set(b)), sorted(set(b) - set(a))
            problems.append(
                f"{level} properties differ: only in file {only_file}, only new {only_new}"
            )
            continue
        for name in a:
            va, vb = np.asarray(a[name]), np.asarray(b[name])
            if va.shape[1:] != vb.shape[1:]:
                problems.append(
                    f"{name!r} has shape [..]{va.shape[1:]} in file, {vb.shape[1:]} new"
                )
            elif _is_str_array(va) != _is_str_array(vb):
                problems.append(f"{name!r} is {va.dtype} in file but {vb.dtype} new")
    if problems:
        raise ValueError(
            f"cannot append to '{p}': " + "; ".join(problems) + ". Make the property names match "
            "(add, rename or drop properties) before appending."
        )
    merged = PackedSystems.concatenate([old, data])
    update = dict(metadata_update or {})
    meta.update(copy.deepcopy(update))
    history = list(meta.get("history", []))
    history.append(
        {"action": "append", "n_systems": len(data), "updated_keys": sorted(update.keys())}
    )
    meta["history"] = history
    write_dataset(p, merged, meta)


def _numeric_stats(values: np.ndarray) -> dict[str, float]:
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return {}
    return {
        "mean": float(np.mean(v)),
        "std": float(np.std(v)),
        "min": float(np.min(v)),
        "max": float(np.max(v)),
    }


def dataset_info(path: str | os.PathLike) -> dict[str, Any]:
    """Summary of a dataset file as a JSON-friendly dict (positions are not read).

    Keys: ``path``, ``file_size_bytes``, ``format_version``, ``n_systems``, ``n_atoms``
    (``{"total", "min", "mean", "max"}`` per system), ``elements`` ({symbol: atom count}),
    ``n_periodic`` (systems with any periodic direction), ``properties`` ({name: {"level":
    "system"|"atom", "dtype", "shape" (without the leading axis), "unit", and for numeric ones
    "mean", "std", "min", "max" over all entries}}), ``source``, ``provenance``, ``atomrefs``
    (property names with atom references) and ``metadata`` (the full metadata).
    """
    with _open(path) as (f, p):
        meta = _load_metadata(f, p)
        offsets = f["offsets"][()]
        numbers = f["numbers"][()].astype(np.int64)
        pbc = f["pbc"][()]
        n_per = np.diff(offsets)
        if (
            offsets.ndim != 1
            or len(offsets) == 0
            or offsets[0] != 0
            or (n_per < 0).any()
            or (int(offsets[-1]) != len(numbers))
        ):
            raise ValueError(
                f"'{p}' is corrupt: its offsets do not index its {len(numbers)} atoms "
                "(they must start at 0, never decrease and end at the atom count); rebuild "
                "the dataset"
            )
        units = meta.get("units", {})
        props: dict[str, Any] = {}
        for gname, level in (("system_props", "system"), ("atom_props", "atom")):
            g = f.get(gname)
            for name in g if g is not None else []:
                ds = g[name]
                is_str = h5py.check_string_dtype(ds.dtype) is not None
                entry: dict[str, Any] = {
                    "level": level,
                    "dtype": "str" if is_str else str(ds.dtype),
                    "shape": list(ds.shape[1:]),
                    "unit": units.get(name),
                }
                if not is_str:
                    entry.update(_numeric_stats(ds[()]))
                props[name] = entry
    counts = np.bincount(numbers) if len(numbers) else np.zeros(0, np.int64)
    elements = {
        (chemical_symbols[z] if z < len(chemical_symbols) else str(z)): int(counts[z])
        for z in np.flatnonzero(counts)
    }
    return {
        "path": str(p),
        "file_size_bytes": p.stat().st_size,
        "format_version": meta.get("format_version"),
        "n_systems": len(n_per),
        "n_atoms": {
            "total": len(numbers),
            "min": int(n_per.min()) if len(n_per) else 0,
            "mean": float(n_per.mean()) if len(n_per) else 0.0,
            "max": int(n_per.max()) if len(n_per) else 0,
        },
        "elements": elements,
        "n_periodic": int(np.any(pbc, axis=1).sum()) if len(pbc) else 0,
        "properties": props,
        "source": meta.get("source"),
        "provenance": meta.get("provenance"),
        "atomrefs": sorted(meta.get("atomrefs") or {}),
        "metadata": meta,
    }


def _fmt_size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


def format_info(info: Mapping[str, Any]) -> str:
    """Readable multi-line text for a :func:`dataset_info` dict (``deepatoms data info``)."""
    at = info["n_atoms"]
    lines = [
        f"dataset   {info['path']}  ({_fmt_size(info['file_size_bytes'])}, "
        f"format v{info.get('format_version')})",
        f"source    {info.get('source')}",
        f"systems   {info['n_systems']:,}  ({info['n_periodic']:,} periodic)",
        f"atoms     {at['total']:,} total; per system min {at['min']}, "
        f"mean {at['mean']:.2f}, max {at['max']}",
        "elements  " + (", ".join(f"{s} {c:,}" for s, c in info["elements"].items()) or "(none)"),
    ]
    if info.get("atomrefs"):
        lines.append(f"atomrefs  {', '.join(info['atomrefs'])}")
    prov = info.get("provenance") or {}
    if prov:
        lines.append(
            "provenance " + ", ".join(f"{k}={json.dumps(v, default=str)}" for k, v in prov.items())
        )
    props = info.get("properties", {})
    lines.append(f"properties ({len(props)})")
    if props:
        w = max(len(n) for n in props)
        for name, e in props.items():
            shape = "[" + ",".join(["B" if e["level"] == "system" else "N", *map(str, e["shape"])])
            head = f"  {name:<{w}}  {e['level']:<6}  {e['dtype']:<7} {shape + ']':<10}"
            unit = f"  [{e['unit']}]" if e.get("unit") else ""
            stats = ""
            if "mean" in e:
                stats = (
                    f"  mean {e['mean']:.6g}  std {e['std']:.6g}  "
                    f"min {e['min']:.6g}  max {e['max']:.6g}"
                )
            lines.append(head + stats + unit)
    return "\n".join(lines)
