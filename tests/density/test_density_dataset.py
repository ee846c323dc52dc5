"""Class map, on-the-fly dataset and collate (docs/density_vae.md §2, §4)."""

import numpy as np
import pytest
import torch
from ase.build import bulk

from deepatoms.data.voxels.dataset import ClassMap, DensityDataset, collate
from deepatoms.data.voxels.grid import GridSpec

G = GridSpec(n=12)
CRYSTALS = [bulk("NaCl", "rocksalt", a=5.64), bulk("Cu"), bulk("Si")]


def test_class_map_full_and_compact():
    full = ClassMap.full()
    assert full.n_classes == 95 and full.mode == "full"
    np.testing.assert_array_equal(full.to_class(np.array([0, 1, 94])), [0, 1, 94])
    compact = ClassMap.from_mode("compact", CRYSTALS)
    assert compact.to_list() == [0, 11, 14, 17, 29] and compact.mode == "compact"
    s = np.array([[0, 29], [17, 11]], dtype=np.int16)
    np.testing.assert_array_equal(compact.to_class(s), [[0, 4], [3, 1]])
    np.testing.assert_array_equal(compact.to_z(compact.to_class(s)), s)
    t = compact.to_class(torch.tensor([14, 0]))
    assert isinstance(t, torch.Tensor) and t.tolist() == [2, 0]
    assert ClassMap.from_list(compact.to_list()) == compact
    with pytest.raises(ValueError, match=r"Fe \(Z=26\) are not in the compact class map"):
        compact.to_class(np.array([26]))
    with pytest.raises(ValueError, match="full map covers Z <= 94"):
        full.to_class(np.array([98]))
    with pytest.raises(ValueError, match=r"class indices must lie in 0\.\.4"):
        compact.to_z(np.array([5]))
    with pytest.raises(ValueError, match="must start with 0"):
        ClassMap([1, 2])


def test_dataset_items_are_reproducible_per_epoch():
    ds = DensityDataset(CRYSTALS, G, regime="single", rotations_per_crystal=3, seed=4)
    assert len(ds) == 9 and ds.crystal_of(5) == 1
    item = ds[4]
    assert item["density"].shape == (1, 12, 12, 12) and item["density"].dtype == torch.float32
    assert item["classes"].shape == (12, 12, 12) and item["classes"].dtype == torch.int64
    other = DensityDataset(CRYSTALS, G, regime="single", seed=4)
    assert torch.equal(other[4]["density"], item["density"])
    np.testing.assert_array_equal(other[4]["rotation"], item["rotation"])
    ds.set_epoch(1)
    assert not np.allclose(ds[4]["rotation"], item["rotation"])
    assert not np.allclose(DensityDataset(CRYSTALS, G, seed=5)[4]["rotation"], item["rotation"])


def test_repeated_regime_first_copy_aligned_and_cache():
    ds = DensityDataset(CRYSTALS, G, regime="repeated", rotations_per_crystal=3, seed=0)
    np.testing.assert_array_equal(ds[3]["rotation"], np.eye(3))  # copy 0 of crystal 1
    assert not np.allclose(ds[4]["rotation"], np.eye(3))
    cached = DensityDataset(CRYSTALS, G, regime="repeated", seed=0, cache=True)
    cached.set_epoch(3)  # no effect on cached samples
    for i in range(len(ds)):
        assert torch.equal(cached[i]["density"], ds[i]["density"])
        assert torch.equal(cached[i]["classes"], ds[i]["classes"])
    none_aligned = DensityDataset(CRYSTALS, G, regime="repeated", aligned_first=False)
    assert not np.allclose(none_aligned[3]["rotation"], np.eye(3))


def test_collate_batches_and_keeps_atoms():
    cm = ClassMap.from_mode("compact", CRYSTALS)
    ds = DensityDataset(CRYSTALS, G, class_map=cm, rotations_per_crystal=2)
    loader = torch.utils.data.DataLoader(ds, batch_size=4, collate_fn=collate)
    batch = next(iter(loader))
    assert batch["density"].shape == (4, 1, 12, 12, 12)
    assert batch["classes"].shape == (4, 12, 12, 12) and batch["classes"].dtype == torch.long
    assert int(batch["classes"].max()) < cm.n_classes
    assert batch["index"].tolist() == [0, 1, 2, 3] and batch["crystal"].tolist() == [0, 0, 1, 1]
    assert batch["rotation"].shape == (4, 3, 3) and batch["translation"].shape == (4, 3)
    numbers, positions = batch["atoms"][2]
    np.testing.assert_array_equal(numbers, [29])
    assert positions.shape == (1, 3)
    with pytest.raises(ValueError, match="empty batch"):
        collate([])


def test_dataset_rejects_bad_settings():
    with pytest.raises(ValueError, match="regime must be"):
        DensityDataset(CRYSTALS, G, regime="tiled")
    with pytest.raises(ValueError, match=r"crystal 1 \(Cu\).*not in the compact class map"):
        DensityDataset(CRYSTALS, G, class_map=ClassMap([0, 11, 17, 14]))
