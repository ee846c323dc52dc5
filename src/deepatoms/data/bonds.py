"""Typed bond graphs for VIMPNN: perceived once at the stable structure (docs/vimpnn.md §1).

A bond list holds one direction of every bonded pair: atoms i ≤ j and an integer cell shift S
with bond vector r_ij = r_j − r_i + S·L (rows of L = lattice vectors; S = 0 for molecules), and
a type name. Types, in canonical vocabulary order (:data:`BOND_TYPES`):

* rule ``"rdkit"`` (Default): RDKit bond order of the stable molecule after kekulisation,
  SINGLE/DOUBLE/TRIPLE → ``single``/``double``/``triple``. With a SMILES (QM9 has one, with B
  bonds including H), a connectivity graph of the geometry is mapped onto the SMILES graph by
  graph isomorphism (RDKit substructure match with equal atom and bond counts) and the SMILES's
  Kekulé orders are copied. Graphs tried in turn: the B pairs with the smallest
  d / (r_cov,i + r_cov,j) (RDKit covalent radii), then all pairs with d ≤ f·(r_cov,i + r_cov,j)
  for f = 1.3, 1.25, 1.2, 1.35 … 1.5, 1.15 (strained cages of QM9 have 1,3 contacts shorter than
  1.3·Σr_cov, which the first graph leaves out). Without a SMILES (or when no graph matches), the
  orders come from the geometry alone (``rdDetermineBonds.DetermineBonds``, charge 0, same f).
  On QM9 (6,000 molecules checked) every SMILES matched its geometry, about 0.5 ms a molecule.
* rule ``"electronegativity"``: the same bonded pairs, classed by the Pauling difference
  ΔEN = |χ_i − χ_j|: ``nonpolar`` (ΔEN < 0.4), ``polar`` (0.4 ≤ ΔEN < 1.7), ``ionic``
  (ΔEN ≥ 1.7). Contacts with a metal atom and bonds in periodic cells use the covalent-radius
  criterion d ≤ 1.3·(r_cov,i + r_cov,j).
* both rules: metal–metal pairs with d ≤ r_nn = ``metal_factor`` · d_min (Default 1.2), d_min the
  shortest metal–metal distance of the structure including periodic images (a/√2 in fcc, so the
  12-neighbour shell is kept and the second shell at a = √2·d_min is not) are ``metallic``;
  a 1-atom fcc cell has 12 edges to its own images, a 4-atom cell 12 per atom.
* option ``nonbonded_cutoff`` (Å): every other pair within the cutoff is ``nonbonded``.

:func:`bond_graph` turns per-system bond lists into a stored, mirrored edge list
(:class:`~deepatoms.data.edge_store.StoredEdges` of ``GraphSpec(kind="bonds")``, attribute
``bond_type`` = int8 index into the vocabulary). The topology of s = 1 is reused for every scaled
copy (:func:`replicate_bonds`): only distances change.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
from ase import Atoms

from deepatoms.data.edge_store import StoredEdges
from deepatoms.data.neighbors import GraphSpec, periodic_half_pairs
from deepatoms.data.packed import PackedSystems

__all__ = [
    "BOND_RULES",
    "BOND_TYPES",
    "RULE_TYPES",
    "Bonds",
    "attach_bonds",
    "bond_graph",
    "is_metal",
    "pack_with_bonds",
    "perceive_bonds",
    "replicate_bonds",
]

#: Every bond type name, in canonical vocabulary order.
BOND_TYPES = ("single", "double", "triple", "nonpolar", "polar", "ionic", "metallic", "nonbonded")
#: Bond-typing rules of :func:`perceive_bonds`.
BOND_RULES = ("rdkit", "electronegativity")
#: Covalent types each rule can produce (besides ``metallic`` and ``nonbonded``).
RULE_TYPES = {
    "rdkit": ("single", "double", "triple"),
    "electronegativity": ("nonpolar", "polar", "ionic"),
}
#: Non-metals and metalloids; every other element counts as a metal.
NONMETALS = frozenset(
    "H He B C N O F Ne Si P S Cl Ar Ge As Se Br Kr Sb Te I Xe At Rn Ts Og".split()
)
#: Pauling-difference class limits (ΔEN < 0.4 non-polar, < 1.7 polar, else ionic).
EN_POLAR, EN_IONIC = 0.4, 1.7
#: Covalent-radius factor f of the connectivity criterion d ≤ f·(r_i + r_j) (RDKit's default),
#: then the factors tried when the connectivity does not match the SMILES or bond orders fail.
COV_FACTOR = 1.3
_COV_FACTORS = (1.3, 1.25, 1.2, 1.35, 1.4, 1.45, 1.5, 1.15)
_ORDER_NAMES = {"SINGLE": "single", "DOUBLE": "double", "TRIPLE": "triple"}
_TOL = 1e-6  # Å


class Bonds(NamedTuple):
    """One direction of every bonded pair: ``i``, ``j`` [P] int64 (i ≤ j), ``shift`` [P, 3]
    int64 cell shift of j, ``types`` [P] str (names from :data:`BOND_TYPES`)."""

    i: np.ndarray
    j: np.ndarray
    shift: np.ndarray
    types: np.ndarray


def is_metal(symbol: str) -> bool:
    """Whether ``symbol`` is a metal (not in :data:`NONMETALS`)."""
    return symbol not in NONMETALS


# -- pair search --------------------------------------------------------------------------------
def _half_pairs(atoms: Atoms, r: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every pair within ``r`` Å once (i, j, shift S, distance), images included if periodic."""
    pos = atoms.positions
    if np.any(atoms.pbc):
        i, j, s = periodic_half_pairs(pos, atoms.cell.array, atoms.pbc, r)
        d = np.linalg.norm(pos[j] - pos[i] + s @ atoms.cell.array, axis=1)
        return i, j, s, d
    i, j = np.triu_indices(len(atoms), k=1)
    d = np.linalg.norm(pos[j] - pos[i], axis=1)
    keep = d <= r
    return i[keep], j[keep], np.zeros((int(keep.sum()), 3), np.int64), d[keep]


