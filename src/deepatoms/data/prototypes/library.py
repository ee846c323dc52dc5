"""Prototype structures whose species sites are substituted with new elements (docs/position_free_crystals.md §5, §7).

A prototype is a periodic structure whose atoms are grouped into *species sites*: all atoms of
one element of the prototype form one site (its sublattice). Sites are labelled A, B, C, … in the
alphabetical order of the prototype's element symbols, which is the order of the AFLOW labels
(Cu₃Au, ``AB3_cP4_221_a_c``: A = Au, B = Cu). A candidate puts one new element on every site.

Sources:

- the AFLOW prototype library bundled with pymatgen
  (``pymatgen/analysis/prototypes/aflow_prototypes.json.gz``, 288 structures, primitive cells);
  each is named by its AFLOW label, with ``-<Strukturbericht>`` (or ``-<n>``) appended where
  several entries share a label (``A_oC8_64_f-A11``);
- user CIF files (ordered structures only), named by the file stem.

:meth:`Prototype.site_symmetries` lists the permutations of the sites that map the prototype
onto itself (found with pymatgen's ``StructureMatcher``); substitutions related by one of them
give the same crystal (B2 CsCl: AB = BA), so candidates are enumerated once per class.
"""

from __future__ import annotations

import difflib
import functools
import gzip
import importlib.util
import itertools
import json
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "AFLOW_LIBRARY",
    "Prototype",
    "filter_prototypes",
    "load_aflow_prototypes",
    "load_cif_prototype",
    "resolve_prototypes",
    "select_prototypes",
]

#: Name of the bundled library in :func:`resolve_prototypes` specs.
AFLOW_LIBRARY = "aflow"
_SITE_LABELS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
# Tolerances of the symmetry test: exact prototypes match to numerical precision.
_MATCHER = {"ltol": 0.05, "stol": 0.05, "angle_tol": 1.0}


@dataclass(eq=False)
class Prototype:
    """A prototype crystal with its species sites.

    Attributes:
        name: unique name (AFLOW label, or CIF file stem).
        source: ``"aflow"`` or the CIF path.
        cell: lattice vectors as rows [3, 3] (Å), as given by the source.
        frac: fractional coordinates [N, 3] in [0, 1).
        site_of_atom: species site (0 = A, 1 = B, …) of every atom [N].
        site_species: the prototype's own element on each site, alphabetical.
        tags: ``aflow`` label, ``strukturbericht``, ``pearson`` symbol, ``mineral`` (may be "").
    """

    name: str
    source: str
    cell: np.ndarray
    frac: np.ndarray
    site_of_atom: np.ndarray
    site_species: tuple[str, ...]
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def n_atoms(self) -> int:
        """Atoms in the prototype cell."""
        return len(self.site_of_atom)

    @property
    def n_sites(self) -> int:
        """Number of species sites (= number of distinct elements of a candidate)."""
        return len(self.site_species)

    @property
    def site_labels(self) -> tuple[str, ...]:
        """Site names A, B, C, …"""
        return tuple(_SITE_LABELS[i] for i in range(self.n_sites))

    @cached_property
    def multiplicities(self) -> tuple[int, ...]:
        """Atoms on each site in the cell."""
        return tuple(int(c) for c in np.bincount(self.site_of_atom, minlength=self.n_sites))

    @property
    def anonymous_formula(self) -> str:
        """Reduced AFLOW-style stoichiometry of the sites, e.g. ``AB3`` for Cu₃Au."""
        return anonymous_formula(self.multiplicities)

    @property
    def volume(self) -> float:
        """Cell volume (Å³)."""
        return float(abs(np.linalg.det(self.cell)))

    def structure(self, elements: Sequence[str] | None = None, scale: float = 1.0) -> Any:
        """The prototype (or a substitution: ``elements[i]`` on site i) as a pymatgen Structure,
        lattice vectors multiplied by ``scale``."""
        from pymatgen.core import Lattice, Structure

        els = self.site_species if elements is None else tuple(elements)
        species = [els[s] for s in self.site_of_atom]
        return Structure(Lattice(self.cell * scale), species, self.frac)

    @cached_property
    def site_symmetries(self) -> tuple[tuple[int, ...], ...]:
        """Permutations p of the sites (identity first) such that putting the element of site
        p[i] on site i gives the same crystal; only sites of equal multiplicity can swap."""
        from pymatgen.analysis.structure_matcher import StructureMatcher

        identity = tuple(range(self.n_sites))
        mult = self.multiplicities
        perms = [
            p
            for p in itertools.permutations(identity)
            if p != identity and all(mult[i] == mult[p[i]] for i in identity)
        ]
        if not perms:
            return (identity,)
        matcher = StructureMatcher(
            **_MATCHER, primitive_cell=False, scale=False, attempt_supercell=False
        )
        reference = self.structure()
        found = [identity]
        for p in perms:
            relabelled = self.structure([self.site_species[p[i]] for i in identity])
            if matcher.fit(reference, relabelled):
                found.append(p)
        return tuple(found)

    @cached_property
    def site_pair_min_distance(self) -> np.ndarray:
        """Shortest distance (Å) between an atom of site a and one of site b, images included
        [n_sites, n_sites] (an atom and its own periodic images count for a = b)."""
        from pymatgen.core import Lattice

        lattice = Lattice(self.cell)
        d = np.asarray(lattice.get_all_distances(self.frac, self.frac), dtype=np.float64)
        np.fill_diagonal(d, _shortest_lattice_vector(self.cell))
        out = np.full((self.n_sites, self.n_sites), np.inf)
        for a in range(self.n_sites):
            for b in range(self.n_sites):
                block = d[np.ix_(self.site_of_atom == a, self.site_of_atom == b)]
                out[a, b] = block.min()
        return out

    def describe(self) -> dict[str, Any]:
        """JSON-friendly summary (for provenance)."""
        return {
            "name": self.name,
            "source": self.source,
            "n_atoms": self.n_atoms,
            "sites": dict(zip(self.site_labels, self.multiplicities, strict=True)),
            **{k: v for k, v in self.tags.items() if v},
        }


