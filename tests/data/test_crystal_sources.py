"""Crystal loaders (CSV of CIFs, CIF folder + labels, MP/OQMD JSON) and their CLI commands."""

from __future__ import annotations

import csv
import hashlib
import json
import time
from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from pymatgen.core import Lattice, Structure
from pymatgen.io.ase import AseAtomsAdaptor
from pymatgen.io.cif import CifWriter

from cli_helpers import invoke, last_json, one_line
from deepatoms.data.dataset import read_dataset, write_dataset
from deepatoms.data.sources.crystals import load_cif_csv, load_cif_folder, load_mp_json

SHARED = Path("/work/shared/data")


def _crystals() -> dict[str, Atoms]:
    a = 3.905
    srtio3 = Atoms(
        "SrTiO3",
        scaled_positions=[
            [0, 0, 0],
            [0.5, 0.5, 0.5],
            [0.5, 0.5, 0],
            [0.5, 0, 0.5],
            [0, 0.5, 0.5],
        ],
        cell=[a, a, a],
        pbc=True,
    )
    xef2 = Atoms("XeF2", positions=[[0, 0, 0], [0, 0, 2.0], [0, 0, 5.0]], cell=[4.3, 4.3, 7.0])
    xef2.pbc = True
    return {
        "NaCl": bulk("NaCl", "rocksalt", a=5.64),
        "Si": bulk("Si", "diamond", a=5.43),
        "SrTiO3": srtio3,
        "XeF2": xef2,
    }


# rows: id, formula, formation energy (eV/atom), band gap (eV), space-group number
ROWS = [
    ("101", "NaCl", -2.1, 5.0, 225),
    ("102", "Si", 0.0, 0.6, 227),
    ("103", "SrTiO3", -3.5, 1.8, 221),
    ("104", "XeF2", -0.4, 2.9, 139),
]


def _cif(atoms: Atoms) -> str:
    return str(CifWriter(AseAtomsAdaptor.get_structure(atoms)))


def _write_csv(path: Path, rows=ROWS, cifs: dict[str, str] | None = None) -> Path:
    crystals = _crystals()
    cifs = cifs or {}
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        header = ["", "material_id", "cif", "formation_energy_per_atom", "band_gap"]
        w.writerow([*header, "pretty_formula", "spacegroup.number"])
        for k, (ident, name, e, gap, sg) in enumerate(rows):
            w.writerow([k + 7, ident, cifs.get(name, _cif(crystals[name])), e, gap, name, sg])
    return path


def _canonical(numbers, frac) -> list[tuple]:
    """Sorted (Z, fractional coordinates mod 1) of a structure, rounded to 1e-5."""
    f = np.round(np.mod(np.round(np.asarray(frac), 5), 1.0), 5)
    return sorted((int(z), *map(float, x)) for z, x in zip(numbers, f, strict=True))


def _assert_same_crystal(data, k: int, atoms: Atoms) -> None:
    s, e = data.offsets[k], data.offsets[k + 1]
    cell = data.cell[k]
    got = Atoms(numbers=data.numbers[s:e], positions=data.positions[s:e], cell=cell, pbc=True)
    np.testing.assert_allclose(got.cell.cellpar(), atoms.cell.cellpar(), atol=1e-5)
    frac = data.positions[s:e] @ np.linalg.inv(cell)  # rows of cell are lattice vectors
    assert _canonical(data.numbers[s:e], frac) == _canonical(
        atoms.numbers, atoms.get_scaled_positions(wrap=False)
    )


@pytest.fixture
def crystal_csv(tmp_path) -> Path:
    return _write_csv(tmp_path / "train.csv")


