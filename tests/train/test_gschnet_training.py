"""G-SchNet training runs: end to end, resume, fine-tuning, stopping (docs/gschnet.md §6–7, §9)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from ase.build import molecule

from deepatoms.config.overrides import apply_overrides
from deepatoms.core.errors import ConfigError
from deepatoms.data.bonds import pack_with_bonds
from deepatoms.data.dataset import read_dataset, write_dataset
from deepatoms.data.splits import load_split
from deepatoms.generate.traces import VALIDATION_EPOCH, prepare_molecules, training_steps
from deepatoms.models.gschnet import GSchNet, gschnet_loss
from deepatoms.models.loading import load_model
from deepatoms.models.registry import load_preset
from deepatoms.train import fit as train_gschnet
from tiny_data import write_small_molecules

SMALL_DATA = ["data.split_column=split", "train.batch_size=4", "train.eval_batch_size=3"]
TINY_MODEL = [
    "model.n_atom_basis=16",
    "model.n_interactions=2",
    "model.type_head=[16]",
    "model.distance_head=[32]",
]


@pytest.fixture(scope="module")
def qm_small(tmp_path_factory) -> str:
    """22 small H/C/N/O/F molecules, centred, sorted, with bonds and a split column."""
    return str(write_small_molecules(tmp_path_factory.mktemp("gschnet") / "small.h5"))


def _cfg(*extra: str, tiny: bool = True) -> dict:
    model = TINY_MODEL if tiny else []
    return apply_overrides(load_preset("gschnet-qm9-fast"), [*SMALL_DATA, *model, *extra])


def test_fast_preset_trains_end_to_end_and_exports_the_best_model(qm_small, tmp_path):
    """The fast preset's own model (F = 64, 4 blocks), 3 epochs on 16 training molecules."""
    cfg = _cfg("train.max_epochs=3", tiny=False)
    s = train_gschnet(cfg, qm_small, tmp_path / "run", progress=False)
    assert loaded_width(s) == 64
    assert (s["n_train"], s["n_val"], s["n_test"]) == (16, 4, 2)
    assert s["epochs"] == 3 and s["steps"] == 3 * 4 and not s["resumed"]
    assert np.isfinite(s["best_val_loss"]) and s["wall_time_s"] < 30
    split = load_split(tmp_path / "run" / "split.json")
    np.testing.assert_array_equal(split["val"], np.arange(16, 20))
    loaded = load_model(s["model_file"])
    assert isinstance(loaded.model, GSchNet) and loaded.graph.kind == "all"
    assert loaded.meta["best_val_loss"] == s["best_val_loss"]
    # The validation loss equals the loss of all fixed validation steps in one batch.
    data, _ = read_dataset(qm_small)
    mols = prepare_molecules(data)
    b = training_steps(mols, split["val"], seed=0, epoch=VALIDATION_EPOCH, draw_random_samples=8)
    t = b.targets
    with torch.no_grad():
        out = loaded.model(b, t["next_type"])
    loss = gschnet_loss(
        out, t["type_class"], t["distance"], b.batch, t["placement"], loaded.model.bins
    )
    assert float(loss["loss"]) == pytest.approx(s["best_val_loss"], rel=1e-5)
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["epochs"] == 3


def loaded_width(summary: dict) -> int:
    return load_model(summary["model_file"]).model.representation.n_atom_basis


def _last_state(run) -> dict:
    return torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)


def test_resume_equals_an_uninterrupted_run(qm_small, tmp_path):
    full = train_gschnet(_cfg("train.max_epochs=3"), qm_small, tmp_path / "full", progress=False)
    train_gschnet(_cfg("train.max_epochs=1"), qm_small, tmp_path / "part", progress=False)
    res = train_gschnet(_cfg("train.max_epochs=3"), qm_small, tmp_path / "part", progress=False)
    assert res["resumed"] and res["epochs"] == full["epochs"] == 3
    a, b = _last_state(tmp_path / "full"), _last_state(tmp_path / "part")
    for k, v in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][k], v, rtol=1e-5, atol=1e-6)
    with pytest.raises(ConfigError, match="different config"):
        train_gschnet(_cfg("train.lr=1e-3"), qm_small, tmp_path / "part", progress=False)


def test_init_copies_the_weights_and_resets_the_optimiser(qm_small, tmp_path):
    pre = train_gschnet(_cfg("train.max_epochs=2"), qm_small, tmp_path / "pre", progress=False)
    start = train_gschnet(
        _cfg("train.max_epochs=0"), qm_small, tmp_path / "zero", progress=False,
        init=pre["model_file"],
    )  # fmt: skip
    w_pre = load_model(pre["model_file"]).model.state_dict()
    w_start = load_model(start["model_file"]).model.state_dict()
    assert all(torch.equal(w_pre[k], w_start[k]) for k in w_pre)
    fine = train_gschnet(
        _cfg("train.max_epochs=1"), qm_small, tmp_path / "fine", progress=False,
        init=pre["model_file"],
    )  # fmt: skip
    opt = _last_state(tmp_path / "fine")["optimizer_states"][0]
    steps = {int(v["step"]) for v in opt["state"].values()}
    assert steps == {fine["steps"]} == {4}  # Adam moments count only the fine-tuning steps
    assert opt["param_groups"][0]["lr"] == pytest.approx(5e-4)
    assert fine["init"]["model_file"].endswith("model.pt")
    with pytest.raises(ConfigError, match="n_interactions"):
        train_gschnet(
            _cfg("model.n_interactions=3"), qm_small, tmp_path / "bad", progress=False,
            init=pre["model_file"],
        )  # fmt: skip


def test_training_stops_when_the_learning_rate_reaches_its_floor(qm_small, tmp_path):
    s = train_gschnet(
        _cfg("train.max_epochs=5", "train.lr=1e-6", "train.min_lr=1e-6"),
        qm_small, tmp_path / "floor", progress=False,
    )  # fmt: skip
    assert s["epochs"] == 1 and s["final_lr"] == pytest.approx(1e-6)


def test_data_without_bonds_is_refused(tmp_path):
    data, _ = pack_with_bonds([molecule("CH4"), molecule("H2O")])
    data.edges = None
    path = tmp_path / "nobonds.h5"
    write_dataset(path, data, {"units": {}, "source": "test", "provenance": {}})
    with pytest.raises(ConfigError, match=r"nobonds\.h5 has no stored bond graph"):
        train_gschnet(_cfg(), path, tmp_path / "run", progress=False)
