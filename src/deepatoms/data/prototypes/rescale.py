"""Cell size of a substituted prototype (Å).

The prototype's own cell belongs to its original elements (HgS for cinnabar), so a candidate is
rescaled isotropically (shape and fractional coordinates kept). A position-free model only sees
the prototype's graph, which does not change with a uniform scale; distance-based models need a
sensible size. Rules (``rescale``):

- ``volume`` (default): the cell volume is the sum of the elemental atomic volumes of its atoms
  (Vegard's law on volume). The atomic volume of an element is that of its ASE reference state
  (``ase.data.reference_states``) where that is fcc (a³/4), bcc (a³/2), hcp (√3/4·a²c),
  simple cubic (a³) or diamond (a³/8); otherwise that of a sphere of its covalent radius r packed
  like fcc, 4π/3·r³/0.7405. Good for metals and intermetallics (Cu₃Au L1₂ gets a = 3.74 Å;
  measured 3.75 Å); too dense for open structures.
- ``contact``: the smallest scale at which no two atoms are closer than the sum of their radii
  (hard spheres just touching): half the nearest-neighbour distance of the reference state
  (fcc, bcc, hcp, sc, diamond), else the covalent radius. Keeps open frameworks open.
- ``none``: the prototype's cell as given.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
from ase.data import atomic_numbers, covalent_radii, reference_states

__all__ = ["RESCALE_RULES", "atomic_radius", "atomic_volume", "scale_factor"]

#: Accepted values of ``rescale``.
RESCALE_RULES = ("volume", "contact", "none")
_FCC_PACKING = math.pi / (3.0 * math.sqrt(2.0))  # 0.7405


def _reference(symbol: str) -> tuple[str | None, float | None, float | None]:
    """(symmetry, a in Å, c in Å) of the ASE reference state of ``symbol``."""
    if symbol not in atomic_numbers:
        raise ValueError(f"unknown element {symbol!r}")
    ref = reference_states[atomic_numbers[symbol]] or {}
    sym, a = ref.get("symmetry"), ref.get("a")
    if sym not in ("fcc", "bcc", "hcp", "sc", "diamond") or a is None:
        return None, None, None
    c = a * ref.get("c/a", math.sqrt(8.0 / 3.0)) if sym == "hcp" else None
    return sym, float(a), c


@functools.cache
def atomic_volume(symbol: str) -> float:
    """Atomic volume (Å³/atom) of an element under the ``volume`` rule (module docstring)."""
    sym, a, c = _reference(symbol)
    if sym is None:
        r = float(covalent_radii[atomic_numbers[symbol]])
        return 4.0 / 3.0 * math.pi * r**3 / _FCC_PACKING
    per_cell = {"fcc": 4.0, "bcc": 2.0, "sc": 1.0, "diamond": 8.0}
    if sym == "hcp":
        return math.sqrt(3.0) / 4.0 * a * a * c
    return a**3 / per_cell[sym]


@functools.cache
def atomic_radius(symbol: str) -> float:
    """Radius (Å) of an element under the ``contact`` rule: half its nearest-neighbour distance
    in the reference state, else the covalent radius."""
    sym, a, c = _reference(symbol)
    if sym is None:
        return float(covalent_radii[atomic_numbers[symbol]])
    nearest = {
        "fcc": lambda: a / math.sqrt(2.0),
        "bcc": lambda: a * math.sqrt(3.0) / 2.0,
        "sc": lambda: a,
        "diamond": lambda: a * math.sqrt(3.0) / 4.0,
        "hcp": lambda: min(a, math.sqrt(a * a / 3.0 + c * c / 4.0)),
    }[sym]()
    return nearest / 2.0


def scale_factor(
    rule: str,
    elements: Sequence[str],
    multiplicities: Sequence[int],
    volume: float,
    site_pair_min_distance: np.ndarray | None = None,
) -> float:
    """Factor for the lattice vectors of a prototype with ``elements[i]`` on site i.

    Args:
        rule: ``volume``, ``contact`` or ``none`` (module docstring).
        elements: element of each site.
        multiplicities: atoms of each site in the cell.
        volume: cell volume of the prototype (Å³).
        site_pair_min_distance: [n_sites, n_sites] shortest distances (Å) in the prototype;
            needed by ``contact``.
    """
    if rule == "none":
        return 1.0
    if rule == "volume":
        target = sum(m * atomic_volume(el) for el, m in zip(elements, multiplicities, strict=True))
        return (target / volume) ** (1.0 / 3.0)
    if rule == "contact":
        if site_pair_min_distance is None:
            raise ValueError("the contact rule needs the prototype's site-pair distances")
        r = np.array([atomic_radius(el) for el in elements])
        return float(np.max((r[:, None] + r[None, :]) / site_pair_min_distance))
    raise ValueError(f"unknown rescale rule {rule!r}; choose one of {', '.join(RESCALE_RULES)}")