def test_load_cif_csv_reads_structures_labels_and_derived_columns(crystal_csv):
    data, meta = load_cif_csv(crystal_csv, progress=False)
    crystals = _crystals()
    assert len(data) == 4 and list(data.n_atoms) == [2, 2, 5, 3]
    assert data.pbc.all()
    for k, (_, name, *_rest) in enumerate(ROWS):
        _assert_same_crystal(data, k, crystals[name])
    sp = data.system_props
    assert sp["material_id"].dtype.kind == "U" and list(sp["material_id"]) == [r[0] for r in ROWS]
    assert sp["formation_energy_per_atom"].dtype == np.float64
    np.testing.assert_array_equal(sp["formation_energy_per_atom"], [r[2] for r in ROWS])
    np.testing.assert_array_equal(sp["band_gap"], [r[3] for r in ROWS])
    np.testing.assert_array_equal(sp["spacegroup.number"], [225.0, 227.0, 221.0, 139.0])
    assert list(sp["pretty_formula"]) == ["NaCl", "Si", "SrTiO3", "XeF2"]
    assert list(sp["n_elements"]) == [2, 1, 3, 2] and sp["n_elements"].dtype == np.int64
    assert list(sp["reduced_formula"]) == ["NaCl", "Si", "SrTiO3", "XeF2"]
    assert list(sp["source_row"]) == [0, 1, 2, 3]
    assert meta["units"]["formation_energy_per_atom"] == "eV/atom"
    assert meta["units"]["band_gap"] == "eV" and meta["units"]["spacegroup.number"] == ""
    assert "material_id" not in meta["units"] and "pretty_formula" not in meta["units"]
    assert meta["ignored_columns"] == {"(unnamed)": "row index column"}
    prov = meta["provenance"]
    assert (
        prov["kind"] == "cif-csv"
        and prov["md5"] == hashlib.md5(crystal_csv.read_bytes()).hexdigest()
    )
    assert prov["n_rows_in_file"] == 4 and prov["n_systems"] == 4 and prov["n_skipped"] == 0
    assert prov["id_column"] == "material_id" and meta["skipped"] == []


def test_targets_and_limit(crystal_csv):
    data, meta = load_cif_csv(crystal_csv, targets=["band_gap"], limit=2, progress=False)
    assert len(data) == 2 and meta["provenance"]["n_rows_in_file"] == 4
    assert "formation_energy_per_atom" not in data.system_props
    assert "numeric column" in meta["ignored_columns"]["formation_energy_per_atom"]
    np.testing.assert_array_equal(data.system_props["band_gap"], [5.0, 0.6])
    assert "pretty_formula" in data.system_props  # text columns are always kept
    with pytest.raises(ValueError, match=r"no column\(s\) \['gap'\]"):
        load_cif_csv(crystal_csv, targets=["gap"], progress=False)
    with pytest.raises(ValueError, match="positive int"):
        load_cif_csv(crystal_csv, limit=0, progress=False)


def test_bad_rows_raise_naming_the_row_or_are_skipped(tmp_path):
    path = _write_csv(tmp_path / "bad.csv", cifs={"SrTiO3": "data_broken\n_cell_length_a 4\n"})
    with pytest.raises(ValueError, match=r"bad\.csv', row 2 \(line \d+, material_id '103'\)"):
        load_cif_csv(path, progress=False)
    data, meta = load_cif_csv(path, on_error="skip", progress=False)
    assert len(data) == 3 and list(data.system_props["source_row"]) == [0, 1, 3]
    assert list(data.system_props["material_id"]) == ["101", "102", "104"]
    (skip,) = meta["skipped"]
    assert skip["row"] == 2 and skip["id"] == "103" and "CIF" in skip["reason"]
    assert meta["provenance"]["n_skipped"] == 1


def test_disordered_structures_and_blank_lines(tmp_path):
    disordered = Structure(
        Lattice.cubic(5.6), [{"Na": 0.5, "K": 0.5}, "Cl"], [[0, 0, 0], [0.5] * 3]
    )
    path = _write_csv(tmp_path / "mixed.csv", cifs={"Si": str(CifWriter(disordered))})
    path.write_text(path.read_text() + "\n\n")  # trailing blank lines hold no rows
    with pytest.raises(ValueError, match=r"row 1 .*disordered \(partial occupancies\)"):
        load_cif_csv(path, progress=False)
    data, meta = load_cif_csv(path, on_error="skip", progress=False)
    assert len(data) == 3 and meta["provenance"]["n_rows_in_file"] == 4
    assert meta["skipped"][0]["row"] == 1 and "disordered" in meta["skipped"][0]["reason"]