def _canonical(i: np.ndarray, j: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, ...]:
    """Orient every pair with i < j (or i = j and the first non-zero shift component > 0)."""
    first = np.zeros(len(i), np.int64)
    nz = s != 0
    rows = np.flatnonzero(nz.any(axis=1))
    first[rows] = s[rows, nz[rows].argmax(axis=1)]
    flip = (i > j) | ((i == j) & (first < 0))
    return np.where(flip, j, i), np.where(flip, i, j), np.where(flip[:, None], -s, s)


def _metal_pairs(atoms: Atoms, metal: np.ndarray, factor: float) -> tuple[np.ndarray, ...]:
    """Metal–metal pairs with d ≤ factor · d_min (d_min: shortest metal–metal distance)."""
    periodic = bool(np.any(atoms.pbc))
    none = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 3), np.int64))
    if metal.sum() == 0 or (metal.sum() == 1 and not periodic):
        return none
    r = 3.0
    while True:
        i, j, s, d = _half_pairs(atoms, r)
        mm = metal[i] & metal[j]
        if mm.any():
            break
        if r > 12.0:  # isolated metal atoms: no metallic bonds
            return none
        r *= 1.5
    r_nn = factor * float(d[mm].min())
    if r_nn > r:
        i, j, s, d = _half_pairs(atoms, r_nn + _TOL)
        mm = metal[i] & metal[j]
    keep = mm & (d <= r_nn + _TOL)
    return i[keep], j[keep], s[keep]


def _covalent_radii(numbers: np.ndarray) -> np.ndarray:
    from rdkit import Chem

    table = Chem.GetPeriodicTable()
    return np.array([table.GetRcovalent(int(z)) for z in numbers])


def _contacts(atoms: Atoms, want: Any) -> tuple[np.ndarray, ...]:
    """Pairs with ``want(i, j)`` (a mask function of index arrays) and d ≤ f·(r_cov,i + r_cov,j)."""
    rc = _covalent_radii(atoms.numbers)
    i, j, s, d = _half_pairs(atoms, COV_FACTOR * 2 * float(rc.max()) + _TOL)
    keep = want(i, j) & (d <= COV_FACTOR * (rc[i] + rc[j]) + _TOL)
    return i[keep], j[keep], s[keep]


# -- RDKit bond orders ----------------------------------------------------------------------------
def _xyz_mol(numbers: np.ndarray, positions: np.ndarray) -> Any:
    from rdkit import Chem
    from rdkit.Geometry import Point3D

    mol = Chem.RWMol()
    conf = Chem.Conformer(len(numbers))
    for k, (z, p) in enumerate(zip(numbers, positions, strict=True)):
        mol.AddAtom(Chem.Atom(int(z)))
        conf.SetAtomPosition(k, Point3D(*map(float, p)))
    mol.AddConformer(conf, assignId=True)
    return mol


