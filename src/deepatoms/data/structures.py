"""Starting structures for data generation: molecules by name or SMILES, bulk metals and alloys.

Molecule specs (:func:`molecule_from_spec`), tried in this order:

1. ``smiles:<SMILES>``: always a SMILES string;
2. a name of ASE's molecule collection (``ase.build.molecule``: the g2 set such as
   ``CH3CH2OH``, ``H2O``, ``C6H6``, plus ``biphenyl``, ``C60``, …), matched exactly;
3. a friendly alias, matched ignoring case, spaces, ``_`` and ``-`` (``ethanol``, ``water``,
   ``salicylic acid``, …; see :data:`MOLECULE_ALIASES`);
4. otherwise the text is parsed as SMILES. ``CO`` is therefore carbon monoxide (g2); write
   ``smiles:CO`` for methanol.

SMILES are embedded in 3-D with RDKit: hydrogens added, ETKDGv3 with the seed, then MMFF94
optimisation (UFF where MMFF lacks parameters).

Bulk specs (:func:`bulk_from_spec`) are formulas: element symbols each followed by an optional
amount, ``Cu`` (pure), ``CuNi`` (50:50), ``Cu3Au`` (75:25), ``Cu0.7Ni0.3`` or ``Cu70Ni30``.
Amounts are normalised to fractions; alloys are random substitutional solid solutions.
"""

from __future__ import annotations

import difflib
import math
import re
from typing import Any

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.build.molecule import extra as _ASE_EXTRA
from ase.collections import g2
from ase.data import atomic_numbers, chemical_symbols, reference_states

__all__ = [
    "BULK_STRUCTURES",
    "MOLECULE_ALIASES",
    "bulk_from_spec",
    "molecule_from_spec",
    "parse_composition",
]

#: Friendly molecule names → an ASE collection name or ``smiles:<SMILES>``.
MOLECULE_ALIASES: dict[str, str] = {
    # MD17 / rMD17 molecules
    "ethanol": "CH3CH2OH",
    "benzene": "C6H6",
    "toluene": "smiles:Cc1ccccc1",
    "malonaldehyde": "smiles:O=CC=CO",  # enol form, as in MD17
    "uracil": "smiles:O=C1C=CNC(=O)N1",
    "naphthalene": "smiles:c1ccc2ccccc2c1",
    "aspirin": "smiles:CC(=O)Oc1ccccc1C(=O)O",
    "salicylic acid": "smiles:O=C(O)c1ccccc1O",
    "paracetamol": "smiles:CC(=O)Nc1ccc(O)cc1",
    "azobenzene": "smiles:c1ccc(cc1)/N=N/c1ccccc1",
    # small molecules of the g2 set
    "water": "H2O",
    "methane": "CH4",
    "ethane": "C2H6",
    "ethylene": "C2H4",
    "acetylene": "C2H2",
    "propane": "C3H8",
    "ammonia": "NH3",
    "methanol": "CH3OH",
    "formaldehyde": "H2CO",
    "acetaldehyde": "CH3CHO",
    "acetone": "CH3COCH3",
    "acetic acid": "CH3COOH",
    "formic acid": "HCOOH",
    "methylamine": "H3CNH2",
    "dimethyl ether": "CH3OCH3",
    "carbon dioxide": "CO2",
    "carbon monoxide": "CO",
    "hydrogen cyanide": "HCN",
    "hydrogen peroxide": "H2O2",
    "pyridine": "C5H5N",
    "furan": "C4H4O",
    "pyrrole": "C4H4NH",
    "phenol": "smiles:Oc1ccccc1",
}

#: Supported bulk prototypes.
BULK_STRUCTURES = ("fcc", "bcc", "hcp")

_ASE_NAMES = frozenset(g2.names) | frozenset(_ASE_EXTRA)
_IDEAL_COVERA = math.sqrt(8.0 / 3.0)
# atomic volume (Å^3) of reference structures from their lattice constant a and c/a
_ATOMIC_VOLUME = {
    "fcc": lambda a, covera: a**3 / 4.0,
    "bcc": lambda a, covera: a**3 / 2.0,
    "sc": lambda a, covera: a**3,
    "hcp": lambda a, covera: math.sqrt(3.0) / 4.0 * a**3 * covera,
}
_FORMULA_TOKEN = re.compile(r"([A-Z][a-z]?)(\d+(?:\.\d*)?|\.\d+)?")


