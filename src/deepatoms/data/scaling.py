"""Uniform geometry scaling about the stable structure (docs/vimpnn.md §8).

A sample at scaling factor s is the stable (s = 1) structure with every interatomic distance
multiplied by s:

* non-periodic systems: r_i(s) = c + s · (r_i − c), c = (1/N) Σ_i r_i the geometric centroid
  (kept fixed), so |r_i(s) − r_j(s)| = s · |r_i − r_j| for every pair;
* periodic systems: the cell L (rows = lattice vectors) becomes s · L with fractional
  coordinates fixed, i.e. every position and every image vector is multiplied by s.

``scale_atoms(scale_atoms(a, s), 1 / s)`` recovers ``a`` (to rounding). Scaling grids are
``linspace(lo, hi, n)`` (Default 0.9:1.5:10 = 0.9, 0.9667, …, 1.5; s = 1 is not on it) or an
explicit list.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ase import Atoms

__all__ = ["DEFAULT_SCALES", "parse_scales", "scale_atoms"]

#: The paper's scaling grid: linspace(0.9, 1.5, 10).
DEFAULT_SCALES = "0.9:1.5:10"


def _check_scale(s: float, where: str = "scaling factor") -> float:
    try:
        value = float(s)
    except (TypeError, ValueError):
        raise ValueError(f"{where} must be a number, got {s!r}") from None
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{where} must be a positive finite number (1 = stable), got {s!r}")
    return value


def scale_atoms(atoms: Atoms, s: float) -> Atoms:
    """A copy of ``atoms`` with every interatomic distance multiplied by ``s`` (> 0).

    Non-periodic systems are scaled about their geometric centroid (kept); periodic systems
    (any ``pbc``) scale the cell isotropically with fractional coordinates fixed. Positions Å.
    Labels (calculator, info, arrays other than positions) are copied unchanged.
    """
    s = _check_scale(s)
    out = atoms.copy()
    out.calc = None
    if np.any(atoms.pbc):
        out.set_cell(np.asarray(atoms.cell.array) * s, scale_atoms=True)
    else:
        c = atoms.positions.mean(axis=0)
        out.positions = c + s * (atoms.positions - c)
    return out


def parse_scales(spec: str | Sequence[float]) -> np.ndarray:
    """Scaling factors from ``"lo:hi:n"`` (``linspace(lo, hi, n)``), a comma list
    ``"0.9,1,1.1"`` or a sequence of numbers; each must be > 0 and n ≥ 1.

    Returns a float64 array in the given order (duplicates refused).
    """
    if isinstance(spec, str):
        text = spec.strip()
        if text.count(":") == 2:
            lo, hi, n = (p.strip() for p in text.split(":"))
            try:
                count = int(n)
            except ValueError:
                raise ValueError(
                    f"scales {spec!r}: the count after the second ':' must be a whole number "
                    "(lo:hi:n, e.g. 0.9:1.5:10)"
                ) from None
            if count < 1:
                raise ValueError(f"scales {spec!r}: the count must be at least 1, got {count}")
            a = _check_scale(lo, f"scales {spec!r}: lo")
            b = _check_scale(hi, f"scales {spec!r}: hi")
            if count > 1 and not b > a:
                raise ValueError(f"scales {spec!r}: hi must exceed lo (lo:hi:n)")
            values = np.linspace(a, b, count)
        elif ":" in text:
            raise ValueError(
                f"scales {spec!r}: write lo:hi:n (e.g. 0.9:1.5:10) or a comma list (0.9,1,1.1)"
            )
        else:
            parts = [p.strip() for p in text.split(",") if p.strip()]
            if not parts:
                raise ValueError("scales: give lo:hi:n (e.g. 0.9:1.5:10) or a comma list")
            values = np.array([_check_scale(p, f"scale {p!r} in {spec!r}") for p in parts])
    else:
        values = np.array([_check_scale(v, "scale") for v in spec], dtype=np.float64)
        if len(values) == 0:
            raise ValueError("scales: give at least one scaling factor")
    if len(np.unique(values)) != len(values):
        raise ValueError(f"scales {spec!r} repeat a value; give each scaling factor once")
    return values.astype(np.float64)
