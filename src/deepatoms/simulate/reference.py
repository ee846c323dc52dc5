"""Reference calculators for labelled data: GFN-xTB through ``tblite`` and ASE's EMT.

:func:`make_calculator` returns an ASE calculator (energies in eV, forces in eV/Å, stress in
eV/Å³ for periodic cells) together with a JSON-friendly provenance record of what computed the
labels: calculator name, method, package and version, every setting, units.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterable
from typing import Any

from ase import Atoms
from ase.calculators.calculator import Calculator

__all__ = [
    "CALCULATORS",
    "DEFAULT_CALCULATOR",
    "EMT_ELEMENTS",
    "LABEL_UNITS",
    "XTB_METHODS",
    "check_elements",
    "make_calculator",
]

#: Calculator names accepted by :func:`make_calculator`.
CALCULATORS = ("xtb", "emt")
#: Default calculator per kind of structure.
DEFAULT_CALCULATOR = {"molecule": "xtb", "bulk": "emt"}
#: Elements with EMT parameters in ``ase.calculators.emt``.
EMT_ELEMENTS = ("H", "C", "N", "O", "Al", "Ni", "Cu", "Pd", "Ag", "Pt", "Au")
#: xTB Hamiltonians of tblite.
XTB_METHODS = ("GFN2-xTB", "GFN1-xTB")
#: Units of the labels every calculator here produces.
LABEL_UNITS = {"energy": "eV", "forces": "eV/Å", "stress": "eV/Å^3"}

_XTB_SETTINGS = {
    "method": "GFN2-xTB",
    "accuracy": 1.0,
    "electronic_temperature": 300.0,  # K
    "max_iterations": 250,
    "charge": None,  # e; None = neutral
    "multiplicity": None,  # 2S+1; None = tblite's default
    "threads": 1,  # OpenMP threads of tblite; None = OMP_NUM_THREADS / all cores
}
_EMT_SETTINGS: dict[str, Any] = {"asap_cutoff": False}


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _resolve(name: str, settings: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(settings) - set(defaults))
    if unknown:
        raise ValueError(
            f"unknown setting(s) {unknown} for calculator {name!r}; allowed: {sorted(defaults)}"
        )
    return {**defaults, **settings}


def check_elements(name: str, symbols: Iterable[str]) -> None:
    """Raise ``ValueError`` if calculator ``name`` has no parameters for some of ``symbols``."""
    if name == "emt":
        missing = sorted(set(symbols) - set(EMT_ELEMENTS))
        if missing:
            raise ValueError(
                f"EMT has no parameters for {', '.join(missing)}; it supports "
                f"{' '.join(EMT_ELEMENTS)}. Use the xtb calculator for other elements."
            )


def set_openmp_threads(n: int) -> bool:
    """Set the thread count of GNU OpenMP (``libgomp.so.1``, which tblite links) for this
    process; return False where that library is not available (then OMP_NUM_THREADS rules).

    One thread is much faster for molecules of a few dozen atoms: with two or more, each SCF
    iteration's parallel regions cost more than they save, and far more on a busy machine.
    """
    import ctypes

    try:
        ctypes.CDLL("libgomp.so.1").omp_set_num_threads(int(n))
    except (OSError, AttributeError):
        return False
    return True


def _xtb(settings: dict[str, Any]) -> Calculator:
    try:
        from tblite.ase import TBLite
    except ImportError as err:
        raise ModuleNotFoundError(
            "the xtb calculator needs the 'tblite' package; install it with `pip install tblite`"
        ) from err
    aliases = {m.lower(): m for m in XTB_METHODS} | {"gfn2": "GFN2-xTB", "gfn1": "GFN1-xTB"}
    method = aliases.get(str(settings["method"]).lower())
    if method is None:
        raise ValueError(f"unknown xTB method {settings['method']!r}; use one of {XTB_METHODS}")
    settings["method"] = method
    threads = settings.pop("threads")
    if threads is not None and (
        isinstance(threads, bool) or not isinstance(threads, int) or threads < 1
    ):
        raise ValueError(f"xtb threads must be a positive integer or None, got {threads!r}")
    calc = TBLite(verbosity=0, **settings)
    # provenance: None where the OpenMP default (OMP_NUM_THREADS) applies
    settings["threads"] = threads if threads is not None and set_openmp_threads(threads) else None
    return calc


def make_calculator(
    name: str, atoms: Atoms | None = None, **settings: Any
) -> tuple[Calculator, dict[str, Any]]:
    """Build the reference calculator ``name`` ("xtb" or "emt") and its provenance record.

    Args:
        name: ``"xtb"`` (tblite; settings ``method`` "GFN2-xTB"/"GFN1-xTB", ``accuracy``,
            ``electronic_temperature`` in K, ``max_iterations``, ``charge`` in e,
            ``multiplicity``, ``threads``: OpenMP threads, default 1, set process-wide) or
            ``"emt"`` (ASE EMT; setting ``asap_cutoff``).
        atoms: if given, checked for elements the calculator cannot handle.
        **settings: calculator settings (see above); unknown names are refused.

    Returns:
        ``(calculator, provenance)``; the calculator yields energy (eV), forces (eV/Å) and, for
        periodic cells, stress (eV/Å³, Voigt order xx yy zz yz xz xy).
    """
    key = name.lower()
    if key not in CALCULATORS:
        raise ValueError(f"unknown calculator {name!r}; choose one of {list(CALCULATORS)}")
    if atoms is not None:
        check_elements(key, atoms.get_chemical_symbols())
    if key == "xtb":
        resolved = _resolve(key, settings, _XTB_SETTINGS)
        calc = _xtb(resolved)
        method, package = resolved["method"], "tblite"
    else:
        from ase.calculators.emt import EMT

        resolved = _resolve(key, settings, _EMT_SETTINGS)
        calc = EMT(**resolved)
        method, package = "EMT", "ase"
    provenance = {
        "calculator": key,
        "method": method,
        "package": package,
        "package_version": _version(package),
        "settings": resolved,
        "units": dict(LABEL_UNITS),
    }
    return calc, provenance
