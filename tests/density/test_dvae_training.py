"""Training the density VAE (docs/density_vae.md §5, §10): overfitting, run folder,
resume, presets, model files."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from deepatoms.core.errors import ConfigError
from deepatoms.data.voxels.crystal_sets import CrystalSet, select_crystals
from deepatoms.data.voxels.dataset import ClassMap, DensityDataset, collate
from deepatoms.data.voxels.grid import GridSpec
from deepatoms.models.density_model import DensityVAEModel, joint_loss
from deepatoms.models.loading import load_model as load_density_model
from deepatoms.models.registry import load_preset as density_preset
from deepatoms.models.registry import resolve_config
from deepatoms.train import fit as train_density_vae
from deepatoms.train.tasks.density_vae import LossStep, init_density_weights
from deepatoms.workflows.training import train
from model_helpers import save_density
from tiny_data import small_crystals


def resolve_density_config(config: dict) -> dict:
    return resolve_config({**config, "model": {**config.get("model", {}), "name": "density_vae"}})


TINY_MODEL = {
    "latent": 8,
    "encoder": {"widths": [2, 2, 2, 4], "padding": "same"},
    "decoder": {"start": 3, "widths": [4, 2, 2, 2], "paddings": [2, 2, 0, 1]},
    "unet": {"widths": [2], "bottleneck": 4},
}


def _crystals() -> CrystalSet:
    return small_crystals()


def test_presets_resolve_with_paper_settings():
    paper = density_preset("density-vae-paper")
    assert paper["grid"]["n"] == 30 and paper["train"]["lr"] == 1e-5
    assert paper["train"]["batch_size"] == 24 and paper["train"]["gamma"] == 0.1
    beta10 = density_preset("density-vae-beta10")
    assert beta10["train"]["beta"] == 0.1
    assert beta10["model"] == paper["model"] and beta10["grid"] == paper["grid"]
    fast = density_preset("density-vae-fast")
    model = DensityVAEModel(fast["model"], grid_n=fast["grid"]["n"], n_classes=10)
    assert model.vae.decoder.sizes[-1] == 20 and model.latent == 300
    with pytest.raises(ConfigError, match=r"unknown key train\.lrr"):
        resolve_density_config({"train": {"lrr": 1.0}})
    with pytest.raises(ConfigError, match="not a density VAE preset"):
        train("schnet-fast", [], "out", command="deepatoms crystals train")


def test_fast_preset_overfits_four_samples():
    cfg = density_preset("density-vae-fast")
    grid = GridSpec.from_dict(cfg["grid"])
    crystals = _crystals().subset([0, 1, 2, 3])
    cmap = ClassMap.from_mode("compact", crystals)
    ds = DensityDataset(crystals, grid, cmap, rotations_per_crystal=1, seed=0)
    batch = collate([ds[i] for i in range(4)])
    torch.manual_seed(0)
    model = DensityVAEModel(cfg["model"], grid_n=grid.n, n_classes=cmap.n_classes)
    opt = torch.optim.Adam(model.parameters(), lr=cfg["train"]["lr"])
    step = LossStep(model, cfg)  # the preset's training step
    mse, acc = [], []
    for _ in range(40):
        loss, (_, acc_atom) = step(batch)
        opt.zero_grad()
        loss["total"].backward()
        opt.step()
        mse.append(loss["recon_mse"].item())
        acc.append(acc_atom)
    assert np.mean(mse[-3:]) < 0.7 * np.mean(mse[:3])
    assert np.mean(acc[-3:]) > np.mean(acc[:3]) + 0.4


def test_train_writes_run_folder_resumes_and_exports(tmp_path):
    cfg = resolve_density_config(
        {
            "model": TINY_MODEL,
            "grid": {"n": 20},
            "data": {"classes": "compact", "rotations_per_crystal": 1, "split": [0.5, 0.5, 0.0]},
            "train": {
                "batch_size": 2,
                "lr": 1e-3,
                "max_epochs": 1,
                "accelerator": "cpu",
                "seg_input_weight": 0.5,
                "atom_class_weight": 5.0,
            },
        }
    )
    out = tmp_path / "run"
    first = train_density_vae(cfg, _crystals(), out, progress=False)
    assert first["epochs"] == 1 and first["steps"] == 2  # 3 training crystals, batch 2
    assert first["n_crystals"] == {"train": 3, "val": 3, "test": 0}
    for name in ("config.yaml", "split.json", "metrics.csv", "model.pt", "summary.json"):
        assert (out / name).is_file(), name
    assert (out / "checkpoints" / "last.ckpt").is_file()
    cfg["train"]["max_epochs"] = 3  # a stopping limit may change on resume
    second = train_density_vae(cfg, _crystals(), out, progress=False)
    assert second["resumed"] and second["epochs"] == 3 and second["steps"] == 6
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    assert {"train_recon_mse", "train_kl", "train_seg_ce", "val_acc_atom"} <= set(rows[0])
    assert float(rows[0]["train_seg_input_ce"]) > 0.0  # the extra U(M) term was logged
    assert second["val_atoms"]["n_samples"] == 3  # §7 metrics of the decoded validation samples
    loaded = load_density_model(out / "model.pt")
    assert loaded.grid.n == 20 and loaded.class_map.n_classes == 10  # 9 elements + no atom
    assert loaded.meta["best_epoch"] == second["best_epoch"]
    cfg["train"]["lr"] = 1e-2
    with pytest.raises(ConfigError, match=r"train.lr: 0.001 \(saved\) vs 0.01"):
        train_density_vae(cfg, _crystals(), out, progress=False)


def test_model_file_round_trip_is_weights_only(tmp_path):
    grid, cmap = GridSpec(n=20), ClassMap.compact([8, 11, 17])
    torch.manual_seed(0)
    model = DensityVAEModel({**TINY_MODEL, "condition": "max_density"}, grid.n, cmap.n_classes)
    path = tmp_path / "m.pt"
    save_density(path, model, grid, cmap, {"note": "tiny"})
    payload = torch.load(path, weights_only=True)
    assert payload["format"] == "deepatoms-model" and payload["family"] == "density_vae"
    assert payload["extras"]["class_map"] == [0, 8, 11, 17]
    loaded = load_density_model(path)
    assert loaded.grid == grid and loaded.class_map == cmap and loaded.meta["note"] == "tiny"
    assert not loaded.model.training
    x = torch.rand(2, 1, 20, 20, 20)
    model.eval()
    torch.testing.assert_close(loaded.model(x)["seg_logits"], model(x)["seg_logits"])
    torch.save({"format": "other"}, tmp_path / "x.pt")
    with pytest.raises(ValueError, match="not a deepatoms model file"):
        load_density_model(tmp_path / "x.pt")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_density_model(tmp_path / "missing.pt")


def test_select_crystals_drops_long_cells_and_elements_without_class():
    from ase import Atoms

    base = _crystals().subset([0, 2])
    extra = CrystalSet(
        [
            Atoms("Cf", cell=np.eye(3) * 4.0, pbc=True),
            Atoms("Cu", cell=np.diag([4.0, 4.0, 10.5]), pbc=True),
        ],
        ["cf", "long"],
        ["cf", "long"],
        ["test", "test"],
    )
    cfg = resolve_density_config({})
    chosen = select_crystals(CrystalSet.concatenate([base, extra]), cfg["data"]["max_side"])
    assert chosen.ids == base.ids
    assert chosen.notes["beyond_z94"] == ["cf"]
    assert chosen.notes["max_side"]["dropped_examples"] == ["long"]


@pytest.mark.slow
def test_paper_preset_takes_one_step_on_the_best_device():
    cfg = density_preset("density-vae-paper")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    crystals = _crystals().subset([0, 1])
    grid = GridSpec.from_dict(cfg["grid"])
    ds = DensityDataset(crystals, grid, ClassMap.full(), rotations_per_crystal=1)
    batch = collate([ds[0], ds[1]])
    model = DensityVAEModel(cfg["model"], grid_n=30, n_classes=95).to(device)
    x, y = batch["density"].to(device), batch["classes"].to(device)
    out = model(x, gamma=cfg["train"]["gamma"])
    assert out["recon"].shape == (2, 1, 30, 30, 30)
    assert out["seg_logits"].shape == (2, 95, 30, 30, 30)
    loss = joint_loss(out, x, y, cfg["train"]["beta"])
    loss["total"].backward()
    torch.optim.Adam(model.parameters(), lr=cfg["train"]["lr"]).step()
    assert all(torch.isfinite(v) for v in loss.values())


def test_init_copies_the_chosen_part_and_refuses_mismatches(tmp_path):
    grid = GridSpec(n=20)
    cmap = ClassMap.compact([11, 17])
    torch.manual_seed(0)
    src = DensityVAEModel(TINY_MODEL, grid_n=20, n_classes=cmap.n_classes)
    save_density(tmp_path / "src.pt", src, grid, cmap)
    group = {**TINY_MODEL, "unet": {**TINY_MODEL["unet"], "norm": "group"}}
    torch.manual_seed(1)
    dst = DensityVAEModel(group, grid_n=20, n_classes=cmap.n_classes)
    unet_before = {k: v.clone() for k, v in dst.unet.state_dict().items()}
    info = init_density_weights(dst, grid, cmap, tmp_path / "src.pt", "vae")
    assert info["part"] == "vae" and info["tensors"] == len(src.vae.state_dict())
    for k, v in src.vae.state_dict().items():
        assert torch.equal(dst.vae.state_dict()[k], v), k
    for k, v in dst.unet.state_dict().items():
        assert torch.equal(unet_before[k], v), k  # the new (GroupNorm) U-Net is untouched
    with pytest.raises(ValueError, match=r"unet.norm: 'batch' \(saved\) vs 'group'"):
        init_density_weights(dst, grid, cmap, tmp_path / "src.pt", "all")
    with pytest.raises(ValueError, match="species classes differ"):
        init_density_weights(dst, grid, ClassMap.compact([11, 17, 29]), tmp_path / "src.pt", "unet")
    with pytest.raises(ValueError, match="grid"):
        init_density_weights(dst, GridSpec(n=30), cmap, tmp_path / "src.pt", "vae")
    with pytest.raises(ValueError, match="--init-part must be one of"):
        init_density_weights(dst, grid, cmap, tmp_path / "src.pt", "decoder")
