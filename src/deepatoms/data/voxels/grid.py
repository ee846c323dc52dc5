"""The voxel representation of a crystal: Z-weighted Gaussian density M and species matrix S.

docs/density_vae.md §1 (Hoffmann et al. §3.1, Eq. 1). A cube of side ``box`` (Å) holds
``n³`` voxels of side h = box/n with centres x_ijk = ((i + ½)h, (j + ½)h, (k + ½)h).

Density (Eq. 1), one channel weighted by the atomic number Z_m:

    M_ijk = 1/(σ³(2π)^{3/2}) · Σ_m Z_m · exp(−‖r_m − x_ijk‖² / (2σ²)),

summed over the atoms whose distance to the box is at most ``cutoff_sigmas``·σ (periodic images
are ordinary atoms here: the caller tiles them, :mod:`deepatoms.density.samples`). The Gaussian
factorises over the axes, exp(−‖r − x‖²/2σ²) = Π_a exp(−(r_a − x_a)²/2σ²), so the grid is one
matrix product of the per-axis factors: [n, m] · [m, n²] — O(m·n) exponentials and O(m·n³)
multiply-adds in BLAS instead of m·n³ exponentials. Σ_ijk M_ijk·h³ = Σ Z for atoms well inside
the box; ``plot_scale`` = σ³(2π)^{3/2} turns the peak of an isolated atom into Z.

Species matrix: S_ijk = Z of the nearest atom whose centre lies within ``species_radius`` (Å) of
x_ijk, else 0 (class 0 = "no atom"). Each atom only looks at the voxels of its index window
[⌈(r−ρ)/h − ½⌉, ⌊(r+ρ)/h − ½⌋] per axis; conflicts go to the nearer atom (lexsort by voxel,
distance, atom). On coarse grids (h > 2ρ/√3, e.g. 15³ over 10 Å: h = 0.667 Å, half voxel
diagonal 0.577 Å > ρ = 0.5 Å) an atom can mark no voxel at all; ``species_nearest_voxel=True``
also offers every atom inside the box the voxel that contains it (same nearest-atom rule), so
each atom marks at least one voxel unless a nearer atom claims it.

``density_reference`` / ``species_reference`` are brute-force versions (full distance grids per
atom), used by the tests and by ``benchmarks/density_grid.py``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

__all__ = [
    "GridSpec",
    "density",
    "density_reference",
    "distance_to_box",
    "plot_scale",
    "species",
    "species_reference",
]


@dataclass(frozen=True)
class GridSpec:
    """A cubic voxel grid and the density / species parameters (§1).

    Attributes:
        n: voxels per side.
        box: side of the cube (Å).
        sigma: Gaussian width σ (Å).
        species_radius: an atom marks the voxels whose centres lie within this distance (Å).
        cutoff_sigmas: atoms farther than this many σ from the box do not contribute to M.
        species_nearest_voxel: also mark the voxel containing each atom (for coarse grids where
            the species sphere can miss every voxel centre; module docstring).
    """

    n: int = 30
    box: float = 10.0
    sigma: float = 1.0
    species_radius: float = 0.5
    cutoff_sigmas: float = 4.0
    species_nearest_voxel: bool = False

    def __post_init__(self) -> None:
        problems = []
        if isinstance(self.n, bool) or not isinstance(self.n, (int, np.integer)) or self.n < 2:
            problems.append(f"n must be an int >= 2, got {self.n!r}")
        for name in ("box", "sigma", "cutoff_sigmas"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                problems.append(f"{name} must be a positive number, got {v!r}")
        r = self.species_radius
        if not (isinstance(r, (int, float)) and math.isfinite(r) and r >= 0):
            problems.append(f"species_radius must be a number >= 0 (Å), got {r!r}")
        if problems:
            raise ValueError("invalid GridSpec: " + "; ".join(problems))

    @property
    def h(self) -> float:
        """Voxel side (Å)."""
        return self.box / self.n

    @property
    def cutoff(self) -> float:
        """Distance from the box (Å) beyond which atoms do not contribute to M."""
        return self.cutoff_sigmas * self.sigma

    def axis(self) -> np.ndarray:
        """Voxel-centre coordinates along one axis, (i + ½)h, [n] (Å)."""
        return (np.arange(self.n, dtype=np.float64) + 0.5) * self.h

    def centres(self) -> np.ndarray:
        """All voxel centres [n, n, n, 3] (Å); ``centres()[i, j, k] = x_ijk``."""
        a = self.axis()
        return np.stack(np.meshgrid(a, a, a, indexing="ij"), axis=-1)

    def as_dict(self) -> dict[str, Any]:
        """Plain dict (for config and model files)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GridSpec:
        """Inverse of :meth:`as_dict`; unknown keys are an error naming them."""
        known = {f.name for f in fields(cls)}
        extra = sorted(set(d) - known)
        if extra:
            raise ValueError(f"unknown grid keys {extra}; known keys are {sorted(known)}")
        return cls(**d)


