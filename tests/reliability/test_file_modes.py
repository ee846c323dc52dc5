"""Outputs honour the umask: under umask 022 every file a training run and a prediction write is
0644, so colleagues on a shared folder can read them."""

from __future__ import annotations

import os
import stat

from cli_helpers import invoke

TINY = ["data.target=U0", "model.n_atom_basis=8", "model.n_interactions=1", "data.n_train=24",
        "data.n_val=8", "train.batch_size=8"]  # fmt: skip


def test_every_output_is_0644_under_umask_022(qm9_small, tmp_path):
    old = os.umask(0o022)
    try:
        run = tmp_path / "run"
        invoke("train", "--preset", "schnet-fast", "--data", qm9_small, "--out", run,
               "--max-epochs", "1", "-q", *[a for s in TINY for a in ("--set", s)])  # fmt: skip
        (tmp_path / "mol.xyz").write_text("3\n\nO 0 0 0\nH 0.96 0 0\nH -0.24 0.93 0\n")
        invoke("predict", run, tmp_path / "mol.xyz", "--out", tmp_path / "p.csv", "-q")
        invoke("data", "import", tmp_path / "mol.xyz", "--out", tmp_path / "d.h5", "-q")
    finally:
        os.umask(old)
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "mol.xyz"]
    names = {p.name for p in files}
    for name in ("model.pt", "config.yaml", "stats.json", "summary.json", "split.json",
                 "metrics.csv", "last.ckpt", "p.csv", "d.h5"):  # fmt: skip
        assert name in names, name
    wrong = {str(p.relative_to(tmp_path)): oct(stat.S_IMODE(p.stat().st_mode)) for p in files
             if stat.S_IMODE(p.stat().st_mode) != 0o644}  # fmt: skip
    assert not wrong, wrong
