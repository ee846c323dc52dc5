"""Every family's training resumes after the process is killed, through the one protocol.

Each run starts in a child process that is killed with SIGKILL after the first batch of its
third epoch (so the last checkpoint is the end of epoch 2 and one optimiser step is lost);
``fit`` is then called again on the same folder and must finish the run: resumed, every epoch
validated exactly once, the lost step redone, a model file written.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from deepatoms.config.overrides import apply_overrides
from deepatoms.grammar.cfg import load_grammar
from deepatoms.models.grammar_vae import GrammarVAE
from deepatoms.models.loading import load_model
from deepatoms.models.registry import load_preset, resolve_config
from deepatoms.train import fit
from model_helpers import save_grammar_vae
from tiny_data import (
    QM9_SMILES,
    TINY_DENSITY_VAE,
    write_scaled_set,
    write_small_crystal_cifs,
    write_small_molecules,
    write_strings,
)

KILL_EPOCH = 2  # killed after the first batch of the third epoch

_CHILD = textwrap.dedent(
    """
    import json, os, signal, sys
    from lightning.pytorch.callbacks import Callback
    import deepatoms.train.protocol as protocol

    class KillAt(Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            if trainer.current_epoch == {epoch} and batch_idx == 0:
                os.kill(os.getpid(), signal.SIGKILL)

    make = protocol.make_trainer
    protocol.make_trainer = lambda *a, **k: _with_kill(make(*a, **k))

    def _with_kill(trainer):
        trainer.callbacks.append(KillAt())
        return trainer

    spec = json.loads(sys.argv[1])
    protocol.fit(spec["config"], spec["data"], spec["out"], progress=False)
    """
).format(epoch=KILL_EPOCH)


def _kill_then_resume(config: dict, data, out: Path) -> dict:
    """Train in a child that is killed mid-epoch, then resume here to ``KILL_EPOCH + 2``."""
    config = apply_overrides(config, [f"train.max_epochs={KILL_EPOCH + 3}"])
    spec = json.dumps({"config": config, "data": data, "out": str(out)})
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", _CHILD, spec], env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    assert (out / "checkpoints" / "last.ckpt").is_file()
    assert not (out / "model.pt").exists() and not (out / "summary.json").exists()
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["epoch"] == KILL_EPOCH - 1  # the last finished epoch
    steps_per_epoch = ckpt["global_step"] // KILL_EPOCH
    # resume with a new stopping limit (allowed: it does not change what a step computes)
    total = KILL_EPOCH + 2
    summary = fit(apply_overrides(config, [f"train.max_epochs={total}"]), data, out,
                  progress=False)  # fmt: skip
    assert summary["resumed"] and summary["epochs"] == total
    assert summary["steps"] == total * steps_per_epoch  # the step lost in the kill is redone
    assert summary["stopped"] == "max_epochs"
    with open(out / "metrics.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r.get(summary["monitor"])]
    assert sorted(int(r["epoch"]) for r in rows) == list(range(total))
    load_model(out)  # the exported model loads
    return summary


def _property_cfg(preset: str, *extra: str) -> dict:
    return apply_overrides(load_preset(preset), ["data.target=U0", "data.n_train=24",
        "data.n_val=8", "train.batch_size=8", "train.eval_batch_size=8", *extra])  # fmt: skip


@pytest.mark.parametrize(
    ("preset", "tiny"),
    [
        ("schnet-fast", ["model.n_atom_basis=8", "model.n_interactions=1"]),
        ("dtnn-fast", ["model.n_atom_basis=8", "model.n_interactions=1", "model.n_factors=8"]),
        ("nmpedge-fast", ["model.n_atom_basis=8", "model.n_interactions=1"]),
    ],
)
def test_property_families_resume_after_a_kill(qm9_small, tmp_path, preset, tiny):
    summary = _kill_then_resume(_property_cfg(preset, *tiny), qm9_small, tmp_path / "run")
    assert summary["family"] == preset.split("-")[0].replace("nmpedge", "nmp_edge")


def test_potential_resumes_after_a_kill(ethanol_xtb, tmp_path):
    cfg = apply_overrides(load_preset("schnet-md17-fast"), ["model.n_atom_basis=8",
        "model.n_interactions=1", "data.n_train=16", "data.n_val=8", "train.batch_size=8"])  # fmt: skip
    summary = _kill_then_resume(cfg, ethanol_xtb, tmp_path / "run")
    assert summary["forces"] == "forces" and summary["val_force_mae"] > 0


def test_vimpnn_resumes_after_a_kill(tmp_path):
    data = tmp_path / "scaled.h5"
    write_scaled_set(data, [0.9, 1.1, 1.3])
    cfg = apply_overrides(load_preset("vimpnn-qm9aug-fast"),
                          ["model.n_hidden=8", "train.batch_size=4"])  # fmt: skip
    assert _kill_then_resume(cfg, str(data), tmp_path / "run")["family"] == "mpnn"


def test_gschnet_resumes_after_a_kill(tmp_path):
    data = write_small_molecules(tmp_path / "mols.h5")
    cfg = apply_overrides(load_preset("gschnet-qm9-fast"), ["data.split_column=split",
        "train.batch_size=8", "train.eval_batch_size=4", "train.draw_random_samples=2",
        "model.n_atom_basis=8", "model.n_filters=8", "model.n_interactions=1",
        "model.type_head=[8]", "model.distance_head=[8]"])  # fmt: skip
    assert _kill_then_resume(cfg, str(data), tmp_path / "run")["family"] == "gschnet"


def test_grammar_vae_resumes_after_a_kill(tmp_path):
    data = write_strings(tmp_path / "s.csv", QM9_SMILES, ["train"] * 48 + ["val"] * 16)
    cfg = apply_overrides(load_preset("grammar-vae-qm9"), ["model.hidden=8", "model.dense=8",
        "model.latent_dim=2", "data.max_len=64", "train.batch_size=16", "train.recon_check=2"])  # fmt: skip
    assert _kill_then_resume(cfg, str(data), tmp_path / "run")["family"] == "grammar_vae"


def test_latent_regressors_resume_after_a_kill(tmp_path):
    g = load_grammar("smiles")
    torch.manual_seed(0)
    vae = GrammarVAE({"n_rules": g.n_rules, "max_len": 64, "latent_dim": 2, "hidden": 8})
    save_grammar_vae(tmp_path / "vae" / "model.pt", vae, g)
    lengths = [float(len(s)) for s in QM9_SMILES]
    data = write_strings(tmp_path / "p.csv", QM9_SMILES, ["train"] * 48 + ["val"] * 16,
                         {"y": lengths})  # fmt: skip
    cfg = {"model": {"name": "latent-regressors", "properties": ["y"], "hidden": [8, 8]},
           "data": {"latent_space": str(tmp_path / "vae" / "model.pt")},
           "train": {"batch_size": 16}}  # fmt: skip
    summary = _kill_then_resume(resolve_config(cfg), str(data), tmp_path / "reg")
    assert summary["properties"]["y"]["n_train"] == 48


def test_density_vae_resumes_after_a_kill(tmp_path):
    files = write_small_crystal_cifs(tmp_path)
    cfg = apply_overrides(
        load_preset("density-vae-fast"), [*TINY_DENSITY_VAE, "train.batch_size=2"]
    )
    summary = _kill_then_resume(cfg, files, tmp_path / "run")
    assert summary["family"] == "density_vae" and summary["val_atoms"]["n_samples"] == 3