def test_non_numeric_target_and_empty_cells(tmp_path):
    rows = [*ROWS[:2], ("103", "SrTiO3", "n/a", "", 221), ROWS[3]]
    path = _write_csv(tmp_path / "labels.csv", rows=rows)
    # a known energy column stays numeric: the text cell is a bad row (it used to turn the
    # column into text and switch the energy filter off)
    with pytest.raises(ValueError, match=r"row 2 .*'formation_energy_per_atom' holds 'n/a'"):
        load_cif_csv(path, progress=False)
    auto, meta = load_cif_csv(path, on_error="skip", progress=False)
    assert auto.system_props["formation_energy_per_atom"].dtype == np.float64 and len(auto) == 3
    with pytest.raises(ValueError, match=r"row 2 .*'formation_energy_per_atom' holds 'n/a'"):
        load_cif_csv(path, targets=["formation_energy_per_atom"], progress=False)
    kept, meta = load_cif_csv(
        path, targets=["formation_energy_per_atom"], on_error="skip", progress=False
    )
    assert len(kept) == 3 and "not a number" in meta["skipped"][0]["reason"]


def test_csv_errors_are_clear(tmp_path, crystal_csv):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_cif_csv(tmp_path / "missing.csv", progress=False)
    with pytest.raises(ValueError, match=r"no CIF column 'structure'.*'cif'"):
        load_cif_csv(crystal_csv, cif_column="structure", progress=False)
    with pytest.raises(ValueError, match="no id column 'uid'"):
        load_cif_csv(crystal_csv, id_column="uid", progress=False)
    clash = tmp_path / "clash.csv"
    clash.write_text(crystal_csv.read_text().replace("pretty_formula", "reduced_formula", 1))
    with pytest.raises(ValueError, match="clash with columns deepatoms derives"):
        load_cif_csv(clash, progress=False)
    empty = tmp_path / "empty.csv"
    empty.write_text("material_id,cif\n")
    with pytest.raises(ValueError, match="no data rows"):
        load_cif_csv(empty, progress=False)


def test_round_trip_through_dataset_file(tmp_path, crystal_csv):
    data, meta = load_cif_csv(crystal_csv, progress=False)
    write_dataset(tmp_path / "c.h5", data, meta)
    back, meta_back = read_dataset(tmp_path / "c.h5")
    np.testing.assert_array_equal(back.positions, data.positions)
    np.testing.assert_array_equal(back.cell, data.cell)
    assert back.pbc.all()
    for name, values in data.system_props.items():
        np.testing.assert_array_equal(back.system_props[name], values)
    assert list(back.system_props["reduced_formula"]) == ["NaCl", "Si", "SrTiO3", "XeF2"]
    assert meta_back["provenance"]["md5"] == meta["provenance"]["md5"]
    assert meta_back["units"] == meta["units"]


# -- CIF folder ---------------------------------------------------------------------------------
@pytest.fixture
def cif_folder(tmp_path) -> tuple[Path, Path]:
    folder = tmp_path / "cifs"
    folder.mkdir()
    for name, atoms in _crystals().items():
        ase.io.write(folder / f"{name.lower()}.cif", atoms, format="cif")
    labels = tmp_path / "labels.csv"
    labels.write_text(
        "id,formation_energy_per_atom,comment\n"
        "srtio3,-3.5,perovskite\nnacl,-2.1,rock salt\nsi,0.0,diamond\nxef2,-0.4,\n"
    )
    return folder, labels


def test_load_cif_folder_in_label_order(cif_folder):
    folder, labels = cif_folder
    data, meta = load_cif_folder(folder, labels, progress=False)
    crystals = _crystals()
    assert list(data.system_props["id"]) == ["srtio3", "nacl", "si", "xef2"]
    for k, name in enumerate(["SrTiO3", "NaCl", "Si", "XeF2"]):
        _assert_same_crystal(data, k, crystals[name])
    np.testing.assert_array_equal(
        data.system_props["formation_energy_per_atom"], [-3.5, -2.1, 0.0, -0.4]
    )
    assert list(data.system_props["comment"]) == ["perovskite", "rock salt", "diamond", ""]
    assert list(data.system_props["n_elements"]) == [3, 2, 1, 2]
    prov = meta["provenance"]
    assert prov["kind"] == "cif-folder" and prov["n_cif_files"] == 4
    assert prov["labels_md5"] == hashlib.md5(labels.read_bytes()).hexdigest()
    assert meta["units"]["formation_energy_per_atom"] == "eV/atom"


