"""Validity and identity of a molecule from its 3-D geometry alone (docs/gschnet.md §6, §11).

One pipeline serves the QM9 preparation and the evaluation of generated molecules, so that
generated and reference molecules are compared on equal terms (Gebauer et al. 2019, Sec. 4 and
supplementary material; the checker's rate on QM9 is reported as the ceiling):

1. **Connectivity**: RDKit ``rdDetermineBonds.DetermineConnectivity`` (connect-the-dots: atoms i,
   j bonded when d_ij ≤ 1.3·(r_cov,i + r_cov,j)). Like Open Babel's ``ConnectTheDots``, an atom
   with more neighbours than its valence loses its longest contacts (largest
   d_ij / (r_cov,i + r_cov,j)) until no atom is over-coordinated: strained QM9 cages have 1,3
   contacts inside the 1.3 factor (about 5 % of QM9 would fail without this step).
2. **Connectedness**: one fragment (reason ``"disconnected"``; ``"overcoordinated"`` when the
   pruning of step 1 split the molecule, e.g. a 5-valent carbon loses a hydrogen).
3. **Bond orders**: ``DetermineBondOrders`` at total charge 0 (xyz2mol), then kekulised.
4. **Valence**: for every atom, Σ bond orders = valence V(Z) with V = H 1, C 4, N 3, O 2, F 1,
   and no formal charge or radical (reason ``"valence"``). Zwitterions and nitro groups of QM9
   fail this charge-free rule by design.
5. **Identity**: canonical isomeric SMILES of the perceived structure (stereocentres and double-
   bond configurations assigned from the 3-D coordinates, hydrogens implicit) and of its mirror
   image (x → −x). Two molecules are the same when one's SMILES equals the other's SMILES or
   mirror SMILES; since mirroring is an involution, :func:`identity_key` = min(SMILES, mirror
   SMILES) is one hashable key per enantiomer pair, so matching is a dictionary lookup (O(N)),
   not pairwise. (The paper's FP2 fingerprint Tanimoto = 1 pre-filter is implied: equal
   canonical SMILES mean equal graphs, hence equal path fingerprints.)

Ring statistics use RDKit's symmetrised SSSR of the canonical SMILES (:func:`ring_counts`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "INVALID_REASONS",
    "RING_SIZES",
    "VALENCE",
    "MoleculeCheck",
    "check_molecule",
    "identity_key",
    "ring_counts",
]

#: Valence of each allowed element (atomic number → Σ bond orders).
VALENCE: dict[int, int] = {1: 1, 6: 4, 7: 3, 8: 2, 9: 1}
#: Reasons a molecule is invalid, in the order they are tested.
INVALID_REASONS = (
    "empty",
    "element",
    "disconnected",
    "overcoordinated",
    "bond_orders",
    "valence",
    "sanitize",
)
#: Ring sizes counted by :func:`ring_counts` (R3 … R6).
RING_SIZES = (3, 4, 5, 6)
#: Covalent-radius factor of the connectivity step (RDKit's default).
COV_FACTOR = 1.3
#: Bound on xyz2mol's bond-order search (pathological generated structures give up).
_MAX_BOND_ORDER_ITERATIONS = 1_000_000


@dataclass(frozen=True)
class MoleculeCheck:
    """Outcome of :func:`check_molecule` for one molecule.

    ``bonds`` [P, 2] int64 (i < j) are the perceived bonded pairs (after pruning; empty when the
    check stopped before), ``orders`` [P] int64 their Kekulé bond orders 1/2/3 (0 where bond
    orders were not assigned). ``smiles`` / ``mirror_smiles`` are "" for invalid molecules;
    ``mol`` is the sanitised RDKit molecule with explicit hydrogens and the input conformer
    (None when invalid).
    """

    valid: bool
    reason: str
    bonds: np.ndarray
    orders: np.ndarray
    smiles: str = ""
    mirror_smiles: str = ""
    mol: Any = None

    @property
    def key(self) -> str:
        """Identity key shared by the molecule and its mirror image ("" when invalid)."""
        return identity_key(self.smiles, self.mirror_smiles)


def identity_key(smiles: str, mirror_smiles: str) -> str:
    """One key for a molecule and its mirror image: min(SMILES, mirror SMILES)."""
    return min(smiles, mirror_smiles) if smiles and mirror_smiles else smiles or mirror_smiles


def _covalent_radii(numbers: np.ndarray) -> np.ndarray:
    from rdkit import Chem

    table = Chem.GetPeriodicTable()
    return np.array([table.GetRcovalent(int(z)) for z in numbers])


def _geometry_mol(numbers: np.ndarray, positions: np.ndarray) -> Any:
    """RDKit molecule of bare atoms (no bonds, no implicit H) with one conformer (Å)."""
    from rdkit import Chem

    mol = Chem.RWMol()
    for z in numbers.tolist():
        atom = Chem.Atom(int(z))
        atom.SetNoImplicit(True)
        mol.AddAtom(atom)
    conf = Chem.Conformer(len(numbers))
    conf.SetPositions(np.ascontiguousarray(positions, dtype=np.float64))
    mol.AddConformer(conf, assignId=True)
    return mol


def _pairs(mol: Any) -> np.ndarray:
    """Bonded pairs [P, 2] (i < j) of an RDKit molecule."""
    pairs = np.array(
        [sorted((b.GetBeginAtomIdx(), b.GetEndAtomIdx())) for b in mol.GetBonds()], np.int64
    )
    return pairs.reshape(-1, 2)


def _prune(mol: Any, numbers: np.ndarray, positions: np.ndarray, valence: np.ndarray) -> int:
    """Remove the longest contacts (d / Σr_cov) of over-coordinated atoms; returns how many."""
    pairs = _pairs(mol)
    if len(pairs) == 0:
        return 0
    rc = _covalent_radii(numbers)
    i, j = pairs[:, 0], pairs[:, 1]
    rho = np.linalg.norm(positions[j] - positions[i], axis=1) / (rc[i] + rc[j])
    alive = np.ones(len(pairs), bool)
    removed = 0
    while True:
        degree = np.bincount(pairs[alive].ravel(), minlength=len(numbers))
        over = degree > valence
        if not over.any():
            return removed
        candidates = alive & (over[i] | over[j])
        k = int(np.flatnonzero(candidates)[np.argmax(rho[candidates])])
        alive[k] = False
        mol.RemoveBond(int(i[k]), int(j[k]))
        removed += 1


def _stereo_smiles(mol: Any) -> str:
    """Canonical isomeric SMILES (implicit H) with stereo assigned from the conformer."""
    from rdkit import Chem

    Chem.AssignStereochemistryFrom3D(mol, replaceExistingTags=True)
    return Chem.MolToSmiles(Chem.RemoveHs(mol))


def _mirror_smiles(mol: Any) -> str:
    """:func:`_stereo_smiles` of the mirror image (x → −x) of ``mol``."""
    from rdkit import Chem

    mirror = Chem.Mol(mol)
    conf = mirror.GetConformer()
    pos = conf.GetPositions()
    pos[:, 0] *= -1.0
    conf.SetPositions(pos)
    return _stereo_smiles(mirror)


def check_molecule(numbers: Sequence[int] | np.ndarray, positions: np.ndarray) -> MoleculeCheck:
    """Perceive bonds from a 3-D geometry and test validity (module docstring, steps 1–5).

    Args:
        numbers: atomic numbers [n].
        positions: Cartesian coordinates [n, 3] in Å.

    Returns:
        :class:`MoleculeCheck`: validity, the reason when invalid (one of
        :data:`INVALID_REASONS`), perceived bonds and orders, canonical and mirror SMILES.
    """
    from rdkit import Chem, RDLogger
    from rdkit.Chem import rdDetermineBonds

    numbers = np.asarray(numbers, dtype=np.int64).reshape(-1)
    positions = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    if len(numbers) != len(positions):
        raise ValueError(
            f"{len(numbers)} atomic numbers but {len(positions)} positions; pass one position "
            "(x, y, z in Å) per atom"
        )
    none = np.zeros((0, 2), np.int64)

    def invalid(reason: str, pairs: np.ndarray = none, orders: np.ndarray | None = None):
        if orders is None:
            orders = np.zeros(len(pairs), np.int64)
        return MoleculeCheck(False, reason, pairs, orders)

    if len(numbers) == 0:
        return invalid("empty")
    if not np.isin(numbers, list(VALENCE)).all():
        return invalid("element")
    valence = np.array([VALENCE[int(z)] for z in numbers], np.int64)
    RDLogger.DisableLog("rdApp.*")  # failures are reported as reasons, not log lines
    try:
        mol = _geometry_mol(numbers, positions)
        rdDetermineBonds.DetermineConnectivity(mol, covFactor=COV_FACTOR)
        connected_before = len(Chem.GetMolFrags(mol)) == 1
        n_pruned = _prune(mol, numbers, positions, valence)
        pairs = _pairs(mol)
        if len(Chem.GetMolFrags(mol)) != 1:
            if n_pruned and connected_before:
                return invalid("overcoordinated", pairs)
            return invalid("disconnected", pairs)
        try:
            rdDetermineBonds.DetermineBondOrders(
                mol, charge=0, maxIterations=_MAX_BOND_ORDER_ITERATIONS
            )
        except (ValueError, RuntimeError):
            return invalid("bond_orders", pairs)
        kekule = Chem.Mol(mol)
        try:
            Chem.Kekulize(kekule, clearAromaticFlags=True)
        except (ValueError, RuntimeError):
            return invalid("sanitize", pairs)
        pairs = _pairs(kekule)
        orders = np.array([round(b.GetBondTypeAsDouble()) for b in kekule.GetBonds()], np.int64)
        total = np.zeros(len(numbers), np.int64)
        np.add.at(total, pairs.ravel(), np.repeat(orders, 2))
        charged = any(
            a.GetFormalCharge() != 0 or a.GetNumRadicalElectrons() != 0 for a in mol.GetAtoms()
        )
        if charged or np.any(total != valence):
            return invalid("valence", pairs, orders)
        try:
            Chem.SanitizeMol(mol)
            smiles, mirror = _stereo_smiles(Chem.Mol(mol)), _mirror_smiles(mol)
        except (ValueError, RuntimeError):
            return invalid("sanitize", pairs, orders)
    finally:
        RDLogger.EnableLog("rdApp.*")
    return MoleculeCheck(True, "", pairs, orders, smiles, mirror, mol)


def ring_counts(smiles: str) -> np.ndarray:
    """Rings of size 3, 4, 5, 6 (RDKit symmetrised SSSR) of a SMILES, as int64 [4]."""
    from rdkit import Chem

    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        raise ValueError(f"cannot parse the SMILES {smiles!r} to count its rings")
    sizes = [len(r) for r in Chem.GetSymmSSSR(mol)]
    return np.array([sizes.count(s) for s in RING_SIZES], np.int64)
