"""Units that deepatoms reads and the factors that convert them to eV and Å.

Inside the package energies are in eV, lengths in Å, forces in eV/Å and stress in eV/Å³
(docs/data-and-units.md). Readers convert at the boundary with the factors below, which are
taken from ASE's CODATA 2014 constants (``ase.units``): 1 Ha = 27.211386 eV,
1 kcal/mol = 0.0433641 eV, 1 kJ/mol = 0.0103643 eV, 1 Ry = 13.605693 eV, 1 bohr = 0.529177 Å.
"""

from __future__ import annotations

from deepatoms.core.errors import DeepatomsError

__all__ = [
    "ENERGY_UNITS",
    "LENGTH_UNITS",
    "energy_factor",
    "length_factor",
]


def _energy_table() -> dict[str, float]:
    from ase import units

    per_mol = {"kcal/mol": units.kcal / units.mol, "kJ/mol": units.kJ / units.mol}
    return {"eV": 1.0, "meV": 1e-3, "Ha": units.Hartree, "Ry": units.Rydberg, **per_mol}


#: eV per unit, for every energy unit a file may be in.
ENERGY_UNITS: dict[str, float] = _energy_table()
#: Å per unit, for every length unit a file may be in.
LENGTH_UNITS: dict[str, float] = {"Å": 1.0, "bohr": 0.52917721067, "nm": 10.0}

# Spellings people use for the same unit.
_ENERGY_ALIASES = {
    "ev": "eV", "mev": "meV", "ha": "Ha", "hartree": "Ha", "eh": "Ha", "au": "Ha", "ry": "Ry",
    "rydberg": "Ry", "kcal/mol": "kcal/mol", "kcal_mol": "kcal/mol", "kj/mol": "kJ/mol",
    "kj_mol": "kJ/mol",
}  # fmt: skip
_LENGTH_ALIASES = {
    "å": "Å", "a": "Å", "ang": "Å", "angstrom": "Å", "bohr": "bohr", "a0": "bohr", "nm": "nm",
}  # fmt: skip


def _canonical(name: str, aliases: dict[str, str], kind: str, flag: str) -> str:
    key = str(name).strip().lower()
    if key in aliases:
        return aliases[key]
    allowed = ", ".join(dict.fromkeys(aliases.values()))
    raise DeepatomsError(
        f"{flag} {name!r} is not a {kind} unit deepatoms knows; use one of: {allowed}"
    )


def energy_factor(unit: str, flag: str = "--energy-unit") -> tuple[str, float]:
    """(canonical name, eV per ``unit``) of an energy unit; ``flag`` names the option in errors."""
    name = _canonical(unit, _ENERGY_ALIASES, "energy", flag)
    return name, ENERGY_UNITS[name]


def length_factor(unit: str, flag: str = "--length-unit") -> tuple[str, float]:
    """(canonical name, Å per ``unit``) of a length unit; ``flag`` names the option in errors."""
    name = _canonical(unit, _LENGTH_ALIASES, "length", flag)
    return name, LENGTH_UNITS[name]
