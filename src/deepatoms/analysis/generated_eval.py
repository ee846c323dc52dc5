"""Metrics of generated 3-D molecules against QM9 (docs/gschnet.md §11; Gebauer et al. 2019,
Table 1, Sec. 5 and supplementary material; statistics after Liu et al.'s CGVAE evaluation).

Every molecule is checked with :func:`deepatoms.analysis.molecule_validity.check_molecule`;
all percentages below refer to the N_valid valid molecules, as in Table 1.

* **Uniqueness**: the first occurrence of each identity key (canonical isomeric SMILES of the
  molecule or of its mirror image, whichever is smaller) is unique, later ones are duplicates; a
  dictionary of keys makes this O(N).
* **Tags**: each valid molecule is ``train``, ``val`` or ``test`` when its key is that of a
  reference (QM9) molecule of that split (priority train > val > test when a key occurs in
  several), else ``novel``. **unseen** = not ``train``; **novel** = in no split of QM9.
* **Table 1 rows** (:func:`table1`): unique; unique+unseen; unique+unseen+novel; the same
  restricted to ≤ 9 heavy atoms; unique with gap ≤ 5 eV — each count / N_valid × 100 %.
* **Statistics** (:func:`molecule_statistics`): mean per molecule of atoms by element (C, N, O,
  F, H), bonds by Kekulé order (B1, B2, B3) and rings by size (R3 … R6, symmetrised SSSR).
* **Distributions**: intramolecular pair distances of C–C and C–O (:func:`pair_distances`;
  density per Å normalised over the selected pairs, as
  ``deepatoms.simulate.analysis.radial_distribution`` for molecules) and angles of bonded
  chains C–C–C and C–C–O at the middle atom (:func:`bonded_angles`, degrees). Distances between
  generated and reference samples (:func:`distribution_distance`): the 1-D Wasserstein
  distance W₁ = ∫ |F_gen(x) − F_ref(x)| dx of the samples (Å or degrees) and the total
  variation ½ Σ_b |p_b − q_b| of the binned probabilities.
* **Geometry accuracy**: Kabsch RMSD (:func:`kabsch_rmsd`; optimal proper rotation and
  translation, fixed atom correspondence) between generated and relaxed positions
  (``deepatoms.simulate.molecules.relax_molecule``: GFN2-xTB or RDKit MMFF94),
  for all atoms and for heavy atoms (aligned on the heavy atoms alone).
* **Gaps**: GFN2-xTB orbital gap ε_LUMO − ε_HOMO (``deepatoms.simulate.molecules.xtb_gap``, eV)
  — a substitute for the paper's B3LYP gaps, systematically different from them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from deepatoms.analysis.molecule_validity import MoleculeCheck, check_molecule

__all__ = [
    "ANGLE_BINS",
    "DISTANCE_BINS",
    "PAPER_TABLE1",
    "SPLIT_PRIORITY",
    "TABLE1_ROWS",
    "bonded_angles",
    "check_all",
    "distribution_distance",
    "first_occurrence",
    "kabsch_rmsd",
    "key_labels",
    "molecule_statistics",
    "pair_distances",
    "read_generated",
    "table1",
    "tag_molecules",
]

#: Reference splits in order of priority when a key occurs in several.
SPLIT_PRIORITY = ("train", "val", "test")
#: Table 1 rows: (name, needs unseen, needs novel, needs ≤ 9 heavy atoms).
TABLE1_ROWS = (
    ("unique", False, False, False),
    ("unique+unseen", True, False, False),
    ("unique+unseen+novel", True, True, False),
    ("unique, <=9 heavy", False, False, True),
    ("unique+unseen, <=9 heavy", True, False, True),
    ("unique+unseen+novel, <=9 heavy", True, True, True),
)
#: Gebauer et al. 2019 Table 1, G-SchNet 50k (% of valid molecules), for side-by-side reports.
PAPER_TABLE1 = {
    "unique": 91.6,
    "unique+unseen": 79.4,
    "unique+unseen+novel": 63.8,
    "unique, <=9 heavy": 70.2,
    "unique+unseen, <=9 heavy": 58.0,
    "unique+unseen+novel, <=9 heavy": 42.4,
    "unique, gap<=5 eV": 6.8,
}
#: Histogram edges of the pair-distance densities (Å) and angle densities (degrees).
DISTANCE_BINS = np.linspace(0.0, 10.0, 201)
ANGLE_BINS = np.linspace(0.0, 180.0, 181)
_STAT_ELEMENTS = (("C", 6), ("N", 7), ("O", 8), ("F", 9), ("H", 1))


# -- input ----------------------------------------------------------------------------------------
def read_generated(path: str | Path) -> tuple[list[Atoms], dict[str, Any]]:
    """Generated molecules of an ASE database (``.db``) or an (ext)xyz file, and the database's
    provenance metadata (``{}`` for xyz files). Positions in Å."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"generated-molecule file '{path}' does not exist")
    if path.suffix.lower() == ".db":
        import ase.db

        try:
            db = ase.db.connect(str(path))
            rows = list(db.select())
            meta = dict(db.metadata)
        except Exception as exc:  # sqlite raises several types for non-database files
            raise ValueError(f"'{path}' is not a readable ASE database ({exc})") from exc
        atoms = [row.toatoms() for row in rows]
    elif path.suffix.lower() in (".xyz", ".extxyz"):
        import ase.io

        try:
            atoms = list(ase.io.read(str(path), index=":", format="extxyz"))
        except Exception as exc:  # ase raises several types for malformed files
            raise ValueError(f"cannot read '{path}' as extxyz: {exc}") from exc
        meta = {}
    else:
        raise ValueError(
            f"'{path}': unknown format {path.suffix!r}; give an ASE database (.db) or an extxyz "
            "file (.xyz / .extxyz)"
        )
    if not atoms:
        raise ValueError(f"'{path}' holds no molecules")
    return atoms, meta


