"""Voxel samples of a crystal: single unit cell or repeated lattice, with random rotations.

docs/density_vae.md §2 (Hoffmann et al. §3.1). Every sample maps crystal-frame positions
r (Å) into the box frame by one affine map, recorded on the sample:

    x = R·r + t        (rows: ``positions @ rotation.T + translation``),

so ``(x − t)·R`` maps box positions back into the crystal frame.

- **Single unit cell** (:func:`single_cell`): each site once, fractional coordinates wrapped to
  [0, 1); the cell centre ½(a + b + c) (or the atom centroid, ``centre="centroid"``) goes to the
  box centre c₀ = (box/2)·(1, 1, 1) and a uniformly random rotation R ∈ SO(3) acts about c₀:
  x = R(r − c) + c₀. Atoms whose centres leave the box are dropped and counted
  (``n_dropped``). Following the paper ("M from S's atoms") both M and S are built from the
  kept atoms only, so the density never shows an atom the species matrix lacks.
- **Repeated lattice** (:func:`repeated_lattice`): the crystal tiled periodically. Aligned: R = I,
  t = 0 (a lattice point at the box corner, standard orientation). Random: a uniform fractional
  shift u ∈ [0, 1)³ and a random rotation about c₀: x = R(r + u·L − c₀) + c₀. Every image within
  ``grid.cutoff`` of the box contributes to M (periodic images included, §1); S and the sample's
  atoms are the images whose centres lie inside the box; ``n_dropped`` is 0 (nothing of the
  infinite crystal is "lost").

Uniform rotations: a normalised 4-vector of independent standard normals is a uniform unit
quaternion (Shoemake 1992), whose rotation matrix is uniform on SO(3).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Literal

import numpy as np
from ase import Atoms

from deepatoms.data.voxels.grid import (
    GridSpec,
    density,
    density_reference,
    distance_to_box,
    species,
    species_reference,
)

__all__ = [
    "VoxelSample",
    "max_side_filter",
    "random_rotation",
    "repeated_lattice",
    "single_cell",
]

Centre = Literal["cell", "centroid"]


@dataclass
class VoxelSample:
    """One voxelised sample (§2).

    Attributes:
        density: M [n, n, n] float32 (Å⁻³, raw Eq. 1 values).
        species: S [n, n, n] int16 (Z, 0 = no atom).
        numbers: atomic numbers of the atoms inside the box [k] int64.
        positions: their box-frame positions [k, 3] (Å).
        n_dropped: atoms of the unit cell whose centres left the box (single cell; 0 repeated).
        rotation: R [3, 3]; box = ``crystal @ R.T + translation``.
        translation: t [3] (Å).
        cell: the crystal's lattice vectors (rows, crystal frame) [3, 3] (Å).
        regime: ``"single"`` or ``"repeated"``.
    """

    density: np.ndarray
    species: np.ndarray
    numbers: np.ndarray
    positions: np.ndarray
    n_dropped: int
    rotation: np.ndarray
    translation: np.ndarray
    cell: np.ndarray
    regime: str

    @property
    def clipped(self) -> bool:
        """True when atoms of the unit cell were dropped (single-cell regime)."""
        return self.n_dropped > 0

    def to_crystal_frame(self, positions: np.ndarray) -> np.ndarray:
        """Map box-frame positions [k, 3] (Å) back into the crystal frame."""
        return (np.asarray(positions, dtype=np.float64) - self.translation) @ self.rotation


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random rotation matrix [3, 3] (det +1) from a unit quaternion."""
    q = rng.standard_normal(4)
    w, x, y, z = q / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def _cell_of(atoms: Atoms, where: str) -> np.ndarray:
    cell = np.asarray(atoms.cell.array, dtype=np.float64)
    if abs(np.linalg.det(cell)) < 1e-6:
        raise ValueError(
            f"{where}: the structure has no 3-D cell (volume {abs(np.linalg.det(cell)):.3g} Å³); "
            "voxel samples need a periodic crystal with three lattice vectors"
        )
    return cell


def max_side_filter(atoms: Atoms, limit: float = 10.0) -> bool:
    """True when every lattice vector is shorter than ``limit`` (Å) (§1 crystal filter)."""
    cell = np.asarray(atoms.cell.array, dtype=np.float64)
    return bool(np.linalg.norm(cell, axis=1).max() < limit)


def _wrapped_positions(atoms: Atoms, cell: np.ndarray) -> np.ndarray:
    """Cartesian positions (Å) of the sites with fractional coordinates wrapped to [0, 1)."""
    frac = np.linalg.solve(cell.T, np.asarray(atoms.positions, dtype=np.float64).T).T
    frac = np.mod(frac, 1.0)
    frac[frac >= 1.0 - 1e-12] = 0.0
    return frac @ cell


def _inside(pos: np.ndarray, box: float) -> np.ndarray:
    return np.all((pos >= 0.0) & (pos < box), axis=1)


