"""Torch dataset of voxel samples made on the fly, the species class map and the collate step.

docs/density_vae.md §2 (augmentation), §4 (classes), §9 (samples per crystal).

- :class:`ClassMap`: segmentation classes. ``full`` = 95 classes, class index = Z for Z ≤ 94 and
  class 0 = no atom (§4 Default); ``compact`` = class 0 plus the sorted elements present. It
  maps S (Z per voxel) to class indices and back, and serialises to a plain list of Z (index =
  class) for model files.
- :class:`DensityDataset`: ``len = crystals × rotations_per_crystal``; item i is copy
  ``r = i mod R`` of crystal ``c = i div R``. Its random numbers come from
  ``numpy.random.default_rng([seed, epoch, i])``, so a run is reproducible and every epoch sees
  new rotations (call :meth:`DensityDataset.set_epoch`; DataLoader workers that are re-created
  each epoch, the default ``persistent_workers=False``, pick it up). Regimes: ``single``
  (all copies randomly rotated unless ``rotate=False``) and ``repeated`` (copy 0 origin-aligned,
  the others randomly shifted and rotated; ``aligned_first=False`` makes all random).
  ``cache=True`` computes every sample once (epoch 0) and keeps it in memory (≈ 6n³ bytes per
  sample: 160 kB at 30³).
- :func:`collate`: ``density [B, 1, n, n, n]`` float32, ``classes [B, n, n, n]`` long, plus the
  per-sample atoms (box frame, Å) and augmentation for the metrics.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal

import numpy as np
import torch
from ase import Atoms
from ase.data import chemical_symbols

from deepatoms.core.progress import ProgressBar
from deepatoms.data.voxels.grid import GridSpec
from deepatoms.data.voxels.samples import Centre, VoxelSample, repeated_lattice, single_cell

__all__ = ["MAX_Z", "ClassMap", "DensityDataset", "collate"]

#: Largest atomic number of the ``full`` class map (§4: class Z for Z ≤ 94).
MAX_Z = 94
#: Largest atomic number any class map accepts (compact maps may hold e.g. Cf, Z = 98).
_TABLE_Z = 118
Regime = Literal["single", "repeated"]


def _symbol(z: int) -> str:
    return chemical_symbols[z] if 0 < z < len(chemical_symbols) else "?"


class ClassMap:
    """Segmentation classes: ``elements[c]`` is the atomic number of class c (class 0 = no atom).

    Build with :meth:`full`, :meth:`compact`, :meth:`from_mode` or :meth:`from_list`.
    """

    def __init__(self, elements: Sequence[int]) -> None:
        els = [int(z) for z in elements]
        if not els or els[0] != 0:
            raise ValueError(f"class map must start with 0 (no atom), got {els[:5]}")
        if len(set(els)) != len(els) or any(z < 0 or z > _TABLE_Z for z in els):
            raise ValueError(f"class map needs distinct atomic numbers in 0..{_TABLE_Z}, got {els}")
        self.elements: tuple[int, ...] = tuple(els)
        self._to_class = np.full(_TABLE_Z + 1, -1, dtype=np.int64)
        self._to_class[list(els)] = np.arange(len(els))
        self._to_z = np.array(els, dtype=np.int64)

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def full(cls) -> ClassMap:
        """95 classes, class index = Z (§4 Default)."""
        return cls(range(MAX_Z + 1))

    @classmethod
    def compact(cls, numbers: Iterable[int]) -> ClassMap:
        """Class 0 plus the distinct atomic numbers of ``numbers``, sorted."""
        zs = sorted({int(z) for z in np.asarray(list(numbers)).reshape(-1)} - {0})
        return cls([0, *zs])

    @classmethod
    def from_mode(cls, mode: str, crystals: Iterable[Atoms] | None = None) -> ClassMap:
        """``"full"``, or ``"compact"`` over the elements of ``crystals`` (ase.Atoms or objects
        with ``.atoms``, e.g. a CrystalSet)."""
        if mode == "full":
            return cls.full()
        if mode == "compact":
            if crystals is None:
                raise ValueError(
                    "class map mode 'compact' needs the crystals to take elements from"
                )
            items = getattr(crystals, "atoms", crystals)
            return cls.compact(np.concatenate([np.asarray(a.numbers) for a in items] or [[]]))
        raise ValueError(f"class map mode must be 'full' or 'compact', got {mode!r}")

    @classmethod
    def from_list(cls, elements: Sequence[int]) -> ClassMap:
        """Inverse of :meth:`to_list`."""
        return cls(elements)

    def to_list(self) -> list[int]:
        """Atomic number of each class, as a plain list (for model files)."""
        return list(self.elements)

    # -- queries -----------------------------------------------------------------------------
    @property
    def n_classes(self) -> int:
        """Number of classes, including class 0."""
        return len(self.elements)

    @property
    def mode(self) -> str:
        """``"full"`` when class index = Z for all Z ≤ 94, else ``"compact"``."""
        return "full" if self.elements == tuple(range(MAX_Z + 1)) else "compact"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ClassMap) and self.elements == other.elements

    def __hash__(self) -> int:
        return hash(self.elements)

    def __repr__(self) -> str:
        return f"ClassMap({self.mode}, {self.n_classes} classes)"

    def to_class(self, species: Any) -> Any:
        """Class indices (int64 / torch long) of an array of atomic numbers (e.g. S)."""
        is_torch = isinstance(species, torch.Tensor)
        z = species.cpu().numpy() if is_torch else np.asarray(species)
        z = z.astype(np.int64)
        bad = (z < 0) | (z > _TABLE_Z)
        cls = np.where(bad, -1, self._to_class[np.clip(z, 0, _TABLE_Z)])
        if (cls < 0).any():
            missing = sorted({int(v) for v in z[cls < 0]})
            names = ", ".join(f"{_symbol(v)} (Z={v})" for v in missing)
            fix = (
                f"the full map covers Z <= {MAX_Z}; use a compact class map built from the "
                "crystals (ClassMap.from_mode('compact', crystals)) or drop those crystals"
                if self.mode == "full"
                else "build the compact class map from all crystals (ClassMap.from_mode("
                "'compact', crystals)) or use mode 'full'"
            )
            raise ValueError(
                f"element(s) {names} are not in the {self.mode} class map of {self.n_classes} "
                f"classes; {fix}"
            )
        if is_torch:
            return torch.from_numpy(cls).to(species.device)
        return cls

    def to_z(self, classes: Any) -> Any:
        """Atomic numbers (int64 / torch long) of an array of class indices."""
        is_torch = isinstance(classes, torch.Tensor)
        c = classes.cpu().numpy() if is_torch else np.asarray(classes)
        c = c.astype(np.int64)
        if c.size and (c.min() < 0 or c.max() >= self.n_classes):
            raise ValueError(
                f"class indices must lie in 0..{self.n_classes - 1}, got {c.min()}..{c.max()}"
            )
        z = self._to_z[c]
        return torch.from_numpy(z).to(classes.device) if is_torch else z


class DensityDataset(torch.utils.data.Dataset):
    """Voxel samples of crystals made on the fly (module docstring).

    Args:
        crystals: ase.Atoms with 3-D cells, or an object with ``.atoms`` (a CrystalSet).
        grid: the voxel grid.
        class_map: classes of the targets; ``None`` = :meth:`ClassMap.full`.
        regime: ``"single"`` or ``"repeated"``.
        rotations_per_crystal: samples per crystal (the paper: 3).
        seed: base seed of the augmentation.
        rotate: random rotations in the single-cell regime.
        centre: single-cell centring, ``"cell"`` or ``"centroid"``.
        aligned_first: repeated regime, copy 0 origin-aligned.
        cache: precompute all samples (epoch 0) and keep them in memory.
        progress: progress bar while caching.
    """

    def __init__(
        self, crystals: Sequence[Atoms] | Any, grid: GridSpec, class_map: ClassMap | None = None,
        regime: Regime = "single", rotations_per_crystal: int = 3, seed: int = 0,
        rotate: bool = True, centre: Centre = "cell", aligned_first: bool = True,
        cache: bool = False, progress: bool = False,
    ) -> None:  # fmt: skip
        if regime not in ("single", "repeated"):
            raise ValueError(f"regime must be 'single' or 'repeated', got {regime!r}")
        if int(rotations_per_crystal) < 1:
            raise ValueError(f"rotations_per_crystal must be >= 1, got {rotations_per_crystal}")
        self.atoms: list[Atoms] = list(getattr(crystals, "atoms", crystals))
        self.grid = grid
        self.class_map = class_map if class_map is not None else ClassMap.full()
        for k, a in enumerate(self.atoms):  # fail early, naming the crystal
            try:
                self.class_map.to_class(np.asarray(a.numbers))
            except ValueError as err:
                raise ValueError(f"crystal {k} ({a.get_chemical_formula()}): {err}") from None
        self.regime = regime
        self.rotations_per_crystal = int(rotations_per_crystal)
        self.seed = int(seed)
        self.rotate, self.centre, self.aligned_first = rotate, centre, aligned_first
        self.epoch = 0
        self._cache: list[VoxelSample] | None = None
        if cache:
            with ProgressBar("voxelising crystals", quiet=not progress) as bar:
                out = []
                for i in range(len(self)):
                    out.append(self.sample(i, epoch=0))
                    if i % 32 == 0 or i == len(self) - 1:
                        bar(i + 1, len(self))
            self._cache = out

    def __len__(self) -> int:
        return len(self.atoms) * self.rotations_per_crystal

    def set_epoch(self, epoch: int) -> None:
        """Use the augmentation of ``epoch`` from now on (no effect with ``cache=True``)."""
        self.epoch = int(epoch)

    def crystal_of(self, index: int) -> int:
        """Index of the crystal behind sample ``index``."""
        return index // self.rotations_per_crystal

    def sample(self, index: int, epoch: int | None = None) -> VoxelSample:
        """Sample ``index`` of ``epoch`` (default: the current epoch), computed now."""
        if not 0 <= index < len(self):
            raise IndexError(f"sample {index} out of range for {len(self)} samples")
        ep = self.epoch if epoch is None else int(epoch)
        rng = np.random.default_rng([self.seed, ep, index])
        atoms = self.atoms[self.crystal_of(index)]
        copy = index % self.rotations_per_crystal
        if self.regime == "single":
            return single_cell(atoms, self.grid, rng, rotate=self.rotate, centre=self.centre)
        return repeated_lattice(atoms, self.grid, rng, aligned=self.aligned_first and copy == 0)

    def __getitem__(self, index: int) -> dict[str, Any]:
        s = self._cache[index] if self._cache is not None else self.sample(index)
        return {
            "density": torch.from_numpy(s.density).unsqueeze(0),
            "classes": torch.from_numpy(self.class_map.to_class(s.species)),
            "numbers": s.numbers,
            "positions": s.positions,
            "index": index,
            "crystal": self.crystal_of(index),
            "n_dropped": s.n_dropped,
            "rotation": s.rotation,
            "translation": s.translation,
        }


def collate(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Batch items of :class:`DensityDataset`: ``density [B, 1, n, n, n]`` float32, ``classes
    [B, n, n, n]`` long, ``atoms`` (list of (numbers, positions Å) in the box frame), ``index``,
    ``crystal``, ``n_dropped`` [B] long, ``rotation [B, 3, 3]`` and ``translation [B, 3]``
    (float64; box = crystal @ R.T + t)."""
    if not items:
        raise ValueError("collate got an empty batch")
    return {
        "density": torch.stack([it["density"] for it in items]),
        "classes": torch.stack([it["classes"] for it in items]).long(),
        "atoms": [(it["numbers"], it["positions"]) for it in items],
        "index": torch.tensor([it["index"] for it in items], dtype=torch.long),
        "crystal": torch.tensor([it["crystal"] for it in items], dtype=torch.long),
        "n_dropped": torch.tensor([it["n_dropped"] for it in items], dtype=torch.long),
        "rotation": torch.from_numpy(np.stack([it["rotation"] for it in items])),
        "translation": torch.from_numpy(np.stack([it["translation"] for it in items])),
    }
