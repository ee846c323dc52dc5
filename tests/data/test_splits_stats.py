"""Splits (seeded, disjoint, saved as JSON) and training statistics (atom references, μ/σ)."""

from __future__ import annotations

import json
import logging
import os
import warnings

import numpy as np
import pytest
import torch

from deepatoms.data.splits import load_split, random_split, save_split
from deepatoms.data.stats import atomref_sum, fit_atomrefs, target_statistics


# -- splits -------------------------------------------------------------------------------------
def test_random_split_sizes_disjoint_reproducible():
    s = random_split(100, 70, 10, seed=3)
    assert [len(s[k]) for k in ("train", "val", "test")] == [70, 10, 20]
    all_idx = np.concatenate([s["train"], s["val"], s["test"]])
    np.testing.assert_array_equal(np.sort(all_idx), np.arange(100))  # disjoint, complete
    for v in s.values():
        assert v.dtype == np.int64 and np.all(np.diff(v) > 0)
    again = random_split(100, 70, 10, seed=3)
    for k in s:
        np.testing.assert_array_equal(s[k], again[k])
    other = random_split(100, 70, 10, seed=4)
    assert not np.array_equal(s["train"], other["train"])
    # explicit test size leaves the rest unused
    t = random_split(100, 50, 10, 15, seed=0)
    assert [len(t[k]) for k in ("train", "val", "test")] == [50, 10, 15]
    assert len(np.intersect1d(t["train"], t["test"])) == 0
    # the same seeded permutation as documented
    perm = np.random.default_rng(0).permutation(100)
    np.testing.assert_array_equal(t["val"], np.sort(perm[50:60]))


def test_random_split_fractions():
    s = random_split(1000, 0.8, 0.1, seed=0)
    assert [len(s[k]) for k in ("train", "val", "test")] == [800, 100, 100]
    s = random_split(10, 0.5, 2, 0.3, seed=0)
    assert [len(s[k]) for k in ("train", "val", "test")] == [5, 2, 3]
    s = random_split(10, 4.0, 1, seed=0)  # whole-number floats are counts
    assert len(s["train"]) == 4


def test_random_split_errors():
    with pytest.raises(ValueError, match=r"train=90 \+ val=20 = 110 exceed the 100 systems"):
        random_split(100, 90, 20)
    with pytest.raises(ValueError, match=r"train=50 \+ val=20 \+ test=40 = 110 exceed the 100"):
        random_split(100, 50, 20, 40)
    with pytest.raises(ValueError, match="must not be negative"):
        random_split(100, -1, 10)
    with pytest.raises(ValueError, match=r"n_train=2\.5"):
        random_split(100, 2.5, 10)
    with pytest.raises(TypeError, match="n_val"):
        random_split(100, 10, "5")


def test_save_load_split(tmp_path):
    split = random_split(50, 30, 10, seed=1)
    path = tmp_path / "run" / "split.json"
    save_split(path, split, {"dataset": "qm9.h5", "n_systems": 50, "seed": np.int64(1)})
    back = load_split(path)
    assert list(back) == ["train", "val", "test"]
    for k in split:
        np.testing.assert_array_equal(back[k], split[k])
        assert back[k].dtype == np.int64
    back2, meta = load_split(path, with_meta=True)
    np.testing.assert_array_equal(back2["test"], split["test"])
    assert meta == {"dataset": "qm9.h5", "n_systems": 50, "seed": 1}
    doc = json.loads(path.read_text())
    assert doc["sizes"] == {"train": 30, "val": 10, "test": 10}
    assert os.listdir(path.parent) == ["split.json"]  # no temp file left


