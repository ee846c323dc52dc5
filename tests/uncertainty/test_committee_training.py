"""``deepatoms train --ensemble N`` end to end: members in one run folder, one committee model
file, and the spread in ``predict`` and ``evaluate`` as a user calls them."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from cli_helpers import invoke, last_json
from deepatoms.data.splits import load_split
from deepatoms.models.committee import Committee
from deepatoms.models.loading import load_model
from deepatoms.train.committee import member_split

pytestmark = pytest.mark.filterwarnings("ignore:The number of training batches")
TINY = ["model.n_atom_basis=8", "model.n_interactions=1", "data.n_train=40", "data.n_val=20",
        "train.batch_size=8"]  # fmt: skip


def _train(data, out, *extra):
    args = ["train", "--preset", "schnet-fast", "--data", data, "--target", "U0", "--out", out,
            "--max-epochs", "2", "--quiet", "--json", *[a for s in TINY for a in ("--set", s)],
            *extra]  # fmt: skip
    return last_json(invoke(*args).stdout)


@pytest.fixture(scope="module")
def committee_run(qm9_small, tmp_path_factory):
    out = tmp_path_factory.mktemp("committee") / "run"
    return _train(qm9_small, out, "--ensemble", "3", "--bootstrap"), out


def test_members_share_one_split_and_form_one_model_file(committee_run, qm9_small):
    summary, out = committee_run
    assert summary["n_members"] == 3 and summary["bootstrap"]
    split = load_split(out / "split.json")
    for k in range(3):
        member = load_split(out / "members" / str(k) / "split.json")
        np.testing.assert_array_equal(member["val"], split["val"])
        np.testing.assert_array_equal(member["train"], member_split(split, 0, k, True)["train"])
        assert len(np.unique(member["train"])) < len(split["train"])  # a resample
    loaded = load_model(out)
    assert isinstance(loaded.model, Committee) and len(loaded.model) == 3
    assert loaded.model.variance_scale == pytest.approx(summary["variance_scale"])
    v = summary["val"]
    assert v["n"] == 20 and len(v["member_mae"]) == 3 and v["n_calibration"] == 20
    assert 0 <= v["miscalibration_area"] <= 0.5
    assert json.loads((out / "summary.json").read_text())["n_members"] == 3
    again = _train(qm9_small, out, "--ensemble", "3", "--bootstrap")  # finished members return
    assert all(m.get("already_finished") for m in again["members"])


def test_predict_and_evaluate_report_the_spread(committee_run, qm9_small, tmp_path):
    _, out = committee_run
    from ase.io import write

    from deepatoms.data.dataset import read_dataset

    data, _ = read_dataset(qm9_small)
    write(tmp_path / "mols.xyz", [data.get_atoms(k) for k in range(5)])
    res = last_json(invoke("predict", out, tmp_path / "mols.xyz", "--out", tmp_path / "p.csv",
                           "--quiet", "--json").stdout)  # fmt: skip
    assert len(res["std"]) == 5 and min(res["std"]) > 0
    with open(tmp_path / "p.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert "U0 std [eV]" in rows[0] and float(rows[0]["U0 std [eV]"]) == pytest.approx(
        res["std"][0]
    )
    ev = invoke("evaluate", out, "--data", qm9_small, "--split", "val", "--quiet", "--json")
    unc = last_json(ev.stdout)["uncertainty"]
    assert unc["n_members"] == 3 and unc["n_calibration"] == 20
    assert (out / "plots" / "parity_val_calibration.png").is_file()
    assert "miscalibration area" in ev.stdout


def test_committee_options_are_checked(qm9_small, tmp_path):
    res = invoke("train", "--preset", "schnet-fast", "--data", qm9_small, "--out", tmp_path / "x",
                 "--bootstrap", "--quiet", code=2)  # fmt: skip
    assert "apply to committees" in " ".join(res.stderr.split())


def test_the_variance_scale_can_be_left_out(qm9_small, tmp_path):
    """--no-variance-scale keeps the members' own spread (s = 1) and reports the fit; the same
    command without it reassembles the finished members with the fitted s, and every std then
    grows by √s."""
    from ase.io import write

    from deepatoms.data.dataset import read_dataset

    out = tmp_path / "run"
    raw = _train(qm9_small, out, "--ensemble", "2", "--no-variance-scale")
    assert raw["variance_scale"] == 1.0 and raw["variance_scale_fit"] > 0
    assert load_model(out).model.variance_scale == 1.0
    data, _ = read_dataset(qm9_small)
    write(tmp_path / "mols.xyz", [data.get_atoms(k) for k in range(4)])

    def stds():
        res = invoke("predict", out, tmp_path / "mols.xyz", "--out", tmp_path / "p.csv",
                     "--overwrite", "--quiet", "--json")  # fmt: skip
        return np.array(last_json(res.stdout)["std"])

    before = stds()
    scaled = _train(qm9_small, out, "--ensemble", "2")
    assert all(m.get("already_finished") for m in scaled["members"])
    assert scaled["variance_scale"] == pytest.approx(raw["variance_scale_fit"])
    np.testing.assert_allclose(stds(), before * np.sqrt(scaled["variance_scale"]), rtol=1e-5)
    one = invoke("train", "--preset", "schnet-fast", "--data", qm9_small, "--out",
                 tmp_path / "single", "--no-variance-scale", "--quiet", code=2)  # fmt: skip
    assert "--no-variance-scale" in one.stderr
    assert "apply to committees" in " ".join(one.stderr.split())