def anonymous_formula(multiplicities: Sequence[int]) -> str:
    """``[1, 3]`` → ``AB3``: site letters with counts divided by their greatest common divisor."""
    g = functools.reduce(math.gcd, (int(m) for m in multiplicities))
    return "".join(
        _SITE_LABELS[i] + (str(m // g) if m // g != 1 else "") for i, m in enumerate(multiplicities)
    )


def _shortest_lattice_vector(cell: np.ndarray) -> float:
    """Length (Å) of the shortest non-zero lattice vector (search over -2…2 multiples of a
    reduced basis)."""
    from pymatgen.core import Lattice

    reduced = Lattice(cell).get_niggli_reduced_lattice().matrix
    n = np.array(list(itertools.product(range(-2, 3), repeat=3)))
    n = n[np.any(n != 0, axis=1)]
    return float(np.linalg.norm(n @ reduced, axis=1).min())


def _from_structure(
    structure: Any, name: str, source: str, tags: dict[str, str] | None = None
) -> Prototype:
    if not structure.is_ordered:
        raise ValueError(
            f"prototype {name!r} ({source}) has partially occupied sites; give an ordered "
            "structure (one element per site), e.g. ordered with pymatgen's "
            "OrderDisorderedStructureTransformation"
        )
    if len(structure) == 0:
        raise ValueError(f"prototype {name!r} ({source}) has no atoms")
    symbols = [site.specie.symbol for site in structure]
    species = tuple(sorted(set(symbols)))
    if len(species) > len(_SITE_LABELS):
        raise ValueError(f"prototype {name!r} has {len(species)} elements; at most 26 supported")
    index = {el: i for i, el in enumerate(species)}
    frac = np.mod(np.asarray(structure.frac_coords, dtype=np.float64), 1.0)
    frac[np.isclose(frac, 1.0, atol=1e-12)] = 0.0
    return Prototype(
        name=name,
        source=source,
        cell=np.array(structure.lattice.matrix, dtype=np.float64),
        frac=frac,
        site_of_atom=np.array([index[s] for s in symbols], dtype=np.int64),
        site_species=species,
        tags=dict(tags or {}),
    )


def _read_aflow_library() -> list[dict[str, Any]]:
    """The raw entries of pymatgen's ``aflow_prototypes.json.gz``, read directly: importing
    ``pymatgen.analysis.prototypes`` would also load its Wyckoff tables (seconds)."""
    spec = importlib.util.find_spec("pymatgen.analysis.prototypes")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        path = Path(folder) / "aflow_prototypes.json.gz"
        if path.is_file():
            with gzip.open(path, "rt", encoding="utf-8") as f:
                return json.load(f)
    raise FileNotFoundError(
        "pymatgen's AFLOW prototype library (pymatgen/analysis/prototypes/"
        "aflow_prototypes.json.gz) was not found; install pymatgen >= 2024.1 or pass CIF files"
    )


@functools.lru_cache(maxsize=1)
def load_aflow_prototypes() -> tuple[Prototype, ...]:
    """All prototypes of pymatgen's bundled AFLOW library, in library order (cached)."""
    from pymatgen.core import Structure

    entries = []
    for entry in _read_aflow_library():
        tags = {k: str(entry["tags"].get(k) or "") for k in ("aflow", "strukturbericht",
                                                               "pearson", "mineral")}  # fmt: skip
        if tags["strukturbericht"] == "None":
            tags["strukturbericht"] = ""
        entries.append((tags, Structure.from_dict(entry["snl"])))
    names = _unique_names(
        [t["aflow"] for t, _ in entries], [t["strukturbericht"] for t, _ in entries]
    )
    return tuple(
        _from_structure(structure, name, AFLOW_LIBRARY, tags)
        for name, (tags, structure) in zip(names, entries, strict=True)
    )


def _unique_names(labels: Sequence[str], designations: Sequence[str]) -> list[str]:
    """AFLOW labels, with ``-<Strukturbericht>`` or ``-<n>`` appended to repeated ones."""
    counts: dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    names: list[str] = []
    seen: set[str] = set()
    k: dict[str, int] = {}
    for label, designation in zip(labels, designations, strict=True):
        k[label] = k.get(label, 0) + 1
        name = label
        if counts[label] > 1:
            name = f"{label}-{designation}" if designation else f"{label}-{k[label]}"
            if name in seen:
                name = f"{label}-{k[label]}"
        names.append(name)
        seen.add(name)
    return names


def load_cif_prototype(path: str | os.PathLike) -> Prototype:
    """A prototype from a CIF (or any file pymatgen reads); each element of the file is one
    site. Named by the file stem."""
    from pymatgen.core import Structure
    from pymatgen.io.ase import AseAtomsAdaptor

    from deepatoms.core.files import check_input_file
    from deepatoms.data.validate import check_atoms

    p = check_input_file(path, "prototype file")
    try:
        structure = Structure.from_file(p)
    except Exception as exc:  # pymatgen raises many types for unreadable files
        raise ValueError(
            f"cannot read a crystal structure from {p} ({type(exc).__name__}: {exc}); give a CIF "
            "with one ordered structure"
        ) from exc
    if not structure.is_ordered:
        raise ValueError(
            f"prototype {p} has partially occupied sites; give an ordered structure (e.g. an "
            "ordered supercell from pymatgen's OrderDisorderedStructureTransformation)"
        )
    check_atoms(AseAtomsAdaptor.get_atoms(structure), f"prototype {p}")
    return _from_structure(structure, p.stem, str(p), {"file": str(p)})


def _norm(name: str) -> str:
    return re.sub(r"[\s_]+", "", name).lower()


def select_prototypes(library: Sequence[Prototype], names: Iterable[str]) -> list[Prototype]:
    """Prototypes of ``library`` matching ``names``: a prototype name, an AFLOW label (all entries
    with it) or a Strukturbericht designation (``L1_2`` or ``L12``, case-insensitive). Library
    order, no repeats."""
    chosen: set[int] = set()
    for name in names:
        hits = [
            i
            for i, p in enumerate(library)
            if name in (p.name, p.tags.get("aflow"))
            or (p.tags.get("strukturbericht") and _norm(p.tags["strukturbericht"]) == _norm(name))
        ]
        if not hits:
            options = [p.name for p in library] + [
                p.tags["strukturbericht"] for p in library if p.tags.get("strukturbericht")
            ]
            close = difflib.get_close_matches(name, options, n=3, cutoff=0.6)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise ValueError(
                f"unknown prototype {name!r}: not an AFLOW label (e.g. AB3_cP4_221_a_c) nor a "
                f"Strukturbericht designation (e.g. L1_2) of the library.{hint}"
            )
        chosen.update(hits)
    return [library[i] for i in sorted(chosen)]


def resolve_prototypes(specs: Iterable[str]) -> list[Prototype]:
    """Prototypes from command-line specs: ``aflow`` (the whole library), a structure file
    (``.cif``, or any existing file), or AFLOW names/designations (:func:`select_prototypes`)."""
    out: list[Prototype] = []
    names: list[str] = []
    for spec in specs:
        text = str(spec).strip()
        if text.lower() == AFLOW_LIBRARY:
            out.extend(load_aflow_prototypes())
        elif text.lower().endswith(".cif") or Path(text).is_file():
            out.append(load_cif_prototype(text))
        else:
            names.append(text)
    if names:
        out.extend(select_prototypes(load_aflow_prototypes(), names))
    unique: dict[str, Prototype] = {}
    for p in out:
        other = unique.setdefault(p.name, p)
        if other is not p and other.source != p.source:
            raise ValueError(
                f"two prototypes are named {p.name!r} ({other.source} and {p.source}); "
                "rename one of the files"
            )
    if not unique:
        raise ValueError("no prototypes given; use 'aflow', AFLOW names such as L1_2, or CIF files")
    return list(unique.values())


def filter_prototypes(
    prototypes: Iterable[Prototype],
    n_sites: int | Iterable[int] | None = None,
    max_atoms: int | None = None,
) -> list[Prototype]:
    """Prototypes with a number of species sites in ``n_sites`` and at most ``max_atoms`` atoms
    in the cell (None: no limit)."""
    sites = {n_sites} if isinstance(n_sites, int) else None if n_sites is None else set(n_sites)
    if max_atoms is not None and max_atoms < 1:
        raise ValueError(f"max_atoms must be a positive number of atoms, got {max_atoms}")
    return [
        p
        for p in prototypes
        if (sites is None or p.n_sites in sites) and (max_atoms is None or p.n_atoms <= max_atoms)
    ]
