"""Physical checks of structures and labels at every entry point (import, predict, evaluate,
relax, md, screen, datagen).

A structure is refused when it has no atoms, an atomic number outside 1–118, non-finite
positions or cell, a periodic cell of near-zero volume (below :data:`MIN_VOLUME_PER_ATOM`) or
absurd size (a cell vector over :data:`MAX_CELL_LENGTH`), a partial occupancy, or two atoms
(or an atom and a periodic image) closer than ``min_distance`` (default :data:`MIN_DISTANCE`).
Labels are refused when they are not finite. Each problem names the frame and the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from deepatoms.core.errors import DeepatomsError

__all__ = [
    "COLLAPSE_RATIO",
    "MAX_CELL_LENGTH",
    "MAX_Z",
    "MIN_DISTANCE",
    "MIN_VOLUME_PER_ATOM",
    "check_atoms",
    "close_pair",
    "collapsed_pair",
    "non_finite_rows",
    "packed_problems",
    "raise_problems",
    "structure_problem",
    "systems_with",
]

#: Atoms closer than this (Å) are refused: no bond is shorter (H₂: 0.74 Å).
MIN_DISTANCE = 0.5
#: Largest atomic number accepted (oganesson).
MAX_Z = 118
#: A periodic cell with less volume than this per atom (Å³) is taken as collapsed.
MIN_VOLUME_PER_ATOM = 0.1
#: A periodic cell vector longer than this (Å) is taken as corrupt.
MAX_CELL_LENGTH = 1.0e4
#: Two atoms closer than this fraction of the sum of their covalent radii are taken as collapsed
#: onto each other (:func:`collapsed_pair`): C–H 0.64 Å, H–H 0.37 Å, O–H 0.58 Å, Cu–Cu 1.58 Å,
#: where bonds are 1.09, 0.74, 0.96 and 2.55 Å. Far above :data:`MIN_DISTANCE` for heavy atoms.
COLLAPSE_RATIO = 0.6


def close_pair(positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray, r: float) -> str | None:
    """A description of the first pair of atoms closer than ``r`` Å, or None."""
    if r <= 0:
        return None
    if not pbc.any():
        from scipy.spatial import cKDTree

        if len(positions) < 2:
            return None
        pairs = cKDTree(positions).query_pairs(r, output_type="ndarray")
        if len(pairs) == 0:
            return None
        i, j = (int(v) for v in pairs[0])
        d = float(np.linalg.norm(positions[i] - positions[j]))
        return f"atoms {i} and {j} are {d:.3g} Å apart (minimum {r} Å)"
    from ase import Atoms

    pair = _closest_pair(Atoms(positions=positions, cell=cell, pbc=pbc), r)
    if pair is None:
        return None
    a, b, d = pair
    what = "a periodic image of itself" if a == b else f"atom {b}"
    return f"atom {a} is {d:.3g} Å from {what} (minimum {r} Å)"


def _closest_pair(atoms: Any, cutoff: float | list[float]) -> tuple[int, int, float] | None:
    """The closest pair ``(i, j, distance in Å)`` of ``atoms`` (periodic images included) among
    the pairs within ``cutoff``: one distance, or a radius per atom (pairs closer than
    r_i + r_j), as ``ase.neighborlist.neighbor_list`` takes it; None when there is none."""
    from ase.neighborlist import neighbor_list

    i, j, d = neighbor_list("ijd", atoms, cutoff, self_interaction=False)
    if len(i) == 0:
        return None
    k = int(np.argmin(d))
    return int(i[k]), int(j[k]), float(d[k])


def collapsed_pair(numbers: np.ndarray, positions: np.ndarray, cell: np.ndarray | None,
                   pbc: np.ndarray | None, ratio: float = COLLAPSE_RATIO) -> str | None:  # fmt: skip
    """A description of the closest pair of atoms (or an atom and a periodic image) closer than
    ``ratio`` × the sum of their covalent radii (Cordero et al. 2008, as in
    ``ase.data.covalent_radii``), or None; ``ratio`` 0 checks nothing. Unlike
    :func:`close_pair`'s one distance, the limit scales with the elements, so it finds a collapsed
    metal (Cu–Cu 1.2 Å), which no bond length limit can without refusing H₂."""
    if ratio <= 0 or len(numbers) == 0:
        return None
    from ase import Atoms
    from ase.data import chemical_symbols, covalent_radii

    z = np.asarray(numbers, dtype=int)
    pbc = np.zeros(3, bool) if pbc is None else np.asarray(pbc, bool)
    atoms = Atoms(numbers=z, positions=positions, cell=cell if pbc.any() else None, pbc=pbc)
    pair = _closest_pair(atoms, (ratio * covalent_radii[z]).tolist())
    if pair is None:
        return None
    a, b, d = pair
    what = "a periodic image of itself" if a == b else f"atom {b} ({chemical_symbols[z[b]]})"
    limit = ratio * (covalent_radii[z[a]] + covalent_radii[z[b]])
    return (f"atom {a} ({chemical_symbols[z[a]]}) is {d:.3g} Å from {what}, below "
            f"{ratio:g} × the covalent radii ({limit:.3g} Å)")  # fmt: skip


def non_finite_rows(values: np.ndarray) -> np.ndarray:
    """[rows] True where a row of ``values`` holds NaN or infinity."""
    arr = np.asarray(values, dtype=np.float64)
    return ~np.isfinite(arr.reshape(len(arr), -1)).all(axis=1)


def systems_with(atom_mask: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """[systems] True for the systems (``offsets``) that hold an atom of ``atom_mask``
    (zero-atom systems included, which ``np.add.reduceat`` would get wrong)."""
    offsets = np.asarray(offsets)
    owner = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    return np.bincount(owner[np.asarray(atom_mask, bool)], minlength=len(offsets) - 1) > 0


def structure_problem(
    numbers: np.ndarray, positions: np.ndarray, cell: np.ndarray | None = None,
    pbc: np.ndarray | None = None, min_distance: float = MIN_DISTANCE,
) -> str | None:  # fmt: skip
    """Why one structure (atomic numbers, positions in Å, cell rows in Å, periodicity) cannot
    be used, or None when it can."""
    numbers = np.asarray(numbers)
    positions = np.asarray(positions, dtype=np.float64)
    cell = np.zeros((3, 3)) if cell is None else np.asarray(cell, dtype=np.float64)
    pbc = np.zeros(3, bool) if pbc is None else np.asarray(pbc, dtype=bool)
    if len(numbers) == 0:
        return "it has no atoms"
    bad_z = numbers[(numbers < 1) | (numbers > MAX_Z)]
    if len(bad_z):
        return f"atomic number {int(bad_z[0])} is not an element (1–{MAX_Z})"
    if not np.isfinite(positions).all():
        return "positions are not finite (NaN or infinite)"
    if pbc.any():
        if not np.isfinite(cell).all():
            return "the cell is not finite (NaN or infinite)"
        lengths = np.linalg.norm(cell, axis=1)
        if (lengths[pbc] > MAX_CELL_LENGTH).any():
            return f"a periodic cell vector is longer than {MAX_CELL_LENGTH:g} Å"
        if (lengths[pbc] < 1e-8).any():
            return "a periodic direction has a cell vector of zero length"
        if pbc.all():
            volume = abs(float(np.linalg.det(cell)))
            if volume < MIN_VOLUME_PER_ATOM * len(numbers):
                return f"the cell volume is {volume:.3g} Å³, near zero"
    close = close_pair(positions, cell, pbc, min_distance)
    if close:
        return close
    return None


def check_atoms(atoms: Any, where: str, min_distance: float = MIN_DISTANCE) -> None:
    """Refuse an ``ase.Atoms`` that :func:`structure_problem` or a partial occupancy rules
    out; ``where`` names it in the message (e.g. ``mol.xyz, frame 3``)."""
    occ = atoms.info.get("occupancy") if hasattr(atoms, "info") else None
    if isinstance(occ, dict):
        for site, species in occ.items():
            partial = isinstance(species, dict) and (
                len(species) > 1 or sum(species.values()) < 1 - 1e-6
            )
            if partial:
                raise DeepatomsError(
                    f"{where}: site {site} is partially occupied ({species}); deepatoms needs "
                    "ordered structures: make an ordered supercell first (e.g. with pymatgen's "
                    "OrderDisorderedStructureTransformation)"
                )
    why = structure_problem(
        atoms.numbers, atoms.positions, atoms.cell.array, atoms.pbc, min_distance
    )
    if why:
        raise DeepatomsError(f"{where}: {why}; fix or remove this structure")


def packed_problems(
    data: Any, labels: Sequence[str] | None = None, min_distance: float = MIN_DISTANCE,
    progress: Callable[[int, int], None] | None = None,
) -> dict[int, str]:  # fmt: skip
    """{system index: reason} for every system of packed data that cannot be used.

    Checks every structure and, for ``labels`` (default: every floating-point property),
    finiteness; per-atom labels are checked for the atoms of each system. Molecules are
    checked together; periodic cells one by one (about 2 ms each), reported to
    ``progress(done, total)``."""
    offsets = np.asarray(data.offsets)
    problems: dict[int, str] = {}
    names = list(labels) if labels is not None else [
        k for k, v in {**data.system_props, **data.atom_props}.items()
        if np.asarray(v).dtype.kind == "f"
    ]  # fmt: skip
    for name in names:
        if name in data.system_props:
            bad = non_finite_rows(data.system_props[name])
        else:
            bad = systems_with(non_finite_rows(data.atom_props[name]), offsets)
        for k in np.flatnonzero(bad):
            problems.setdefault(int(k), f"label {name!r} is not finite (NaN or infinite)")
    n_atoms = np.diff(offsets)
    sys_of = np.repeat(np.arange(len(n_atoms)), n_atoms)
    numbers, positions = np.asarray(data.numbers), np.asarray(data.positions, dtype=np.float64)
    molecule = ~np.asarray(data.pbc).any(axis=1)
    # the cheap checks of every system at once; molecules' distances in one tree (below)
    bad_atom = (numbers < 1) | (numbers > MAX_Z) | ~np.isfinite(positions).all(axis=1)
    flagged = np.zeros(len(n_atoms), bool)
    flagged[np.unique(sys_of[bad_atom])] = True
    flagged |= n_atoms == 0
    one_by_one = np.flatnonzero(flagged | ~molecule)
    for j, k in enumerate(one_by_one):  # full check, with the reason
        if progress is not None and (j % 500 == 0 or j == len(one_by_one) - 1):
            progress(j + 1, len(one_by_one))
        if k in problems:
            continue
        a, b = offsets[k], offsets[k + 1]
        why = structure_problem(numbers[a:b], positions[a:b], data.cell[k], data.pbc[k],
                                min_distance)  # fmt: skip
        if why:
            problems[int(k)] = why
    ok = molecule & ~flagged
    for k in _molecules_with_close_atoms(positions, sys_of, ok, min_distance):
        if int(k) not in problems:
            a, b = offsets[k], offsets[k + 1]
            problems[int(k)] = str(close_pair(positions[a:b], data.cell[k], data.pbc[k],
                                               min_distance))  # fmt: skip
    return dict(sorted(problems.items()))


def _molecules_with_close_atoms(
    positions: np.ndarray, sys_of: np.ndarray, use: np.ndarray, r: float
) -> np.ndarray:
    """Systems (among ``use``) with two atoms closer than ``r``: all molecules are laid side by
    side along x, far enough apart not to meet, and searched in one k-d tree."""
    from scipy.spatial import cKDTree

    atom_use = use[sys_of]
    if r <= 0 or not atom_use.any():
        return np.zeros(0, np.int64)
    pos, owner = positions[atom_use], sys_of[atom_use]
    lo = np.full(len(use), np.inf)
    hi = np.full(len(use), -np.inf)
    np.minimum.at(lo, owner, pos[:, 0])
    np.maximum.at(hi, owner, pos[:, 0])
    width = np.where(use, hi - lo + 2 * r, 0.0)
    start = np.concatenate([[0.0], np.cumsum(width)[:-1]])
    shifted = pos.copy()
    shifted[:, 0] += start[owner] - lo[owner]
    pairs = cKDTree(shifted).query_pairs(r, output_type="ndarray")
    return np.unique(owner[pairs[:, 0]]) if len(pairs) else np.zeros(0, np.int64)


def raise_problems(problems: dict[int, str], name: Any, names: Sequence[str] | None = None,
                   hint: str = "") -> None:  # fmt: skip
    """One error listing the first problems (``names[k]`` labels system k; default: its index)."""
    if not problems:
        return
    shown = [
        f"{names[k] if names is not None else f'system {k}'}: {why}"
        for k, why in sorted(problems.items())[:5]
    ]
    more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
    raise DeepatomsError(
        f"{name}: {len(problems)} unusable structure(s){more}: " + "; ".join(shown) + hint
    )
