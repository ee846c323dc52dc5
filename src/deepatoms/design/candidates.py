"""Independent evaluation of designed SMILES (docs/grammar_vae.md §7;
Paper D's check of 100 proposals with DFT: 61 % within both windows vs 11 % of the training set).

The evaluator, applied identically to the candidates and to a reference sample of training
molecules:

1. RDKit validity: ``MolFromSmiles`` with sanitisation; molecules with a net formal charge or
   radical electrons are not evaluated (QM9 holds neutral closed-shell molecules only);
2. 3-D embedding: hydrogens added, ETKDG (v3) with a fixed seed (random-coordinate start when
   the default fails), then MMFF94 optimisation when MMFF has parameters (else the ETKDG
   geometry is kept); :func:`embed_smiles`;
3. optional GFN2-xTB relaxation (tblite, one OpenMP thread, BFGS to f_max = 0.05 eV/Å) with
   :func:`deepatoms.simulate.molecules.relax_molecule`;
4. properties: trained property models (``load_model`` + ``predict_packed``; eV), and/or
   raw GFN2-xTB frontier orbital energies ε_HOMO, ε_LUMO and Δε = ε_LUMO − ε_HOMO (eV;
   systematically different from B3LYP, informative only), :func:`xtb_frontier_orbitals`.

Hit rates (:func:`hit_rates`): the fraction of evaluated molecules (finite values for every
window property) inside each window and inside all of them; ``of_all`` divides by every input
string instead, counting failures as misses.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from ase import Atoms

from deepatoms.design.qm9_smiles import in_windows
from deepatoms.simulate.molecules import xtb_frontier_orbitals

__all__ = ["embed_smiles", "evaluate_smiles", "hit_rates", "xtb_frontier_orbitals"]


def embed_smiles(smiles: str, seed: int = 0, mmff_steps: int = 2000) -> Atoms:
    """3-D structure (Å, hydrogens included) of a SMILES: ETKDG embedding with ``seed``, then
    MMFF94 (``atoms.info``: ``smiles``, ``mmff`` = "converged" / "not converged" /
    "no parameters", ``charge`` (net formal charge, e), ``radicals``).

    Raises ValueError when RDKit cannot parse/sanitise the SMILES or cannot embed it.
    """
    from rdkit import Chem, rdBase
    from rdkit.Chem import AllChem

    with rdBase.BlockLogs():  # RDKit's parse/UFF-typer messages would flood stderr
        mol = Chem.MolFromSmiles(smiles)
        if mol is None:
            raise ValueError(
                f"{smiles!r} is not a valid SMILES (RDKit parse or sanitisation failed)"
            )
        mol = Chem.AddHs(mol)
        params = AllChem.ETKDGv3()
        params.randomSeed = int(seed)
        if AllChem.EmbedMolecule(mol, params) < 0:
            params.useRandomCoords = True
            if AllChem.EmbedMolecule(mol, params) < 0:
                raise ValueError(f"RDKit ETKDG could not embed {smiles!r} in 3-D")
        if AllChem.MMFFHasAllMoleculeParams(mol):
            status = AllChem.MMFFOptimizeMolecule(mol, maxIters=mmff_steps)
            mmff = "converged" if status == 0 else "not converged"
        else:
            mmff = "no parameters"
    atoms = Atoms(
        numbers=[a.GetAtomicNum() for a in mol.GetAtoms()],
        positions=mol.GetConformer().GetPositions(),
    )
    atoms.info.update(
        smiles=smiles,
        mmff=mmff,
        charge=Chem.GetFormalCharge(mol),
        radicals=sum(a.GetNumRadicalElectrons() for a in mol.GetAtoms()),
    )
    return atoms


def _structure(smiles: str, seed: int, relax: str | None) -> tuple[Atoms | None, str, bool]:
    """(atoms or None, status, relaxation converged) of one SMILES through steps 1–3."""
    from deepatoms.simulate.molecules import relax_molecule

    try:
        atoms = embed_smiles(smiles, seed=seed)
    except ValueError as exc:
        return None, "invalid" if "not a valid SMILES" in str(exc) else "embedding failed", False
    if atoms.info["charge"] != 0 or atoms.info["radicals"] != 0:
        return None, "charged or open-shell", False
    if relax is None:
        return atoms, "ok", False
    try:
        positions, info = relax_molecule(atoms, relax)
    except Exception as exc:  # tblite raises CalculationFailed / RuntimeError on SCF failures
        return None, f"{relax} relaxation failed ({type(exc).__name__})", False
    relaxed = atoms.copy()
    relaxed.positions = positions
    return relaxed, "ok", bool(info.get("converged"))


def evaluate_smiles(
    smiles: Sequence[str],
    models: Mapping[str, Any] | None = None,
    relax: str | None = None,
    xtb_orbitals: bool = False,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[Atoms | None], dict[str, np.ndarray]]:
    """Evaluate SMILES with the module's evaluator; returns the structures (None on failure)
    and columns {name: [N]}.

    ``models`` {name: ``LoadedModel``} give the columns ``name`` (their unit, eV for QM9 orbital
    models); ``relax``: None (the MMFF geometry of step 2) or ``"xtb"`` (GFN2-xTB relaxation
    from it); ``xtb_orbitals`` adds ``xtb_homo``, ``xtb_lumo``, ``xtb_gap`` (eV).
    Columns ``smiles``, ``status`` ("ok" or why not evaluated), ``relax_converged`` are always
    there. Molecules with elements a model never saw get NaN from it (status says so).
    ``progress(done, total)`` counts molecules through steps 1–3.
    """
    from deepatoms.data.packed import PackedSystems
    from deepatoms.models.inference import predict_packed, unseen_elements

    if relax not in (None, "xtb"):
        raise ValueError(f"unknown relaxation {relax!r}; use 'xtb' or None")
    models = dict(models or {})
    n = len(smiles)
    structures: list[Atoms | None] = []
    status = np.empty(n, dtype=object)
    converged = np.zeros(n, bool)
    for i, s in enumerate(smiles):
        atoms, status[i], converged[i] = _structure(s, seed, relax)
        structures.append(atoms)
        if progress is not None:
            progress(i + 1, n)
    ok = np.array([a is not None for a in structures], bool)
    columns: dict[str, np.ndarray] = {"smiles": np.asarray(list(smiles), dtype=object)}
    for name, loaded in models.items():
        values = np.full(n, np.nan)
        use = [i for i in np.flatnonzero(ok) if not unseen_elements(loaded, structures[i].numbers)]
        for i in sorted(set(np.flatnonzero(ok)) - set(use)):
            status[i] = f"elements unseen by the {name} model"
        if use:
            packed = PackedSystems.from_atoms([structures[i] for i in use])
            values[use] = predict_packed(loaded, packed)
        columns[name] = values
    if xtb_orbitals:
        orbitals = np.full((n, 2), np.nan)
        for i in np.flatnonzero(ok):
            try:
                orbitals[i] = xtb_frontier_orbitals(structures[i].numbers, structures[i].positions)
            except Exception:  # SCF failure: leave NaN
                status[i] = "xtb single point failed"
        columns.update(
            xtb_homo=orbitals[:, 0],
            xtb_lumo=orbitals[:, 1],
            xtb_gap=orbitals[:, 1] - orbitals[:, 0],
        )
    columns["status"] = status
    columns["relax_converged"] = converged
    return structures, columns


def hit_rates(
    values: Mapping[str, np.ndarray], windows: Mapping[str, tuple[float, float]]
) -> dict[str, Any]:
    """Hit rates of molecules in ``windows`` {name: (lo, hi)} (eV) given ``values`` {name: [N]}.

    Returns ``n`` (all), ``n_evaluated`` (finite values for every window property), ``hits``
    {window / "all": count}, ``fraction`` (hits / n_evaluated) and ``of_all`` (hits / n).
    """
    masks = in_windows(values, windows)
    n = len(masks["all"])
    finite = np.logical_and.reduce([np.isfinite(np.asarray(values[k], float)) for k in windows])
    n_eval = int(finite.sum())
    hits = {k: int((m & finite).sum()) for k, m in masks.items()}
    return {
        "n": n,
        "n_evaluated": n_eval,
        "hits": hits,
        "fraction": {k: h / n_eval if n_eval else float("nan") for k, h in hits.items()},
        "of_all": {k: h / n if n else float("nan") for k, h in hits.items()},
    }
