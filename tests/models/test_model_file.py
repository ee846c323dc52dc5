"""The one model-file envelope: every family round-trips, the four earlier formats still load,
and every bad file gives one clear error that names it, without running code from it."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch
from ase.build import molecule

from deepatoms.core.errors import ModelFileError
from deepatoms.data.graph import Batch
from deepatoms.data.neighbors import GraphSpec
from deepatoms.data.voxels.dataset import ClassMap
from deepatoms.data.voxels.grid import GridSpec
from deepatoms.grammar.cfg import load_grammar
from deepatoms.models.density_model import DensityVAEModel
from deepatoms.models.grammar_vae import GrammarVAE
from deepatoms.models.latent_regressor import LatentRegressor, LatentRegressors
from deepatoms.models.loaded import LoadedDensityModel, LoadedModel
from deepatoms.models.loading import load_model, resolve_model_path
from deepatoms.models.model_file import FORMAT_VERSION, read_model_file, write_model_file
from deepatoms.models.registry import build_model

SCHNET = {"name": "schnet", "n_atom_basis": 8, "n_interactions": 1, "rbf": {"n_rbf": 6, "stop": 4.0},
          "cutoff_fn": "cosine", "cutoff": 4.0, "property": "energy"}  # fmt: skip
GRAPH = GraphSpec("cutoff", 4.0)
TINY_DENSITY = {
    "latent": 4,
    "encoder": {"widths": [2, 2, 2, 4], "padding": "same"},
    "decoder": {"start": 3, "widths": [4, 2, 2, 2], "paddings": [2, 2, 0, 1]},
    "unet": {"widths": [2], "bottleneck": 4},
}


def _schnet() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(SCHNET).eval()


def _energy(model: torch.nn.Module) -> torch.Tensor:
    batch = Batch.from_atoms([molecule("CH4"), molecule("H2O")], GRAPH)
    with torch.no_grad():
        return model(batch)["energy"]


# -- today's envelope ---------------------------------------------------------------------------
def test_envelope_round_trip_keeps_weights_target_and_provenance(tmp_path):
    model = _schnet()
    path = write_model_file(
        tmp_path / "run" / "model.pt", model, "schnet", extras={"graph": GRAPH.to_config()},
        units={"target": "eV"}, target={"name": "energy", "unit": "eV", "readout": "sum"},
        training_data={"path": "x.h5", "fingerprint": "sha256:abc"}, meta={"note": 1},
    )  # fmt: skip
    mf = read_model_file(path)
    assert (mf.family, mf.model, mf.format_version) == ("schnet", "schnet", FORMAT_VERSION)
    assert mf.training_data["fingerprint"] == "sha256:abc"
    loaded = load_model(tmp_path / "run")  # a run folder resolves to its model.pt
    assert isinstance(loaded, LoadedModel) and loaded.graph == GRAPH and loaded.unit == "eV"
    assert loaded.meta["note"] == 1 and loaded.meta["model_file"] == str(path)
    torch.testing.assert_close(_energy(loaded.model), _energy(model))
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# -- the four earlier formats -------------------------------------------------------------------
def _legacy(path, payload) -> None:
    torch.save({"deepatoms_version": "0.1.0", "format_version": 1, **payload}, path)


def test_legacy_property_model_file_loads(tmp_path):
    model = _schnet()
    _legacy(tmp_path / "m.pt", {
        "format": "deepatoms-model", "model_config": model.config, "graph": GRAPH.to_config(),
        "property": "energy", "unit": "eV", "state_dict": model.state_dict(),
        "meta": {"elements": [1, 6, 8], "stats": {"readout": "sum", "mean": 0.0, "std": 1.0}},
    })  # fmt: skip
    loaded = load_model(tmp_path / "m.pt")
    assert loaded.property == "energy" and loaded.unit == "eV"
    assert loaded.meta["elements"] == [1, 6, 8] and loaded.meta["family"] == "schnet"
    torch.testing.assert_close(_energy(loaded.model), _energy(model))


def test_legacy_gschnet_file_loads(tmp_path):
    torch.manual_seed(0)
    model = build_model({"name": "gschnet", "n_atom_basis": 8, "n_interactions": 1,
                         "n_filters": 8, "type_head": [8], "distance_head": [8], "n_bins": 20})  # fmt: skip
    _legacy(tmp_path / "g.pt", {
        "format": "deepatoms-model", "model_config": model.config,
        "graph": GraphSpec("all", None).to_config(), "property": "energy", "unit": "",
        "state_dict": model.state_dict(), "meta": {"elements": [1, 6]},
    })  # fmt: skip
    loaded = load_model(tmp_path / "g.pt", expect="gschnet")
    assert loaded.meta["family"] == "gschnet"
    for a, b in zip(loaded.model.state_dict().values(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_legacy_grammar_vae_file_loads(tmp_path):
    grammar = load_grammar("smiles")
    torch.manual_seed(0)
    model = GrammarVAE({"n_rules": grammar.n_rules, "max_len": 30, "latent_dim": 3, "hidden": 8,
                        "dense": 8})  # fmt: skip
    _legacy(tmp_path / "v.pt", {
        "format": "deepatoms-grammar-vae", "model_config": model.config,
        "grammar": {"name": grammar.name, "text": grammar.text},
        "state_dict": model.state_dict(), "meta": {"note": "old"},
    })  # fmt: skip
    space = load_model(tmp_path / "v.pt")
    assert space.grammar.text == grammar.text and space.meta["note"] == "old"
    z = np.zeros((2, 3))
    model.eval()
    assert space.decode_greedy(z) == [r for r in model.decode(torch.zeros(2, 3), grammar).strings]


def test_legacy_regressor_file_loads_and_predicts_the_same(tmp_path):
    torch.manual_seed(0)
    singles = {k: LatentRegressor(3, (8, 4), 0.0, ()) for k in ("lumo", "gap")}
    stats = {"lumo": (-0.5, 0.2), "gap": (5.0, 1.5)}
    _legacy(tmp_path / "r.pt", {
        "format": "deepatoms-latent-regressors", "latent_dim": 3, "properties": ["lumo", "gap"],
        "models": {k: {"config": m.config, "state_dict": m.state_dict(), "mean": stats[k][0],
                       "std": stats[k][1], "stats": {"val_mae": 0.1}} for k, m in singles.items()},
        "meta": {},
    })  # fmt: skip
    regs = load_model(tmp_path / "r.pt", expect="latent-regressors")
    assert isinstance(regs, LatentRegressors) and regs.properties == ["lumo", "gap"]
    assert regs.stats["gap"]["val_mae"] == 0.1
    z = np.random.default_rng(0).standard_normal((5, 3))
    pred = regs.predict(z)
    for k, m in singles.items():
        with torch.no_grad():
            want = m.eval()(torch.as_tensor(z, dtype=torch.float32)).double().numpy()
        np.testing.assert_allclose(pred[k], want * stats[k][1] + stats[k][0], rtol=1e-6)


def test_legacy_density_file_loads(tmp_path):
    grid, cmap = GridSpec(n=20), ClassMap.compact([8, 11])
    torch.manual_seed(0)
    model = DensityVAEModel(TINY_DENSITY, grid.n, cmap.n_classes)
    _legacy(tmp_path / "d.pt", {
        "format": "deepatoms-density-vae", "model_config": model.config,
        "state_dict": model.state_dict(), "grid": grid.as_dict(), "class_map": cmap.to_list(),
        "meta": {"regime": "single"},
    })  # fmt: skip
    loaded = load_model(tmp_path / "d.pt", expect="density_vae")
    assert isinstance(loaded, LoadedDensityModel)
    assert loaded.grid == grid and loaded.class_map == cmap and loaded.meta["regime"] == "single"


# -- files from strangers -----------------------------------------------------------------------
class _Evil:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickle_that_carries_code_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"format": "deepatoms-model", "format_version": 2, "x": _Evil(str(marker))},
               tmp_path / "evil.pt")  # fmt: skip
    with open(tmp_path / "evil.pkl", "wb") as fh:
        pickle.dump(_Evil(str(marker)), fh)
    for name in ("evil.pt", "evil.pkl"):
        with pytest.raises(ModelFileError, match=name):
            load_model(tmp_path / name)
    with pytest.raises(ModelFileError, match="could run code"):
        load_model(tmp_path / "evil.pt")
    assert not marker.exists()


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", "not a readable model file (empty"),
        (b"\x00\x01garbage" * 50, "not a readable model file"),
        (b"not a model at all", "not a readable model file"),
    ],
)
def test_damaged_files_give_one_clear_error(tmp_path, content, words):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(ModelFileError, match=r"bad\.pt") as err:
        load_model(path)
    assert words in str(err.value)


def test_truncated_file_is_refused(tmp_path):
    path = write_model_file(
        tmp_path / "m.pt", _schnet(), "schnet", extras={"graph": GRAPH.to_config()}
    )
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="truncated, corrupted"):
        load_model(path)


def test_other_kinds_newer_versions_and_missing_files(tmp_path):
    torch.save(
        {"format": "deepatoms-model", "format_version": FORMAT_VERSION + 1}, tmp_path / "n.pt"
    )
    with pytest.raises(ModelFileError, match="newer than this deepatoms reads"):
        load_model(tmp_path / "n.pt")
    torch.save({"format": "deepatoms-grammar-vae", "format_version": 7}, tmp_path / "g.pt")
    with pytest.raises(ModelFileError, match="newer than this deepatoms reads"):
        load_model(tmp_path / "g.pt")
    torch.save({"state_dict": {}, "pytorch-lightning_version": "2.4"}, tmp_path / "last.ckpt")
    with pytest.raises(ModelFileError, match="training checkpoint, not a model file"):
        load_model(tmp_path / "last.ckpt")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(ModelFileError, match="holds a list"):
        load_model(tmp_path / "list.pt")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_model(tmp_path / "nothing.pt")
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    (tmp_path / "run" / "checkpoints" / "last.ckpt").write_bytes(b"x")
    with pytest.raises(FileNotFoundError, match="has not finished"):
        resolve_model_path(tmp_path / "run")


def test_expected_family_weights_and_values_are_checked(tmp_path):
    model = _schnet()
    path = write_model_file(tmp_path / "m.pt", model, "schnet", extras={"graph": GRAPH.to_config()})
    with pytest.raises(ModelFileError, match=r"is a 'schnet' model \(SchNet\), not a density VAE"):
        load_model(path, expect="density_vae")
    state = model.state_dict()
    state.pop(next(iter(state)))
    torch.save({**torch.load(path, weights_only=True), "state_dict": state}, tmp_path / "w.pt")
    with pytest.raises(ModelFileError, match="weights do not match its model config"):
        load_model(tmp_path / "w.pt")
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    write_model_file(tmp_path / "nan.pt", model, "schnet", extras={"graph": GRAPH.to_config()})
    with pytest.raises(ModelFileError, match="non-finite weights"):
        load_model(tmp_path / "nan.pt")


def test_v1_family_table_agrees_with_the_registry():
    from deepatoms.models.model_file import _V1_FAMILIES
    from deepatoms.models.registry import family_of

    for model, family in _V1_FAMILIES.items():
        assert family_of(model).name == family, model