def test_cif_folder_mismatches_are_listed(cif_folder):
    folder, labels = cif_folder
    (folder / "extra.cif").write_text((folder / "si.cif").read_text())
    with pytest.raises(ValueError, match=r"1 CIF file\(s\) .* have no row .*: extra\.cif"):
        load_cif_folder(folder, labels, progress=False)
    (folder / "extra.cif").unlink()
    labels.write_text(labels.read_text() + "kbr,-2.0,missing\nlif,-3.0,missing\n")
    with pytest.raises(ValueError, match=r"2 label row\(s\) have no CIF file .*: kbr, lif"):
        load_cif_folder(folder, labels, progress=False)
    labels.write_text("name,formation_energy_per_atom\nsi,0.0\n")
    with pytest.raises(ValueError, match="no id column 'id'"):
        load_cif_folder(folder, labels, progress=False)


def test_cif_folder_bad_file_names_the_file(cif_folder):
    folder, labels = cif_folder
    (folder / "si.cif").write_text("this is not a CIF\n")
    with pytest.raises(ValueError, match=r"si\.cif' \(row 2 of .*labels\.csv"):
        load_cif_folder(folder, labels, progress=False)
    data, meta = load_cif_folder(folder, labels, on_error="skip", progress=False)
    assert list(data.system_props["id"]) == ["srtio3", "nacl", "xef2"]
    assert meta["skipped"][0]["id"] == "si"


# -- Materials Project / OQMD JSON -------------------------------------------------------------
def _mp_records() -> list[dict]:
    crystals = _crystals()
    out = []
    for ident, name, e, gap, sg in ROWS:
        out.append(
            {
                "material_id": f"mp-{ident}",
                "structure": AseAtomsAdaptor.get_structure(crystals[name]).as_dict(),
                "formation_energy_per_atom": e,
                "band_gap": gap,
                "spacegroup": {"symbol": f"SG{sg}", "number": sg},
                "icsd_ids": [ident] if name != "XeF2" else [],
                "elements": sorted(set(crystals[name].get_chemical_symbols())),
            }
        )
    return out


def _oqmd_records() -> list[dict]:
    crystals = _crystals()
    return [
        {
            "entry_id": int(ident),
            "cif": _cif(crystals[name]),
            "delta_e": e,
            "prototype": f"{name}_proto",
            "icsd": name == "NaCl",
        }
        for ident, name, e, _gap, _sg in ROWS
    ]


def test_load_mp_json_list_layout(tmp_path):
    path = tmp_path / "mp.json"
    path.write_text(json.dumps(_mp_records()))
    data, meta = load_mp_json(path, progress=False)
    crystals = _crystals()
    for k, (_, name, *_rest) in enumerate(ROWS):
        _assert_same_crystal(data, k, crystals[name])
    sp = data.system_props
    assert list(sp["material_id"]) == ["mp-101", "mp-102", "mp-103", "mp-104"]
    np.testing.assert_array_equal(sp["formation_energy_per_atom"], [r[2] for r in ROWS])
    np.testing.assert_array_equal(sp["band_gap"], [r[3] for r in ROWS])
    assert list(sp["prototype"]) == ["SG225", "SG227", "SG221", "SG139"]
    assert sp["icsd"].dtype == bool and list(sp["icsd"]) == [True, True, True, False]
    assert meta["units"]["formation_energy_per_atom"] == "eV/atom"
    assert meta["units"]["band_gap"] == "eV"
    assert "elements" in meta["ignored_keys"]
    assert meta["provenance"]["layout"] == "list"
    assert meta["provenance"]["energy_keys"] == ["formation_energy_per_atom"]


def test_load_mp_json_data_layout_with_oqmd_keys(tmp_path):
    path = tmp_path / "oqmd.json"
    path.write_text(json.dumps({"data": _oqmd_records()}))
    data, meta = load_mp_json(path, progress=False)
    sp = data.system_props
    assert list(sp["material_id"]) == ["101", "102", "103", "104"]
    np.testing.assert_array_equal(sp["formation_energy_per_atom"], [r[2] for r in ROWS])
    assert list(sp["prototype"]) == ["NaCl_proto", "Si_proto", "SrTiO3_proto", "XeF2_proto"]
    assert list(sp["icsd"]) == [True, False, False, False]
    assert list(sp["n_elements"]) == [2, 1, 3, 2]
    assert meta["provenance"]["layout"] == "data"
    assert meta["provenance"]["energy_keys"] == ["delta_e"]