def check_all(
    atoms_list: Sequence[Atoms], progress: Callable[[int, int], None] | None = None
) -> list[MoleculeCheck]:
    """:func:`~deepatoms.analysis.molecule_validity.check_molecule` of every molecule."""
    out = []
    step = max(1, len(atoms_list) // 100)
    for k, atoms in enumerate(atoms_list):
        out.append(check_molecule(atoms.numbers, atoms.positions))
        if progress is not None and ((k + 1) % step == 0 or k + 1 == len(atoms_list)):
            progress(k + 1, len(atoms_list))
    return out


# -- identity -------------------------------------------------------------------------------------
def first_occurrence(keys: Sequence[str], valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique mask [N] (first valid occurrence of each key) and ``duplicate_of`` [N] (index of
    the first occurrence for duplicates, −1 otherwise), by hashing."""
    valid = np.asarray(valid, bool)
    unique = np.zeros(len(keys), bool)
    duplicate_of = np.full(len(keys), -1, np.int64)
    seen: dict[str, int] = {}
    for k, key in enumerate(keys):
        if not valid[k]:
            continue
        first = seen.setdefault(key, k)
        if first == k:
            unique[k] = True
        else:
            duplicate_of[k] = first
    return unique, duplicate_of


def key_labels(keys: Sequence[str], labels: Sequence[str]) -> dict[str, str]:
    """Map each reference key to its split label (priority :data:`SPLIT_PRIORITY`; empty keys
    and labels outside it are ignored)."""
    rank = {s: r for r, s in enumerate(SPLIT_PRIORITY)}
    out: dict[str, str] = {}
    for key, label in zip(keys, labels, strict=True):
        label = str(label)
        if not key or label not in rank:
            continue
        old = out.get(key)
        if old is None or rank[label] < rank[old]:
            out[key] = label
    return out


def tag_molecules(keys: Sequence[str], valid: np.ndarray, seen: Mapping[str, str]) -> np.ndarray:
    """Tag [N] of each molecule: its reference split (``train``/``val``/``test``), ``novel`` when
    its key is not in the reference, "" when invalid."""
    return np.array(
        [seen.get(key, "novel") if ok else "" for key, ok in zip(keys, valid, strict=True)],
        dtype="<U5",
    )


def table1(
    valid: np.ndarray,
    unique: np.ndarray,
    tags: np.ndarray,
    n_heavy: np.ndarray,
    gap: np.ndarray | None = None,
    gap_threshold: float = 5.0,
) -> list[dict[str, Any]]:
    """Table 1 rows: ``{"row", "count", "percent"}`` with percent = count / N_valid × 100
    (:data:`TABLE1_ROWS`, then ``unique, gap<=5 eV`` when ``gap`` [N] (eV; NaN = unknown) is
    given)."""
    valid, unique = np.asarray(valid, bool), np.asarray(unique, bool) & np.asarray(valid, bool)
    tags, n_heavy = np.asarray(tags), np.asarray(n_heavy)
    n_valid = int(valid.sum())
    unseen, novel, small = tags != "train", tags == "novel", n_heavy <= 9
    masks = []
    for name, need_unseen, need_novel, need_small in TABLE1_ROWS:
        m = unique.copy()
        if need_unseen:
            m &= unseen
        if need_novel:
            m &= novel
        if need_small:
            m &= small
        masks.append((name, m))
    if gap is not None:
        g = np.asarray(gap, float)
        with np.errstate(invalid="ignore"):
            masks.append((f"unique, gap<={gap_threshold:g} eV", unique & (g <= gap_threshold)))
    return [
        {
            "row": name,
            "count": int(m.sum()),
            "percent": 100.0 * int(m.sum()) / n_valid if n_valid else float("nan"),
        }
        for name, m in masks
    ]


# -- statistics -----------------------------------------------------------------------------------
def molecule_statistics(
    numbers: Sequence[np.ndarray], bond_orders: Sequence[np.ndarray], rings: np.ndarray
) -> dict[str, float]:
    """Mean per molecule of atoms C, N, O, F, H; bonds B1, B2, B3 (Kekulé orders, each bond
    once); rings R3 … R6 (``rings`` [M, 4]); plus the totals ``heavy``, ``bonds``, ``rings``."""
    m = len(numbers)
    if m == 0:
        raise ValueError("no molecules to compute statistics for")
    z = np.concatenate([np.asarray(n, np.int64) for n in numbers])
    o = np.concatenate([np.asarray(b, np.int64) for b in bond_orders]) if m else np.zeros(0)
    rings = np.asarray(rings, np.int64).reshape(m, 4)
    out = {sym: float(np.sum(z == num)) / m for sym, num in _STAT_ELEMENTS}
    out.update({f"B{k}": float(np.sum(o == k)) / m for k in (1, 2, 3)})
    out.update(
        {f"R{s}": float(v) for s, v in zip((3, 4, 5, 6), rings.sum(axis=0) / m, strict=True)}
    )
    out["heavy"] = float(np.sum(z != 1)) / m
    out["bonds"] = float(len(o)) / m
    out["rings"] = float(rings.sum()) / m
    return out


# -- distributions --------------------------------------------------------------------------------
def _system_index(offsets: np.ndarray) -> np.ndarray:
    return np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))


def pair_distances(
    numbers: np.ndarray, positions: np.ndarray, offsets: np.ndarray, pair: tuple[int, int]
) -> np.ndarray:
    """All intramolecular distances (Å) between atoms of elements ``pair`` = (Z_a, Z_b), each
    unordered pair once, over packed molecules (``offsets`` [M + 1])."""
    za, zb = pair
    sel = np.flatnonzero((numbers == za) | (numbers == zb))
    system = _system_index(np.asarray(offsets))[sel]
    # all index pairs (p < q) within each molecule of the selected atoms
    order = np.argsort(system, kind="stable")
    sel, system = sel[order], system[order]
    counts = np.bincount(system, minlength=len(offsets) - 1)
    out = []
    starts = np.concatenate([[0], np.cumsum(counts)])
    for size in np.unique(counts[counts > 1]):
        mols = np.flatnonzero(counts == size)
        p, q = np.triu_indices(int(size), k=1)
        a = sel[starts[mols][:, None] + p[None, :]].ravel()
        b = sel[starts[mols][:, None] + q[None, :]].ravel()
        keep = ((numbers[a] == za) & (numbers[b] == zb)) | ((numbers[a] == zb) & (numbers[b] == za))
        out.append(np.linalg.norm(positions[b[keep]] - positions[a[keep]], axis=1))
    return np.concatenate(out) if out else np.zeros(0)


def bonded_angles(
    numbers: np.ndarray, positions: np.ndarray, bonds: np.ndarray, chain: tuple[int, int, int]
) -> np.ndarray:
    """Angles (degrees) at the middle atom of bonded chains a–b–c with elements ``chain`` =
    (Z_a, Z_b, Z_c), each chain once; ``bonds`` [P, 2] are global atom indices, one row per
    bond."""
    za, zb, zc = chain
    bonds = np.asarray(bonds, np.int64).reshape(-1, 2)
    mid = np.concatenate([bonds[:, 0], bonds[:, 1]])
    end = np.concatenate([bonds[:, 1], bonds[:, 0]])
    order = np.argsort(mid, kind="stable")
    mid, end = mid[order], end[order]
    firsts, seconds = [], []
    for shift in range(1, 8):  # neighbours per atom are few (≤ valence after the check)
        if shift >= len(mid):
            break
        same = mid[:-shift] == mid[shift:]
        if not same.any():
            break
        firsts.append(np.flatnonzero(same))
        seconds.append(np.flatnonzero(same) + shift)
    if not firsts:
        return np.zeros(0)
    i, j = np.concatenate(firsts), np.concatenate(seconds)
    b, a, c = mid[i], end[i], end[j]
    keep = (numbers[b] == zb) & (
        ((numbers[a] == za) & (numbers[c] == zc)) | ((numbers[a] == zc) & (numbers[c] == za))
    )
    u = positions[a[keep]] - positions[b[keep]]
    v = positions[c[keep]] - positions[b[keep]]
    cos = np.sum(u * v, axis=1) / (np.linalg.norm(u, axis=1) * np.linalg.norm(v, axis=1))
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def distribution_distance(
    generated: np.ndarray, reference: np.ndarray, bins: np.ndarray
) -> dict[str, Any]:
    """Densities on ``bins`` (per unit of x) of two samples and their distances: ``w1`` (1-D
    Wasserstein of the samples, unit of x) and ``tv`` (total variation of the binned
    probabilities, values outside the bins clipped into the end bins)."""
    from scipy.stats import wasserstein_distance

    generated, reference = np.asarray(generated, float), np.asarray(reference, float)
    width = np.diff(bins)

    def density(x: np.ndarray) -> np.ndarray:
        if len(x) == 0:
            return np.zeros(len(width))
        counts = np.histogram(np.clip(x, bins[0], bins[-1]), bins=bins)[0]
        return counts / (len(x) * width)

    p, q = density(generated), density(reference)
    both = len(generated) > 0 and len(reference) > 0
    return {
        "centres": 0.5 * (bins[1:] + bins[:-1]),
        "generated": p,
        "reference": q,
        "n_generated": len(generated),
        "n_reference": len(reference),
        "w1": float(wasserstein_distance(generated, reference)) if both else float("nan"),
        "tv": float(0.5 * np.sum(np.abs(p - q) * width)) if both else float("nan"),
    }


# -- geometry accuracy ----------------------------------------------------------------------------
def kabsch_rmsd(p: np.ndarray, q: np.ndarray, mask: np.ndarray | None = None) -> float:
    """RMSD (Å) between ``p`` and ``q`` [n, 3] after the optimal translation and proper rotation
    of ``p`` onto ``q`` (Kabsch), atoms matched by index; ``mask`` selects the atoms used for
    both the alignment and the RMSD."""
    p, q = np.asarray(p, float).reshape(-1, 3), np.asarray(q, float).reshape(-1, 3)
    if p.shape != q.shape:
        raise ValueError(
            f"kabsch_rmsd needs two [n, 3] arrays of one shape, got {p.shape}, {q.shape}"
        )
    if mask is not None:
        p, q = p[np.asarray(mask, bool)], q[np.asarray(mask, bool)]
    if len(p) == 0:
        return float("nan")
    p, q = p - p.mean(axis=0), q - q.mean(axis=0)
    u, _, vt = np.linalg.svd(p.T @ q)
    d = np.sign(np.linalg.det(u @ vt)) or 1.0
    rot = u @ np.diag([1.0, 1.0, d]) @ vt  # p @ rot ≈ q
    return float(np.sqrt(np.mean(np.sum((p @ rot - q) ** 2, axis=1))))
