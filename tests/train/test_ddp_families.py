"""Two-process training (DDP, gloo) of the families beyond property models: the validation
metrics that select the best model are those of the whole validation split.

Each family is trained for one epoch with a learning rate so small that the weights do not
move, once in one process and once in two; the deterministic validation metrics of the two runs
must agree (each process validates its share of the batches and the sums are added over the
processes). A run that only averaged its own share, or counted shared-out systems twice,
fails. Only rank 0 writes the run folder and prints the result.
"""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from deepatoms.config.overrides import apply_overrides
from deepatoms.grammar.cfg import load_grammar
from deepatoms.models.grammar_vae import GrammarVAE
from deepatoms.models.registry import load_preset, resolve_config
from model_helpers import save_grammar_vae
from tiny_data import (
    QM9_SMILES,
    TINY_DENSITY_VAE,
    write_small_crystal_cifs,
    write_small_molecules,
    write_strings,
)

_SCRIPT = """
import json, sys
from deepatoms.train.protocol import fit
spec = json.load(open(sys.argv[1]))
result = fit(spec["config"], spec["data"], spec["out"], progress=False)
if result.get("rank", 0) == 0:
    print("RESULT", json.dumps({"epochs": result["epochs"]}))
"""
FROZEN = ["train.max_epochs=1", "train.lr=1e-30"]


def _first_validation(config: dict, data, out: Path, devices: int) -> dict[str, float]:
    hw = ["train.accelerator=cpu", f"train.devices={devices}",
          f"train.strategy={'ddp' if devices > 1 else 'auto'}"]  # fmt: skip
    spec = out.with_suffix(".json")
    out.parent.mkdir(parents=True, exist_ok=True)
    spec.write_text(json.dumps({"config": apply_overrides(config, [*FROZEN, *hw]),
                                "data": data, "out": str(out)}))  # fmt: skip
    script = out.parent / "train_script.py"
    script.write_text(_SCRIPT)
    proc = subprocess.run([sys.executable, str(script), str(spec)], capture_output=True,
                          text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("RESULT") == 1  # rank 0 only
    with open(out / "metrics.csv", newline="") as fh:
        rows = [
            r for r in csv.DictReader(fh) if any(k.startswith("val_") and v for k, v in r.items())
        ]
    return {k: float(v) for k, v in rows[0].items() if k.startswith("val_") and v}


def _agree(config: dict, data, tmp_path: Path, keys: list[str]) -> None:
    one = _first_validation(config, data, tmp_path / "one", 1)
    two = _first_validation(config, data, tmp_path / "two", 2)
    for key in keys:
        assert two[key] == pytest.approx(one[key], rel=1e-5), key
    assert not (tmp_path / "two" / "checkpoints" / "last.ckpt.tmp").exists()


def test_gschnet_validation_under_ddp_is_that_of_the_whole_split(tmp_path):
    data = str(write_small_molecules(tmp_path / "mols.h5"))
    cfg = apply_overrides(load_preset("gschnet-qm9-fast"), ["data.split_column=split",
        "train.batch_size=4", "train.eval_batch_size=1", "model.n_atom_basis=8",
        "model.n_filters=8", "model.n_interactions=1", "model.type_head=[8]",
        "model.distance_head=[8]"])  # fmt: skip
    _agree(cfg, data, tmp_path, ["val_type_loss", "val_dist_loss", "val_loss"])


@pytest.mark.slow
def test_grammar_vae_validation_under_ddp_is_that_of_the_whole_split(tmp_path):
    data = str(
        write_strings(tmp_path / "s.csv", QM9_SMILES, ["train"] * 48 + ["val"] * 15 + ["test"])
    )
    cfg = apply_overrides(load_preset("grammar-vae-qm9"), ["model.hidden=8", "model.dense=8",
        "model.latent_dim=2", "data.max_len=64", "train.batch_size=16",
        "train.eval_batch_size=4", "train.recon_check=0"])  # fmt: skip
    _agree(cfg, data, tmp_path, ["val_kl"])


@pytest.mark.slow
def test_latent_regressor_validation_under_ddp_is_that_of_the_whole_split(tmp_path):
    g = load_grammar("smiles")
    torch.manual_seed(0)
    vae = GrammarVAE({"n_rules": g.n_rules, "max_len": 64, "latent_dim": 2, "hidden": 8})
    save_grammar_vae(tmp_path / "vae" / "model.pt", vae, g)
    lengths = [float(len(s)) for s in QM9_SMILES]
    data = str(write_strings(tmp_path / "p.csv", QM9_SMILES, ["train"] * 48 + ["val"] * 16,
                             {"y": lengths}))  # fmt: skip
    cfg = resolve_config({"model": {"name": "latent-regressors", "properties": ["y"],
                                    "hidden": [8, 8]},
                          "data": {"latent_space": str(tmp_path / "vae" / "model.pt")},
                          "train": {"batch_size": 16, "eval_batch_size": 5}})  # fmt: skip
    _agree(cfg, data, tmp_path, ["val_mae_y"])


@pytest.mark.slow
def test_density_vae_trains_in_two_processes(tmp_path):
    """The density VAE's encoder has BatchNorm, whose running statistics move in training even
    with frozen weights and which each CPU process keeps for itself (torch's SyncBatchNorm needs
    GPUs), so its metrics are not compared with one process here; the sums behind them are
    (next test). Two processes: one result, finite validation metrics."""
    files = write_small_crystal_cifs(tmp_path)
    cfg = apply_overrides(
        load_preset("density-vae-fast"), [*TINY_DENSITY_VAE, "train.batch_size=1"]
    )
    two = _first_validation(cfg, files, tmp_path / "two", 2)
    assert all(math.isfinite(two[k]) for k in ("val_kl", "val_seg_ce", "val_recon_mse"))


def test_density_sums_add_over_processes():
    """What each process adds up, summed over the processes, gives the means of all samples."""
    from deepatoms.train.tasks.density_vae import _Sums

    loss = {"total": torch.tensor(2.0), "recon_mse": torch.tensor(1.0), "kl": torch.tensor(0.5),
            "seg_ce": torch.tensor(0.25), "seg_input_ce": torch.tensor(float("nan"))}  # fmt: skip
    a, b, both = _Sums(), _Sums(), _Sums()
    a.add(loss, (0.5, 0.25), 3)
    b.add({k: v * 3 for k, v in loss.items()}, (1.0, 0.75), 1)
    both.add(loss, (0.5, 0.25), 3)
    both.add({k: v * 3 for k, v in loss.items()}, (1.0, 0.75), 1)
    other = torch.tensor([*(b.sums[k] for k in b.sums), *(b.counts[k] for k in b.counts)],
                         dtype=torch.float64)  # fmt: skip
    reduced = a.reduced(lambda t: t + other)
    got, want = reduced.means("val"), both.means("val")
    assert got.keys() == want.keys()
    for k in got:
        assert (math.isnan(got[k]) and math.isnan(want[k])) or got[k] == pytest.approx(want[k]), k
    assert want["val_kl"] == pytest.approx((0.5 * 3 + 1.5) / 4)