def _norm(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", name).lower()


_ALIAS_BY_NORM = {_norm(k): v for k, v in MOLECULE_ALIASES.items()}


# -- molecules ------------------------------------------------------------------------------------
def _parse_smiles(smiles: str) -> Any:
    from rdkit import Chem, rdBase

    with rdBase.BlockLogs():
        return Chem.MolFromSmiles(smiles) if smiles.strip() else None


def _embed(mol: Any, smiles: str, seed: int) -> Atoms:
    """3-D coordinates (Å) for an RDKit molecule: AddHs, ETKDGv3(seed), MMFF94 (or UFF)."""
    from rdkit import Chem, rdBase
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(mol)
    params = AllChem.ETKDGv3()
    params.randomSeed = int(seed) % 2**31
    with rdBase.BlockLogs():
        if AllChem.EmbedMolecule(mol, params) < 0:
            params.useRandomCoords = True
            if AllChem.EmbedMolecule(mol, params) < 0:
                raise ValueError(
                    f"RDKit could not embed SMILES {smiles!r} in 3-D; check the structure "
                    "(stereochemistry, valences) or try another --seed"
                )
        if AllChem.MMFFHasAllMoleculeParams(mol):
            AllChem.MMFFOptimizeMolecule(mol, maxIters=2000)
            force_field = "MMFF94"
        else:
            AllChem.UFFOptimizeMolecule(mol, maxIters=2000)
            force_field = "UFF"
    atoms = Atoms(
        numbers=[a.GetAtomicNum() for a in mol.GetAtoms()],
        positions=mol.GetConformer().GetPositions(),
    )
    atoms.info.update(
        smiles=Chem.MolToSmiles(Chem.RemoveHs(mol)),
        charge=Chem.GetFormalCharge(mol),
        embedding=f"RDKit ETKDGv3 (seed {params.randomSeed}) + {force_field}",
    )
    return atoms


def molecule_from_spec(spec: str, seed: int = 0) -> Atoms:
    """A molecule (positions in Å, no cell, no periodicity) from a name, alias or SMILES.

    See the module docstring for the spec syntax and the order of matching. ``seed`` drives the
    RDKit conformer embedding of SMILES (names give ASE's fixed geometries). ``atoms.info``
    records ``kind`` ("molecule"), ``spec``, ``origin`` and, for SMILES, the canonical
    ``smiles``, formal ``charge`` (e) and the embedding method.
    """
    text = spec.strip()
    if text.lower().startswith("smiles:"):
        target = text
    elif text in _ASE_NAMES:
        target = text
    else:
        target = _ALIAS_BY_NORM.get(_norm(text), text)

    if target in _ASE_NAMES:
        from ase.build import molecule

        atoms = molecule(target)
        atoms.info.clear()
        atoms.info.update(origin=f"ase.build.molecule({target!r})")
    else:
        explicit = target.lower().startswith("smiles:")
        smiles = target[len("smiles:") :].strip() if explicit else target
        mol = _parse_smiles(smiles)
        if mol is None:
            if explicit:
                raise ValueError(f"invalid SMILES {smiles!r} in molecule spec {spec!r}")
            names = sorted(_ASE_NAMES) + sorted(MOLECULE_ALIASES)
            close = difflib.get_close_matches(text, names, n=3, cutoff=0.6)
            close += difflib.get_close_matches(_norm(text), sorted(_ALIAS_BY_NORM), n=3)
            hint = f" Did you mean {', '.join(dict.fromkeys(close))}?" if close else ""
            raise ValueError(
                f"unknown molecule {spec!r}: not a name of ASE's molecule collection, not an "
                f"alias such as 'ethanol' or 'aspirin', and not a valid SMILES.{hint} "
                "Write SMILES as 'smiles:CCO'."
            )
        atoms = _embed(mol, smiles, seed)
        atoms.info["origin"] = "SMILES"
    atoms.info.update(kind="molecule", spec=spec)
    return atoms


# -- bulk -----------------------------------------------------------------------------------------
def parse_composition(spec: str) -> dict[str, float]:
    """Element fractions of a bulk formula ("Cu", "CuNi", "Cu3Au", "Cu0.7Ni0.3"), summing to 1."""
    text = spec.replace(" ", "")
    amounts: dict[str, float] = {}
    pos = 0
    while pos < len(text):
        m = _FORMULA_TOKEN.match(text, pos)
        if m is None:
            raise ValueError(
                f"cannot read bulk spec {spec!r} at {text[pos:]!r}; write element symbols "
                "(case-sensitive) with optional amounts, e.g. Cu, CuNi, Cu3Au or Cu0.7Ni0.3"
            )
        symbol, amount = m.group(1), m.group(2)
        if symbol not in atomic_numbers:
            close = difflib.get_close_matches(symbol, chemical_symbols[1:], n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ValueError(f"unknown element {symbol!r} in bulk spec {spec!r}{hint}")
        if symbol in amounts:
            raise ValueError(f"element {symbol} appears twice in bulk spec {spec!r}")
        value = float(amount) if amount else 1.0
        if value <= 0:
            raise ValueError(f"amount of {symbol} in bulk spec {spec!r} must be positive")
        amounts[symbol] = value
        pos = m.end()
    if not amounts:
        raise ValueError("empty bulk spec; give a formula such as Cu or Cu3Au")
    total = sum(amounts.values())
    return {el: v / total for el, v in amounts.items()}


def _element_lattice(symbol: str, structure: str) -> tuple[float, float]:
    """Default (a, c/a) of ``symbol`` in ``structure``, at the atomic volume of its ASE
    reference state (so an fcc metal put on a bcc lattice keeps its volume per atom)."""
    ref = reference_states[atomic_numbers[symbol]] or {}
    sym = ref.get("symmetry")
    if sym not in _ATOMIC_VOLUME or "a" not in ref:
        raise ValueError(
            f"no default lattice constant for {symbol} in {structure} (its ASE reference state "
            f"is {sym or 'unknown'}); give the lattice constant a in Å (--lattice-constant)"
        )
    covera = ref.get("c/a", _IDEAL_COVERA) if sym == "hcp" else _IDEAL_COVERA
    if sym == structure:
        return ref["a"], covera
    volume = _ATOMIC_VOLUME[sym](ref["a"], covera)
    if structure == "hcp":
        return (4.0 * volume / (math.sqrt(3.0) * covera)) ** (1.0 / 3.0), covera
    per_cell = {"fcc": 4.0, "bcc": 2.0}[structure]
    return (per_cell * volume) ** (1.0 / 3.0), covera


def _counts(fractions: dict[str, float], n: int) -> dict[str, int]:
    """Integer atom counts summing to ``n`` (largest remainder)."""
    raw = {el: x * n for el, x in fractions.items()}
    counts = {el: math.floor(v) for el, v in raw.items()}
    short = n - sum(counts.values())
    for el in sorted(raw, key=lambda e: raw[e] - counts[e], reverse=True)[:short]:
        counts[el] += 1
    return counts


def bulk_from_spec(
    spec: str,
    structure: str = "fcc",
    a: float | None = None,
    size: int = 32,
    seed: int = 0,
) -> Atoms:
    """A periodic supercell (Å) of a metal or random alloy on an fcc, bcc or hcp lattice.

    Args:
        spec: formula such as ``Cu``, ``CuNi``, ``Cu3Au``, ``Cu0.7Ni0.3`` (module docstring).
        structure: ``fcc``, ``bcc`` or ``hcp``.
        a: lattice constant in Å; default from ASE's reference states at equal volume per atom,
            averaged over the elements by atomic fraction (Vegard's law). hcp uses the element's
            c/a where its reference state is hcp, else the ideal sqrt(8/3).
        size: the wanted number of atoms; the conventional cubic cell (orthorhombic for hcp)
            is repeated along each axis to a near-cubic supercell of about this many atoms.
        seed: seed of the random placement of alloy elements.

    ``atoms.info`` records ``kind`` ("bulk"), ``spec``, ``structure``, ``a``, ``c/a`` (hcp),
    ``repeat``, the requested ``composition`` and the realised ``counts``.
    """
    if structure not in BULK_STRUCTURES:
        raise ValueError(f"unknown structure {structure!r}; choose one of {list(BULK_STRUCTURES)}")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size must be a positive number of atoms, got {size!r}")
    fractions = parse_composition(spec)
    lattices = {el: _element_lattice(el, structure) for el in fractions} if a is None else {}
    covera = sum(x * lattices[el][1] for el, x in fractions.items()) if lattices else None
    if a is None:
        a = sum(x * lattices[el][0] for el, x in fractions.items())
    elif not a > 0:
        raise ValueError(f"lattice constant a must be positive (Å), got {a!r}")
    first = next(iter(fractions))
    if structure == "hcp":
        covera = covera or _IDEAL_COVERA
        cell = bulk(first, "hcp", a=a, c=a * covera, orthorhombic=True)
    else:
        cell = bulk(first, structure, a=a, cubic=True)
    lengths = cell.cell.lengths()
    edge = (size * cell.get_volume() / len(cell)) ** (1.0 / 3.0)
    repeat = tuple(max(1, round(edge / length)) for length in lengths)
    atoms = cell.repeat(repeat)
    counts = _counts(fractions, len(atoms))
    empty = [el for el, c in counts.items() if c == 0]
    if empty:
        raise ValueError(
            f"a cell of {len(atoms)} atoms is too small to hold {', '.join(empty)} of bulk spec "
            f"{spec!r}; ask for more atoms (size)"
        )
    symbols = np.repeat(list(counts), list(counts.values()))
    atoms.set_chemical_symbols(np.random.default_rng(seed).permutation(symbols).tolist())
    atoms.info.clear()
    atoms.info.update(
        kind="bulk",
        spec=spec,
        structure=structure,
        a=float(a),
        repeat=list(repeat),
        composition=fractions,
        counts=counts,
        seed=seed,
    )
    if structure == "hcp":
        atoms.info["c/a"] = float(covera)
    return atoms
