"""Candidate crystals: elements substituted onto the species sites of prototypes (docs/position_free_crystals.md §5).

A composition request is either

- a set of elements with one or more arities (``--elements Al,Cu,Ni --arity 2``: every pair of
  the elements on every prototype with two species sites), optionally restricted to site
  stoichiometries (``AB3``: order-insensitive, so A3B prototypes count too), or
- explicit formulas (``CuAu``, ``Cu3Au``): prototypes whose site stoichiometry can realise the
  formula, with each realising assignment.

Every assignment of distinct elements to the sites is a candidate (AB and BA orders), except
that assignments related by a site symmetry of the prototype (B2: AB = BA) give the same crystal
and are enumerated once (the lexicographically smallest element tuple). The candidate structure is
the prototype with substituted species, rescaled isotropically by :mod:`.scaling`.

:class:`CandidateSpace` knows its size before building anything (``len``) and streams candidates,
or chunks of them packed as :class:`~deepatoms.data.packed.PackedSystems`, in bounded memory.
Candidate ids are ``<prototype>:<assignment>``, e.g. ``AB3_cP4_221_a_c:A=Au,B=Cu``.
"""

from __future__ import annotations

import functools
import itertools
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers

from deepatoms.data.packed import PackedSystems
from deepatoms.data.prototypes.library import Prototype
from deepatoms.data.prototypes.rescale import RESCALE_RULES, scale_factor

__all__ = [
    "Candidate",
    "CandidateSpace",
    "CompositionRequest",
    "parse_assignment",
    "reduced_formula",
]

_ANON_TOKEN = re.compile(r"([A-Z])(\d*)")


@functools.lru_cache(maxsize=65536)
def _reduced_formula(counts: tuple[tuple[str, int], ...]) -> str:
    from pymatgen.core import Composition

    return Composition(dict(counts)).reduced_formula


def reduced_formula(counts: dict[str, int] | Iterable[tuple[str, int]]) -> str:
    """pymatgen's reduced formula of element counts, e.g. ``{"Cu": 3, "Au": 1}`` → ``Cu3Au``."""
    items = counts.items() if isinstance(counts, dict) else counts
    merged: dict[str, int] = {}
    for el, n in items:
        merged[el] = merged.get(el, 0) + int(n)
    return _reduced_formula(tuple(sorted(merged.items())))