def plot_scale(grid: GridSpec) -> float:
    """σ³(2π)^{3/2} (Å³): M times this is Z at the centre of an isolated atom."""
    return grid.sigma**3 * (2.0 * math.pi) ** 1.5


def _norm(grid: GridSpec) -> float:
    return 1.0 / plot_scale(grid)


def _as_atoms(numbers: Any, positions: Any, where: str) -> tuple[np.ndarray, np.ndarray]:
    z = np.asarray(numbers).reshape(-1)
    pos = np.asarray(positions, dtype=np.float64)
    if pos.size == 0:
        pos = pos.reshape(0, 3)
    if pos.ndim != 2 or pos.shape[1] != 3:
        raise ValueError(f"{where}: positions must have shape [n, 3] (Å), got {pos.shape}")
    if len(z) != len(pos):
        raise ValueError(f"{where}: {len(z)} atomic numbers for {len(pos)} positions")
    if not np.isfinite(pos).all():
        raise ValueError(f"{where}: positions contain NaN or inf")
    return z.astype(np.int64), pos


def distance_to_box(positions: np.ndarray, box: float) -> np.ndarray:
    """Euclidean distance (Å) of each position [m, 3] to the cube [0, box]³ (0 inside) [m]."""
    pos = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    outside = np.maximum(np.maximum(-pos, pos - box), 0.0)
    return np.sqrt((outside * outside).sum(axis=1))


def density(numbers: Any, positions: Any, grid: GridSpec) -> np.ndarray:
    """Z-weighted Gaussian density M (Eq. 1) [n, n, n] float32 (Å⁻³), box-frame positions (Å).

    Atoms farther than ``grid.cutoff`` from the box are ignored; all others contribute to every
    voxel. Vectorised through the per-axis factorisation (module docstring).
    """
    z, pos = _as_atoms(numbers, positions, "density")
    keep = distance_to_box(pos, grid.box) <= grid.cutoff
    z, pos = z[keep].astype(np.float64), pos[keep]
    n = grid.n
    if len(z) == 0:
        return np.zeros((n, n, n), dtype=np.float32)
    g = np.exp(-((pos[:, :, None] - grid.axis()) ** 2) / (2.0 * grid.sigma**2))  # [m, 3, n]
    gx = g[:, 0, :] * (z * _norm(grid))[:, None]  # [m, n]
    gyz = (g[:, 1, :, None] * g[:, 2, None, :]).reshape(len(z), n * n)  # [m, n²]
    return (gx.T @ gyz).reshape(n, n, n).astype(np.float32)


