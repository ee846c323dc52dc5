"""MD17-style trajectories from ``.npz`` files (MD17, Chmiela et al. 2017; rMD17, Christensen & von Lilienfeld 2020).

Two key layouts are read:

- MD17 / sGDML: ``R`` [M,N,3] (Å), ``z`` [N], ``E`` [M] or [M,1] (kcal/mol), ``F`` [M,N,3]
  (kcal/mol/Å); optional string entries ``name`` and ``theory`` are kept in the provenance;
- rMD17 (revised MD17): ``coords``, ``nuclear_charges``, ``energies``, ``forces``, same units.

Energies and forces are converted to eV and eV/Å with ``ase.units`` (1 kcal/mol =
``ase.units.kcal / ase.units.mol`` eV ≈ 0.0433641 eV) unless the file is declared to be in eV
already (``units="eV"``). Files are opened with ``allow_pickle=False``: object arrays are refused.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from ase import units as ase_units

from deepatoms.data.packed import PackedSystems
from deepatoms.data.sources.common import file_md5

__all__ = ["KCAL_MOL_TO_EV", "MD17_UNITS", "load_md17"]

#: 1 kcal/mol in eV (ASE constants).
KCAL_MOL_TO_EV: float = ase_units.kcal / ase_units.mol

#: Units of the properties produced by :func:`load_md17`.
MD17_UNITS: dict[str, str] = {"energy": "eV", "forces": "eV/Å"}

# layout name -> (positions, atomic numbers, energies, forces)
_LAYOUTS: dict[str, tuple[str, str, str, str]] = {
    "MD17": ("R", "z", "E", "F"),
    "rMD17": ("coords", "nuclear_charges", "energies", "forces"),
}
_INPUT_UNITS = {"kcal/mol": KCAL_MOL_TO_EV, "eV": 1.0}


def _layout(keys: list[str], path: Path) -> str:
    for name, needed in _LAYOUTS.items():
        if all(k in keys for k in needed):
            return name
    wanted = " or ".join(f"{name} {list(k)}" for name, k in _LAYOUTS.items())
    raise ValueError(
        f"'{path}' is not an MD17-style npz: it holds keys {sorted(keys)}, expected {wanted}"
    )


def _text_entry(npz: Any, key: str) -> str | None:
    """A short string entry such as ``name`` or ``theory``, if present and readable."""
    if key not in npz.files:
        return None
    try:
        value = npz[key]
    except ValueError:  # object array: would need pickle
        return None
    return str(value.item()) if value.size == 1 and value.dtype.kind in "US" else None


def _select(n_frames: int, limit: int | None, seed: int | None, path: Path) -> np.ndarray:
    if limit is None:
        return np.arange(n_frames)
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1:
        raise ValueError(f"MD17 limit must be a positive int or None, got {limit!r}")
    if limit > n_frames:
        raise ValueError(
            f"limit={limit} exceeds the {n_frames} frames in '{path}'; use at most {n_frames}"
        )
    if seed is None:
        return np.arange(int(limit))
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_frames, size=int(limit), replace=False))


def _check_shape(name: str, arr: np.ndarray, expected: tuple[int, ...], what: str, path: Path):
    if arr.shape != expected:
        raise ValueError(f"'{path}': {name!r} has shape {arr.shape}, expected {expected} ({what})")


def load_md17(
    path: str | os.PathLike,
    limit: int | None = None,
    seed: int | None = None,
    units: str = "kcal/mol",
) -> tuple[PackedSystems, dict[str, Any]]:
    """Read an MD17 / rMD17 ``.npz`` trajectory as packed systems plus dataset metadata.

    Args:
        path: the ``.npz`` file (MD17 keys ``R, z, E, F`` or rMD17 keys ``coords,
            nuclear_charges, energies, forces``); positions in Å.
        limit: keep this many frames; ``None`` keeps all.
        seed: with ``limit``, a seeded random subset (``numpy.random.default_rng(seed)``), kept
            in trajectory order; without a seed the first ``limit`` frames.
        units: energy unit of the file, ``"kcal/mol"`` (MD17, rMD17; forces in kcal/mol/Å) or
            ``"eV"`` (forces in eV/Å).

    Returns:
        ``(data, metadata)``: per system ``energy`` (eV, float64) and ``frame`` (index of the
        frame in the file); per atom ``forces`` (eV/Å). Molecules have a zero cell and no
        periodicity. ``metadata`` holds ``units``, ``source`` and ``provenance`` (file name,
        size, md5, layout, input units, conversion factor, frame selection).
    """
    p = Path(path)
    if units not in _INPUT_UNITS:
        raise ValueError(f"units must be one of {list(_INPUT_UNITS)}, got {units!r}")
    if not p.is_file():
        raise FileNotFoundError(f"MD17 file '{p}' does not exist or is not a file")
    try:
        npz = np.load(p, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise ValueError(f"'{p}' cannot be read as a numpy .npz file: {err}") from err
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise ValueError(f"'{p}' holds a single array, not an MD17-style .npz archive")
    with npz:
        layout = _layout(npz.files, p)
        k_pos, k_z, k_e, k_f = _LAYOUTS[layout]
        try:
            numbers, positions, energy, forces = (npz[k] for k in (k_z, k_pos, k_e, k_f))
        except ValueError as err:
            raise ValueError(f"'{p}': an entry is an object array ({err}); re-save it") from err
        extras = {k: v for k in ("name", "theory") if (v := _text_entry(npz, k)) is not None}

    _check_shape(k_z, numbers, (numbers.size,), "one atomic number per atom", p)
    n_atoms = numbers.size
    if n_atoms == 0 or positions.ndim != 3:
        raise ValueError(
            f"'{p}': {k_pos!r} has shape {positions.shape} and {k_z!r} {numbers.shape}; "
            "expected [M, N, 3] positions and N >= 1 atomic numbers"
        )
    n_frames = positions.shape[0]
    _check_shape(k_pos, positions, (n_frames, n_atoms, 3), f"[M, N, 3] with N = len({k_z})", p)
    if energy.shape == (n_frames, 1):
        energy = energy[:, 0]
    _check_shape(k_e, energy, (n_frames,), "one energy per frame, [M] or [M, 1]", p)
    _check_shape(k_f, forces, (n_frames, n_atoms, 3), "[M, N, 3] like the positions", p)
    if numbers.dtype.kind not in "iuf" or np.any(numbers != np.round(numbers)) or numbers.min() < 1:
        raise ValueError(f"'{p}': {k_z!r} must hold positive integer atomic numbers")

    sel = _select(n_frames, limit, seed, p)
    factor = _INPUT_UNITS[units]
    e = energy[sel].astype(np.float64) * factor
    f = forces[sel].astype(np.float64).reshape(-1, 3) * factor
    bad = np.flatnonzero(~np.isfinite(e) | ~np.isfinite(f.reshape(len(sel), -1)).all(axis=1))
    if len(bad):
        raise ValueError(
            f"'{p}': frame {int(sel[bad[0]])} has a non-finite energy or force "
            f"({len(bad)} such frames among those selected)"
        )
    n_sel = len(sel)
    data = PackedSystems(
        numbers=np.tile(numbers.astype(np.int64), n_sel),
        positions=positions[sel].astype(np.float64).reshape(-1, 3),
        offsets=np.arange(n_sel + 1, dtype=np.int64) * n_atoms,
        cell=np.zeros((n_sel, 3, 3)),
        pbc=np.zeros((n_sel, 3), dtype=bool),
        system_props={"energy": e, "frame": sel.astype(np.int64)},
        atom_props={"forces": f},
    )
    metadata: dict[str, Any] = {
        "units": dict(MD17_UNITS),
        "source": f"{layout} npz {p.name}",
        "provenance": {
            "file": p.name,
            "file_size_bytes": p.stat().st_size,
            "md5": file_md5(p),
            "layout": layout,
            "keys": {"positions": k_pos, "numbers": k_z, "energy": k_e, "forces": k_f},
            "input_units": {"energy": units, "forces": f"{units}/Å"},
            "energy_factor_to_eV": factor,
            "n_frames_in_source": int(n_frames),
            "limit": limit,
            "seed": seed,
            "selection": "all"
            if limit is None
            else ("first frames" if seed is None else "seeded random subset, in file order"),
            **extras,
        },
    }
    return data, metadata
