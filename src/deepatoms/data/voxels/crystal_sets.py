"""Crystals for the density VAE from any project source, with groups for splitting by crystal.

docs/density_vae.md §9 (data, splits) and §1 (max-side filter). :func:`load_crystals`
takes a list of sources:

- ``*.csv``: a CSV of CIFs (:func:`deepatoms.data.sources.crystals.load_cif_csv`; Perov-5,
  MP-20); id = ``material_id`` when present, else ``<file stem>:<row>``;
- a folder: every ``*.cif`` in it, read with ASE
  (:func:`deepatoms.data.sources.ase_io.read_structures`); id = file stem;
- ``*.h5``: a deepatoms dataset (:func:`deepatoms.data.dataset.read_dataset`) of periodic
  systems; id = ``material_id`` / ``id`` / ``candidate_id`` property when present, else
  ``<file stem>:<index>``;
- any other file ASE reads (``*.cif``, ``*.extxyz``, ``POSCAR`` …), id = ``<stem>:<index>``;
- the token ``prototypes``: pymatgen's bundled AFLOW library (288 structures,
  :func:`deepatoms.screen.prototypes.load_aflow_prototypes`); ``prototypes:N`` adds N
  element-substituted variants (:func:`prototype_variants`, seeded by ``seed``).

Groups (the unit of a split, so that rotations, crops or substitutions of one crystal never
cross splits): the ``prototype`` property where a source has one (substitution sets), else the
crystal id. A prototype variant belongs to the group of its parent prototype.

Substituted variants: a random prototype with at most ``max_atoms`` atoms; each species site
gets a random element of the same periodic-table group as the prototype's own element (from
:data:`SUBSTITUTION_POOL`; the own element when the group has no other), all sites distinct; the
lattice is scaled isotropically by s = (Σ_i m_i V(new_i) / Σ_i m_i V(old_i))^{1/3}, the ratio of
the summed atomic volumes of :func:`deepatoms.screen.scaling.atomic_volume` (Vegard's law
relative to the prototype, which keeps open frameworks open).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from deepatoms.data.voxels.samples import max_side_filter

__all__ = [
    "SUBSTITUTION_POOL",
    "CrystalSet",
    "load_crystals",
    "prototype_variants",
    "select_crystals",
]

_NOBLE = {2, 10, 18, 36, 54, 86}
#: Elements used for substitutions: Z ≤ 83 without noble gases, Tc and Pm.
SUBSTITUTION_POOL: tuple[int, ...] = tuple(
    z for z in range(1, 84) if z not in _NOBLE and z not in (43, 61)
)
_ID_PROPS = ("material_id", "id", "candidate_id")
_GROUP_PROPS = ("prototype",)
PROTOTYPES_TOKEN = "prototypes"


@dataclass
class CrystalSet:
    """Crystals with per-crystal id, split group and source.

    Attributes:
        atoms: periodic ``ase.Atoms`` (positions and cells in Å).
        ids: crystal identifier (material id, file stem, prototype name …).
        groups: split unit (material id, or parent prototype of a substitution).
        source: where each crystal came from (file path or ``prototypes``).
        notes: reports of the filters applied (e.g. ``notes["max_side"]``).
    """

    atoms: list[Atoms]
    ids: list[str]
    groups: list[str]
    source: list[str]
    notes: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.atoms)
        if not (len(self.ids) == len(self.groups) == len(self.source) == n):
            raise ValueError(
                f"CrystalSet: {n} crystals but {len(self.ids)} ids, {len(self.groups)} groups, "
                f"{len(self.source)} sources"
            )

    def __len__(self) -> int:
        return len(self.atoms)

    @classmethod
    def concatenate(cls, parts: list[CrystalSet]) -> CrystalSet:
        """One set holding all crystals of ``parts`` in order (notes merged)."""
        notes: dict[str, Any] = {}
        for p in parts:
            notes.update(p.notes)
        return cls(
            [a for p in parts for a in p.atoms],
            [i for p in parts for i in p.ids],
            [g for p in parts for g in p.groups],
            [s for p in parts for s in p.source],
            notes,
        )

    def subset(self, indices: Any) -> CrystalSet:
        """The crystals at ``indices`` (in that order)."""
        idx = [int(i) for i in np.asarray(indices, dtype=np.int64).reshape(-1)]
        return CrystalSet(
            [self.atoms[i] for i in idx],
            [self.ids[i] for i in idx],
            [self.groups[i] for i in idx],
            [self.source[i] for i in idx],
            dict(self.notes),
        )

    def filter_max_side(self, limit: float = 10.0) -> CrystalSet:
        """Crystals whose lattice vectors are all shorter than ``limit`` (Å). The report
        (limit, kept, dropped, up to 10 dropped ids) is in ``notes["max_side"]`` of the result."""
        keep = [k for k, a in enumerate(self.atoms) if max_side_filter(a, limit)]
        kept = set(keep)
        dropped = [self.ids[k] for k in range(len(self)) if k not in kept]
        out = self.subset(keep)
        out.notes["max_side"] = {
            "limit": float(limit),
            "kept": len(keep),
            "dropped": len(dropped),
            "dropped_examples": dropped[:10],
        }
        return out

    def split_by_group(
        self, fractions: tuple[float, ...] = (0.8, 0.1, 0.1), seed: int = 0
    ) -> dict[str, np.ndarray]:
        """Seeded split keeping every group whole: ``{"train", "val", "test"}`` sorted crystal
        indices (:func:`deepatoms.data.splits.group_split`; fractions count groups). Two
        fractions (the paper's 80/20) give train/test and an empty val."""
        from deepatoms.data.splits import group_split

        fr = tuple(float(f) for f in fractions)
        if len(fr) not in (2, 3) or any(f < 0 for f in fr) or abs(sum(fr) - 1.0) > 1e-6:
            raise ValueError(
                f"split fractions must be 2 or 3 non-negative numbers summing to 1 "
                f"(train, [val,] test), got {fractions}"
            )
        train, val = (fr[0], 0.0) if len(fr) == 2 else (fr[0], fr[1])
        return group_split(np.asarray(self.groups, dtype=str), train, val, None, seed=seed)

    def describe(self) -> dict[str, Any]:
        """JSON-friendly summary: crystals, groups, atoms per cell, crystals per source."""
        n_atoms = np.array([len(a) for a in self.atoms], dtype=np.int64)
        by_source: dict[str, int] = {}
        for s in self.source:
            by_source[s] = by_source.get(s, 0) + 1
        return {
            "n_crystals": len(self),
            "n_groups": len(set(self.groups)),
            "atoms_per_cell": {
                "min": int(n_atoms.min()) if len(n_atoms) else 0,
                "max": int(n_atoms.max()) if len(n_atoms) else 0,
                "mean": float(n_atoms.mean()) if len(n_atoms) else 0.0,
            },
            "sources": by_source,
            "notes": self.notes,
        }


# -- sources ----------------------------------------------------------------------------------
def _check_periodic(atoms: Atoms, where: str) -> None:
    vol = abs(np.linalg.det(np.asarray(atoms.cell.array)))
    if vol < 1e-6 or not np.all(atoms.pbc):
        raise ValueError(
            f"{where} is not a periodic crystal (cell volume {vol:.3g} Å³, pbc {atoms.pbc.tolist()});"
            " density samples need a 3-D periodic cell"
        )


def _from_packed(data: Any, path: Path, label: str) -> CrystalSet:
    ids_prop = next((k for k in _ID_PROPS if k in data.system_props), None)
    group_prop = next((k for k in _GROUP_PROPS if k in data.system_props), None)
    atoms, ids, groups = [], [], []
    for k in range(len(data)):
        a = data.get_atoms(k)
        a.info = {}
        a.arrays = {key: a.arrays[key] for key in ("numbers", "positions")}
        cid = str(data.system_props[ids_prop][k]) if ids_prop else f"{path.stem}:{k}"
        _check_periodic(a, f"'{path}' structure {k} ({cid})")
        atoms.append(a)
        ids.append(cid)
        groups.append(str(data.system_props[group_prop][k]) if group_prop else cid)
    return CrystalSet(atoms, ids, groups, [label] * len(atoms))


def _csv_ids(data: Any, path: Path) -> None:
    if "material_id" not in data.system_props:
        rows = data.system_props["source_row"]
        data.system_props["material_id"] = np.array([f"{path.stem}:{r}" for r in rows], dtype=str)


def _load_path(path: Path, progress: bool, on_error: str) -> CrystalSet:
    from deepatoms.data.sources.ase_io import read_structures

    if path.is_dir():
        files = sorted(f for f in path.iterdir() if f.is_file() and f.suffix.lower() == ".cif")
        if not files:
            raise ValueError(f"folder '{path}' holds no .cif files; give a folder of CIF files")
        data, _ = read_structures(files, progress=progress)
        stems = [Path(s.rsplit(":", 1)[0]).stem for s in data.system_props["source"]]
        multi = {s for s in stems if stems.count(s) > 1}
        cids = [
            s if s not in multi else str(src)
            for s, src in zip(stems, data.system_props["source"], strict=True)
        ]
        data.system_props["id"] = np.array(cids, dtype=str)
        return _from_packed(data, path, str(path))
    if not path.exists():
        raise FileNotFoundError(
            f"crystal source '{path}' does not exist; give a CSV of CIFs, a folder of CIFs, a "
            f"dataset .h5 or '{PROTOTYPES_TOKEN}'"
        )
    suffix = path.suffix.lower()
    if suffix == ".csv":
        from deepatoms.data.sources.crystals import load_cif_csv

        data, _ = load_cif_csv(path, on_error=on_error, progress=progress)  # type: ignore[arg-type]
        _csv_ids(data, path)
        return _from_packed(data, path, str(path))
    if suffix in (".h5", ".hdf5"):
        from deepatoms.data.dataset import read_dataset

        data, _ = read_dataset(path)
        return _from_packed(data, path, str(path))
    data, _ = read_structures([path], progress=progress)
    return _from_packed(data, path, str(path))


def _aflow_set() -> CrystalSet:
    from ase.data import atomic_numbers

    from deepatoms.data.prototypes.library import load_aflow_prototypes

    atoms, ids = [], []
    for p in load_aflow_prototypes():
        z = [atomic_numbers[s] for s in p.site_species]
        numbers = np.asarray(z, dtype=np.int64)[p.site_of_atom]
        atoms.append(Atoms(numbers=numbers, scaled_positions=p.frac, cell=p.cell, pbc=True))
        ids.append(p.name)
    return CrystalSet(atoms, ids, list(ids), [PROTOTYPES_TOKEN] * len(ids))


def _same_group_elements() -> dict[int, list[int]]:
    from pymatgen.core import Element

    by_group: dict[int, list[int]] = {}
    for z in SUBSTITUTION_POOL:
        by_group.setdefault(Element.from_Z(z).group, []).append(z)
    return by_group


def prototype_variants(
    n: int, seed: int = 0, max_atoms: int | None = None, max_tries: int = 50
) -> CrystalSet:
    """``n`` distinct element-substituted AFLOW prototypes with rescaled lattices (module
    docstring); id ``<prototype>:A=..,B=..``, group = parent prototype. Fewer than ``n`` come
    back only when ``n × max_tries`` draws find no more distinct variants."""
    from ase.data import chemical_symbols
    from pymatgen.core import Element

    from deepatoms.data.prototypes.library import load_aflow_prototypes
    from deepatoms.data.prototypes.rescale import atomic_volume
    from deepatoms.data.prototypes.substitution import Candidate

    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"number of prototype variants must be an int >= 0, got {n!r}")
    library = [p for p in load_aflow_prototypes() if max_atoms is None or p.n_atoms <= max_atoms]
    if not library:
        raise ValueError(f"no AFLOW prototype has at most {max_atoms} atoms")
    by_group = _same_group_elements()
    rng = np.random.default_rng(seed)
    seen: set[str] = set()
    atoms, ids, groups = [], [], []
    for _ in range(int(n) * max_tries):
        if len(atoms) >= n:
            break
        p = library[int(rng.integers(len(library)))]
        old = [Element(s) for s in p.site_species]
        choices = [by_group.get(e.group, [e.Z]) for e in old]
        new_z = [int(c[int(rng.integers(len(c)))]) for c in choices]
        if len(set(new_z)) < len(new_z) or new_z == [e.Z for e in old]:
            continue
        elements = tuple(chemical_symbols[z] for z in new_z)
        mult = p.multiplicities
        v_new = sum(m * atomic_volume(e) for e, m in zip(elements, mult, strict=True))
        v_old = sum(m * atomic_volume(e) for e, m in zip(p.site_species, mult, strict=True))
        cand = Candidate(p, elements, (v_new / v_old) ** (1.0 / 3.0))
        if cand.candidate_id in seen:
            continue
        seen.add(cand.candidate_id)
        a = cand.atoms()
        a.info = {}
        atoms.append(a)
        ids.append(cand.candidate_id)
        groups.append(p.name)
    return CrystalSet(atoms, ids, groups, [f"{PROTOTYPES_TOKEN}:variants"] * len(atoms))


