"""Candidate evaluation (docs/grammar_vae.md §7): RDKit → ETKDG + MMFF → (xTB) → models."""

from __future__ import annotations

import numpy as np
import pytest

from deepatoms.design.candidates import (
    embed_smiles,
    evaluate_smiles,
    hit_rates,
    xtb_frontier_orbitals,
)


@pytest.mark.parametrize(
    ("smiles", "formula"),
    [("CCO", "C2H6O"), ("C#N", "CHN"), ("[NH3+]CC([O-])=O", "C2H5NO2"), ("c1ccccc1", "C6H6")],
)
def test_embedding_has_the_composition_with_hydrogens(smiles, formula):
    atoms = embed_smiles(smiles, seed=3)
    assert atoms.get_chemical_formula(mode="hill") == formula
    assert atoms.info["smiles"] == smiles and atoms.info["mmff"] == "converged"
    assert atoms.info["charge"] == 0 and atoms.info["radicals"] == 0
    d = atoms.get_all_distances()
    assert d[np.triu_indices(len(atoms), 1)].min() > 0.9  # no clashes (Å)
    again = embed_smiles(smiles, seed=3)
    np.testing.assert_array_equal(atoms.positions, again.positions)  # seeded


def test_embedding_geometry_is_chemical():
    atoms = embed_smiles("CCO")
    z = atoms.numbers
    c, o = np.flatnonzero(z == 6), np.flatnonzero(z == 8)[0]
    assert atoms.get_distance(c[0], c[1]) == pytest.approx(1.51, abs=0.03)  # C–C single
    assert min(atoms.get_distance(i, o) for i in c) == pytest.approx(1.42, abs=0.03)  # C–O


def test_invalid_smiles_is_a_clear_error():
    with pytest.raises(ValueError, match=r"'C\(C' is not a valid SMILES"):
        embed_smiles("C(C")


def test_hit_rates_exact_on_hand_made_values():
    values = {
        "lumo": np.array([-0.5, 0.5, -2.0, np.nan, -0.1]),
        "gap": np.array([5.0, 5.0, 5.0, 5.0, 7.0]),
    }
    r = hit_rates(values, {"lumo": (-1.0, 0.0), "gap": (4.0, 6.0)})
    assert r["n"] == 5 and r["n_evaluated"] == 4  # row 3 has no LUMO
    assert r["hits"] == {"lumo": 2, "gap": 3, "all": 1}
    assert r["fraction"] == {"lumo": 2 / 4, "gap": 3 / 4, "all": 1 / 4}
    assert r["of_all"] == {"lumo": 2 / 5, "gap": 3 / 5, "all": 1 / 5}


@pytest.fixture(scope="module")
def lumo_model(tmp_path_factory):
    from deepatoms.data.neighbors import GraphSpec
    from deepatoms.models.loading import load_model
    from deepatoms.models.registry import build_model
    from model_helpers import save_atomistic

    cfg = {"name": "schnet", "n_atom_basis": 8, "n_interactions": 1, "property": "lumo",
           "readout": "mean"}  # fmt: skip
    path = tmp_path_factory.mktemp("lumo") / "model.pt"
    save_atomistic(path, build_model(cfg), GraphSpec(), "eV", meta={"elements": [1, 6, 7, 8, 9]})
    return load_model(path)


def test_evaluate_with_a_property_model(lumo_model):
    from deepatoms.data.packed import PackedSystems
    from deepatoms.models.inference import predict_packed

    smiles = ["CCO", "C(C", "[NH4+]", "CCS", "C#N"]
    done = []
    structures, cols = evaluate_smiles(
        smiles, {"lumo": lumo_model}, seed=1, progress=lambda d, t: done.append((d, t))
    )
    assert done[-1] == (5, 5)
    assert cols["status"].tolist() == [
        "ok", "invalid", "charged or open-shell", "elements unseen by the lumo model", "ok",
    ]  # fmt: skip
    assert [s is None for s in structures] == [False, True, True, False, False]
    expected = predict_packed(
        lumo_model, PackedSystems.from_atoms([embed_smiles("CCO", 1), embed_smiles("C#N", 1)])
    )
    np.testing.assert_array_equal(cols["lumo"][[0, 4]], expected)
    assert np.isnan(cols["lumo"][[1, 2, 3]]).all()
    assert cols["smiles"].tolist() == smiles and not cols["relax_converged"].any()


def test_xtb_orbitals_and_relaxation():
    from deepatoms.simulate.molecules import xtb_gap

    atoms = embed_smiles("C=O")
    homo, lumo = xtb_frontier_orbitals(atoms.numbers, atoms.positions)
    assert homo < lumo and lumo - homo == pytest.approx(xtb_gap(atoms.numbers, atoms.positions))
    structures, cols = evaluate_smiles(["C=O"], relax="xtb", xtb_orbitals=True)
    assert cols["status"].tolist() == ["ok"] and cols["relax_converged"].tolist() == [True]
    assert not np.allclose(structures[0].positions, atoms.positions)  # moved by xTB
    assert cols["xtb_gap"][0] == pytest.approx(cols["xtb_lumo"][0] - cols["xtb_homo"][0])
    relaxed = structures[0]
    assert cols["xtb_lumo"][0] == xtb_frontier_orbitals(relaxed.numbers, relaxed.positions)[1]