def _reduce(values: Sequence[int]) -> tuple[int, ...]:
    g = functools.reduce(math.gcd, values)
    return tuple(v // g for v in values)


def _parse_stoichiometry(text: str) -> tuple[int, ...]:
    """``AB3`` → (1, 3) sorted and reduced; the letters only count sites."""
    t = text.strip()
    tokens = _ANON_TOKEN.findall(t)
    if (
        not t
        or "".join(a + n for a, n in tokens) != t
        or len({a for a, _ in tokens}) != len(tokens)
    ):
        raise ValueError(
            f"cannot read stoichiometry {text!r}; write site letters with counts such as AB, AB3 "
            "or ABC2 (each letter once)"
        )
    counts = [int(n) if n else 1 for _, n in tokens]
    if min(counts) < 1:
        raise ValueError(f"stoichiometry {text!r} has a zero count")
    return tuple(sorted(_reduce(counts)))


def _parse_formula(text: str) -> dict[str, int]:
    """Integer element amounts of a formula, reduced (``Cu6Au2`` → {Cu: 3, Au: 1})."""
    from pymatgen.core import Composition

    try:
        comp = Composition(text.strip())
    except Exception as exc:  # pymatgen raises ValueError or others for bad formulas
        raise ValueError(f"cannot read formula {text!r} ({exc}); write e.g. CuAu or Cu3Au") from exc
    amounts = comp.get_el_amt_dict()
    if not amounts:
        raise ValueError(f"formula {text!r} has no elements")
    if any(abs(v - round(v)) > 1e-8 or round(v) < 1 for v in amounts.values()):
        raise ValueError(f"formula {text!r} needs whole-number amounts, e.g. Cu3Au")
    keys = sorted(amounts)
    return dict(zip(keys, _reduce([round(amounts[k]) for k in keys]), strict=True))


def _check_element(symbol: str) -> str:
    s = symbol.strip()
    if s not in atomic_numbers or s == "X":
        raise ValueError(f"unknown element {symbol!r}; give element symbols such as Al,Cu,Ni")
    return s


@dataclass(frozen=True)
class CompositionRequest:
    """Which compositions to enumerate (module docstring).

    Attributes:
        elements: element symbols (sorted, unique); empty when ``formulas`` are given.
        arity: numbers of distinct elements per candidate (elements mode).
        stoichiometry: allowed sorted, reduced site counts, e.g. (1, 3) for AB3; empty: any.
        formulas: explicit compositions as {element: reduced amount}.
    """

    elements: tuple[str, ...] = ()
    arity: tuple[int, ...] = ()
    stoichiometry: tuple[tuple[int, ...], ...] = ()
    formulas: tuple[dict[str, int], ...] = ()

    @classmethod
    def parse(
        cls,
        elements: str | Sequence[str] | None = None,
        arity: int | Sequence[int] | None = None,
        stoichiometry: str | Sequence[str] | None = None,
        formulas: str | Sequence[str] | None = None,
    ) -> CompositionRequest:
        """Check and normalise a request; strings may be comma-separated lists.

        Give ``elements`` (with ``arity``, default 2, or ``stoichiometry``, whose letter count
        sets the arity) or ``formulas``, not both.
        """

        def split(v: str | Sequence[str] | None) -> list[str]:
            if v is None:
                return []
            items = (
                v.split(",") if isinstance(v, str) else [x for s in v for x in str(s).split(",")]
            )
            return [x.strip() for x in items if x.strip()]

        els, stoich, forms = split(elements), split(stoichiometry), split(formulas)
        if forms and (els or stoich or arity is not None):
            raise ValueError(
                "give either formulas (e.g. CuAu,Cu3Au) or elements with an arity or "
                "stoichiometry (e.g. Al,Cu,Ni and 2), not both"
            )
        if forms:
            parsed = tuple(_parse_formula(f) for f in forms)
            unique = {tuple(sorted(f.items())): f for f in parsed}
            return cls(formulas=tuple(unique.values()))
        if not els:
            raise ValueError("no elements given; list the elements to combine, e.g. Al,Cu,Ni")
        symbols = tuple(sorted({_check_element(e) for e in els}))
        ratios = tuple(sorted({_parse_stoichiometry(s) for s in stoich}))
        if arity is None:
            arities = tuple(sorted({len(r) for r in ratios})) if ratios else (2,)
        else:
            arities = tuple(sorted({arity} if isinstance(arity, int) else set(arity)))
        bad = [k for k in arities if isinstance(k, bool) or not isinstance(k, int) or k < 1]
        if bad or not arities:
            raise ValueError(f"arity must be positive whole numbers of elements, got {arity!r}")
        if ratios and {len(r) for r in ratios} - set(arities):
            raise ValueError(
                f"stoichiometry {', '.join(stoich)} does not fit arity {list(arities)}; give "
                "site letters that match the number of elements (AB3 is binary)"
            )
        too_big = [k for k in arities if k > len(symbols)]
        if too_big:
            raise ValueError(
                f"arity {too_big[0]} needs at least {too_big[0]} elements, but only "
                f"{len(symbols)} given ({','.join(symbols)}); lower the arity or add elements"
            )
        return cls(elements=symbols, arity=arities, stoichiometry=ratios)

    @property
    def all_elements(self) -> tuple[str, ...]:
        """Every element the request can use, sorted."""
        if self.formulas:
            return tuple(sorted({e for f in self.formulas for e in f}))
        return self.elements

    def describe(self) -> dict[str, Any]:
        """JSON-friendly form (provenance)."""
        if self.formulas:
            return {"formulas": [reduced_formula(f) for f in self.formulas]}
        return {
            "elements": list(self.elements),
            "arity": list(self.arity),
            "stoichiometry": [_anon(r) for r in self.stoichiometry],
        }


def _anon(ratio: Sequence[int]) -> str:
    return "".join(chr(65 + i) + (str(n) if n != 1 else "") for i, n in enumerate(ratio))


@dataclass(frozen=True, eq=False)
class Candidate:
    """One substitution: ``elements[i]`` on site i of ``prototype``, cell scaled by ``scale``."""

    prototype: Prototype
    elements: tuple[str, ...]
    scale: float

    @property
    def composition(self) -> str:
        """Reduced formula (pymatgen order), e.g. ``Cu3Au``."""
        return reduced_formula(zip(self.elements, self.prototype.multiplicities, strict=True))

    @property
    def assignment(self) -> str:
        """Sites and their elements, e.g. ``A=Au,B=Cu``."""
        return ",".join(
            f"{s}={e}" for s, e in zip(self.prototype.site_labels, self.elements, strict=True)
        )

    @property
    def candidate_id(self) -> str:
        """``<prototype>:<assignment>``."""
        return f"{self.prototype.name}:{self.assignment}"

    @property
    def numbers(self) -> np.ndarray:
        """Atomic numbers of the atoms [N]."""
        z = np.array([atomic_numbers[e] for e in self.elements], dtype=np.int64)
        return z[self.prototype.site_of_atom]

    @property
    def cell(self) -> np.ndarray:
        """Rescaled lattice vectors [3, 3] (Å)."""
        return self.prototype.cell * self.scale

    def atoms(self) -> Atoms:
        """The candidate as ASE ``Atoms`` (Å, periodic), with id, prototype and composition in
        ``atoms.info``."""
        atoms = Atoms(
            numbers=self.numbers, scaled_positions=self.prototype.frac, cell=self.cell, pbc=True
        )
        atoms.info.update(
            candidate_id=self.candidate_id,
            prototype=self.prototype.name,
            assignment=self.assignment,
            composition=self.composition,
        )
        return atoms


def parse_assignment(text: str, prototype: Prototype) -> tuple[str, ...]:
    """Elements per site from an assignment string ``A=Au,B=Cu`` of ``prototype``."""
    pairs = dict(p.split("=", 1) for p in text.split(",") if "=" in p)
    if sorted(pairs) != sorted(prototype.site_labels):
        raise ValueError(
            f"assignment {text!r} does not name the sites {','.join(prototype.site_labels)} of "
            f"prototype {prototype.name}"
        )
    return tuple(_check_element(pairs[s]) for s in prototype.site_labels)


def _canonical(elements: tuple[str, ...], symmetries: Sequence[tuple[int, ...]]) -> bool:
    """True if ``elements`` is the smallest tuple among its symmetry-equivalent assignments."""
    return all(elements <= tuple(elements[p[i]] for i in range(len(p))) for p in symmetries)


class CandidateSpace:
    """All candidates of a request over a list of prototypes, streamed in a fixed order
    (prototype by prototype, element combinations in sorted order).

    Args:
        prototypes: prototypes to substitute (filter them first with
            :func:`~deepatoms.screen.prototypes.filter_prototypes`).
        request: the compositions (:class:`CompositionRequest`).
        rescale: ``volume`` (default), ``contact`` or ``none`` (:mod:`.scaling`).
    """

    def __init__(
        self,
        prototypes: Sequence[Prototype],
        request: CompositionRequest,
        rescale: str = "volume",
    ) -> None:
        if rescale not in RESCALE_RULES:
            raise ValueError(
                f"unknown rescale rule {rescale!r}; choose one of {', '.join(RESCALE_RULES)}"
            )
        self.request, self.rescale = request, rescale
        names = [p.name for p in prototypes]
        if len(set(names)) != len(names):
            raise ValueError("prototype names must be unique")
        self._by_name = {p.name: p for p in prototypes}
        self.counts: dict[str, int] = {}
        for p in prototypes:
            n = self._count(p)
            if n:
                self.counts[p.name] = n
        self.prototypes = [p for p in prototypes if p.name in self.counts]
        self._len = sum(self.counts.values())

    # -- enumeration ----------------------------------------------------------------------------
    def _eligible(self, p: Prototype) -> bool:
        req = self.request
        if req.formulas:
            return any(len(f) == p.n_sites for f in req.formulas)
        if p.n_sites not in req.arity:
            return False
        return not req.stoichiometry or tuple(sorted(_reduce(p.multiplicities))) in set(
            req.stoichiometry
        )

    def _count(self, p: Prototype) -> int:
        if not self._eligible(p):
            return 0
        if self.request.formulas:
            return sum(1 for _ in self._assignments(p))
        n, k = len(self.request.elements), p.n_sites
        return math.perm(n, k) // len(p.site_symmetries)

    def _assignments(self, p: Prototype) -> Iterator[tuple[str, ...]]:
        """Canonical element tuples (one per site) of prototype ``p``."""
        if not self._eligible(p):
            return
        symmetries = p.site_symmetries[1:]
        if self.request.formulas:
            ratio = _reduce(p.multiplicities)
            for formula in self.request.formulas:
                if len(formula) != p.n_sites:
                    continue
                for perm in itertools.permutations(sorted(formula)):
                    if tuple(formula[e] for e in perm) == ratio and _canonical(perm, symmetries):
                        yield perm
            return
        for combo in itertools.combinations(self.request.elements, p.n_sites):
            for perm in itertools.permutations(combo):
                if _canonical(perm, symmetries):
                    yield perm

    def make(self, prototype: Prototype, elements: Sequence[str]) -> Candidate:
        """The candidate with ``elements[i]`` on site i of ``prototype``, rescaled."""
        els = tuple(elements)
        if len(els) != prototype.n_sites:
            raise ValueError(
                f"prototype {prototype.name} has {prototype.n_sites} sites, got {len(els)} elements"
            )
        pairs = prototype.site_pair_min_distance if self.rescale == "contact" else None
        s = scale_factor(self.rescale, els, prototype.multiplicities, prototype.volume, pairs)
        return Candidate(prototype, els, s)

    def from_id(self, candidate_id: str) -> Candidate:
        """Rebuild a candidate from its id ``<prototype>:<assignment>``."""
        name, _, assignment = candidate_id.rpartition(":")
        if name not in self._by_name:
            raise ValueError(f"candidate {candidate_id!r}: unknown prototype {name!r}")
        p = self._by_name[name]
        return self.make(p, parse_assignment(assignment, p))

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[Candidate]:
        for p in self.prototypes:
            for elements in self._assignments(p):
                yield self.make(p, elements)

    def slice(self, start: int, stop: int) -> list[Candidate]:
        """Candidates ``start … stop-1`` of the enumeration order, built without building the
        ones before them (whole prototypes are skipped by their counts)."""
        out: list[Candidate] = []
        offset = 0
        for p in self.prototypes:
            n = self.counts[p.name]
            if offset + n > start and offset < stop:
                for k, elements in enumerate(self._assignments(p), start=offset):
                    if k >= stop:
                        break
                    if k >= start:
                        out.append(self.make(p, elements))
            offset += n
            if offset >= stop:
                break
        return out

    def chunks(self, size: int = 10_000) -> Iterator[tuple[list[Candidate], PackedSystems]]:
        """Consecutive chunks of at most ``size`` candidates with their structures packed."""
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"chunk size must be a positive number of candidates, got {size!r}")
        batch: list[Candidate] = []
        for cand in self:
            batch.append(cand)
            if len(batch) == size:
                yield batch, pack(batch)
                batch = []
        if batch:
            yield batch, pack(batch)

    def describe(self) -> dict[str, Any]:
        """JSON-friendly summary: request, rescale rule, candidates per prototype."""
        return {
            "request": self.request.describe(),
            "rescale": self.rescale,
            "n_candidates": len(self),
            "candidates_per_prototype": dict(self.counts),
            "prototypes": [p.describe() for p in self.prototypes],
        }


def pack(candidates: Sequence[Candidate]) -> PackedSystems:
    """Structures of ``candidates`` (Å, periodic) as one pack, in order."""
    n = np.array([c.prototype.n_atoms for c in candidates], dtype=np.int64)
    if len(candidates) == 0:
        return PackedSystems(
            np.zeros(0, np.int64), np.zeros((0, 3)), np.zeros(1, np.int64), np.zeros((0, 3, 3)),
            np.zeros((0, 3), bool),
        )  # fmt: skip
    cells = np.stack([c.cell for c in candidates])
    positions = np.concatenate(
        [c.prototype.frac @ cell for c, cell in zip(candidates, cells, strict=True)]
    )
    return PackedSystems(
        numbers=np.concatenate([c.numbers for c in candidates]),
        positions=positions,
        offsets=np.concatenate([[0], np.cumsum(n)]),
        cell=cells,
        pbc=np.ones((len(candidates), 3), dtype=bool),
    )
