"""Reference data generation never writes non-finite labels: a calculator that returns NaN
stops ``generate_md`` with a clear error naming the frame."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes

from deepatoms.core.errors import DeepatomsError
from deepatoms.datagen.md import generate_md


class _NanAfter(Calculator):
    """A soft harmonic pair potential that returns NaN energies after ``n`` calls."""

    implemented_properties = ("energy", "forces")

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n, self.calls = n, 0

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.calls += 1
        d = self.atoms.positions[1] - self.atoms.positions[0]
        r = np.linalg.norm(d)
        f = 0.5 * (r - 1.2) * d / r
        energy = 0.25 * (r - 1.2) ** 2 if self.calls <= self.n else float("nan")
        self.results = {"energy": energy, "forces": np.array([f, -f])}


def test_a_calculator_returning_nan_is_refused():
    pair = Atoms("OO", positions=[[0, 0, 0], [1.2, 0, 0]])
    with pytest.raises(DeepatomsError, match=r"frame \d+ .*non-finite energy or forces"):
        generate_md(pair, _NanAfter(30), {"method": "test"}, temperature=100.0, n_frames=10,
                    stride=5, equilibration_steps=0)  # fmt: skip
    data, _ = generate_md(pair, _NanAfter(10**6), {"method": "test"}, temperature=100.0,
                          n_frames=4, stride=5, equilibration_steps=0)  # fmt: skip
    assert len(data) == 4 and np.isfinite(data.system_props["energy"]).all()