def _bond_list(mol: Any) -> tuple[np.ndarray, list[str]]:
    pairs = np.array(
        [[b.GetBeginAtomIdx(), b.GetEndAtomIdx()] for b in mol.GetBonds()], dtype=np.int64
    ).reshape(-1, 2)
    return pairs, [str(b.GetBondType()) for b in mol.GetBonds()]


def _from_smiles(numbers: np.ndarray, positions: np.ndarray, smiles: str) -> Any:
    """(pairs, RDKit order names) of the geometry with the orders of ``smiles``, or None when no
    candidate connectivity graph of the geometry is isomorphic to the SMILES graph."""
    from rdkit import Chem

    template = Chem.MolFromSmiles(smiles)
    if template is None:
        raise ValueError(f"cannot parse the SMILES {smiles!r}; check it or pass smiles=None")
    template = Chem.AddHs(template)
    Chem.Kekulize(template, clearAromaticFlags=True)
    if sorted(a.GetAtomicNum() for a in template.GetAtoms()) != sorted(numbers.tolist()):
        raise ValueError(
            f"the SMILES {smiles!r} describes other atoms than the geometry "
            f"({len(numbers)} atoms, Z = {sorted(set(numbers.tolist()))}); pass the matching "
            "SMILES or smiles=None"
        )
    query = Chem.RWMol(template)
    for b in query.GetBonds():
        b.SetBondType(Chem.BondType.SINGLE)
    for a in query.GetAtoms():
        a.SetFormalCharge(0)
        a.SetNumRadicalElectrons(0)
        a.SetNoImplicit(True)
    query.UpdatePropertyCache(strict=False)
    n_bonds = template.GetNumBonds()
    i, j = np.triu_indices(len(numbers), k=1)
    rc = _covalent_radii(numbers)
    rho = np.linalg.norm(positions[j] - positions[i], axis=1) / (rc[i] + rc[j])
    # candidate graphs: the n_bonds shortest contacts (relative to r_cov,i + r_cov,j), then the
    # contacts within each covalent-radius factor
    candidates = [np.sort(np.argsort(rho, kind="stable")[:n_bonds])]
    candidates += [np.flatnonzero(rho <= f) for f in _COV_FACTORS]
    tried: set[bytes] = set()
    for sel in candidates:
        if len(sel) != n_bonds or sel.tobytes() in tried:
            continue
        tried.add(sel.tobytes())
        mol = _xyz_mol(numbers, positions)
        for a, b in zip(i[sel].tolist(), j[sel].tolist(), strict=True):
            mol.AddBond(a, b, Chem.BondType.SINGLE)
        mol.UpdatePropertyCache(strict=False)
        match = mol.GetSubstructMatch(query)
        if not match:
            continue
        pairs = np.array(
            [[match[b.GetBeginAtomIdx()], match[b.GetEndAtomIdx()]] for b in template.GetBonds()],
            dtype=np.int64,
        ).reshape(-1, 2)
        return pairs, [str(b.GetBondType()) for b in template.GetBonds()]
    return None


