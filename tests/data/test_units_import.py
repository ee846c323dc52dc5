"""Units are declared at import, converted to eV and Å, and required for training targets.

A MACE-style extxyz with ``REF_energy`` in Hartree, ``REF_forces`` in Ha/bohr and positions in
bohr is imported with the keys and units declared; the dataset holds eV, eV/Å and Å, and a
potential trained on it predicts eV.
"""

from __future__ import annotations

import numpy as np
import pytest
from ase import units
from ase.build import molecule
from ase.calculators.emt import EMT
from ase.io import write

from cli_helpers import invoke, last_json, one_line
from deepatoms.config.overrides import apply_overrides
from deepatoms.core.errors import ConfigError, DeepatomsError
from deepatoms.core.units import energy_factor, length_factor
from deepatoms.data.dataset import read_dataset
from deepatoms.models.loading import load_model
from deepatoms.models.registry import load_preset
from deepatoms.train import fit


def _labelled_frames(n: int = 24) -> tuple[list, np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """Rattled water molecules with EMT energies (eV), forces (eV/Å) and positions (Å)."""
    rng = np.random.default_rng(0)
    frames, energies, forces, positions = [], [], [], []
    for _ in range(n):
        atoms = molecule("H2O")
        atoms.positions += rng.normal(scale=0.05, size=atoms.positions.shape)
        atoms.calc = EMT()
        energies.append(atoms.get_potential_energy())
        forces.append(atoms.get_forces().copy())
        positions.append(atoms.positions.copy())
        frames.append(atoms)
    return frames, np.array(energies), forces, positions


@pytest.fixture(scope="module")
def hartree_file(tmp_path_factory):
    """The frames written in Hartree and bohr under MACE-style keys (no calculator)."""
    frames, energies, forces, positions = _labelled_frames()
    out = []
    for atoms, e, f, pos in zip(frames, energies, forces, positions, strict=True):
        a = atoms.copy()
        a.calc = None
        a.positions = pos / units.Bohr
        a.info["REF_energy"] = e / units.Hartree
        a.arrays["REF_forces"] = f / (units.Hartree / units.Bohr)
        out.append(a)
    path = tmp_path_factory.mktemp("ha") / "water_ha.extxyz"
    write(path, out, format="extxyz")
    return path, energies, forces, positions


def test_unit_tables():
    assert energy_factor("hartree") == ("Ha", pytest.approx(27.211386, rel=1e-6))
    assert energy_factor("kcal/mol")[1] == pytest.approx(0.0433641, rel=1e-5)
    assert length_factor("bohr")[1] == pytest.approx(0.529177, rel=1e-5)
    assert length_factor("nm")[1] == 10.0
    with pytest.raises(DeepatomsError, match=r"--energy-unit 'kcal'.*kcal/mol"):
        energy_factor("kcal")


def test_hartree_data_is_imported_and_trained_in_ev(hartree_file, tmp_path):
    path, energies, forces, positions = hartree_file
    out = tmp_path / "water.h5"
    res = invoke("data", "import", path, "--out", out, "--energy-key", "REF_energy",
                 "--forces-key", "REF_forces", "--energy-unit", "Ha", "--length-unit", "bohr",
                 "--quiet", "--json")  # fmt: skip
    assert "energy [eV]" in res.stdout and "forces [eV/Å]" in res.stdout
    data, meta = read_dataset(out)
    assert meta["units"]["energy"] == "eV" and meta["units"]["forces"] == "eV/Å"
    np.testing.assert_allclose(data.system_props["energy"], energies, rtol=1e-9)
    # extxyz stores arrays with 8 decimals: 1e-8 Ha/bohr ≈ 5e-7 eV/Å
    np.testing.assert_allclose(data.atom_props["forces"], np.concatenate(forces), atol=1e-6)
    np.testing.assert_allclose(data.positions, np.concatenate(positions), atol=1e-7)
    conv = meta["provenance"]["units"]
    assert conv["energy_unit"] == "Ha" and conv["energy"]["key"] == "REF_energy"
    assert conv["forces"]["factor"] == pytest.approx(units.Hartree / units.Bohr)
    assert last_json(res.stdout)["units"]["energy"] == "eV"

    cfg = apply_overrides(load_preset("schnet-md17-fast"), ["model.n_atom_basis=8",
        "model.n_interactions=1", "data.n_train=16", "data.n_val=8", "train.batch_size=8",
        "train.max_epochs=2"])  # fmt: skip
    summary = fit(cfg, str(out), tmp_path / "run", progress=False)
    assert summary["unit"] == "eV" and summary["forces"] == "forces"
    assert load_model(tmp_path / "run").unit == "eV"


def test_a_target_with_no_unit_is_refused_with_the_fix(hartree_file, tmp_path):
    path = hartree_file[0]
    out = tmp_path / "raw.h5"
    res = invoke("data", "import", path, "--out", out, "--quiet")
    assert "no unit known for REF_energy" in one_line(res.stderr)
    cfg = apply_overrides(load_preset("schnet-md17-fast"),
                          ["data.target=REF_energy", "data.forces=REF_forces"])  # fmt: skip
    with pytest.raises(
        ConfigError, match=r"records no unit for target 'REF_energy'.*--energy-unit"
    ):
        fit(cfg, str(out), tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "model.pt").exists()


def test_unknown_keys_and_units_are_one_clear_error(hartree_file, tmp_path):
    path = hartree_file[0]
    res = invoke("data", "import", path, "--out", tmp_path / "x.h5", "--energy-key", "E",
                 code=2)  # fmt: skip
    assert "--energy-key 'E'" in one_line(res.stderr) and "REF_energy" in one_line(res.stderr)
    res = invoke("data", "import", path, "--out", tmp_path / "x.h5", "--length-unit", "feet",
                 code=2)  # fmt: skip
    assert "is not a length unit deepatoms knows" in one_line(res.stderr)
    assert not (tmp_path / "x.h5").exists()


def test_positional_output_still_works_with_a_deprecation_warning(hartree_file, tmp_path):
    out = tmp_path / "old.h5"
    res = invoke("data", "import", hartree_file[0], out, "--quiet")
    assert out.is_file() and "deprecated" in res.stderr


def test_a_model_without_an_energy_unit_is_not_a_calculator(hartree_file, tmp_path):
    from deepatoms.simulate.calculator import Calculator

    out = tmp_path / "raw.h5"
    invoke("data", "import", hartree_file[0], "--out", out, "--quiet")
    cfg = apply_overrides(load_preset("schnet-fast"), ["data.target=REF_energy",
        "data.target_unit=dimensionless", "model.n_atom_basis=8", "model.n_interactions=1",
        "data.n_train=16", "data.n_val=8", "train.batch_size=8", "train.max_epochs=1"])  # fmt: skip
    summary = fit(cfg, str(out), tmp_path / "run", progress=False)
    assert summary["unit"] == ""  # declared dimensionless
    with pytest.raises(ValueError, match="with no recorded unit; an ASE calculator needs"):
        Calculator(tmp_path / "run")
