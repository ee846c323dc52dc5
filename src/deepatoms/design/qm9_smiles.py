"""QM9 SMILES with orbital energies for the grammar VAE, the string-table CSV format of the design
commands, and design windows (docs/grammar_vae.md §7).

* :func:`qm9_smiles_table`: the ``qm9pack`` SMILES (kekulised, no stereo marks) with ε_HOMO,
  ε_LUMO and Δε in eV (converted by :func:`deepatoms.data.sources.qm9.load_qm9`, 1 Ha =
  27.211386 eV), the QM9 index, and a seeded 80/10/10 split by molecule
  (:func:`deepatoms.data.splits.random_split`).
* String tables on disk (:func:`write_table_csv`; read with
  :func:`deepatoms.data.strings.read_string_csv`): CSV with a ``string`` column, property
  columns in eV, optional ``qm9_index`` and ``split`` (train/val/test). Written atomically.
* Windows: value v of property k is inside [lo_k, hi_k] when lo_k ≤ v ≤ hi_k (NaN is outside);
  :func:`window_fractions` gives the fraction inside each window and inside all of them. The QM9
  demo windows are ε_LUMO ∈ [−1, 0] eV and Δε ∈ [4, 6] eV (targets: the midpoints −0.5 and 5.0 eV);
  in ``qm9pack`` 25.0 % of the molecules lie in the LUMO window, 27.6 % in the gap window and
  12.3 % in both (§7; Paper D's design task: 22 % / 22 % / 11 %).
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Mapping, Sequence

import numpy as np

from deepatoms.core.files import atomic_write_text

__all__ = [
    "QM9_DESIGN_TARGETS",
    "QM9_DESIGN_WINDOWS",
    "QM9_SMILES_PROPERTIES",
    "in_windows",
    "qm9_smiles_table",
    "window_fractions",
    "window_midpoints",
    "write_table_csv",
]

#: Properties of the QM9 SMILES table (eV).
QM9_SMILES_PROPERTIES = ("homo", "lumo", "gap")
#: The QM9 inverse-design demo windows (eV; docs/grammar_vae.md §7).
QM9_DESIGN_WINDOWS: dict[str, tuple[float, float]] = {"lumo": (-1.0, 0.0), "gap": (4.0, 6.0)}


def window_midpoints(windows: Mapping[str, tuple[float, float]]) -> dict[str, float]:
    """Target values t_k = (lo_k + hi_k) / 2 of ``windows`` (eV)."""
    return {k: 0.5 * (float(lo) + float(hi)) for k, (lo, hi) in windows.items()}


#: Targets of the QM9 demo: the window midpoints (ε_LUMO −0.5 eV, Δε 5.0 eV).
QM9_DESIGN_TARGETS = window_midpoints(QM9_DESIGN_WINDOWS)


def qm9_smiles_table(
    limit: int | None = None, seed: int = 0, progress: bool = True
) -> dict[str, np.ndarray]:
    """QM9 SMILES table: columns ``string``, ``homo``, ``lumo``, ``gap`` (eV), ``qm9_index``,
    ``split`` (seeded 80/10/10 by molecule), ordered by QM9 index.

    ``limit``: a seeded random subset of this many molecules (seed ``seed``, as
    :func:`~deepatoms.data.sources.qm9.load_qm9`); the split is drawn over the rows kept, with
    the same seed.
    """
    from deepatoms.data.sources.qm9 import load_qm9
    from deepatoms.data.splits import random_split

    data, _ = load_qm9(limit=limit, seed=seed, progress=progress)
    props = data.system_props
    n = len(data)
    split = np.empty(n, dtype="<U5")
    for name, idx in random_split(n, 0.8, 0.1, None, seed=seed).items():
        split[idx] = name
    table = {"string": np.asarray(props["smiles"], dtype=str)}
    table.update({k: np.asarray(props[k], float) for k in QM9_SMILES_PROPERTIES})
    table["qm9_index"] = np.asarray(props["index"], np.int64)
    table["split"] = split
    return table


def _cell(value: object) -> str:
    """CSV text of one value: floats in full precision (round-trip), NaN as empty."""
    if isinstance(value, (float, np.floating)):
        return "" if math.isnan(value) else repr(float(value))
    if isinstance(value, (bool, np.bool_)):
        return str(int(value))
    return str(value)


def write_table_csv(path: str | os.PathLike, columns: Mapping[str, Sequence]) -> int:
    """Write equal-length ``columns`` {name: values} as a CSV (atomically); returns the row count.

    Floats keep full precision, NaN becomes an empty cell, booleans 1/0.
    """
    lengths = {k: len(v) for k, v in columns.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"columns of different lengths cannot form a table: {lengths}")
    n = next(iter(lengths.values()), 0)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(list(columns))
    cols = list(columns.values())
    for i in range(n):
        writer.writerow([_cell(c[i]) for c in cols])
    atomic_write_text(path, buf.getvalue())
    return n


def in_windows(
    values: Mapping[str, np.ndarray], windows: Mapping[str, tuple[float, float]]
) -> dict[str, np.ndarray]:
    """Masks {name: lo ≤ v ≤ hi} [N] per window and ``"all"`` (inside every window); NaN is out.

    Raises ValueError naming windows whose property is not in ``values``.
    """
    missing = [k for k in windows if k not in values]
    if missing:
        raise ValueError(
            f"no values for window(s) {missing}; available properties: {sorted(values)}"
        )
    if not windows:
        raise ValueError("give at least one window (name → (lo, hi) in eV)")
    masks = {}
    for k, (lo, hi) in windows.items():
        if not lo <= hi:
            raise ValueError(f"window {k}: lower bound {lo} is above the upper bound {hi}")
        v = np.asarray(values[k], float)
        with np.errstate(invalid="ignore"):
            masks[k] = (v >= lo) & (v <= hi)
    masks["all"] = np.logical_and.reduce(list(masks.values()))
    return masks


def window_fractions(
    values: Mapping[str, np.ndarray], windows: Mapping[str, tuple[float, float]]
) -> dict[str, float]:
    """Fraction of the N entries inside each window and inside all (``"all"``), plus ``"n"``.

    ``values`` {name: [N]} (eV); NaN counts as outside; N = 0 gives NaN fractions.
    """
    masks = in_windows(values, windows)
    n = len(masks["all"])
    out: dict[str, float] = {k: float(m.mean()) if n else float("nan") for k, m in masks.items()}
    out["n"] = n
    return out
