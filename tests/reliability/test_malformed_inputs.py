"""Malformed and hostile files through every reading command.

Every case is made here (truncated, garbled, NaN/inf coordinates, zero atoms, coincident atoms,
unknown elements, atomic numbers 0 and 200, zero-volume and huge cells, corrupt headers, broken
CSV rows, truncated and wrong-schema HDF5, npz with missing keys, empty and binary files, model
files of another kind, of a newer version, truncated, and a pickle that tries to run code) and
given to each command that reads such a file. Each must end with one ``error:`` line and exit
status 2: no traceback, no hang (a 60 s alarm), no output file and no temporary file left, and
the code-carrying pickle runs nothing.
"""

from __future__ import annotations

import os
import pickle
import signal
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from ase import Atoms
from ase.io import write

from cli_helpers import invoke, one_line
from deepatoms.config.overrides import apply_overrides
from deepatoms.models.registry import load_preset
from deepatoms.train import fit

MARKER = "pwned-by-pickle"


class _Evil:
    """Unpickling this runs ``os.system`` (it writes a marker file)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


# -- structure files ----------------------------------------------------------------------------
def _xyz(text: str) -> bytes:
    return text.encode()


def structure_cases(d: Path) -> dict[str, Path]:
    """{name: file} of bad structure files."""
    cases: dict[str, bytes | Atoms] = {
        "empty.xyz": b"",
        "binary.xyz": bytes(range(256)) * 8,
        "truncated.xyz": _xyz("3\ncomment\nO 0 0 0\nH 0.9 0 0\n"),
        "garbled.xyz": _xyz("3\ncomment\nO zero 0 0\nH 0.9 0 0\nH 0 0.9 0\n"),
        "nan.xyz": _xyz("3\n\nO nan 0 0\nH 0.9 0 0\nH 0 0.9 0\n"),
        "inf.xyz": _xyz("3\n\nO inf 0 0\nH 0.9 0 0\nH 0 0.9 0\n"),
        "zero_atoms.xyz": _xyz("0\n\n"),
        "coincident.xyz": _xyz("2\n\nH 0 0 0\nH 0 0 0\n"),
        "unknown_element.xyz": _xyz("2\n\nXq 0 0 0\nH 0.9 0 0\n"),
        "huge_header.xyz": _xyz("1000000000\n\nH 0 0 0\n"),
        "lattice_nan.extxyz": _xyz(
            '1\nLattice="nan 0 0 0 3 0 0 0 3" Properties=species:S:1:pos:R:3 pbc="T T T"\n'
            "Cu 0 0 0\n"
        ),
        "zero_cell.extxyz": _xyz(
            '1\nLattice="0 0 0 0 0 0 0 0 0" Properties=species:S:1:pos:R:3 pbc="T T T"\nCu 0 0 0\n'
        ),
        "huge_cell.extxyz": _xyz(
            '1\nLattice="1e9 0 0 0 3 0 0 0 3" Properties=species:S:1:pos:R:3 pbc="T T T"\n'
            "Cu 0 0 0\n"
        ),
        "tiny_cell.extxyz": _xyz(
            '1\nLattice="0.3 0 0 0 0.3 0 0 0 0.3" Properties=species:S:1:pos:R:3 pbc="T T T"\n'
            "Cu 0 0 0\n"
        ),
        "z0.traj": Atoms(numbers=[0, 1], positions=[[0, 0, 0], [1, 0, 0]]),
        "z200.traj": Atoms(numbers=[200, 1], positions=[[0, 0, 0], [1, 0, 0]]),
    }
    out = {}
    for name, content in cases.items():
        path = d / name
        if isinstance(content, Atoms):
            write(path, content)
        else:
            path.write_bytes(content)
        out[name] = path
    fifo = d / "pipe.xyz"
    os.mkfifo(fifo)
    out["pipe.xyz"] = fifo
    out["folder.xyz"] = d / "folder.xyz"
    out["folder.xyz"].mkdir()
    return out


def dataset_cases(d: Path, good: Path) -> dict[str, Path]:
    """{name: file} of bad dataset (.h5) files."""
    out = {}
    (d / "empty.h5").write_bytes(b"")
    (d / "binary.h5").write_bytes(bytes(range(256)) * 8)
    (d / "truncated.h5").write_bytes(good.read_bytes()[:2000])
    with h5py.File(d / "wrong_schema.h5", "w") as f:
        f["numbers"] = np.arange(3)
    fifo = d / "pipe.h5"
    os.mkfifo(fifo)
    for name in ("empty.h5", "binary.h5", "truncated.h5", "wrong_schema.h5", "pipe.h5"):
        out[name] = d / name
    return out


def model_cases(d: Path, good: Path, marker: Path) -> dict[str, Path]:
    """{name: file} of bad model files."""
    out = {}
    payload = torch.load(good, map_location="cpu", weights_only=True)
    newer = dict(payload)
    newer["format_version"] = int(payload.get("format_version", 2)) + 5
    torch.save(newer, d / "newer.pt")
    nan = dict(payload)
    nan["state_dict"] = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
                         for k, v in payload["state_dict"].items()}  # fmt: skip
    torch.save(nan, d / "nan_weights.pt")
    mismatch = dict(payload)
    mismatch["state_dict"] = dict(list(payload["state_dict"].items())[1:])
    torch.save(mismatch, d / "mismatched_weights.pt")
    (d / "truncated.pt").write_bytes(good.read_bytes()[:3000])
    (d / "empty.pt").write_bytes(b"")
    (d / "binary.pt").write_bytes(bytes(range(256)) * 8)
    torch.save({"hello": torch.zeros(3)}, d / "other_kind.pt")
    with open(d / "evil.pt", "wb") as fh:
        pickle.dump(_Evil(str(marker)), fh)
    torch.save(_Evil(str(marker)), d / "evil_zip.pt")
    with zipfile.ZipFile(d / "zip_garbage.pt", "w") as z:
        z.writestr("archive/data.pkl", b"garbage")
    from deepatoms.grammar.cfg import load_grammar
    from deepatoms.models.grammar_vae import GrammarVAE
    from model_helpers import save_grammar_vae

    g = load_grammar("smiles")
    vae = GrammarVAE({"n_rules": g.n_rules, "max_len": 16, "latent_dim": 2, "hidden": 8})
    save_grammar_vae(d / "grammar_vae.pt", vae, g)  # a model of another family
    for name in ("grammar_vae.pt", "newer.pt", "truncated.pt", "empty.pt", "binary.pt", "other_kind.pt",
                 "evil.pt", "evil_zip.pt", "zip_garbage.pt", "nan_weights.pt",
                 "mismatched_weights.pt"):  # fmt: skip
        out[name] = d / name
    return out


@pytest.fixture(scope="module")
def setting(tmp_path_factory, qm9_small):
    """A tiny trained U0 model (eV, sum readout: usable as a calculator) and the bad files."""
    d = tmp_path_factory.mktemp("malformed")
    cfg = apply_overrides(load_preset("schnet-fast"), ["data.target=U0", "model.n_atom_basis=8",
        "model.n_interactions=1", "data.n_train=24", "data.n_val=8", "train.batch_size=8",
        "train.max_epochs=1"])  # fmt: skip
    summary = fit(cfg, qm9_small, d / "run", progress=False)
    marker = d / MARKER
    (d / "s").mkdir()
    (d / "h").mkdir()
    (d / "m").mkdir()
    return {
        "model": Path(summary["model_file"]),
        "run": d / "run",
        "data": Path(qm9_small),
        "structures": structure_cases(d / "s"),
        "datasets": dataset_cases(d / "h", Path(qm9_small)),
        "models": model_cases(d / "m", Path(summary["model_file"]), marker),
        "marker": marker,
    }


def _alarm(signum, frame):
    raise TimeoutError("the command hung")


def _check_clean_failure(args: list, out_dir: Path) -> str:
    """Run ``deepatoms ARGS`` with a 60 s alarm; it must fail cleanly and write nothing."""
    before = set(out_dir.iterdir())
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(60)
    try:
        res = invoke(*args, code=2)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    text = res.stdout + res.stderr
    assert "Traceback" not in text, text
    assert "error:" in res.stderr, text
    assert set(out_dir.iterdir()) == before, f"{args} left {set(out_dir.iterdir()) - before}"
    return one_line(res.stderr)


STRUCTURE_COMMANDS = {
    "data import": lambda s, f, o: ["data", "import", f, "--out", o / "x.h5", "-q"],
    "predict": lambda s, f, o: ["predict", s["model"], f, "--out", o / "p.csv", "-q"],
    "relax": lambda s, f, o: ["relax", s["model"], f, "--out", o / "r.extxyz"],
    "md": lambda s, f, o: ["md", s["model"], f, "--out", o / "m.traj", "--steps", "2", "-q"],
}
DATASET_COMMANDS = {
    "data info": lambda s, f, o: ["data", "info", f],
    "evaluate": lambda s, f, o: ["evaluate", s["run"], "--data", f, "--plot", o / "p.png", "-q"],
    "train": lambda s, f, o: [
        "train",
        "--preset",
        "schnet-fast",
        "--data",
        f,
        "--out",
        o / "run",
        "--max-epochs",
        "1",
        "-q",
    ],
}
MODEL_COMMANDS = {
    "predict": lambda s, m, o: ["predict", m, "ethanol.xyz", "--out", o / "p.csv", "-q"],
    "evaluate": lambda s, m, o: [
        "evaluate",
        m,
        "--data",
        s["data"],
        "--split",
        "all",
        "--plot",
        o / "p.png",
        "-q",
    ],
    "relax": lambda s, m, o: ["relax", m, "ethanol", "--out", o / "r.extxyz"],
    "md": lambda s, m, o: ["md", m, "ethanol", "--out", o / "m.traj", "--steps", "2", "-q"],
}


def test_bad_structure_files(setting, tmp_path):
    n = 0
    for name, path in setting["structures"].items():
        for cmd, make in STRUCTURE_COMMANDS.items():
            msg = _check_clean_failure(make(setting, path, tmp_path), tmp_path)
            assert str(path.name) in msg or "structure" in msg, (name, cmd, msg)
            n += 1
    assert n == len(STRUCTURE_COMMANDS) * 18


def test_bad_dataset_files(setting, tmp_path):
    for path in setting["datasets"].values():
        for make in DATASET_COMMANDS.values():
            msg = _check_clean_failure(make(setting, path, tmp_path), tmp_path)
            assert path.name in msg


def test_bad_model_files_run_no_code(setting, tmp_path):
    ethanol = tmp_path / "ethanol.xyz"
    write(ethanol, Atoms("CH4", positions=[[0, 0, 0], [1.09, 0, 0], [-0.36, 1.03, 0],
                                           [-0.36, -0.51, 0.89], [-0.36, -0.51, -0.89]]))  # fmt: skip
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        for path in setting["models"].values():
            for make in MODEL_COMMANDS.values():
                msg = _check_clean_failure(make(setting, path, tmp_path), tmp_path)
                assert path.name in msg
    finally:
        os.chdir(cwd)
    assert not setting["marker"].exists(), "a model file ran code"


def test_npz_and_csv_inputs(setting, tmp_path):
    np.savez(tmp_path / "missing.npz", R=np.zeros((2, 3, 3)))
    msg = _check_clean_failure(["data", "md17", tmp_path / "missing.npz", "--out",
                                tmp_path / "x.h5"], tmp_path)  # fmt: skip
    assert "missing.npz" in msg
    (tmp_path / "broken.csv").write_text('cif,formation_energy_per_atom\n"unclosed,1.0\n')
    msg = _check_clean_failure(["data", "cif-csv", tmp_path / "broken.csv", "--out",
                                tmp_path / "y.h5", "-q"], tmp_path)  # fmt: skip
    assert "broken.csv" in msg
    os.mkfifo(tmp_path / "pipe.csv")
    msg = _check_clean_failure(["data", "cif-csv", tmp_path / "pipe.csv", "--out",
                                tmp_path / "z.h5", "-q"], tmp_path)  # fmt: skip
    assert "pipe.csv" in msg and "not a regular file" in msg


def test_bad_prototype_files_for_screen(setting, tmp_path):
    pytest.importorskip("pymatgen")
    head = (
        "data_x\n_cell_length_a {a}\n_cell_length_b {a}\n_cell_length_c {a}\n"
        "_cell_angle_alpha 90\n_cell_angle_beta 90\n_cell_angle_gamma 90\n"
        "_symmetry_space_group_name_H-M 'P 1'\nloop_\n_atom_site_label\n_atom_site_type_symbol\n"
        "_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\n_atom_site_occupancy\n"
    )
    cases = {
        "disordered.cif": head.format(a=3.8) + "Cu1 Cu 0 0 0 0.5\nAu1 Au 0 0 0 0.5\n",
        "tiny_cell.cif": head.format(a=0.3) + "Cu1 Cu 0 0 0 1\nAu1 Au 0.5 0.5 0.5 1\n",
        "empty.cif": "",
        "binary.cif": bytes(range(256)).decode("latin-1") * 4,
    }
    d = tmp_path / "in"
    d.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    for name, text in cases.items():
        (d / name).write_text(text, encoding="latin-1")
        msg = _check_clean_failure(["screen", setting["run"], "--formula", "CuAu", "--prototypes",
                                    d / name, "--out", out / "screen", "-q"], out)  # fmt: skip
        assert name in msg, msg


@pytest.mark.parametrize("z", [0, 200])
def test_evaluate_refuses_unknown_atomic_numbers(setting, tmp_path, z):
    from deepatoms.data.dataset import read_dataset, write_dataset

    data, meta = read_dataset(setting["data"])
    data.numbers[data.offsets[3]] = z
    bad = tmp_path / f"z{z}.h5"
    write_dataset(bad, data, meta)
    msg = _check_clean_failure(["evaluate", setting["model"], "--data", bad, "--split", "all",
                                "--plot", tmp_path / "p.png", "-q"], tmp_path)  # fmt: skip
    assert f"system 3: atomic number {z} is not an element" in msg


def test_corrupt_offsets_are_refused_by_info(setting, tmp_path):
    import shutil

    bad = tmp_path / "offsets.h5"
    shutil.copy(setting["data"], bad)
    with h5py.File(bad, "r+") as f:
        f["offsets"][2] = -999999921
    out = tmp_path / "o"
    out.mkdir()
    for args in (["data", "info", bad], ["evaluate", setting["run"], "--data", bad, "-q"]):
        msg = _check_clean_failure(args, out)
        assert "offsets.h5" in msg and "corrupt" in msg