def test_mp_json_errors(tmp_path):
    records = _mp_records()
    del records[1]["formation_energy_per_atom"]
    path = tmp_path / "mp.json"
    path.write_text(json.dumps(records))
    with pytest.raises(ValueError, match=r"record 1 \(mp-102\): .*no formation energy"):
        load_mp_json(path, progress=False)
    data, meta = load_mp_json(path, on_error="skip", progress=False)
    assert len(data) == 3 and meta["skipped"][0]["row"] == 1
    path.write_text(json.dumps({"results": []}))
    with pytest.raises(ValueError, match=r"expected a list of records or \{\"data\""):
        load_mp_json(path, progress=False)
    path.write_text("[{")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_mp_json(path, progress=False)


# -- command line -------------------------------------------------------------------------------


def test_cli_cif_csv_several_files_with_filters(tmp_path):
    train = _write_csv(tmp_path / "train.csv", rows=ROWS[:3])
    val = _write_csv(tmp_path / "val.csv", rows=[ROWS[3], ("105", "NaCl", -2.11, 5.0, 225)])
    out = tmp_path / "crystals.h5"
    res = invoke("data", "cif-csv", train, val, "--out", out, "--quiet", "--json")
    assert f"wrote 4 crystals (11 atoms) to {out}" in one_line(res.stdout)
    assert "1 contains a noble gas" in res.stdout
    summary = last_json(res.stdout)
    assert summary["n_systems"] == 4 and summary["n_read"] == 5
    assert summary["filters"]["removed"]["contains a noble gas (He, Ne, Ar, Kr, Xe, Rn)"] == 1
    assert summary["filters"]["energy_column"] == "formation_energy_per_atom"
    data, meta = read_dataset(out)
    assert list(data.system_props["split_hint"]) == ["train", "train", "train", "val"]
    assert list(data.system_props["source_file"]) == [str(train)] * 3 + [str(val)]
    assert list(data.system_props["material_id"]) == ["101", "102", "103", "105"]
    assert meta["split_hints"] == {"train": 3, "val": 2}
    assert [f["file"] for f in meta["provenance"]["files"]] == [
        str(train.resolve()),
        str(val.resolve()),
    ]
    assert meta["filters"]["n_in"] == 5 and meta["filters"]["n_out"] == 4

    again = invoke("data", "cif-csv", train, "--out", out, code=2)
    assert "--overwrite" in again.stderr
    kept = invoke(
        "data", "cif-csv", train, val, "--out", out, "--overwrite", "--keep-noble-gases", "-q"
    )
    assert "wrote 5 crystals" in kept.stdout
    deduped = invoke(
        "data", "cif-csv", train, val, "--out", out, "--overwrite", "-q", "--dedupe",
        "--prototype-column", "spacegroup.number",
    )  # fmt: skip
    assert "1 duplicate" in deduped.stdout and "wrote 3 crystals" in deduped.stdout
    no_proto = invoke("data", "cif-csv", train, "--out", out, "--overwrite", "--dedupe", code=2)
    assert "--prototype-column" in no_proto.stderr


def test_cli_cif_csv_bad_input_exits_2(tmp_path, crystal_csv):
    out = tmp_path / "x.h5"
    res = invoke("data", "cif-csv", crystal_csv, "--out", out, "--cif-column", "structure", code=2)
    assert "no CIF column 'structure'" in one_line(res.stderr)
    assert not out.exists()
    bad = _write_csv(tmp_path / "bad.csv", cifs={"Si": "garbage"})
    res = invoke("data", "cif-csv", bad, "--out", out, code=2)
    assert "row 1" in one_line(res.stderr) and "--skip-bad-rows" in one_line(res.stderr)
    res = invoke("data", "cif-csv", bad, "--out", out, "--skip-bad-rows", "-q", "--json")
    assert last_json(res.stdout)["n_skipped"] == 1 and "skipped bad.csv row 1" in res.stderr
    res = invoke("data", "cif-csv", crystal_csv, "--out", tmp_path / "x.csv", code=2)
    assert "must end in .h5" in res.stderr
    out.unlink()
    res = invoke("data", "cif-csv", crystal_csv, "--out", out, "--energy-column", "gap", code=2)
    assert "--energy-column 'gap'" in one_line(res.stderr)


