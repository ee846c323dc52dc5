"""QM9 preparation for G-SchNet (docs/gschnet.md §6, §10): centring, order, bonds, filters,
splits, and the ``deepatoms data qm9-generative`` command."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from ase import Atoms
from ase.data import atomic_masses

import deepatoms.data.sources.qm9 as qm9_source
from cli_helpers import invoke, last_json, one_line
from deepatoms.analysis.molecule_validity import VALENCE, check_molecule
from deepatoms.data.dataset import read_dataset
from deepatoms.data.packed import PackedSystems
from deepatoms.generate.qm9_prep import (
    apply_filters,
    centre_and_sort,
    parse_where,
    prepare_qm9_generative,
    split_labels,
)


@pytest.fixture(scope="module")
def qm9_all():
    """All of QM9 (loaded once, about 5 s)."""
    return qm9_source.load_qm9(progress=False)


@pytest.fixture
def cached_qm9(qm9_all, monkeypatch):
    """Make load_qm9(limit=None) return the cached copy."""
    data, meta = qm9_all
    real = qm9_source.load_qm9

    def load(limit=None, seed=0, progress=True):
        if limit is None:
            return data, copy.deepcopy(meta)
        return real(limit=limit, seed=seed, progress=progress)

    monkeypatch.setattr(qm9_source, "load_qm9", load)
    return data


@pytest.fixture
def first300(cached_qm9):
    return prepare_qm9_generative(first=300, n_train=200, n_val=50)


def test_centre_and_sort_exact():
    water = Atoms("OH2", positions=[[0.0, 0.0, 0.3], [0.0, 0.8, -0.2], [0.0, -0.8, -0.2]])
    chain = Atoms("HCO", positions=[[-2.0, 0, 0], [0.0, 0, 0], [1.2, 0, 0]])
    pack = PackedSystems.from_atoms([water, chain], atom_props={"label": [[0, 1, 2], [3, 4, 5]]})
    out = centre_and_sort(pack)
    for k in range(2):
        s, e = out.offsets[k], out.offsets[k + 1]
        m = atomic_masses[out.numbers[s:e]]
        com = (m[:, None] * out.positions[s:e]).sum(axis=0) / m.sum()
        np.testing.assert_allclose(com, 0.0, atol=1e-12)
        r = np.linalg.norm(out.positions[s:e], axis=1)
        assert np.all(np.diff(r) >= 0)
    # chain: com_x = (−2·1.008 + 1.2·15.999) / (1.008 + 12.011 + 15.999); C is closest, then O
    assert out.numbers[3:].tolist() == [6, 8, 1] and out.atom_props["label"][3:].tolist() == [
        4,
        5,
        3,
    ]
    com_x = (-2.0 * atomic_masses[1] + 1.2 * atomic_masses[8]) / atomic_masses[[1, 6, 8]].sum()
    np.testing.assert_allclose(out.positions[3:, 0], [-com_x, 1.2 - com_x, -2.0 - com_x])
    assert out.atom_props["label"][:3].tolist()[0] == 0  # O is closest to water's COM
    np.testing.assert_array_equal(pack.positions[0], [0.0, 0.0, 0.3])  # input untouched


def test_parse_where():
    assert parse_where("gap<4.5") == [("gap", "<", 4.5)]
    assert parse_where(" gap <= 5 and mu>1, homo != -7") == [
        ("gap", "<=", 5.0),
        ("mu", ">", 1.0),
        ("homo", "!=", -7.0),
    ]
    with pytest.raises(ValueError, match="cannot read the condition 'gap~4'"):
        parse_where("gap~4")
    with pytest.raises(ValueError, match=r"'abc' .* is not a number"):
        parse_where("gap<abc")
    with pytest.raises(ValueError, match="holds no condition"):
        parse_where(" ")


def test_filters_select_exactly_below_threshold():
    pack = PackedSystems.from_atoms(
        [Atoms("H2", positions=[[0, 0, 0], [0.74, 0, 0]])] * 5,
        {"gap": [4.4, 4.5, 4.6, 3.0, 4.49999], "mu": [0.0, 1.0, 2.0, 3.0, 4.0]},
    )
    keep, applied = apply_filters(pack, max_gap=4.5)
    assert keep.tolist() == [True, False, False, True, True] and applied == ["gap < 4.5"]
    keep, applied = apply_filters(pack, max_gap=4.5, where="mu>=1")
    assert keep.tolist() == [False, False, False, True, True]
    assert applied == ["gap < 4.5", "mu >= 1"]
    with pytest.raises(ValueError, match=r"no numeric property of that name; .*'gap', 'mu'"):
        apply_filters(pack, where="lumo<1")


def test_qm9_gap_facts(qm9_all):
    data, _ = qm9_all
    assert apply_filters(data, max_gap=4.5)[0].sum() == 3778
    assert apply_filters(data, where="gap<5")[0].sum() == 9161


def test_split_labels():
    a = split_labels(20, 10, 5, seed=1)
    assert [int(np.sum(a == s)) for s in ("train", "val", "test")] == [10, 5, 5]
    np.testing.assert_array_equal(a, split_labels(20, 10, 5, seed=1))
    assert not np.array_equal(a, split_labels(20, 10, 5, seed=2))
    b = split_labels(20, None, 5, 0, seed=0)
    assert [int(np.sum(b == s)) for s in ("train", "val", "test")] == [15, 5, 0]
    with pytest.raises(ValueError, match=r"exceed the 20 systems.*--n-train"):
        split_labels(20, 50_000, 5_000)


def test_prepare_first_300(first300, cached_qm9):
    data, meta = first300
    raw = cached_qm9
    assert len(data) == 298
    dropped = meta["dropped"]
    assert dropped["n_checked"] == 300 and dropped["n_dropped"] == 2
    assert dropped["reasons"] == {"overcoordinated": 1, "valence": 1}
    assert dropped["qm9_index"] == {"overcoordinated": [271], "valence": [282]}
    assert meta["split"]["sizes"] == {"train": 200, "val": 50, "test": 48}
    assert meta["bond_types"] == ["single", "double", "triple"]
    assert data.edges.spec.kind == "bonds"
    # properties kept, with units; molecules in QM9 order
    keep = np.flatnonzero(~np.isin(raw.system_props["index"][:300], [271, 282]))
    np.testing.assert_array_equal(data.system_props["index"], raw.system_props["index"][keep])
    np.testing.assert_array_equal(data.system_props["gap"], raw.system_props["gap"][keep])
    assert meta["units"]["gap"] == "eV"
    order = {"single": 1, "double": 2, "triple": 3}
    orders = np.array([order[t] for t in meta["bond_types"]])
    for k in range(len(data)):
        s, e = data.offsets[k], data.offsets[k + 1]
        z, pos = data.numbers[s:e], data.positions[s:e]
        m = atomic_masses[z]
        np.testing.assert_allclose((m[:, None] * pos).sum(0) / m.sum(), 0.0, atol=1e-9)
        assert np.all(np.diff(np.linalg.norm(pos, axis=1)) >= 0)
        # same atoms as QM9 (sorted), stored bonds satisfy the valence rule
        j = keep[k]
        a, b = raw.offsets[j], raw.offsets[j + 1]
        assert sorted(z.tolist()) == sorted(raw.numbers[a:b].tolist())
        es, ee = data.edges.offsets[k], data.edges.offsets[k + 1]
        total = np.bincount(
            data.edges.edge_index[0, es:ee],
            weights=orders[data.edges.attrs["bond_type"][es:ee]],
            minlength=e - s,
        )
        assert total.tolist() == [VALENCE[x] for x in z.tolist()]
    check = check_molecule(data.numbers[: data.offsets[1]], data.positions[: data.offsets[1]])
    assert data.system_props["canonical_smiles"][0] == check.smiles == "C"
    assert data.system_props["canonical_smiles"][5] == "C=O"
    assert sorted(set(data.system_props["split"].tolist())) == ["test", "train", "val"]


def test_gap_filter_and_no_small_rings(cached_qm9):
    raw = cached_qm9
    data, meta = prepare_qm9_generative(first=300, max_gap=6.0, n_val=10)
    expected = raw.system_props["index"][:300][raw.system_props["gap"][:300] < 6.0]
    dropped = [i for ids in meta["dropped"]["qm9_index"].values() for i in ids]
    np.testing.assert_array_equal(data.system_props["index"], np.setdiff1d(expected, dropped))
    assert np.all(data.system_props["gap"] < 6.0)
    assert meta["split"]["kind"] == "subset"
    assert meta["split"]["sizes"] == {"train": len(data) - 10, "val": 10, "test": 0}
    same, _ = prepare_qm9_generative(first=300, where="gap<6", n_val=10)
    np.testing.assert_array_equal(same.system_props["index"], data.system_props["index"])

    rings, meta = prepare_qm9_generative(first=300, no_small_rings=True, n_train=100, n_val=20)
    assert np.all(rings.system_props["rings"][:, :2] == 0)
    assert meta["filters"]["n_removed_small_rings"] > 0
    assert len(rings) == 298 - meta["filters"]["n_removed_small_rings"]


def test_prepare_errors(cached_qm9):
    with pytest.raises(ValueError, match="not both"):
        prepare_qm9_generative(limit=10, first=10)
    with pytest.raises(ValueError, match=r"exceed the 298 systems.*--n-train"):
        prepare_qm9_generative(first=300)
    with pytest.raises(ValueError, match="no QM9 molecule satisfies gap < -1"):
        prepare_qm9_generative(first=300, max_gap=-1.0)


def test_cli_qm9_generative(cached_qm9, tmp_path):
    out = tmp_path / "qm9gen.h5"
    res = invoke(
        "data", "qm9-generative", "--out", out, "--first", 300, "--n-train", 200,
        "--n-val", "50", "--quiet", "--json",
    )  # fmt: skip
    summary = last_json(res.stdout)
    assert summary["n_systems"] == 298 and summary["dropped"]["n_dropped"] == 2
    assert summary["split"]["sizes"] == {"train": 200, "val": 50, "test": 48}
    text = one_line(res.stdout)
    assert "wrote 298 molecules" in text and "overcoordinated 1, valence 1" in text
    data, meta = read_dataset(out)
    assert len(data) == 298 and data.edges.spec.kind == "bonds"
    assert meta["dropped"]["reasons"] == {"overcoordinated": 1, "valence": 1}
    assert set(data.system_props) >= {"canonical_smiles", "mirror_smiles", "rings", "split", "gap"}

    res = invoke("data", "qm9-generative", "--out", out, "--first", 300, code=2)
    assert "already exists; pass --overwrite" in one_line(res.stderr)
    res = invoke("data", "qm9-generative", "--out", tmp_path / "b.h5", "--first", 30, "--limit",
                 5, code=2)  # fmt: skip
    assert "not both" in one_line(res.stderr)
    res = invoke("data", "qm9-generative", "--out", tmp_path / "c.h5", "--first", 300,
                 "--where", "gap~3", code=2)  # fmt: skip
    assert "cannot read the condition 'gap~3'" in one_line(res.stderr)
    assert not (tmp_path / "c.h5").exists()


def test_no_small_rings_default_split_shrinks_training(monkeypatch):
    from ase.build import molecule

    import deepatoms.generate.qm9_prep as prep

    monkeypatch.setitem(prep.DEFAULT_SPLITS, "no_small_rings", (5, 2, None))  # 50k/2k in small
    mols = [molecule(n) for n in ("CH4", "C2H6", "CH3OH", "H2O", "NH3")]
    data, info = prep.prepare_molecules(PackedSystems.from_atoms(mols), True, kind="no_small_rings")
    assert info["split"]["sizes"] == {"train": 3, "val": 2, "test": 0}
    assert info["dropped"]["n_dropped"] == 0 and len(data) == 5
    with pytest.raises(ValueError, match="unknown data-set kind"):
        prep.prepare_molecules(PackedSystems.from_atoms(mols), kind="gap")
