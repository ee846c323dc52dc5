"""HDF5 dataset files: round trip, append, info, atomic writes, clear errors."""

from __future__ import annotations

import json
import os

import h5py
import numpy as np
import pytest

from deepatoms.data import dataset as ds
from deepatoms.data.dataset import (
    FORMAT_VERSION,
    append_dataset,
    dataset_info,
    format_info,
    read_dataset,
    write_dataset,
)
from deepatoms.data.packed import PackedSystems


def make_pack(shift: float = 0.0) -> PackedSystems:
    """Three systems: H2O (molecule), CH4 (molecule), Cu2 (periodic)."""
    numbers = np.array([8, 1, 1, 6, 1, 1, 1, 1, 29, 29])
    positions = np.arange(30, dtype=np.float64).reshape(10, 3) * 0.25 + shift
    offsets = np.array([0, 3, 8, 10])
    cell = np.zeros((3, 3, 3))
    cell[2] = np.eye(3) * 3.61
    pbc = np.array([[False] * 3, [False] * 3, [True] * 3])
    return PackedSystems(
        numbers,
        positions,
        offsets,
        cell,
        pbc,
        system_props={
            "energy": np.array([-14.25, -24.5, -7.0]) + shift,
            "index": np.array([3, 1, 77], dtype=np.int64),
            "smiles": np.array(["O", "C", "[Cu]~Å"]),
            "stress": np.arange(18, dtype=np.float64).reshape(3, 6),
        },
        atom_props={
            "forces": np.linspace(-1, 1, 30).reshape(10, 3),
            "charge": np.array([-0.6, 0.3, 0.3, -0.5, 0.125, 0.125, 0.125, 0.125, 0.0, 0.0]),
        },
    )


META = {
    "units": {"energy": "eV", "forces": "eV/Å", "stress": "eV/Å^3", "charge": "e"},
    "source": "unit test",
    "provenance": {"made_by": "make_pack", "seed": 7},
    "atomrefs": {"energy": {1: -0.5, 8: -2.0}},
}


def assert_same(a: PackedSystems, b: PackedSystems) -> None:
    np.testing.assert_array_equal(a.numbers, b.numbers)
    np.testing.assert_array_equal(a.positions, b.positions)
    np.testing.assert_array_equal(a.offsets, b.offsets)
    np.testing.assert_array_equal(a.cell, b.cell)
    np.testing.assert_array_equal(a.pbc, b.pbc)
    assert list(a.system_props) == list(b.system_props)
    assert list(a.atom_props) == list(b.atom_props)
    for props_a, props_b in ((a.system_props, b.system_props), (a.atom_props, b.atom_props)):
        for k in props_a:
            np.testing.assert_array_equal(props_a[k], props_b[k])
            assert props_a[k].dtype.kind == props_b[k].dtype.kind, k


def test_round_trip_exact(tmp_path):
    data = make_pack()
    path = tmp_path / "d.h5"
    write_dataset(path, data, META)
    back, meta = read_dataset(path)
    assert_same(data, back)
    assert back.numbers.dtype == np.int64 and back.positions.dtype == np.float64
    assert back.system_props["index"].dtype == np.int64
    assert back.system_props["smiles"].tolist() == ["O", "C", "[Cu]~Å"]
    assert back.pbc.dtype == bool
    # metadata: JSON round trip, atomref keys become strings, format version recorded
    expected = json.loads(json.dumps(META))
    expected["format_version"] = FORMAT_VERSION
    assert meta == expected
    assert meta["atomrefs"] == {"energy": {"1": -0.5, "8": -2.0}}
    with h5py.File(path) as f:
        assert f.attrs["format"] == "deepatoms-dataset"
        assert h5py.check_string_dtype(f["system_props/smiles"].dtype).encoding == "utf-8"
        assert f["numbers"].dtype == np.uint8
    assert not [p for p in os.listdir(tmp_path) if p != "d.h5"]  # no temp files left


def test_round_trip_large_compressed_and_empty(tmp_path):
    rng = np.random.default_rng(0)
    n_at = rng.integers(1, 30, size=4000)
    offsets = np.concatenate([[0], np.cumsum(n_at)])
    big = PackedSystems(
        rng.integers(1, 10, size=offsets[-1]),
        rng.normal(size=(offsets[-1], 3)),
        offsets,
        np.zeros((4000, 3, 3)),
        np.zeros((4000, 3), bool),
        {"y": rng.normal(size=4000), "smiles": np.array([f"C{i}" for i in range(4000)])},
        {"q": rng.normal(size=offsets[-1]).astype(np.float32)},
    )
    write_dataset(tmp_path / "big.h5", big, META)
    back, _ = read_dataset(tmp_path / "big.h5")
    assert_same(big, back)
    assert back.atom_props["q"].dtype == np.float32
    with h5py.File(tmp_path / "big.h5") as f:
        assert f["positions"].compression == "gzip"

    empty = PackedSystems(
        np.zeros(0, int), np.zeros((0, 3)), [0], np.zeros((0, 3, 3)), np.zeros((0, 3), bool)
    )
    write_dataset(tmp_path / "empty.h5", empty, META)
    back, _ = read_dataset(tmp_path / "empty.h5")
    assert len(back) == 0 and back.positions.shape == (0, 3)
    info = dataset_info(tmp_path / "empty.h5")
    assert info["n_systems"] == 0 and info["n_atoms"]["total"] == 0


