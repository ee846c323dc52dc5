"""Crystal sources, max-side filter and group splits (docs/density_vae.md §9)."""

import csv

import numpy as np
import pytest
from ase.build import bulk
from pymatgen.io.ase import AseAtomsAdaptor
from pymatgen.io.cif import CifWriter

from deepatoms.data.dataset import write_dataset
from deepatoms.data.packed import PackedSystems
from deepatoms.data.voxels.crystal_sets import CrystalSet, load_crystals, prototype_variants

STRUCTURES = {
    "mp-1": bulk("NaCl", "rocksalt", a=5.64),
    "mp-2": bulk("Cu", "fcc", a=3.61),
    "mp-3": bulk("Si", "diamond", a=5.43, cubic=True),
}


def _cif(atoms):
    return str(CifWriter(AseAtomsAdaptor.get_structure(atoms)))


def test_csv_folder_and_h5_sources(tmp_path):
    path = tmp_path / "set.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["", "material_id", "cif"])
        for k, (mid, a) in enumerate(STRUCTURES.items()):
            w.writerow([k, mid, _cif(a)])
    folder = tmp_path / "cifs"
    folder.mkdir()
    for mid, a in STRUCTURES.items():
        (folder / f"{mid}.cif").write_text(_cif(a))
    packed = PackedSystems.from_atoms(
        list(STRUCTURES.values()), system_props={"prototype": np.array(["B1", "A1", "A1"])}
    )
    write_dataset(tmp_path / "set.h5", packed, {"units": {}, "source": "test", "provenance": {}})

    cs = load_crystals([str(path), folder, tmp_path / "set.h5"], progress=False)
    assert len(cs) == 9
    assert cs.ids[:3] == ["mp-1", "mp-2", "mp-3"] and cs.groups[:3] == cs.ids[:3]
    assert cs.ids[3:6] == ["mp-1", "mp-2", "mp-3"]  # file stems
    assert cs.ids[6:] == ["set:0", "set:1", "set:2"] and cs.groups[6:] == ["B1", "A1", "A1"]
    assert cs.source[0] == str(path) and cs.source[3] == str(folder)
    assert [len(a) for a in cs.atoms] == [2, 1, 8] * 3
    assert np.allclose(cs.atoms[2].cell.lengths(), 5.43, atol=1e-4)
    assert cs.notes["duplicate_ids"] == 3


def test_bad_sources_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"'nope\.csv' does not exist"):
        load_crystals(["nope.csv"], progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"holds no \.cif files"):
        load_crystals([tmp_path / "empty"], progress=False)
    with pytest.raises(ValueError, match="must be an integer"):
        load_crystals(["prototypes:many"], progress=False)
    with pytest.raises(ValueError, match="no crystal sources"):
        load_crystals([], progress=False)


def test_prototypes_filter_and_variants():
    cs = load_crystals(["prototypes"], progress=False)
    assert len(cs) == 288 and cs.groups == cs.ids
    small = cs.filter_max_side(10.0)
    assert len(small) == 243
    assert small.notes["max_side"]["dropped"] == 45 and small.notes["max_side"]["kept"] == 243
    v = prototype_variants(30, seed=3)
    assert len(v) == 30 and len(set(v.ids)) == 30
    assert v.ids == prototype_variants(30, seed=3).ids
    for cid, group, a in zip(v.ids, v.groups, v.atoms, strict=True):
        assert cid.startswith(group + ":")
        assert a.pbc.all() and len(a) > 0
    both = load_crystals(["prototypes:5"], seed=1, progress=False)
    assert len(both) == 293 and both.source[-1] == "prototypes:variants"


def test_variant_lattice_is_rescaled_by_atomic_volumes():
    from deepatoms.data.prototypes.rescale import atomic_volume

    v = prototype_variants(20, seed=0)
    lib = {a: atoms for a, atoms in zip(*_library(), strict=True)}
    for cid, group, a in zip(v.ids, v.groups, v.atoms, strict=True):
        parent = lib[group]
        old = sum(atomic_volume(s) for s in parent.get_chemical_symbols())
        new = sum(atomic_volume(s) for s in a.get_chemical_symbols())
        assert a.get_volume() / parent.get_volume() == pytest.approx(new / old, rel=1e-9), cid


def _library():
    cs = load_crystals(["prototypes"], progress=False)
    return cs.ids, cs.atoms


def test_split_by_group_keeps_groups_whole():
    atoms = [bulk("Cu")] * 40
    groups = [f"g{k // 4}" for k in range(40)]  # 10 groups of 4
    cs = CrystalSet(atoms, [str(k) for k in range(40)], groups, ["x"] * 40)
    split = cs.split_by_group((0.8, 0.1, 0.1), seed=0)
    assert [len(split[k]) for k in ("train", "val", "test")] == [32, 4, 4]
    seen = {}
    for part, idx in split.items():
        for i in idx:
            assert seen.setdefault(groups[i], part) == part
    assert sorted(np.concatenate(list(split.values()))) == list(range(40))
    paper = cs.split_by_group((0.8, 0.2), seed=0)
    assert len(paper["val"]) == 0 and len(paper["test"]) == 8
    with pytest.raises(ValueError, match="summing to 1"):
        cs.split_by_group((0.8, 0.3))
    sub = cs.subset([3, 1])
    assert sub.ids == ["3", "1"] and sub.groups == ["g0", "g0"]