def test_cli_cif_folder_and_mp_json(tmp_path, cif_folder):
    folder, labels = cif_folder
    out = tmp_path / "folder.h5"
    res = invoke("data", "cif-folder", folder, "--labels", labels, "--out", out, "-q", "--json")
    assert last_json(res.stdout)["n_systems"] == 3  # XeF2 removed
    data, meta = read_dataset(out)
    assert list(data.system_props["id"]) == ["srtio3", "nacl", "si"]
    assert meta["provenance"]["kind"] == "cif-folder"
    (folder / "nacl.cif").unlink()
    res = invoke(
        "data", "cif-folder", folder, "--labels", labels, "--out", out, "--overwrite", code=2
    )
    assert "have no CIF file" in one_line(res.stderr)

    records = _mp_records()
    records.append({**records[0], "material_id": "mp-999", "formation_energy_per_atom": 5.5})
    path = tmp_path / "mp.json"
    path.write_text(json.dumps({"data": records}))
    out = tmp_path / "mp.h5"
    res = invoke("data", "mp-json", path, "--out", out, "-q", "--json", "--dedupe")
    removed = last_json(res.stdout)["filters"]["removed"]
    assert removed == {
        "contains a noble gas (He, Ne, Ar, Kr, Xe, Rn)": 1,
        "formation energy above 5 eV/atom": 1,
        "duplicate (same reduced composition and prototype)": 0,
    }
    data, _ = read_dataset(out)
    assert list(data.system_props["material_id"]) == ["mp-101", "mp-102", "mp-103"]
    path.write_text("{}")
    res = invoke("data", "mp-json", path, "--out", tmp_path / "y.h5", code=2)
    assert "expected a list of records" in one_line(res.stderr)


# -- the real shared data (absent in a fresh clone) -------------------------------------------
@pytest.mark.slow
def test_shared_perov5_and_mp20_read_sanely():
    if not (SHARED / "perov_5" / "val.csv").exists():
        pytest.skip(f"{SHARED} is absent (only in the development workspace)")
    t0 = time.perf_counter()
    perov, meta = load_cif_csv(SHARED / "perov_5" / "val.csv", progress=False)
    seconds = time.perf_counter() - t0
    print(f"perov_5/val.csv: {len(perov)} crystals in {seconds:.2f} s")
    assert len(perov) == 3787 and meta["skipped"] == []
    assert (perov.n_atoms == 5).all()
    assert np.isfinite(perov.system_props["heat_ref"]).all()
    assert meta["units"]["heat_ref"] == "eV/atom" and meta["units"]["dir_gap"] == "eV"
    sizes = {"train": 847, "val": 123, "test": 142}
    for split, n in sizes.items():
        mp, _ = load_cif_csv(SHARED / "mp_20_subset" / f"{split}.csv", progress=False)
        assert len(mp) == n and mp.n_atoms.max() <= 20
        assert mp.system_props["material_id"][0].startswith(("mp-", "mvc-"))
    for data in (perov, mp):
        volumes = np.abs(np.linalg.det(data.cell))
        assert (volumes > 5.0).all() and (volumes / data.n_atoms < 100).all()
        owner = np.repeat(np.arange(len(data)), data.n_atoms)
        frac = np.einsum("ni,nij->nj", data.positions, np.linalg.inv(data.cell)[owner])
        assert (frac > -0.05).all() and (frac < 1.05).all()
        for k in range(0, len(data), 25):
            d = data.get_atoms(k).get_all_distances(mic=True)
            assert len(d) == 1 or d[~np.eye(len(d), dtype=bool)].min() > 0.5


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda c: c.replace("_cell_length_a", "_cell_length_a nan\n#", 1), "not finite"),
        (lambda c: _coincident_cif(), "0.04 Å from atom 1"),
    ],
)
def test_impossible_cifs_are_refused_by_row(tmp_path, edit, reason):
    cif = _cif(_crystals()["Si"])
    path = _write_csv(tmp_path / "bad.csv", cifs={"Si": edit(cif)})
    with pytest.raises(ValueError, match=r"row 1 .*" + reason):
        load_cif_csv(path, progress=False)
    data, meta = load_cif_csv(path, on_error="skip", progress=False)
    assert len(data) == 3 and meta["skipped"][0]["row"] == 1


def _coincident_cif() -> str:
    s = Structure(Lattice.cubic(4.0), ["Cu", "Cu"], [[0, 0, 0], [0.01, 0, 0]])
    return str(CifWriter(s))
