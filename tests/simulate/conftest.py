"""Small real potentials for the simulation tests, trained once per session.

- ``mol_model``: SchNet (F=32, T=2) on 200 frames of ethanol from Langevin MD at 500 K with
  GFN2-xTB labels (energies + forces);
- ``cu_model``: the same architecture on 120 strained and rattled frames of a 32-atom fcc Cu cell
  from Langevin MD at 600 K with EMT labels.

Each takes about 10–25 s on one CPU core (labelling + 20–30 epochs).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase import Atoms

from deepatoms.config.overrides import apply_overrides
from deepatoms.data.dataset import write_dataset
from deepatoms.data.structures import bulk_from_spec, molecule_from_spec
from deepatoms.datagen.md import generate_md
from deepatoms.models.registry import load_preset
from deepatoms.simulate.reference import make_calculator
from deepatoms.train import fit as train

SMALL = [
    "model.n_atom_basis=32",
    "model.n_interactions=2",
    "train.lr=3e-3",
    "train.num_threads=1",
]


def _train_potential(
    folder: Path, atoms: Atoms, calculator: str, md: dict, n_train: int, epochs: int, batch: int
) -> Path:
    calc, provenance = make_calculator(calculator, atoms)
    data, meta = generate_md(atoms, calc, provenance, seed=0, **md)
    h5 = folder / "data.h5"
    write_dataset(h5, data, meta)
    cfg = apply_overrides(
        load_preset("schnet-md17-fast"),
        [
            *SMALL,
            f"data.n_train={n_train}",
            f"data.n_val={len(data) - n_train}",
            f"train.max_epochs={epochs}",
            f"train.batch_size={batch}",
        ],
    )
    summary = train(cfg, h5, folder / "run", progress=False)
    return Path(summary["model_file"])


@pytest.fixture(scope="session")
def mol_model(tmp_path_factory) -> Path:
    """model.pt of a small ethanol potential (GFN2-xTB labels)."""
    md = dict(temperature=500.0, n_frames=200, stride=5, equilibration_steps=50)
    folder = tmp_path_factory.mktemp("ethanol_model")
    return _train_potential(folder, molecule_from_spec("ethanol"), "xtb", md, 160, 30, 16)


@pytest.fixture(scope="session")
def cu_model(tmp_path_factory) -> Path:
    """model.pt of a small fcc Cu potential (EMT labels, with stress variation)."""
    md = dict(temperature=600.0, n_frames=120, stride=5, equilibration_steps=20, rattle=0.03,
              strain=0.04)  # fmt: skip
    folder = tmp_path_factory.mktemp("cu_model")
    return _train_potential(folder, bulk_from_spec("Cu", size=32), "emt", md, 100, 20, 10)


@pytest.fixture
def ethanol() -> Atoms:
    """ASE's ethanol geometry (9 atoms, Å)."""
    return molecule_from_spec("ethanol")


@pytest.fixture
def cu_cell() -> Atoms:
    """A rattled, slightly sheared 32-atom fcc Cu cell (Å)."""
    atoms = bulk_from_spec("Cu", size=32)
    strain = np.array([[0.01, 0.02, 0.0], [0.02, -0.01, 0.0], [0.0, 0.0, 0.0]])
    atoms.set_cell(atoms.cell.array @ (np.eye(3) + strain), scale_atoms=True)
    atoms.rattle(0.05, seed=3)
    return atoms
