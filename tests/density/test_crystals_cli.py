"""``deepatoms crystals …`` as a user calls it (docs/density_vae.md §8 tools, §7 metrics).

The model is the fast preset
shrunk to widths 2–4 and a latent of 8, trained for 2 steps on 8 ASE bulk crystals.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.build import bulk
from ase.io import read, write
from typer.testing import CliRunner

from cli_helpers import last_json, one_line
from deepatoms.cli import app
from deepatoms.data.neighbors import GraphSpec
from deepatoms.models.registry import build_model
from model_helpers import save_atomistic

TINY = [
    "model.latent=8",
    "model.encoder.widths=[2,2,2,2]",
    "model.decoder.widths=[4,2,2,2]",
    "model.unet.widths=[2,4]",
    "model.unet.bottleneck=4",
    "train.max_steps=2",
    "train.batch_size=4",
    "data.split=[0.5,0.25,0.25]",
]
BULK = {
    "NaCl": ("NaCl", "rocksalt", 5.64),
    "Si": ("Si", "diamond", 5.43),
    "Cu": ("Cu", "fcc", 3.6),
    "MgO": ("MgO", "rocksalt", 4.21),
    "CsCl": ("CsCl", "cesiumchloride", 4.12),
    "ZnS": ("ZnS", "zincblende", 5.41),
    "Fe": ("Fe", "bcc", 2.87),
    "Al": ("Al", "fcc", 4.05),
}


def crystals(*args, code: int = 0):
    """Run ``deepatoms crystals ARGS`` on a fresh app; assert the exit code."""
    res = CliRunner().invoke(app, ["crystals", *map(str, args)])
    assert res.exit_code == code, f"{args}: exit {res.exit_code}\n{res.stdout}\n{res.stderr}"
    return res


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """CIF folder of 8 bulk crystals, a 10.8 Å crystal, and a 2-step trained run."""
    root = tmp_path_factory.mktemp("crystals")
    (root / "cifs").mkdir()
    for name, (formula, kind, a) in BULK.items():
        write(root / "cifs" / f"{name}.cif", bulk(formula, kind, a=a))
    write(root / "big.cif", bulk("Cu", "fcc", a=3.6, cubic=True).repeat(3))
    args = ["train", "--data", root / "cifs", "--out", root / "run", "-q", "--json"]
    res = crystals(*args, *[x for s in TINY for x in ("--set", s)])
    return root, last_json(res.stdout)


def test_train_writes_a_run_and_reports_json(work):
    root, summary = work
    assert summary["steps"] == 2 and summary["stopped"] == "max_steps"
    assert summary["n_crystals"] == {"train": 4, "val": 2, "test": 2}
    assert summary["n_samples"] == {"train": 12, "val": 6}  # 3 rotations per crystal
    assert (root / "run" / "model.pt").is_file() and (root / "run" / "split.json").is_file()
    assert summary["grid"]["n"] == 20


def test_train_init_from_a_run_copies_the_vae(work, tmp_path):
    root, _ = work
    base = ["train", "--data", root / "cifs", "-q", "--json"]
    tiny = [x for s in TINY for x in ("--set", s)]
    batch = ["--set", "model.unet.norm=batch"]  # the preset has group
    args = [*base, "--out", tmp_path / "gn", "--init", root / "run", "--init-part", "vae"]
    summary = last_json(crystals(*args, *tiny, *batch).stdout)
    assert summary["init"]["part"] == "vae" and summary["init"]["tensors"] > 0
    assert summary["init"]["model_file"].endswith("model.pt")
    # everything, but the U-Net settings differ: refused with the differing key named
    args = [*base, "--out", tmp_path / "all", "--init", root / "run" / "model.pt"]
    res = crystals(*args, *tiny, *batch, code=2)
    assert "unet.norm: 'group' (saved) vs 'batch'" in one_line(res.stderr)


def test_voxelize_writes_consistent_arrays(work, tmp_path):
    root, _ = work
    out = tmp_path / "vox.npz"
    res = crystals("voxelize", root / "cifs", "--out", out, "--model", root / "run",
                   "--rotations", 2, "--seed", 4, "-q", "--json")  # fmt: skip
    info = last_json(res.stdout)
    assert info["n_samples"] == 16 and info["atoms_dropped"] == 0
    with np.load(out) as f:
        assert f["density"].shape == (16, 20, 20, 20) and f["species"].dtype == np.int16
        assert f["offsets"][-1] == len(f["numbers"]) == info["atoms_in_box"] == 2 * 13
        assert json.loads(str(f["grid"]))["n"] == 20
        k = list(f["ids"]).index("NaCl")
        nums = f["numbers"][f["offsets"][k] : f["offsets"][k + 1]]
        assert sorted(nums.tolist()) == [11, 17]
        assert set(np.unique(f["species"][k]).tolist()) == {0, 11, 17}
    crystals("voxelize", root / "cifs", "--out", out, "-q", code=2)  # exists, no --overwrite


def test_crystal_larger_than_the_box_is_a_clear_error(work, tmp_path):
    root, _ = work
    res = crystals("voxelize", root / "big.cif", "--out", tmp_path / "v.npz", code=2)
    msg = one_line(res.stderr)
    assert "crystal big:0 (Cu108) has a lattice vector of 10.80 Å" in msg
    assert "--skip-large" in msg
    res = crystals("encode", root / "run", root / "big.cif", root / "cifs@Cu",
                   "--out", tmp_path / "mu.npz", "--skip-large", "-q", "--json")  # fmt: skip
    assert last_json(res.stdout)["n_samples"] == 1
    assert "dropped 1 crystals with a lattice vector ≥ 10 Å (e.g. big:0)" in one_line(res.stderr)
    assert not (tmp_path / "v.npz").exists()


def test_encode_from_crystals_equals_encode_from_voxels(work, tmp_path):
    root, _ = work
    run = root / "run"
    crystals("voxelize", root / "cifs", "--out", tmp_path / "v.npz", "--model", run,
             "--seed", 7, "-q")  # fmt: skip
    crystals("encode", run, tmp_path / "v.npz", "--out", tmp_path / "a.npz", "-q")
    res = crystals("encode", run, root / "cifs", "--out", tmp_path / "b.npz", "--seed", 7,
                   "-q", "--json")  # fmt: skip
    assert last_json(res.stdout)["latent"] == 8
    with np.load(tmp_path / "a.npz") as a, np.load(tmp_path / "b.npz") as b:
        assert a["mu"].shape == (8, 8)
        np.testing.assert_array_equal(a["mu"], b["mu"])
        assert list(a["ids"]) == list(b["ids"]) == sorted(BULK)
        np.testing.assert_allclose(np.linalg.det(b["rotation"]), 1.0)


def test_model_grid_mismatch_and_wrong_model_files(work, tmp_path):
    root, _ = work
    crystals("voxelize", root / "cifs@Cu", "--out", tmp_path / "v30.npz", "-q")  # 30³ default
    res = crystals("encode", root / "run", tmp_path / "v30.npz", "--out", tmp_path / "m.npz",
                   code=2)  # fmt: skip
    assert "different grid (30³ over 10 Å, σ 1 Å) than the model's (20³" in one_line(res.stderr)
    other = tmp_path / "schnet.pt"
    schnet = build_model({"name": "schnet", "n_atom_basis": 4, "n_interactions": 1,
                          "rbf": {"n_rbf": 4, "stop": 3.0}})  # fmt: skip
    save_atomistic(other, schnet, GraphSpec())
    res = crystals("sample", other, "--out", tmp_path / "s.xyz", code=2)
    assert "is a 'schnet' model (SchNet), not a density VAE model" in one_line(res.stderr)
    (tmp_path / "notes.pt").write_text("hello")
    res = crystals("sample", tmp_path / "notes.pt", "--out", tmp_path / "s.xyz", code=2)
    assert "is not a readable model file" in one_line(res.stderr)
    res = crystals("sample", tmp_path / "missing", "--out", tmp_path / "s.xyz", code=2)
    assert "model file " in res.stderr and "does not exist" in one_line(res.stderr)
    res = crystals("encode", root / "run", tmp_path / "nothing.cif", "--out",
                   tmp_path / "m.npz", code=2)  # fmt: skip
    assert "does not exist" in one_line(res.stderr)


def test_decode_writes_one_frame_per_latent(work, tmp_path):
    root, _ = work
    run = root / "run"
    crystals("encode", run, root / "cifs", "--out", tmp_path / "mu.npz", "-q")
    res = crystals("decode", run, tmp_path / "mu.npz", "--out", tmp_path / "d.xyz",
                   "--images", tmp_path / "img", "--max-images", 2, "-q", "--json")  # fmt: skip
    info = last_json(res.stdout)
    frames = read(tmp_path / "d.xyz", index=":")
    assert len(frames) == info["n_structures"] == 8
    assert [f.info["label"] for f in frames] == sorted(BULK)
    assert [p.rsplit("/", 1)[1] for p in info["images"]] == ["structure_0000.png",
                                                             "structure_0001.png"]  # fmt: skip
    np.savez(tmp_path / "z.npz", z=np.zeros((2, 8)))
    res = crystals("decode", run, tmp_path / "z.npz", "--out", tmp_path / "e.xyz", code=2)
    assert "lacks the arrays ['mu']" in one_line(res.stderr)
    res = crystals("decode", run, tmp_path / "z.npz", "--key", "z", "--frame", "crystal",
                   "--out", tmp_path / "e.xyz", code=2)  # fmt: skip
    assert "--frame crystal needs ['rotation', 'translation', 'cell']" in one_line(res.stderr)
    np.savez(tmp_path / "w.npz", mu=np.zeros((2, 5)))
    res = crystals("decode", run, tmp_path / "w.npz", "--out", tmp_path / "e.xyz", code=2)
    assert "latents of shape (2, 5) do not fit the model: it expects [N, 8]" in one_line(res.stderr)
    crystals("decode", run, tmp_path / "z.npz", "--key", "z", "--out", tmp_path / "e.pdb",
             code=2)  # fmt: skip


def test_sample_is_seeded(work, tmp_path):
    root, _ = work
    for name in ("a.xyz", "b.xyz"):
        res = crystals("sample", root / "run", "-n", 3, "--seed", 2, "--out", tmp_path / name,
                       "-q", "--json")  # fmt: skip
    info = last_json(res.stdout)
    assert info["n_structures"] == 3 and info["written"] == 3 and info["seed"] == 2
    assert (tmp_path / "a.xyz").read_text() == (tmp_path / "b.xyz").read_text()
    crystals("sample", root / "run", "-n", 0, "--out", tmp_path / "c.xyz", code=2)


def test_interpolate_writes_ends_and_intermediates(work, tmp_path):
    root, _ = work
    res = crystals("interpolate", root / "run", root / "cifs@NaCl", root / "cifs@Si",
                   "--steps", 3, "--out", tmp_path / "i.xyz", "--image", tmp_path / "strip.png",
                   "-q", "--json")  # fmt: skip
    info = last_json(res.stdout)
    assert info["t"] == [0.0, 0.25, 0.5, 0.75, 1.0] and (info["a"], info["b"]) == ("NaCl", "Si")
    labels = [f.info["label"] for f in read(tmp_path / "i.xyz", index=":")]
    assert labels[0] == "t=0 (NaCl → Si)" and labels[-1] == "t=1 (NaCl → Si)"
    assert (tmp_path / "strip.png").read_bytes()[:4] == b"\x89PNG"
    res = crystals("interpolate", root / "run", root / "cifs", root / "cifs@Si",
                   "--out", tmp_path / "j.xyz", code=2)  # fmt: skip
    assert "holds 8 crystals; pick one with" in one_line(res.stderr)
    res = crystals("interpolate", root / "run", f"{root / 'cifs'}@Xx", root / "cifs@Si",
                   "--out", tmp_path / "j.xyz", code=2)  # fmt: skip
    assert "no crystal with id 'Xx'" in one_line(res.stderr)


def test_alter_sweeps_one_dimension_or_scales(work, tmp_path):
    root, _ = work
    run = root / "run"
    res = crystals("alter", run, root / "cifs@Cu", "--dim", 3, "--values", "-3:3:3", "--out",
                   tmp_path / "s.xyz", "--image", tmp_path / "s.png", "-q", "--json")  # fmt: skip
    info = last_json(res.stdout)
    assert info["mode"] == "sweep" and info["values"] == [-3.0, 0.0, 3.0]
    assert len(info["max_abs_difference"]) == 3 and len(read(tmp_path / "s.xyz", index=":")) == 3
    res = crystals("alter", run, "--alpha", "0,1", "--seed", 1, "--out", tmp_path / "a.xyz",
                   "-q", "--json")  # fmt: skip
    info = last_json(res.stdout)
    # a prior draw scaled by α = 1 is the unaltered latent: no difference
    assert info["mode"] == "alpha" and info["max_abs_difference"][1] < 1e-6
    res = crystals("alter", run, "--out", tmp_path / "x.xyz", code=2)
    assert "exactly one of --dim K" in one_line(res.stderr)
    res = crystals("alter", run, "--dim", 8, "--out", tmp_path / "x.xyz", code=2)
    assert "latent dimension 8 is out of range; the latent has 8" in one_line(res.stderr)
    res = crystals("alter", run, "--dim", 1, "--values", "-3:3:x", "--out", tmp_path / "x.xyz",
                   code=2)  # fmt: skip
    assert "START:STOP:COUNT" in one_line(res.stderr)


def test_evaluate_on_the_runs_test_split(work, tmp_path):
    root, summary = work
    res = crystals("evaluate", root / "run", "--data", root / "cifs", "--split", "test", "-q",
                   "--rotations", 1, "--out", tmp_path / "ev", "--no-plots", "--json")  # fmt: skip
    info = last_json(res.stdout)
    test_ids = json.loads((root / "run" / "split.json").read_text())["meta"]["ids"]["test"]
    assert info["settings"]["n_crystals"] == len(test_ids) == summary["n_crystals"]["test"]
    assert info["oracle"]["count_exact"] == 1.0
    assert (tmp_path / "ev" / "metrics.md").read_text().startswith("# Density VAE evaluation")
    crystals("evaluate", root / "run", "--data", root / "cifs", "--out", tmp_path / "ev",
             code=2)  # metrics.json exists  # fmt: skip
    res = crystals("evaluate", root / "run", "--data", root / "cifs@Cu", "--split", "test",
                   "--out", tmp_path / "ev2", code=2)  # fmt: skip
    assert "pass the same --data sources as for training" in one_line(res.stderr)
