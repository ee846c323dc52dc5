"""Shared fixtures: small datasets generated on the fly (never read from ../shared)."""

from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _few_threads():
    torch.set_num_threads(1)
    yield


@pytest.fixture(scope="session")
def qm9_small(tmp_path_factory) -> str:
    """A 200-molecule QM9 dataset file built from the installed qm9pack data."""
    from deepatoms.data.dataset import write_dataset
    from deepatoms.data.sources.qm9 import load_qm9

    data, meta = load_qm9(limit=200, seed=3, progress=False)
    path = tmp_path_factory.mktemp("qm9") / "qm9_200.h5"
    write_dataset(path, data, meta)
    return str(path)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def ethanol_xtb(tmp_path_factory) -> str:
    """150 frames of ethanol at 500 K labelled with GFN2-xTB (energy eV, forces eV/Å)."""
    from ase.build import molecule

    from deepatoms.data.dataset import write_dataset
    from deepatoms.datagen.md import generate_md
    from deepatoms.simulate.reference import make_calculator

    atoms = molecule("CH3CH2OH")
    calc, prov = make_calculator("xtb", atoms)
    data, meta = generate_md(
        atoms, calc, prov, temperature=500, n_frames=150, stride=5, equilibration_steps=100, seed=1
    )
    path = tmp_path_factory.mktemp("md") / "ethanol_xtb.h5"
    write_dataset(path, data, meta)
    return str(path)
