"""MD17 / rMD17 npz import: unit conversion, key layouts, frame selection, errors, CLI."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ase import units

from deepatoms.data.dataset import read_dataset, write_dataset
from deepatoms.data.sources.md17 import KCAL_MOL_TO_EV, load_md17

EXE = str(Path(sys.executable).parent / "deepatoms")
M, N = 7, 3


def _arrays(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "R": rng.normal(size=(M, N, 3)),
        "z": np.array([8, 1, 1], dtype=np.uint8),
        "E": rng.normal(-4.8e4, 1.0, size=(M, 1)),
        "F": rng.normal(size=(M, N, 3)) * 30,
    }


@pytest.fixture
def md17_npz(tmp_path) -> tuple[Path, dict[str, np.ndarray]]:
    arrays = _arrays()
    path = tmp_path / "md17_water.npz"
    np.savez(path, **arrays, name=np.array("water"), theory=np.array("PBE+vdW-TS"))
    return path, arrays


def test_kcal_mol_is_converted_to_ev_exactly(md17_npz):
    path, arr = md17_npz
    data, meta = load_md17(path)
    factor = units.kcal / units.mol
    assert factor == KCAL_MOL_TO_EV
    assert len(data) == M and list(data.n_atoms) == [N] * M
    np.testing.assert_array_equal(data.system_props["energy"], arr["E"][:, 0] * factor)
    np.testing.assert_array_equal(data.atom_props["forces"], arr["F"].reshape(-1, 3) * factor)
    np.testing.assert_array_equal(data.positions, arr["R"].reshape(-1, 3))
    np.testing.assert_array_equal(data.numbers, np.tile([8, 1, 1], M))
    assert data.system_props["energy"].dtype == np.float64
    assert not data.pbc.any()
    np.testing.assert_array_equal(data.system_props["frame"], np.arange(M))
    assert meta["units"] == {"energy": "eV", "forces": "eV/Å"}
    prov = meta["provenance"]
    assert prov["file"] == "md17_water.npz" and prov["layout"] == "MD17"
    assert prov["md5"] == hashlib.md5(path.read_bytes()).hexdigest()
    assert prov["file_size_bytes"] == path.stat().st_size
    assert prov["energy_factor_to_eV"] == factor
    assert prov["name"] == "water" and prov["theory"] == "PBE+vdW-TS"


def test_rmd17_keys_and_ev_units(tmp_path):
    arr = _arrays(1)
    path = tmp_path / "rmd17.npz"
    np.savez(
        path, coords=arr["R"], nuclear_charges=arr["z"], energies=arr["E"][:, 0], forces=arr["F"]
    )
    data, meta = load_md17(path)
    assert meta["provenance"]["layout"] == "rMD17"
    np.testing.assert_array_equal(data.system_props["energy"], arr["E"][:, 0] * KCAL_MOL_TO_EV)
    same, meta_ev = load_md17(path, units="eV")
    np.testing.assert_array_equal(same.system_props["energy"], arr["E"][:, 0])
    np.testing.assert_array_equal(same.atom_props["forces"], arr["F"].reshape(-1, 3))
    assert meta_ev["provenance"]["energy_factor_to_eV"] == 1.0


def test_limit_and_seed(md17_npz):
    path, arr = md17_npz
    first, _ = load_md17(path, limit=3)
    np.testing.assert_array_equal(first.system_props["frame"], [0, 1, 2])
    a, meta = load_md17(path, limit=4, seed=5)
    b, _ = load_md17(path, limit=4, seed=5)
    frames = a.system_props["frame"]
    np.testing.assert_array_equal(frames, b.system_props["frame"])
    assert len(set(frames.tolist())) == 4 and np.all(np.diff(frames) > 0)
    np.testing.assert_array_equal(a.positions, arr["R"][frames].reshape(-1, 3))
    np.testing.assert_array_equal(a.system_props["energy"], arr["E"][frames, 0] * KCAL_MOL_TO_EV)
    assert meta["provenance"]["limit"] == 4 and meta["provenance"]["seed"] == 5
    with pytest.raises(ValueError, match="exceeds the 7 frames"):
        load_md17(path, limit=8)
    with pytest.raises(ValueError, match="positive int"):
        load_md17(path, limit=0)


def test_errors_name_the_problem(tmp_path, md17_npz):
    arr = _arrays()
    path = tmp_path / "bad.npz"
    np.savez(path, R=arr["R"], z=arr["z"], E=arr["E"])
    with pytest.raises(ValueError, match=r"holds keys \['E', 'R', 'z'\].*'F'.*forces"):
        load_md17(path)
    np.savez(path, **{**arr, "F": arr["F"][:, :2]})
    with pytest.raises(ValueError, match=r"'F' has shape \(7, 2, 3\), expected \(7, 3, 3\)"):
        load_md17(path)
    np.savez(path, **{**arr, "E": arr["E"][:5]})
    with pytest.raises(ValueError, match=r"'E' has shape \(5, 1\), expected \(7,\)"):
        load_md17(path)
    with pytest.raises(ValueError, match="units must be one of"):
        load_md17(md17_npz[0], units="Hartree")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_md17(tmp_path / "missing.npz")
    text = tmp_path / "notes.npz"
    text.write_text("not numpy")
    with pytest.raises(ValueError, match=r"cannot be read as a numpy \.npz"):
        load_md17(text)


def test_round_trip_through_dataset_file(tmp_path, md17_npz):
    data, meta = load_md17(md17_npz[0])
    write_dataset(tmp_path / "d.h5", data, meta)
    back, meta_back = read_dataset(tmp_path / "d.h5")
    np.testing.assert_array_equal(back.atom_props["forces"], data.atom_props["forces"])
    assert meta_back["provenance"]["md5"] == meta["provenance"]["md5"]


def test_cli_data_md17(tmp_path, md17_npz):
    path, arr = md17_npz
    out = tmp_path / "md17.h5"
    cmd = [EXE, "data", "md17", str(path), "--out", str(out), "--limit", "5", "--seed", "2"]
    proc = subprocess.run([*cmd, "--json"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["n_systems"] == 5 and res["n_atoms"] == N
    assert res["units"] == {"energy": "eV", "forces": "eV/Å"}
    data, meta = read_dataset(out)
    assert meta["provenance"]["seed"] == 2 and len(data) == 5

    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and "--overwrite" in again.stderr
    bad = tmp_path / "bad.npz"
    np.savez(bad, R=arr["R"], z=arr["z"])
    proc = subprocess.run(
        [EXE, "data", "md17", str(bad), "--out", str(tmp_path / "x.h5")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "not an MD17-style npz" in " ".join(proc.stderr.split())
    assert not (tmp_path / "x.h5").exists()