def _candidates(pos: np.ndarray, grid: GridSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(flat voxel index, distance Å, atom index) of every (atom, voxel) pair that may be marked."""
    n, h, r = grid.n, grid.h, grid.species_radius
    k = math.floor(2.0 * r / h) + 2  # window size per axis (one spare for rounding)
    lo = np.ceil((pos - r) / h - 0.5).astype(np.int64) - 1  # [m, 3]
    steps = np.arange(k + 1)
    idx = lo[:, :, None] + steps  # [m, 3, k+1]
    diff = (idx + 0.5) * h - pos[:, :, None]  # [m, 3, k+1]
    d2 = (
        diff[:, 0, :, None, None] ** 2
        + diff[:, 1, None, :, None] ** 2
        + diff[:, 2, None, None, :] ** 2
    )  # [m, k+1, k+1, k+1]
    valid = (idx >= 0) & (idx < n)
    ok = (
        (d2 <= r * r)
        & valid[:, 0, :, None, None]
        & valid[:, 1, None, :, None]
        & valid[:, 2, None, None, :]
    )
    atom, a, b, c = np.nonzero(ok)
    flat = (idx[atom, 0, a] * n + idx[atom, 1, b]) * n + idx[atom, 2, c]
    vox, dist = [flat], [np.sqrt(d2[atom, a, b, c])]
    atoms = [atom]
    if grid.species_nearest_voxel:
        inside = np.all((pos >= 0.0) & (pos < grid.box), axis=1)
        own = np.minimum(np.floor(pos[inside] / h).astype(np.int64), n - 1)
        centre = (own + 0.5) * h
        vox.append((own[:, 0] * n + own[:, 1]) * n + own[:, 2])
        dist.append(np.linalg.norm(centre - pos[inside], axis=1))
        atoms.append(np.nonzero(inside)[0])
    return np.concatenate(vox), np.concatenate(dist), np.concatenate(atoms)


def species(numbers: Any, positions: Any, grid: GridSpec) -> np.ndarray:
    """Species matrix S [n, n, n] int16: Z of the nearest atom within ``species_radius`` (Å) of
    each voxel centre, else 0 (module docstring). Positions are in the box frame (Å); pass only
    the atoms that belong to the sample (those inside the box)."""
    z, pos = _as_atoms(numbers, positions, "species")
    n = grid.n
    out = np.zeros(n * n * n, dtype=np.int16)
    if len(z) == 0:
        return out.reshape(n, n, n)
    if z.min() < 0 or z.max() > np.iinfo(np.int16).max:
        raise ValueError(f"species: atomic numbers must lie in 0..32767, got {z.min()}..{z.max()}")
    vox, dist, atom = _candidates(pos, grid)
    order = np.lexsort((atom, dist, vox))
    vox, atom = vox[order], atom[order]
    first = np.ones(len(vox), dtype=bool)
    first[1:] = vox[1:] != vox[:-1]
    out[vox[first]] = z[atom[first]]
    return out.reshape(n, n, n)


def density_reference(numbers: Any, positions: Any, grid: GridSpec) -> np.ndarray:
    """Brute-force M (a full n³ distance grid per atom); same result as :func:`density`."""
    z, pos = _as_atoms(numbers, positions, "density_reference")
    centres = grid.centres()
    out = np.zeros((grid.n,) * 3, dtype=np.float64)
    for zm, r in zip(z, pos, strict=True):
        if distance_to_box(r[None], grid.box)[0] > grid.cutoff:
            continue
        d2 = ((centres - r) ** 2).sum(axis=-1)
        out += zm * np.exp(-d2 / (2.0 * grid.sigma**2))
    return (out * _norm(grid)).astype(np.float32)


def species_reference(numbers: Any, positions: Any, grid: GridSpec) -> np.ndarray:
    """Brute-force S (a full n³ distance grid per atom); same result as :func:`species`."""
    z, pos = _as_atoms(numbers, positions, "species_reference")
    centres = grid.centres()
    h, n = grid.h, grid.n
    best = np.full((n,) * 3, np.inf)
    out = np.zeros((n,) * 3, dtype=np.int16)
    for zm, r in zip(z, pos, strict=True):
        d = np.sqrt(((centres - r) ** 2).sum(axis=-1))
        mark = d <= grid.species_radius
        if grid.species_nearest_voxel and np.all((r >= 0.0) & (r < grid.box)):
            i, j, k = np.minimum(np.floor(r / h).astype(np.int64), n - 1)
            mark[i, j, k] = True
        win = mark & (d < best)
        best[win] = d[win]
        out[win] = zm
    return out
