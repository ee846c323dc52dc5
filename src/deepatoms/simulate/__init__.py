"""Simulations with trained models: ASE calculator, relaxation, MD, vibrations and scans.

- :mod:`.calculator`: :class:`Calculator`, the ASE calculator around a model file;
- :mod:`.structures`: :func:`load_structure` (file or molecule spec), atomic writes;
- :mod:`.relax`: :func:`relax` with ASE optimisers (optionally the cell);
- :mod:`.md`: :func:`run_md`, NVE / NVT (Langevin) MD with trajectory and log;
- :mod:`.analysis`: radial distribution functions, energy drift;
- :mod:`.vibrations`: Hessians, harmonic frequencies, comparison with a reference;
- :mod:`.scan`: isotropic scaling scans;
- :mod:`.cli`: the ``deepatoms relax | md | vibrations | scan`` commands.
"""

from deepatoms.data.structure_files import load_structure, write_structures
from deepatoms.simulate.analysis import energy_drift, radial_distribution
from deepatoms.simulate.calculator import Calculator
from deepatoms.simulate.md import run_md
from deepatoms.simulate.relax import relax
from deepatoms.simulate.scan import parse_scale, scan
from deepatoms.simulate.vibrations import (
    compare_frequencies,
    harmonic_analysis,
    vibrational_analysis,
)

__all__ = [
    "Calculator",
    "compare_frequencies",
    "energy_drift",
    "harmonic_analysis",
    "load_structure",
    "parse_scale",
    "radial_distribution",
    "relax",
    "run_md",
    "scan",
    "vibrational_analysis",
    "write_structures",
]