def single_cell(
    atoms: Atoms,
    grid: GridSpec,
    rng: np.random.Generator | None = None,
    rotate: bool = True,
    centre: Centre = "cell",
    brute_force: bool = False,
) -> VoxelSample:
    """Single-unit-cell sample (module docstring): centred, randomly rotated about the box
    centre when ``rotate`` (needs ``rng``), atoms outside the box dropped and counted.
    ``brute_force`` builds M and S with the slow reference functions (benchmarks, tests)."""
    cell = _cell_of(atoms, "single_cell")
    pos = _wrapped_positions(atoms, cell)
    if centre == "cell":
        c = 0.5 * cell.sum(axis=0)
    elif centre == "centroid":
        c = pos.mean(axis=0)
    else:
        raise ValueError(f"centre must be 'cell' or 'centroid', got {centre!r}")
    rot = _rotation(rng, rotate, "single_cell")
    c0 = np.full(3, 0.5 * grid.box)
    t = c0 - rot @ c
    x = pos @ rot.T + t
    keep = _inside(x, grid.box)
    z = np.asarray(atoms.numbers, dtype=np.int64)[keep]
    x = x[keep]
    m_fn, s_fn = _grid_functions(brute_force)
    return VoxelSample(
        density=m_fn(z, x, grid),
        species=s_fn(z, x, grid),
        numbers=z,
        positions=x,
        n_dropped=int((~keep).sum()),
        rotation=rot,
        translation=t,
        cell=cell,
        regime="single",
    )


def _grid_functions(brute_force: bool) -> tuple:
    return (density_reference, species_reference) if brute_force else (density, species)


def _rotation(rng: np.random.Generator | None, rotate: bool, where: str) -> np.ndarray:
    if not rotate:
        return np.eye(3)
    if rng is None:
        raise ValueError(f"{where}: rotate=True needs a numpy Generator (rng=...)")
    return random_rotation(rng)


def _tile(
    frac_pos: np.ndarray, numbers: np.ndarray, cell: np.ndarray, rot: np.ndarray, t: np.ndarray,
    lo: float, hi: float,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """All lattice images (box frame) whose positions can fall in the cube [lo, hi]³.

    The cube's corners are mapped back to fractional coordinates; the integer range of their
    bounding box (widened by one cell for the basis) covers every image inside the cube."""
    corners = np.array(list(itertools.product((lo, hi), repeat=3)))
    frac_corners = np.linalg.solve(cell.T, ((corners - t) @ rot).T).T
    n_lo = np.floor(frac_corners.min(axis=0)).astype(np.int64) - 1
    n_hi = np.ceil(frac_corners.max(axis=0)).astype(np.int64) + 1
    ranges = [np.arange(a, b + 1) for a, b in zip(n_lo, n_hi, strict=True)]
    shifts = np.stack(np.meshgrid(*ranges, indexing="ij"), axis=-1).reshape(-1, 3)
    frac = (shifts[:, None, :] + frac_pos[None, :, :]).reshape(-1, 3)
    x = (frac @ cell) @ rot.T + t
    z = np.tile(numbers, len(shifts))
    return z, x


def repeated_lattice(
    atoms: Atoms,
    grid: GridSpec,
    rng: np.random.Generator | None = None,
    aligned: bool = False,
    brute_force: bool = False,
) -> VoxelSample:
    """Repeated-lattice sample (module docstring): origin-aligned (``aligned=True``) or randomly
    shifted and rotated (needs ``rng``); M from every image within the cut-off of the box, S and
    the atoms from the images inside it. ``brute_force``: reference M and S (benchmarks)."""
    cell = _cell_of(atoms, "repeated_lattice")
    frac = np.linalg.solve(cell.T, np.asarray(atoms.positions, dtype=np.float64).T).T
    frac = np.mod(frac, 1.0)
    numbers = np.asarray(atoms.numbers, dtype=np.int64)
    if aligned:
        rot, t = np.eye(3), np.zeros(3)
    else:
        if rng is None:
            raise ValueError("repeated_lattice: aligned=False needs a numpy Generator (rng=...)")
        u = rng.random(3)
        rot = random_rotation(rng)
        c0 = np.full(3, 0.5 * grid.box)
        t = rot @ (u @ cell - c0) + c0
    margin = grid.cutoff
    z, x = _tile(frac, numbers, cell, rot, t, -margin, grid.box + margin)
    near = distance_to_box(x, grid.box) <= margin
    z, x = z[near], x[near]
    keep = _inside(x, grid.box)
    m_fn, s_fn = _grid_functions(brute_force)
    return VoxelSample(
        density=m_fn(z, x, grid),
        species=s_fn(z[keep], x[keep], grid),
        numbers=z[keep],
        positions=x[keep],
        n_dropped=0,
        rotation=rot,
        translation=t,
        cell=cell,
        regime="repeated",
    )
