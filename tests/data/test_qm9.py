"""QM9 from qm9pack: exact values, atomization energies, seeded subsets, the full set."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from deepatoms.data.dataset import read_dataset, write_dataset
from deepatoms.data.sources.qm9 import (
    HARTREE_TO_EV,
    QM9_ATOMREFS_HARTREE,
    QM9_TARGETS,
    load_qm9,
    qm9_data_dir,
)
from deepatoms.data.stats import atomref_sum

HA = 27.211386


@pytest.fixture(scope="module")
def qm9():
    loaded = load_qm9(progress=False)
    assert "qm9pack" not in sys.modules, "load_qm9 imported the qm9pack module"
    return loaded


@pytest.fixture(scope="module")
def subset():
    return load_qm9(limit=50, seed=1, progress=False)


def row_of(data, qm9_index: int) -> int:
    k = int(np.searchsorted(data.system_props["index"], qm9_index))
    assert data.system_props["index"][k] == qm9_index
    return k


def test_constants():
    assert HARTREE_TO_EV == HA
    targets = ["mu", "alpha", "homo", "lumo", "gap", "r2", "zpve", "U0", "U", "H", "G", "Cv"]
    assert targets == QM9_TARGETS
    assert QM9_ATOMREFS_HARTREE["U0"][6] == -37.846772
    assert QM9_ATOMREFS_HARTREE["G"][9] == -99.733544
    assert (qm9_data_dir() / "qm9_part1.csv").is_file()


def test_full_set(qm9):
    data, meta = qm9
    assert len(data) == 130_831
    assert data.n_atoms.max() == 29 and data.n_atoms.min() == 3
    assert set(np.unique(data.numbers).tolist()) <= {1, 6, 7, 8, 9}
    heavy = np.bincount(np.repeat(np.arange(len(data)), data.n_atoms), weights=data.numbers > 1)
    assert heavy.max() == 9
    assert np.all(np.diff(data.system_props["index"]) > 0)  # sorted by QM9 index
    assert data.system_props["index"][0] == 1 and data.system_props["index"][-1] == 133_885
    assert not data.pbc.any() and not data.cell.any()
    for name in [*QM9_TARGETS, "U0_atom", "U_atom", "H_atom", "G_atom", "Cv_atom", "index"]:
        assert data.system_props[name].shape == (len(data),), name
        assert np.all(np.isfinite(data.system_props[name])), name
    assert data.atom_props["mulliken"].shape == (data.offsets[-1],)
    assert meta["source"] == "qm9pack 1.0.3"
    assert meta["provenance"]["level_of_theory"] == "B3LYP/6-31G(2df,p)"
    assert meta["provenance"]["limit"] is None
    assert meta["units"]["U0"] == "eV" and meta["units"]["mu"] == "Debye"
    assert meta["units"]["alpha"] == "Bohr^3" and meta["units"]["r2"] == "Bohr^2"
    assert meta["units"]["Cv"] == "cal/(mol K)" and meta["units"]["mulliken"] == "e"
    assert meta["atomrefs"]["U0"]["1"] == -0.500273 * HA
    assert meta["atomrefs"]["Cv"]["8"] == 2.981
    # mulliken charges of a neutral molecule sum to ~0
    sums = np.add.reduceat(data.atom_props["mulliken"], data.offsets[:-1])
    assert np.abs(sums).max() < 1e-3


def test_methane(qm9):
    data, _ = qm9
    k = row_of(data, 1)
    s, e = data.offsets[k], data.offsets[k + 1]
    assert e - s == 5
    assert data.numbers[s:e].tolist() == [6, 1, 1, 1, 1]
    assert data.system_props["smiles"][k] == "C"
    np.testing.assert_array_equal(data.positions[s], [-0.0126981359, 1.0858041578, 0.0080009958])
    np.testing.assert_array_equal(
        data.atom_props["mulliken"][s:e], [-0.535689, 0.133921, 0.133922, 0.133923, 0.133923]
    )
    p = {name: v[k] for name, v in data.system_props.items()}
    assert p["U0"] == -40.47893 * HA  # exact conversion
    assert p["U"] == -40.476062 * HA
    assert p["H"] == -40.475117 * HA
    assert p["G"] == -40.498597 * HA
    assert p["homo"] == -0.3877 * HA and p["lumo"] == 0.1171 * HA and p["gap"] == 0.5048 * HA
    assert p["zpve"] == 0.044749 * HA
    assert (p["mu"], p["alpha"], p["r2"], p["Cv"]) == (0.0, 13.21, 35.3641, 6.469)
    # spec: U0_atom = -40.47893 - (-37.846772 - 4 * 0.500273) = -0.631066 Ha = -17.172 eV
    assert p["U0_atom"] == pytest.approx(-0.631066 * HA, abs=1e-9)
    assert p["U0_atom"] == pytest.approx(-17.172, abs=1e-3)
    assert p["Cv_atom"] == pytest.approx(6.469 - 5 * 2.981, abs=1e-12)
    assert p["G_atom"] == pytest.approx((-40.498597 + 37.861317 + 4 * 0.510927) * HA, abs=1e-9)


def test_water(qm9):
    data, _ = qm9
    k = row_of(data, 3)
    s, e = data.offsets[k], data.offsets[k + 1]
    assert data.numbers[s:e].tolist() == [8, 1, 1]
    assert data.system_props["smiles"][k] == "O"
    np.testing.assert_array_equal(
        data.positions[s:e],
        [
            [-0.0343604951, 0.9775395708, 0.0076015923],
            [0.0647664923, 0.0205721989, 0.0015346341],
            [0.8717903737, 1.3007924048, 0.0006931336],
        ],
    )
    p = {name: v[k] for name, v in data.system_props.items()}
    assert p["U0"] == -76.404702 * HA
    assert p["mu"] == 1.8511 and p["alpha"] == 6.31 and p["Cv"] == 6.002
    assert p["U0_atom"] == pytest.approx((-76.404702 + 75.064579 + 2 * 0.500273) * HA, abs=1e-9)
    assert p["Cv_atom"] == pytest.approx(6.002 - 3 * 2.981, abs=1e-12)


def test_atomization_matches_metadata_atomrefs(qm9):
    data, meta = qm9
    for prop in ("U0", "U", "H", "G", "Cv"):
        ref = atomref_sum(data.numbers, data.offsets, meta["atomrefs"][prop])
        np.testing.assert_array_equal(
            data.system_props[f"{prop}_atom"], data.system_props[prop] - ref
        )


def test_subset_reproducible_and_consistent(qm9, subset):
    full, _ = qm9
    a, meta_a = subset
    b, _ = load_qm9(limit=50, seed=1, progress=False)
    c, _ = load_qm9(limit=50, seed=2, progress=False)
    assert len(a) == 50
    np.testing.assert_array_equal(a.system_props["index"], b.system_props["index"])
    np.testing.assert_array_equal(a.positions, b.positions)
    assert not np.array_equal(a.system_props["index"], c.system_props["index"])
    assert np.all(np.diff(a.system_props["index"]) > 0)
    assert meta_a["provenance"]["limit"] == 50 and meta_a["provenance"]["seed"] == 1
    # the subset is exactly the corresponding molecules of the full set
    rows = np.searchsorted(full.system_props["index"], a.system_props["index"])
    ref = full.subset(rows)
    np.testing.assert_array_equal(ref.numbers, a.numbers)
    np.testing.assert_array_equal(ref.positions, a.positions)
    np.testing.assert_array_equal(ref.offsets, a.offsets)
    for name in full.system_props:
        np.testing.assert_array_equal(ref.system_props[name], a.system_props[name])
    np.testing.assert_array_equal(ref.atom_props["mulliken"], a.atom_props["mulliken"])


def test_limit_errors():
    with pytest.raises(ValueError, match="non-negative int or None, got -1"):
        load_qm9(limit=-1, progress=False)
    with pytest.raises(ValueError, match="limit=200000 exceeds the 130831 molecules"):
        load_qm9(limit=200_000, progress=False)


@pytest.mark.slow
def test_empty_subset_and_no_import_in_fresh_process():
    empty, _ = load_qm9(limit=0, progress=False)
    assert len(empty) == 0 and empty.positions.shape == (0, 3)
    code = (
        "import sys\n"
        "from deepatoms.data.sources.qm9 import load_qm9\n"
        "data, meta = load_qm9(limit=3, progress=False)\n"
        "assert len(data) == 3\n"
        "assert 'qm9pack' not in sys.modules, 'qm9pack was imported'\n"
        "assert 'pkg_resources' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_subset_dataset_round_trip(subset, tmp_path):
    data, meta = subset
    write_dataset(tmp_path / "q.h5", data, meta)
    back, meta2 = read_dataset(tmp_path / "q.h5")
    np.testing.assert_array_equal(back.positions, data.positions)
    np.testing.assert_array_equal(back.system_props["smiles"], data.system_props["smiles"])
    np.testing.assert_array_equal(back.system_props["U0_atom"], data.system_props["U0_atom"])
    assert meta2["atomrefs"] == meta["atomrefs"]
    assert meta2["provenance"] == meta["provenance"]


@pytest.mark.slow
def test_full_dataset_file_round_trip(qm9, tmp_path):
    """All of QM9 written and read back unchanged, in a compact file. (Its read time is not
    asserted here: a timed check fails on a busy machine; speed lives in benchmarks/.)"""
    data, meta = qm9
    path = tmp_path / "qm9.h5"
    write_dataset(path, data, meta)
    back, _ = read_dataset(path)
    assert len(back) == 130_831
    np.testing.assert_array_equal(back.positions, data.positions)
    np.testing.assert_array_equal(back.system_props["smiles"], data.system_props["smiles"])
    assert path.stat().st_size < 120e6
