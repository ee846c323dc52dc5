"""Runtime guards of MD and relaxations: stop when the simulation stops making sense.

A step is refused when the energy or the positions are no longer finite, or (checked every
few steps, as it costs a neighbour search) when two atoms have come closer than
:data:`deepatoms.data.validate.MIN_DISTANCE`: a model outside its training data can pull atoms
together without limit, and everything after that is meaningless.
"""

from __future__ import annotations

import math

import numpy as np
from ase import Atoms

from deepatoms.data.validate import MIN_DISTANCE, close_pair

__all__ = ["SimulationStopped", "simulation_problem"]


class SimulationStopped(Exception):
    """Raised inside a simulation loop at step ``step`` for ``reason``."""

    def __init__(self, step: int, reason: str) -> None:
        super().__init__(f"step {step}: {reason}")
        self.step = step
        self.reason = reason


def simulation_problem(atoms: Atoms, energy: float, check_distances: bool = True) -> str | None:
    """Why the simulation of ``atoms`` (energy in eV) cannot go on, or None."""
    if not math.isfinite(float(energy)):
        return f"the energy is {energy} (not finite)"
    if not np.isfinite(atoms.positions).all():
        return "positions are no longer finite"
    if check_distances:
        close = close_pair(atoms.positions, atoms.cell.array, atoms.pbc, MIN_DISTANCE)
        if close:
            return f"atoms collided: {close}"
    return None
