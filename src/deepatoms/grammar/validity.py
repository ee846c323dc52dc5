"""Validity checks and canonical keys of decoded strings (docs/grammar_vae.md §4, §6, §8; docs/grammars.md).

- SMILES grammars (tokenizer ``smiles``): RDKit ``MolFromSmiles`` with sanitisation succeeds and
  the molecule has at least one atom; the canonical key is RDKit's canonical SMILES.
- Polymer grammars (tokenizer ``polymer``): grammatical and every group list within the limits
  (:func:`deepatoms.grammar.polymer.polymer_validity`); the key is the string itself.
- Any other grammar: grammatical; the key is the string itself.
"""

from __future__ import annotations

from collections.abc import Callable

from deepatoms.grammar.cfg import Grammar
from deepatoms.grammar.errors import GrammarError
from deepatoms.grammar.polymer import polymer_validity

__all__ = ["canonical", "smiles_mol", "validity_checker"]


def smiles_mol(s: str):
    """The sanitised RDKit molecule of ``s`` or ``None`` (RDKit's error log is silenced)."""
    from rdkit import Chem, rdBase

    if not isinstance(s, str) or not s:
        return None
    with rdBase.BlockLogs():
        mol = Chem.MolFromSmiles(s)
    if mol is None or mol.GetNumAtoms() == 0:
        return None
    return mol


def _smiles_valid(s: str) -> bool:
    return smiles_mol(s) is not None


def validity_checker(grammar: Grammar) -> Callable[[str], bool]:
    """A ``str -> bool`` validity check suited to ``grammar`` (module docstring)."""
    if grammar.tokenizer == "smiles":
        return _smiles_valid
    if grammar.tokenizer == "polymer":
        return polymer_validity(grammar=grammar)

    def grammatical(s: str) -> bool:
        if not isinstance(s, str):
            return False
        try:
            grammar.parse(s)
        except GrammarError:
            return False
        return True

    return grammatical


def canonical(grammar: Grammar, s: str) -> str:
    """Key for uniqueness/novelty: RDKit canonical SMILES for SMILES grammars (the string itself
    when RDKit cannot read it), the string itself otherwise."""
    if grammar.tokenizer != "smiles":
        return s
    from rdkit import Chem

    mol = smiles_mol(s)
    return Chem.MolToSmiles(mol) if mol is not None else s
