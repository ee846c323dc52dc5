"""Declared labels and units of imported structures: which keys hold the energy, forces and
stress, in which units, converted to eV and Å (docs/data-and-units.md).

ASE readers attach the numbers of a file as they are; only the file's author knows whether
they are eV or Hartree. :func:`declare_labels` renames the declared keys to ``energy``,
``forces`` and ``stress``, converts them (and positions and cells) to eV, eV/Å, eV/Å³ and Å,
and records what it did in the metadata's ``provenance["units"]``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from deepatoms.core.errors import DeepatomsError
from deepatoms.core.units import energy_factor, length_factor
from deepatoms.data.packed import PackedSystems

__all__ = ["declare_labels"]

#: Canonical name, level and power of (energy, length) of each declared label.
_LABELS = {"energy": ("system", 1, 0), "forces": ("atom", 1, -1), "stress": ("system", 1, -3)}
_UNITS = {"energy": "eV", "forces": "eV/Å", "stress": "eV/Å^3"}
# Other calculator properties whose unit follows the declared units (power of energy, length).
_FOLLOW = {"free_energy": (1, 0), "energies": (1, 0), "dipole": (0, 1)}


def declare_labels(
    data: PackedSystems, meta: dict[str, Any], *, energy_key: str | None = None,
    forces_key: str | None = None, stress_key: str | None = None, energy_unit: str = "eV",
    length_unit: str = "Å",
) -> tuple[PackedSystems, dict[str, Any], list[str]]:  # fmt: skip
    """``data`` with the declared keys renamed to ``energy``/``forces``/``stress`` and every
    energy, force, stress, position and cell converted to eV and Å; the updated metadata and
    notes for the user. A key left as None keeps the file's own ``energy``/``forces``/``stress``
    (if any), which is then taken to be in ``energy_unit`` and ``length_unit`` too."""
    e_name, e_fac = energy_factor(energy_unit)
    l_name, l_fac = length_factor(length_unit)
    system, atom = dict(data.system_props), dict(data.atom_props)
    units = dict(meta.get("units") or {})
    notes: list[str] = []
    record: dict[str, Any] = {"energy_unit": e_name, "length_unit": l_name}
    keys = {"energy": energy_key, "forces": forces_key, "stress": stress_key}
    for canon, key in keys.items():
        level, pe, pl = _LABELS[canon]
        table = system if level == "system" else atom
        if key is None:
            if canon not in table:
                continue
            key = canon
        if key not in system and key not in atom:
            have = sorted(system if level == "system" else atom)
            raise DeepatomsError(
                f"--{canon}-key {key!r}: no {level} property of that name in the input; "
                f"{level} properties found: {', '.join(have) or 'none'} (see the 'dropped' notes "
                "for keys that were not on every structure)"
            )
        if key not in table:
            raise DeepatomsError(f"--{canon}-key {key!r} is not a per-{level} property")
        values = np.asarray(table.pop(key))
        if values.dtype.kind not in "iuf":
            raise DeepatomsError(f"--{canon}-key {key!r} holds {values.dtype} values, not numbers")
        if key != canon and canon in table:
            table[f"file_{canon}"] = table.pop(canon)
            units.pop(canon, None)
            notes.append(f"the file's own {canon!r} is kept as 'file_{canon}' (no unit)")
        table[canon] = values.astype(np.float64) * (e_fac**pe) * (l_fac**pl)
        units.pop(key, None)
        units[canon] = _UNITS[canon]
        record[canon] = {"key": key, "factor": float((e_fac**pe) * (l_fac**pl))}
        if key != canon:
            notes.append(f"{key!r} imported as {canon!r} in {_UNITS[canon]}")
    for name, (pe, pl) in _FOLLOW.items():
        table = system if name in system else atom if name in atom else None
        if table is not None and name in units and (e_fac != 1.0 or l_fac != 1.0):
            table[name] = np.asarray(table[name], dtype=np.float64) * (e_fac**pe) * (l_fac**pl)
    if l_fac != 1.0:
        notes.append(f"positions and cells converted from {l_name} to Å")
    if e_fac != 1.0:
        notes.append(f"energies converted from {e_name} to eV")
    out = replace(data, positions=data.positions * l_fac, cell=data.cell * l_fac,
                  system_props=system, atom_props=atom)  # fmt: skip
    meta = dict(meta)
    meta["units"] = units
    meta["provenance"] = {**(meta.get("provenance") or {}), "units": record}
    return out, meta, notes