def _prototype_token(token: str, seed: int) -> CrystalSet | None:
    if token == PROTOTYPES_TOKEN:
        return _aflow_set()
    head, sep, count = token.partition(":")
    if head != PROTOTYPES_TOKEN or not sep:
        return None
    try:
        n = int(count)
    except ValueError:
        raise ValueError(
            f"'{token}': the number of prototype variants must be an integer, e.g. "
            f"'{PROTOTYPES_TOKEN}:2000'"
        ) from None
    return CrystalSet.concatenate([_aflow_set(), prototype_variants(n, seed=seed)])


def load_crystals(
    paths: list[str | os.PathLike],
    seed: int = 0,
    progress: bool = True,
    on_error: str = "raise",
) -> CrystalSet:
    """All crystals of ``paths`` (CSV of CIFs, CIF folder, dataset .h5, ASE-readable file,
    ``prototypes`` or ``prototypes:N``; module docstring) as one :class:`CrystalSet`.

    ``seed`` drives the prototype variants; ``on_error="skip"`` skips unreadable CSV rows
    (reported by the CSV loader) instead of raising."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if not paths:
        raise ValueError(
            f"no crystal sources given; name CSVs of CIFs, CIF folders, .h5 datasets or "
            f"'{PROTOTYPES_TOKEN}'"
        )
    parts = []
    for p in paths:
        token = _prototype_token(str(p), seed) if isinstance(p, str) else None
        parts.append(token if token is not None else _load_path(Path(p), progress, on_error))
    out = CrystalSet.concatenate(parts)
    dupes = len(out.ids) - len(set(out.ids))
    if dupes:
        out.notes["duplicate_ids"] = dupes
    return out


def select_crystals(crystals: CrystalSet, max_side: float) -> CrystalSet:
    """The crystals a density-VAE run trains, validates and tests on, in the order its
    ``split.json`` indexes.

    Keeps crystals whose lattice vectors are all shorter than ``max_side`` (Å; Hoffmann et al.
    2019 §3.1: the box holds the unit cell) and whose elements have a species class (Z ≤ 94);
    the reports are in ``notes["max_side"]`` and ``notes["beyond_z94"]`` (dropped ids).
    """
    from deepatoms.data.voxels.dataset import MAX_Z

    crystals = crystals.filter_max_side(float(max_side))
    keep = [k for k, a in enumerate(crystals.atoms) if int(np.max(a.numbers)) <= MAX_Z]
    dropped = [crystals.ids[k] for k in sorted(set(range(len(crystals))) - set(keep))]
    out = crystals.subset(keep)
    out.notes["beyond_z94"] = dropped
    return out