def test_split_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothere\.json"):
        load_split(tmp_path / "nothere.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match=r"bad\.json.*not valid JSON"):
        load_split(bad)
    other = tmp_path / "other.json"
    other.write_text('{"train": [1, 2]}')
    with pytest.raises(ValueError, match=r"other\.json.*not a deepatoms split"):
        load_split(other)
    with pytest.raises(ValueError, match=r"'train'.*integer"):
        save_split(tmp_path / "x.json", {"train": np.array([0.5])}, {})
    assert not (tmp_path / "x.json").exists()


# -- atom references ----------------------------------------------------------------------------
# systems: H2, CH4, C2, (empty), CH2 with ref(H) = -0.5, ref(C) = -37.75
NUMBERS = np.array([1, 1, 6, 1, 1, 1, 1, 6, 6, 6, 1, 1])
OFFSETS = np.array([0, 2, 7, 9, 9, 12])
REFS = {1: -0.5, 6: -37.75}
EXACT = np.array([-1.0, -39.75, -75.5, 0.0, -38.75])


def test_atomref_sum_exact_with_empty_system():
    np.testing.assert_array_equal(atomref_sum(NUMBERS, OFFSETS, REFS), EXACT)
    # string keys as in dataset metadata, and torch inputs
    str_refs = {"1": -0.5, "6": -37.75}
    got = atomref_sum(torch.as_tensor(NUMBERS), torch.as_tensor(OFFSETS), str_refs)
    np.testing.assert_array_equal(got, EXACT)
    np.testing.assert_array_equal(atomref_sum([], [0, 0, 0], REFS), [0.0, 0.0])


def test_atomref_sum_missing_element():
    with pytest.raises(ValueError, match=r"no atom reference for atomic number\(s\) \[6\]"):
        atomref_sum(NUMBERS, OFFSETS, {1: -0.5})
    with pytest.raises(ValueError, match="offsets end at 12 but there are 11 atoms"):
        atomref_sum(NUMBERS[:-1], OFFSETS, REFS)


def test_fit_atomrefs_exact_solution():
    refs = fit_atomrefs(NUMBERS, OFFSETS, EXACT)
    assert set(refs) == {1, 6}
    assert refs[1] == pytest.approx(-0.5, abs=1e-12)
    assert refs[6] == pytest.approx(-37.75, abs=1e-12)
    # overdetermined with residuals: compare with the normal equations
    t = EXACT + np.array([0.1, -0.2, 0.05, 0.0, 0.3])
    counts = np.array([[2, 0], [4, 1], [0, 2], [0, 0], [2, 1]], dtype=float)
    expected = np.linalg.solve(counts.T @ counts, counts.T @ t)
    refs = fit_atomrefs(NUMBERS, OFFSETS, torch.as_tensor(t))
    assert [refs[1], refs[6]] == pytest.approx(expected.tolist(), abs=1e-12)
    # a third, absent element gets 0 (minimum norm) and a warning
    refs = fit_atomrefs(NUMBERS, OFFSETS, EXACT, elements=[1, 6, 8])
    assert refs[8] == pytest.approx(0.0, abs=1e-12) and refs[1] == pytest.approx(-0.5)


def test_fit_atomrefs_rank_deficient_and_errors(caplog):
    # every system has the ratio C:H = 1:2 -> not unique, minimum-norm solution
    numbers, offsets = np.array([6, 1, 1, 6, 6, 1, 1, 1, 1]), np.array([0, 3, 9])
    with caplog.at_level(logging.WARNING, logger="deepatoms.data.stats"):
        refs = fit_atomrefs(numbers, offsets, np.array([-3.0, -6.0]))
    assert "rank 1 < 2" in caplog.text
    assert refs[1] * 2 + refs[6] == pytest.approx(-3.0)
    with pytest.raises(ValueError, match=r"element\(s\) \[6\] are not in elements \[1\]"):
        fit_atomrefs(NUMBERS, OFFSETS, EXACT, elements=[1])
    with pytest.raises(ValueError, match=r"shape \[5\]"):
        fit_atomrefs(NUMBERS, OFFSETS, EXACT[:3])


# -- target statistics --------------------------------------------------------------------------
def test_sum_readout_statistics():
    t, n = np.array([2.0, 9.0, 4.0]), np.array([1, 3, 2])
    # per-atom values 2, 3, 2
    mean, std = target_statistics(t, n, "sum")
    assert mean == pytest.approx(7 / 3, abs=1e-15)
    assert std == pytest.approx(np.sqrt(2 / 9), abs=1e-15)
    _, std1 = target_statistics(t, n, "sum", ddof=1)
    assert std1 == pytest.approx(np.sqrt(1 / 3), abs=1e-15)
    # with references: (t - ref)/n = (2-1)/1, (9-3)/3, (4-0)/2 = 1, 2, 2
    mean, std = target_statistics(t, n, "sum", atomref_per_system=np.array([1.0, 3.0, 0.0]))
    assert mean == pytest.approx(5 / 3, abs=1e-15)
    assert std == pytest.approx(np.sqrt(2 / 9), abs=1e-15)


def test_mean_readout_statistics():
    t, n = np.array([1.0, 4.0, 7.0]), np.array([2, 4, 1])
    ref = np.array([2.0, 8.0, 3.0])
    # r = t - ref/n = 0, 2, 4
    mean, std = target_statistics(torch.as_tensor(t), torch.as_tensor(n), "mean", ref)
    assert mean == pytest.approx(2.0, abs=1e-15)
    assert std == pytest.approx(np.sqrt(8 / 3), abs=1e-15)
    mean, std = target_statistics(t, n, "mean")
    assert mean == pytest.approx(4.0) and std == pytest.approx(np.sqrt(6.0))


def test_zero_std_is_replaced_with_warning():
    t, n, ref = np.array([-3.0, -8.0]), np.array([2, 4]), np.array([-1.0, -4.0])
    with pytest.warns(UserWarning, match="using 1.0"):
        mean, std = target_statistics(t, n, "sum", ref)
    assert (mean, std) == (-1.0, 1.0)


def test_statistics_errors():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="'sum' or 'mean'"):
            target_statistics([1.0, 2.0], [1, 1], "max")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="no atoms"):
            target_statistics([1.0, 2.0], [1, 0], "sum")
        with pytest.raises(ValueError, match="empty training set"):
            target_statistics([], [], "sum")
        with pytest.raises(ValueError, match="non-finite"):
            target_statistics([1.0, np.nan], [1, 1], "mean")
        with pytest.raises(ValueError, match="n_atoms has shape"):
            target_statistics([1.0, 2.0], [1, 1, 1], "mean")


def test_saved_split_is_checked_against_the_data(tmp_path):
    from deepatoms.data.splits import save_split, saved_split

    path = tmp_path / "split.json"
    save_split(path, {"train": np.array([0, 2]), "val": np.array([1]), "test": np.array([], int)},
               meta={"n_systems": 3})  # fmt: skip
    assert saved_split(path, "train", 3).tolist() == [0, 2]
    assert saved_split(path, "val").tolist() == [1]  # size unknown: not checked
    with pytest.raises(ValueError, match=r"unknown split 'nope' in .*choose one of"):
        saved_split(path, "nope", 3)
    with pytest.raises(ValueError, match=r"made for a dataset of 3 systems, but x\.h5 has 5"):
        saved_split(path, "train", 5, "x.h5")
    with pytest.raises(ValueError, match=r"split 'test' in .* is empty"):
        saved_split(path, "test", 3)