def _from_geometry(numbers: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """(pairs, RDKit order names) from the geometry alone (``DetermineBonds``, charge 0)."""
    from rdkit import Chem, RDLogger
    from rdkit.Chem import rdDetermineBonds

    problems = []
    RDLogger.DisableLog("rdApp.*")  # failed attempts are reported in the error below
    try:
        for factor in _COV_FACTORS:
            mol = _xyz_mol(numbers, positions)
            try:
                rdDetermineBonds.DetermineBonds(mol, charge=0, covFactor=factor)
                Chem.Kekulize(mol, clearAromaticFlags=True)
            except (ValueError, RuntimeError) as exc:
                problems.append(f"f={factor}: {exc}")
                continue
            return _bond_list(mol)
    finally:
        RDLogger.EnableLog("rdApp.*")
    raise ValueError(
        "RDKit found no bond orders for this geometry at charge 0 "
        f"({'; '.join(problems[:2])}); pass its SMILES (smiles=...) or use "
        "rule='electronegativity', which needs the connectivity only"
    )


def _molecular_bonds(
    numbers: np.ndarray, positions: np.ndarray, smiles: str | None, orders: bool
) -> tuple[np.ndarray, list[str]]:
    """Bonded pairs (local indices) of a molecule and their RDKit orders (all SINGLE from the
    connectivity alone when ``orders`` is False and no SMILES matched)."""
    if smiles:
        found = _from_smiles(numbers, positions, smiles)
        if found is not None:
            return found
    if orders:
        return _from_geometry(numbers, positions)
    from rdkit.Chem import rdDetermineBonds

    mol = _xyz_mol(numbers, positions)
    rdDetermineBonds.DetermineConnectivity(mol, covFactor=COV_FACTOR)
    return _bond_list(mol)


# -- electronegativity ------------------------------------------------------------------------------
def _pauling(symbols: Sequence[str]) -> dict[str, float]:
    from pymatgen.core.periodic_table import Element

    table = {}
    for sym in sorted(set(symbols)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            x = float(Element(sym).X)
        if not np.isfinite(x):
            raise ValueError(
                f"element {sym} has no Pauling electronegativity, so rule 'electronegativity' "
                "cannot class its bonds; use rule 'rdkit' or drop that element"
            )
        table[sym] = x
    return table


def _en_class(delta: np.ndarray) -> np.ndarray:
    return np.where(delta < EN_POLAR, "nonpolar", np.where(delta < EN_IONIC, "polar", "ionic"))


# -- public API -----------------------------------------------------------------------------------
def _check_rule(rule: str, metal_factor: float, nonbonded_cutoff: float | None) -> None:
    if rule not in BOND_RULES:
        raise ValueError(f"unknown bond rule {rule!r}; choose one of {list(BOND_RULES)}")
    if not (np.isfinite(metal_factor) and metal_factor >= 1.0):
        raise ValueError(
            f"metal_factor must be ≥ 1 (r_nn = metal_factor · d_min; 1.2 keeps the fcc nearest-"
            f"neighbour shell), got {metal_factor!r}"
        )
    if nonbonded_cutoff is not None and not nonbonded_cutoff > 0:
        raise ValueError(
            f"nonbonded_cutoff must be a positive distance (Å), got {nonbonded_cutoff}"
        )


def perceive_bonds(
    atoms: Atoms,
    rule: str = "rdkit",
    metal_factor: float = 1.2,
    nonbonded_cutoff: float | None = None,
    smiles: str | None = None,
) -> Bonds:
    """Typed bonds of the stable structure ``atoms`` (positions Å), one direction per pair.

    Args:
        atoms: molecule (no ``pbc``), cluster or periodic cell at its stable geometry.
        rule: ``"rdkit"`` (bond orders single/double/triple) or ``"electronegativity"``
            (nonpolar/polar/ionic); metal–metal pairs are ``metallic`` in both (module docstring).
        metal_factor: r_nn = metal_factor · d_min for metallic bonds (≥ 1; Default 1.2).
        nonbonded_cutoff: if given (Å), every other pair within it gets type ``nonbonded``.
        smiles: the molecule's SMILES (bond orders are taken from it; non-periodic, metal-free).

    Returns:
        :class:`Bonds` sorted by (i, j, shift).

    Raises:
        ValueError: unknown rule, an element without electronegativity, a SMILES that does not
        fit, bond orders RDKit cannot assign, or (rule ``"rdkit"``) periodic non-metals and
        metal–non-metal contacts, which have no bond order.
    """
    _check_rule(rule, metal_factor, nonbonded_cutoff)
    symbols = atoms.get_chemical_symbols()
    numbers = atoms.numbers.astype(np.int64)
    metal = np.array([is_metal(s) for s in symbols], dtype=bool)
    periodic = bool(np.any(atoms.pbc))
    formula = atoms.get_chemical_formula()
    chi = _pauling(symbols) if rule == "electronegativity" else {}
    if smiles and (periodic or metal.any()):
        raise ValueError(
            f"a SMILES applies to metal-free molecules, not to {formula}"
            + (" (periodic)" if periodic else "")
            + "; pass smiles=None"
        )
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    i, j, s = _metal_pairs(atoms, metal, metal_factor)
    parts.append((i, j, s, np.full(len(i), "metallic")))

    nm = np.flatnonzero(~metal)
    if len(nm) and periodic:
        if rule == "rdkit":
            raise ValueError(
                f"rule 'rdkit' has no bond orders for non-metal atoms in the periodic cell of "
                f"{formula}; use rule 'electronegativity'"
            )
        i, j, s = _contacts(atoms, lambda a, b: ~metal[a] & ~metal[b])
        parts.append((i, j, s, np.full(len(i), "")))
    elif len(nm) >= 2:
        pairs, orders = _molecular_bonds(
            numbers[nm], atoms.positions[nm], smiles, orders=rule == "rdkit"
        )
        i, j = nm[pairs[:, 0]], nm[pairs[:, 1]]
        if rule == "rdkit":
            bad = sorted(set(orders) - set(_ORDER_NAMES))
            if bad:
                raise ValueError(
                    f"RDKit bond orders {bad} in {formula} are not single/double/triple"
                )
            names = np.array([_ORDER_NAMES[o] for o in orders], dtype=str).reshape(-1)
        else:
            names = np.full(len(i), "")
        parts.append((i, j, np.zeros((len(i), 3), np.int64), names))
    if len(nm) and metal.any():
        i, j, s = _contacts(atoms, lambda a, b: metal[a] != metal[b])
        if len(i) and rule == "rdkit":
            a, b = (i[0], j[0]) if metal[i[0]] else (j[0], i[0])
            raise ValueError(
                f"rule 'rdkit' types covalent bonds between non-metals and metallic bonds between "
                f"metals; {formula} has metal–non-metal contacts ({symbols[a]}{a}–{symbols[b]}{b}) "
                "without a bond order: use rule 'electronegativity'"
            )
        parts.append((i, j, s, np.full(len(i), "")))

    i = np.concatenate([p[0] for p in parts]).astype(np.int64)
    j = np.concatenate([p[1] for p in parts]).astype(np.int64)
    s = np.concatenate([p[2] for p in parts]).astype(np.int64).reshape(-1, 3)
    types = np.concatenate([p[3] for p in parts]).astype("<U9")
    if rule == "electronegativity":
        x = np.array([chi[sym] for sym in symbols])
        todo = types == ""
        types[todo] = _en_class(np.abs(x[i[todo]] - x[j[todo]]))
    i, j, s = _canonical(i, j, s)
    if nonbonded_cutoff is not None:
        ni, nj, ns, _ = _half_pairs(atoms, float(nonbonded_cutoff))
        ni, nj, ns = _canonical(ni, nj, ns)
        bonded = {(a, b, *c) for a, b, c in zip(i.tolist(), j.tolist(), s.tolist(), strict=True)}
        new = np.array(
            [
                (a, b, *c) not in bonded
                for a, b, c in zip(ni.tolist(), nj.tolist(), ns.tolist(), strict=True)
            ],
            dtype=bool,
        )
        i, j = np.concatenate([i, ni[new]]), np.concatenate([j, nj[new]])
        s = np.concatenate([s, ns[new]])
        types = np.concatenate([types, np.full(int(new.sum()), "nonbonded")])
    order = np.lexsort((s[:, 2], s[:, 1], s[:, 0], j, i))
    return Bonds(i[order], j[order], s[order], types[order])


def replicate_bonds(bonds: Bonds, n_copies: int) -> list[Bonds]:
    """The bonds of the stable (s = 1) structure for each of ``n_copies`` scaled copies: the
    topology and types are fixed under scaling (docs/vimpnn.md §1), only distances change."""
    return [bonds] * int(n_copies)


def _vocabulary(present: set[str], vocabulary: Sequence[str] | None) -> list[str]:
    if vocabulary is None:
        return [t for t in BOND_TYPES if t in present]
    vocab = [str(v) for v in vocabulary]
    unknown = sorted(set(vocab) - set(BOND_TYPES))
    if unknown or len(set(vocab)) != len(vocab):
        raise ValueError(
            f"bond vocabulary {vocab} has "
            + (f"unknown types {unknown}" if unknown else "repeated types")
            + f"; use distinct names from {list(BOND_TYPES)}"
        )
    missing = sorted(present - set(vocab))
    if missing:
        raise ValueError(
            f"bond types {missing} are not in the given vocabulary {vocab}; add them (the model's "
            "channels follow the vocabulary) or type the bonds with the rule that made it"
        )
    return vocab


def bond_graph(
    atoms_list: Sequence[Atoms],
    bonds_list: Sequence[Bonds],
    vocabulary: Sequence[str] | None = None,
) -> tuple[StoredEdges, list[str]]:
    """Stored mirrored bond graph of several systems and its vocabulary.

    Per system, the first half of the edges is (receiver i, sender j, shift S) for every bond and
    the second half the mirror (j, i, −S); attribute ``bond_type`` (int8) indexes the
    vocabulary: ``vocabulary`` if given (a type outside it is an error), else the types present
    in canonical order (:data:`BOND_TYPES`).
    """
    if len(atoms_list) != len(bonds_list):
        raise ValueError(f"{len(atoms_list)} structures but {len(bonds_list)} bond lists")
    present = {str(t) for b in bonds_list for t in np.asarray(b.types).tolist()}
    vocab = _vocabulary(present, vocabulary)
    code = {name: k for k, name in enumerate(vocab)}
    idx, shifts, types, counts = [], [], [], []
    for k, (atoms, b) in enumerate(zip(atoms_list, bonds_list, strict=True)):
        i, j = np.asarray(b.i, np.int64), np.asarray(b.j, np.int64)
        if len(i) and (min(i.min(), j.min()) < 0 or max(i.max(), j.max()) >= len(atoms)):
            raise ValueError(
                f"bond list {k} names atoms outside 0…{len(atoms) - 1} of its structure; "
                "perceive the bonds on that structure"
            )
        s = np.asarray(b.shift, np.int64).reshape(-1, 3)
        t = np.array([code[str(x)] for x in np.asarray(b.types).tolist()], dtype=np.int8)
        idx.append(np.stack([np.concatenate([i, j]), np.concatenate([j, i])]))
        shifts.append(np.concatenate([s, -s]))
        types.append(np.concatenate([t, t]))
        counts.append(2 * len(i))
    edges = StoredEdges(
        GraphSpec(kind="bonds"),
        np.concatenate([[0], np.cumsum(counts, dtype=np.int64)]).astype(np.int64),
        np.concatenate(idx, axis=1) if idx else np.zeros((2, 0), np.int64),
        np.concatenate(shifts) if shifts else np.zeros((0, 3), np.int64),
        {"bond_type": np.concatenate(types) if types else np.zeros(0, np.int8)},
    )
    return edges, vocab


def _per_system(value: Any, n: int, name: str) -> list[Any]:
    if value is None or isinstance(value, str):
        return [value] * n
    values = list(value)
    if len(values) != n:
        raise ValueError(f"{name} has {len(values)} entries for {n} structures")
    return values


def pack_with_bonds(
    atoms_list: Sequence[Atoms],
    rule: str = "rdkit",
    vocabulary: Sequence[str] | None = None,
    system_props: Mapping[str, Sequence] | None = None,
    atom_props: Mapping[str, Sequence] | None = None,
    **rule_kwargs: Any,
) -> tuple[PackedSystems, list[str]]:
    """Pack stable structures with their perceived bond graph (``PackedSystems.edges``).

    ``rule_kwargs`` go to :func:`perceive_bonds` (``metal_factor``, ``nonbonded_cutoff``,
    ``smiles``: one SMILES per structure, default ``atoms.info["smiles"]`` when present).
    Returns ``(pack, vocabulary)``.
    """
    smiles = _per_system(rule_kwargs.pop("smiles", None), len(atoms_list), "smiles")
    bonds = [
        perceive_bonds(a, rule, smiles=smi or a.info.get("smiles"), **rule_kwargs)
        for a, smi in zip(atoms_list, smiles, strict=True)
    ]
    edges, vocab = bond_graph(atoms_list, bonds, vocabulary)
    data = PackedSystems.from_atoms(atoms_list, system_props, atom_props)
    data.edges = edges
    return data, vocab


def attach_bonds(
    data: PackedSystems,
    rule: str = "rdkit",
    vocabulary: Sequence[str] | None = None,
    **rule_kwargs: Any,
) -> list[str]:
    """Perceive the bonds of every system of ``data`` (taken as stable structures; SMILES from
    the ``smiles`` column when present) and store them in ``data.edges``; returns the
    vocabulary (to record as ``metadata["bond_types"]``)."""
    atoms_list = [data.get_atoms(k) for k in range(len(data))]
    if "smiles" not in rule_kwargs and "smiles" in data.system_props:
        rule_kwargs["smiles"] = [str(x) for x in data.system_props["smiles"]]
    smiles = _per_system(rule_kwargs.pop("smiles", None), len(data), "smiles")
    bonds = [
        perceive_bonds(a, rule, smiles=smi, **rule_kwargs)
        for a, smi in zip(atoms_list, smiles, strict=True)
    ]
    data.edges, vocab = bond_graph(atoms_list, bonds, vocabulary)
    return vocab
