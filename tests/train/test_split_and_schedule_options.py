"""Group-preserving and column-given splits, and the nmp_qc linear learning-rate schedule."""

from __future__ import annotations

import numpy as np
import pytest

from deepatoms.data.splits import column_split, group_split
from deepatoms.train.optim import linear_decay_factor


def test_group_split_keeps_every_group_whole():
    groups = np.repeat(np.arange(10), 3)  # 10 molecules × 3 scalings
    split = group_split(groups, 0.8, 0.1, None, seed=3)
    sizes = {k: len(v) for k, v in split.items()}
    assert sizes == {"train": 24, "val": 3, "test": 3}
    seen = [set(groups[v]) for v in split.values()]
    assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])
    assert sorted(np.concatenate(list(split.values()))) == list(range(30))
    assert group_split(groups, 0.8, 0.1, None, seed=3)["val"].tolist() == split["val"].tolist()


def test_column_split_reads_labels_and_rejects_others():
    split = column_split(np.array(["train", "test", "val", "train"]))
    assert split["train"].tolist() == [0, 3] and split["val"].tolist() == [2]
    assert split["test"].tolist() == [1]
    with pytest.raises(ValueError, match="'holdout'"):
        column_split(np.array(["train", "holdout"]))


def test_linear_decay_matches_nmp_qc_schedule():
    f = [linear_decay_factor(s, 100, 0.6, (0.1, 0.9)) for s in (0, 10, 50, 90, 100)]
    assert f == pytest.approx([1.0, 1.0, 0.8, 0.6, 0.6])
    with pytest.raises(ValueError, match="lr_linear_window"):
        linear_decay_factor(0, 100, 0.6, (0.9, 0.1))


def test_a_run_killed_before_its_config_starts_afresh(tmp_path):
    """A run killed in its first seconds leaves only split.json: the same command starts it
    again instead of refusing the folder; anything else in the folder is still refused."""
    from deepatoms.core.errors import ConfigError
    from deepatoms.train.run_folder import RunFolder, check_resume

    run = RunFolder(tmp_path / "run")
    run.root.mkdir()
    (run.root / "split.json").write_text("{}")
    assert check_resume(run, {}) is False
    (run.root / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="exists and is not empty"):
        check_resume(run, {})