def test_append(tmp_path):
    path = tmp_path / "d.h5"
    first, second = make_pack(), make_pack(shift=1.0)
    write_dataset(path, first, META)
    append_dataset(path, second, {"source": "two runs", "note": "appended"})
    back, meta = read_dataset(path)
    assert_same(PackedSystems.concatenate([first, second]), back)
    assert len(back) == 6 and back.offsets[-1] == 20
    assert meta["source"] == "two runs" and meta["note"] == "appended"
    assert meta["history"] == [
        {"action": "append", "n_systems": 3, "updated_keys": ["note", "source"]}
    ]
    assert meta["units"] == META["units"]


def test_append_mismatched_properties_is_refused(tmp_path):
    path = tmp_path / "d.h5"
    write_dataset(path, make_pack(), META)
    before = path.read_bytes()
    other = make_pack()
    other.system_props["extra"] = np.zeros(3)
    del other.atom_props["charge"]
    with pytest.raises(ValueError) as err:
        append_dataset(path, other)
    msg = str(err.value)
    assert str(path) in msg and "'extra'" in msg and "'charge'" in msg
    bad_shape = make_pack()
    bad_shape.system_props["stress"] = np.zeros((3, 3, 3))
    with pytest.raises(ValueError, match="stress"):
        append_dataset(path, bad_shape)
    assert path.read_bytes() == before  # untouched


def test_append_to_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.h5"):
        append_dataset(tmp_path / "nope.h5", make_pack())


def test_info_numbers(tmp_path):
    path = tmp_path / "d.h5"
    write_dataset(path, make_pack(), META)
    info = dataset_info(path)
    assert info["n_systems"] == 3
    assert info["n_atoms"] == {"total": 10, "min": 2, "mean": 10 / 3, "max": 5}
    assert info["elements"] == {"H": 6, "C": 1, "O": 1, "Cu": 2}
    assert list(info["elements"]) == ["H", "C", "O", "Cu"]  # ordered by Z
    assert info["n_periodic"] == 1
    assert info["file_size_bytes"] == os.path.getsize(path)
    assert info["source"] == "unit test" and info["provenance"] == META["provenance"]
    assert info["atomrefs"] == ["energy"]
    e = info["properties"]["energy"]
    energies = np.array([-14.25, -24.5, -7.0])
    assert e["level"] == "system" and e["unit"] == "eV" and e["shape"] == []
    assert e["mean"] == pytest.approx(energies.mean(), abs=1e-12)
    assert e["std"] == pytest.approx(energies.std(), abs=1e-12)
    assert (e["min"], e["max"]) == (-24.5, -7.0)
    assert info["properties"]["stress"]["shape"] == [6]
    assert info["properties"]["forces"]["level"] == "atom"
    assert info["properties"]["forces"]["shape"] == [3]
    assert info["properties"]["smiles"]["dtype"] == "str"
    assert "mean" not in info["properties"]["smiles"]
    json.dumps(info)  # JSON friendly (for --json)
    text = format_info(info)
    assert "systems   3  (1 periodic)" in text
    assert "H 6, C 1, O 1, Cu 2" in text
    assert "mean 3.33" in text
    assert "energy" in text and "[eV]" in text


def test_atomic_write_leaves_no_partial_file(tmp_path, monkeypatch):
    path = tmp_path / "d.h5"
    write_dataset(path, make_pack(), META)
    before = path.read_bytes()
    calls = []
    original = ds._write_array

    def failing(group, name, arr, where):
        calls.append(name)
        if len(calls) > 3:
            raise RuntimeError("disk full (simulated)")
        return original(group, name, arr, where)

    monkeypatch.setattr(ds, "_write_array", failing)
    with pytest.raises(RuntimeError, match="simulated"):
        write_dataset(path, make_pack(shift=5.0), META)
    assert path.read_bytes() == before  # old file intact
    assert os.listdir(tmp_path) == ["d.h5"]  # temp file removed
    with pytest.raises(RuntimeError):
        write_dataset(tmp_path / "new.h5", make_pack(), META)
    assert os.listdir(tmp_path) == ["d.h5"]  # no partial new file


def test_bad_metadata_and_properties(tmp_path):
    with pytest.raises(ValueError, match=r"lacks \['source', 'provenance'\]"):
        write_dataset(tmp_path / "a.h5", make_pack(), {"units": {}})
    with pytest.raises(ValueError, match="not JSON serialisable"):
        write_dataset(tmp_path / "a.h5", make_pack(), {**META, "x": object()})
    bad = make_pack()
    bad.system_props["obj"] = np.array([{}, {}, {}], dtype=object)
    with pytest.raises(TypeError, match="obj"):
        write_dataset(tmp_path / "a.h5", bad, META)
    assert os.listdir(tmp_path) == []


def test_read_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing\.h5"):
        read_dataset(tmp_path / "missing.h5")
    text = tmp_path / "text.h5"
    text.write_text("not hdf5")
    with pytest.raises(ValueError, match=r"text\.h5.*not a deepatoms dataset"):
        read_dataset(text)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["positions"] = np.zeros((1, 3))
    with pytest.raises(ValueError) as err:
        read_dataset(other)
    assert "other.h5" in str(err.value) and "numbers" in str(err.value)
    with pytest.raises(ValueError, match=r"other\.h5"):
        dataset_info(other)
