"""Reference treatments of single molecules: relaxation (GFN2-xTB or MMFF94) and GFN2-xTB
frontier orbitals, used to check generated and designed molecules."""

from __future__ import annotations

from typing import Any

import numpy as np
from ase import Atoms

__all__ = ["relax_molecule", "xtb_frontier_orbitals", "xtb_gap"]


def relax_molecule(
    atoms: Atoms, method: str, mol: Any = None, fmax: float = 0.05, steps: int = 500
) -> tuple[np.ndarray, dict[str, Any]]:
    """Relaxed positions (Å) of a molecule and a record (``converged``, ``steps``, energies).

    ``method``: ``"xtb"`` — GFN2-xTB (``make_calculator("xtb")``, one thread), BFGS until the
    largest force is below ``fmax`` eV/Å (``deepatoms.simulate.relax.relax``); ``"mmff"`` —
    RDKit MMFF94 on ``mol`` (the checked molecule, atoms in the order of ``atoms``).
    """
    if method == "xtb":
        from deepatoms.simulate.reference import make_calculator
        from deepatoms.simulate.relax import relax

        calc, _ = make_calculator("xtb", atoms, threads=1)
        res = relax(atoms, calc, fmax=fmax, optimizer="bfgs", steps=steps)
        info = {k: res[k] for k in ("converged", "steps", "initial_energy", "final_energy")}
        return res["atoms"].positions.copy(), info
    if method == "mmff":
        from rdkit import Chem
        from rdkit.Chem import AllChem

        if mol is None:
            raise ValueError("MMFF relaxation needs the RDKit molecule of the valid molecule")
        work = Chem.Mol(mol)
        if not AllChem.MMFFHasAllMoleculeParams(work):
            raise ValueError("MMFF94 has no parameters for this molecule")
        conf = work.GetConformer()
        conf.SetPositions(np.ascontiguousarray(atoms.positions, dtype=float))
        status = AllChem.MMFFOptimizeMolecule(work, maxIters=steps * 10)
        return conf.GetPositions().copy(), {"converged": status == 0, "steps": None}
    raise ValueError(f"unknown relaxation method {method!r}; choose xtb, mmff or none")


def xtb_frontier_orbitals(numbers: np.ndarray, positions: np.ndarray) -> tuple[float, float]:
    """GFN2-xTB (ε_HOMO, ε_LUMO) in eV of a neutral closed-shell molecule (tblite single point at
    300 K electronic temperature, one OpenMP thread), from the orbital energies and occupations."""
    from ase.units import Bohr, Hartree
    from tblite.interface import Calculator

    from deepatoms.simulate.reference import set_openmp_threads

    set_openmp_threads(1)
    calc = Calculator(
        "GFN2-xTB", np.asarray(numbers, np.int64), np.asarray(positions, float) / Bohr
    )
    calc.set("verbosity", 0)
    res = calc.singlepoint()
    eps = np.asarray(res.get("orbital-energies"), float).reshape(-1)
    occ = np.asarray(res.get("orbital-occupations"), float)
    n_occ = round(float(occ.sum()) / 2.0)  # doubly occupied orbitals
    if not 0 < n_occ < len(eps):
        raise ValueError(f"no HOMO/LUMO pair among {len(eps)} orbitals ({n_occ} occupied)")
    return float(eps[n_occ - 1] * Hartree), float(eps[n_occ] * Hartree)


def xtb_gap(numbers: np.ndarray, positions: np.ndarray) -> float:
    """GFN2-xTB HOMO–LUMO gap (eV) = ε_LUMO − ε_HOMO of :func:`xtb_frontier_orbitals`."""
    homo, lumo = xtb_frontier_orbitals(numbers, positions)
    return lumo - homo
