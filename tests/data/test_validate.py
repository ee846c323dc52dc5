"""Physical validation of structures and labels (deepatoms.data.validate) on hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule
from ase.io import read

from deepatoms.core.errors import DeepatomsError
from deepatoms.data.packed import PackedSystems
from deepatoms.data.validate import (
    MIN_DISTANCE,
    check_atoms,
    close_pair,
    collapsed_pair,
    packed_problems,
    structure_problem,
)

#: A CIF whose one site is half Cu, half Au.
DISORDERED_CIF = (
    "data_CuAu\n_cell_length_a 3.8\n_cell_length_b 3.8\n_cell_length_c 3.8\n"
    "_cell_angle_alpha 90\n_cell_angle_beta 90\n_cell_angle_gamma 90\n"
    "_symmetry_space_group_name_H-M 'P 1'\nloop_\n_atom_site_label\n_atom_site_type_symbol\n"
    "_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\n_atom_site_occupancy\n"
    "Cu1 Cu 0 0 0 0.5\nAu1 Au 0 0 0 0.5\n"
)


def _problem(atoms: Atoms) -> str | None:
    return structure_problem(atoms.numbers, atoms.positions, atoms.cell.array, atoms.pbc)


def test_good_structures_pass():
    assert _problem(molecule("CH3CH2OH")) is None
    assert _problem(bulk("Cu", "fcc", a=3.6)) is None
    assert _problem(Atoms("Au", positions=[[0, 0, 0]])) is None  # a lone atom is valid
    assert _problem(Atoms("H2", positions=[[0, 0, 0], [10, 0, 0]])) is None


@pytest.mark.parametrize(
    ("atoms", "reason"),
    [
        (Atoms(), "no atoms"),
        (Atoms(numbers=[0, 1], positions=[[0, 0, 0], [1, 0, 0]]), "atomic number 0"),
        (Atoms(numbers=[200, 1], positions=[[0, 0, 0], [1, 0, 0]]), "atomic number 200"),
        (Atoms("H2", positions=[[0, 0, 0], [np.nan, 0, 0]]), "positions are not finite"),
        (Atoms("H2", positions=[[0, 0, 0], [np.inf, 0, 0]]), "positions are not finite"),
        (Atoms("H2", positions=[[0, 0, 0], [0, 0, 0]]), "atoms 0 and 1 are 0 Å apart"),
        (Atoms("Cu", cell=[0.3, 0.3, 0.3], pbc=True), "cell volume is 0.027 Å³, near zero"),
        (Atoms("Cu", cell=[0.4, 3, 3], pbc=True), "periodic image of itself"),
        (Atoms("Cu", cell=[[3, 0, 0], [6, 0, 0], [0, 0, 3]], pbc=True), "cell volume is 0"),
        (Atoms("Cu", cell=[3, 3, 0], pbc=True), "zero length"),
        (Atoms("Cu", cell=[1e9, 3, 3], pbc=True), "longer than 10000 Å"),
        (Atoms("Cu", cell=[np.nan, 3, 3], pbc=True), "cell is not finite"),
    ],
)
def test_bad_structures_are_named(atoms, reason):
    why = _problem(atoms)
    assert why is not None and reason in why
    with pytest.raises(DeepatomsError, match=r"mol\.xyz, frame 4: .*fix or remove"):
        check_atoms(atoms, "mol.xyz, frame 4")


def test_partial_occupancy_is_refused(tmp_path):
    cif = tmp_path / "cuau.cif"
    cif.write_text(DISORDERED_CIF)
    atoms = read(cif)
    with pytest.raises(DeepatomsError, match="partially occupied"):
        check_atoms(atoms, str(cif))


def test_packed_problems_agree_with_one_structure_at_a_time(rng):
    frames = []
    for k in range(60):
        a = molecule("H2O")
        a.positions += rng.normal(scale=0.02, size=(3, 3)) + 100 * k
        frames.append(a)
    frames[5].positions[2] = frames[5].positions[0] + [0.1, 0, 0]  # coincident
    frames[17].numbers[1] = 0
    frames[30].positions[0, 1] = np.nan
    frames.insert(40, bulk("Cu", "fcc", a=3.6))
    frames.insert(41, Atoms("Cu", cell=[0.3, 0.3, 0.3], pbc=True))
    data = PackedSystems.from_atoms(frames)
    data.system_props["energy"] = np.arange(len(frames), dtype=float)
    data.system_props["energy"][50] = np.inf
    problems = packed_problems(data)
    expected = {k: _problem(a) for k, a in enumerate(frames) if _problem(a)}
    expected[50] = "label 'energy' is not finite (NaN or infinite)"
    assert problems == dict(sorted(expected.items()))
    assert sorted(problems) == [5, 17, 30, 41, 50]


def test_import_refuses_bad_frames_or_skips_and_lists_them(tmp_path):
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import write

    from cli_helpers import invoke, last_json, one_line
    from deepatoms.data.dataset import read_dataset

    frames = []
    for k in range(5):
        a = molecule("H2O")
        energy = float("nan") if k == 1 else -10.0 - k
        a.calc = SinglePointCalculator(a, energy=energy, forces=np.zeros((3, 3)))
        frames.append(a)
    frames[3].positions[1] = frames[3].positions[0]  # coincident atoms
    path = tmp_path / "frames.extxyz"
    write(path, frames)
    res = invoke("data", "import", path, "--out", tmp_path / "d.h5", "-q", code=2)
    msg = one_line(res.stderr)
    assert "2 unusable structure(s)" in msg and f"{path}:1: label 'energy' is not finite" in msg
    assert f"{path}:3: atoms 0 and 1 are 0 Å apart" in msg and "--skip-bad-rows" in msg
    assert not (tmp_path / "d.h5").exists()
    res = invoke("data", "import", path, "--out", tmp_path / "d.h5", "--skip-bad-rows", "-q",
                 "--json")  # fmt: skip
    assert [s["source"] for s in last_json(res.stdout)["skipped"]] == [f"{path}:1", f"{path}:3"]
    assert f"skipped {path}:1" in one_line(res.stderr)
    data, meta = read_dataset(tmp_path / "d.h5")
    assert len(data) == 3 and list(data.system_props["energy"]) == [-10.0, -12.0, -14.0]
    assert len(meta["provenance"]["skipped"]) == 2


def test_a_disordered_prototype_is_refused(tmp_path):
    pytest.importorskip("pymatgen")
    from deepatoms.data.prototypes.library import load_cif_prototype

    cif = tmp_path / "cuau.cif"
    cif.write_text(DISORDERED_CIF)
    with pytest.raises(ValueError, match="partially occupied"):
        load_cif_prototype(cif)


def test_per_atom_labels_with_zero_atom_systems():
    frames = [molecule("H2O"), Atoms(), molecule("CH4"), Atoms()]  # empty systems, one last
    data = PackedSystems.from_atoms(frames)
    forces = np.zeros((len(data.numbers), 3))
    forces[4] = np.nan  # an atom of system 2 (CH4)
    data.atom_props["forces"] = forces
    problems = packed_problems(data)
    assert problems[2] == "label 'forces' is not finite (NaN or infinite)"
    assert problems[1] == problems[3] == "it has no atoms" and 0 not in problems


def test_collapsed_pair_scales_with_the_covalent_radii():
    def check(atoms, ratio=0.6):
        return collapsed_pair(atoms.numbers, atoms.positions, atoms.cell.array, atoms.pbc, ratio)

    for name in ("H2", "CH3CH2OH", "H2O"):  # equilibrium molecules pass
        assert check(molecule(name)) is None
    h2 = molecule("H2")
    h2.positions[1] = h2.positions[0] + [0.0, 0.0, 0.36]  # below 0.6 × (0.31 + 0.31) = 0.372 Å
    assert "atom 0 (H) is 0.36 Å from atom 1 (H)" in check(h2)
    h2.positions[1] = h2.positions[0] + [0.0, 0.0, 0.38]
    assert check(h2) is None
    cu = bulk("Cu", cubic=True)  # a = 3.61 Å, neighbours at 2.55 Å
    assert check(cu) is None
    cu.positions[1] = [3.61 - 1.2, 0.0, 0.0]  # 1.2 Å from atom 0's periodic image: collapsed
    assert check(cu).startswith("atom 0 (Cu) is 1.2 Å from atom 1 (Cu), below 0.6")
    assert check(cu, 0.0) is None  # 0: no check
    # 1.2 Å would pass any one bond-length limit that lets H₂ through
    assert close_pair(cu.positions, cu.cell.array, cu.pbc, MIN_DISTANCE) is None
    tiny = bulk("Cu", "sc", a=1.5)  # one atom 1.5 Å from its own images
    assert "a periodic image of itself" in check(tiny)
