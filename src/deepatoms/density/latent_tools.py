"""Latent-space tools of the crystal density VAE: encode, decode, sample, interpolate, sweep.

docs/density_vae.md §8 (Hoffmann et al. §4.3–4.5, App. 9).

- **Encode**: a crystal → single-cell voxel sample M (§2, seeded rotation) → encoder → μ, log σ².
- **Decode**: z → decoder M̂ = D(z) → U-Net logits Ŝ → atoms by connected components (§6).
- **Sample**: z ~ N(0, I) (seeded), optionally scaled, αz.
- **Interpolate**: z(t) = (1 − t)·z_A + t·z_B at t = i/(k + 1), i = 0 … k + 1: the two ends plus k
  equally spaced intermediates (the paper shows k = 3).
- **Sweep**: z with one dimension set to each of a list of values (paper: −3 … 3); difference maps
  M̂(value) − M̂(z) against the unaltered decode.
- **Conditioning** (§8): a model trained with conditioning decodes z_dec = m·z, m = max(M) of its
  input (or the largest Z), and divides the encoder's pre-bottleneck features by m. Decoding such a
  model needs a target m: the encoded crystal's own m, or a chosen α when sampling ("sampling αz
  with z ~ N(0, I) and a random target α"). For a model without conditioning, α simply scales z.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from ase import Atoms

from deepatoms.data.voxels.grid import GridSpec
from deepatoms.data.voxels.samples import VoxelSample
from deepatoms.density.recovery import RecoveredAtoms, recover_atoms
from deepatoms.models.loaded import LoadedDensityModel

__all__ = [
    "Decoded",
    "Encoded",
    "alpha_inputs",
    "alter",
    "check_fits_box",
    "conditioning_scale",
    "decode_latents",
    "difference_maps",
    "encode_crystals",
    "encode_samples",
    "interpolate",
    "make_samples",
    "parse_values",
    "sample_prior",
    "sweep",
]

Progress = Callable[[int, int], None] | None

_RANGE = re.compile(r"^\s*([^:]+):([^:]+):([^:]+)\s*$")


def _float(text: str, spec: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(
            f"cannot read {text.strip()!r} in the value list {spec!r} as a number; write "
            "START:STOP:COUNT (e.g. -3:3:7) or a comma-separated list (e.g. 0.5,1,2)"
        ) from None


def parse_values(spec: str) -> np.ndarray:
    """Values from ``"START:STOP:COUNT"`` (COUNT evenly spaced, both ends included) or ``"a,b,c"``.

    ``"-3:3:7"`` → [−3, −2, −1, 0, 1, 2, 3]; ``"0.5,1,2"`` → [0.5, 1, 2]; ``"1.5"`` → [1.5].
    """
    m = _RANGE.match(spec)
    if m:
        start, stop = _float(m.group(1), spec), _float(m.group(2), spec)
        count_f = _float(m.group(3), spec)
        if count_f != int(count_f) or count_f < 1:
            raise ValueError(
                f"the count in {spec!r} must be a whole number ≥ 1, got {m.group(3).strip()!r}"
            )
        return np.linspace(start, stop, int(count_f))
    parts = [p for p in spec.split(",") if p.strip()]
    if not parts:
        raise ValueError(f"empty value list {spec!r}; write e.g. -3:3:7 or 0.5,1,2")
    return np.array([_float(p, spec) for p in parts], dtype=np.float64)


def _vector(z: np.ndarray, name: str) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 1 or z.size == 0:
        raise ValueError(f"{name} must be one latent vector [d], got shape {z.shape}")
    return z


def interpolate(z_a: np.ndarray, z_b: np.ndarray, k: int = 3) -> np.ndarray:
    """Linear interpolation [k + 2, d]: z_A, k equally spaced intermediates, z_B (§8)."""
    z_a, z_b = _vector(z_a, "z_a"), _vector(z_b, "z_b")
    if z_a.shape != z_b.shape:
        raise ValueError(f"z_a and z_b differ in size: {z_a.size} vs {z_b.size} dimensions")
    if k < 0:
        raise ValueError(f"the number of intermediates k must be ≥ 0, got {k}")
    t = np.linspace(0.0, 1.0, k + 2)[:, None]
    return (1.0 - t) * z_a[None, :] + t * z_b[None, :]


def sweep(z: np.ndarray, dim: int, values: Sequence[float]) -> np.ndarray:
    """Copies of ``z`` [len(values), d] with dimension ``dim`` set to each value (§8)."""
    z = _vector(z, "z")
    if not 0 <= dim < z.size:
        raise ValueError(
            f"latent dimension {dim} is out of range; the latent has {z.size} (0–{z.size - 1})"
        )
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if values.size == 0:
        raise ValueError("sweep needs at least one value")
    out = np.repeat(z[None, :], values.size, axis=0)
    out[:, dim] = values
    return out


def sample_prior(
    n: int, seed: int, dim: int = 300, alpha: float | np.ndarray | None = None
) -> np.ndarray:
    """``n`` draws z ~ N(0, I) of size ``dim`` [n, dim], reproducible from ``seed``; × α if given.

    ``alpha`` is one number or one per draw [n].
    """
    if n < 1:
        raise ValueError(f"the number of samples must be at least 1, got {n}")
    if dim < 1:
        raise ValueError(f"the latent size must be at least 1, got {dim}")
    z = np.random.default_rng(seed).standard_normal((n, dim))
    return z if alpha is None else alter(z, alpha)


def alter(z: np.ndarray, alpha: float | np.ndarray) -> np.ndarray:
    """α·z for latents ``z`` [d] or [n, d]; ``alpha`` is one number or one per row [n]."""
    z = np.asarray(z, dtype=np.float64)
    a = np.asarray(alpha, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"alpha must be finite, got {alpha}")
    if a.ndim == 0:
        return a * z
    if z.ndim != 2 or a.shape != (z.shape[0],):
        raise ValueError(f"alpha of shape {a.shape} does not match latents of shape {z.shape}")
    return a[:, None] * z


def difference_maps(densities: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """M̂(value) − M̂(reference) for a stack of densities [k, n, n, n] and one reference [n, n, n]."""
    densities = np.asarray(densities, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if densities.shape[1:] != reference.shape:
        raise ValueError(
            f"densities of shape {densities.shape[1:]} cannot be compared with a reference of "
            f"shape {reference.shape}"
        )
    return densities - reference[None]


def conditioning_scale(
    density: np.ndarray | None = None,
    numbers: np.ndarray | None = None,
    mode: str = "max_density",
) -> float:
    """The conditioning factor m of §8: max(M) of the density (Default) or the largest Z."""
    if mode == "max_density":
        if density is None:
            raise ValueError("conditioning mode max_density needs the density")
        return float(np.max(density))
    if mode == "max_z":
        if numbers is None or len(numbers) == 0:
            raise ValueError("conditioning mode max_z needs at least one atom")
        return float(np.max(numbers))
    raise ValueError(f"conditioning mode must be 'max_density' or 'max_z', got {mode!r}")


# -- model-backed tools -----------------------------------------------------------------------
@dataclass
class Encoded:
    """Encodings of voxel samples (one row per sample).

    Attributes:
        mu, logvar: [N, latent] posterior mean and log-variance.
        scale: [N] conditioning factor m of each sample (1.0 for a model without conditioning).
        crystal: [N] index of the crystal behind each sample.
        samples: the voxel samples (density, species, atoms, rotation, translation, cell).
    """

    mu: np.ndarray
    logvar: np.ndarray
    scale: np.ndarray
    crystal: np.ndarray
    samples: list[VoxelSample] = field(default_factory=list)


@dataclass
class Decoded:
    """Decoded latents: densities M̂ [N, n, n, n] (Å⁻³, raw Eq. 1 units), the per-voxel
    predicted species (Z, 0 = no atom) [N, n, n, n] int16 and the recovered atoms (box frame)."""

    densities: np.ndarray
    species: np.ndarray
    atoms: list[RecoveredAtoms]


def _crystal_label(atoms: Atoms, index: int, ids: Sequence[str] | None) -> str:
    name = ids[index] if ids is not None else f"#{index}"
    return f"crystal {name} ({atoms.get_chemical_formula()})"


def check_fits_box(
    crystals: Sequence[Atoms], grid: GridSpec, ids: Sequence[str] | None = None
) -> None:
    """Raise ValueError naming the first crystal with a lattice vector not shorter than the box.

    The single-cell regime (§1–2) needs every side < box (Å); longer cells lose atoms at the faces.
    """
    for k, a in enumerate(crystals):
        sides = np.linalg.norm(np.asarray(a.cell.array, dtype=np.float64), axis=1)
        if sides.max() >= grid.box:
            raise ValueError(
                f"{_crystal_label(a, k, ids)} has a lattice vector of {sides.max():.2f} Å, not "
                f"shorter than the {grid.box:g} Å box of the grid; it does not fit in one box. "
                "Drop it (--skip-large), use the repeated-lattice regime, or a model/grid with a "
                "larger box"
            )


def make_samples(
    crystals: Sequence[Atoms], grid: GridSpec, regime: str = "single", rotations: int = 1,
    seed: int = 0, rotate: bool = True, centre: str = "cell", progress: Progress = None,
) -> list[VoxelSample]:  # fmt: skip
    """Voxel samples of ``crystals`` (``rotations`` per crystal, crystal-major order, §2).

    Sample i of crystal c uses the random numbers of ``DensityDataset`` item c·rotations + i at
    epoch 0: the same seed and crystal list give the samples a ``DensityDataset`` makes (e.g.
    the validation samples of a training run).
    """
    from deepatoms.data.voxels.dataset import ClassMap, DensityDataset

    crystals = list(crystals)
    if not crystals:
        raise ValueError("no crystals to voxelise")
    ds = DensityDataset(
        crystals, grid, ClassMap.compact(np.concatenate([a.numbers for a in crystals])),
        regime=regime, rotations_per_crystal=rotations, seed=seed, rotate=rotate,
        centre=centre,  # type: ignore[arg-type]
    )  # fmt: skip
    out = []
    for i in range(len(ds)):
        out.append(ds.sample(i, epoch=0))
        if progress is not None:
            progress(i + 1, len(ds))
    return out


def _model_parts(loaded: LoadedDensityModel) -> tuple[Any, torch.device]:
    model = loaded.model
    model.eval()
    return model, next(model.parameters()).device


def _chunks(n: int, size: int) -> list[slice]:
    if size < 1:
        raise ValueError(f"batch size must be at least 1, got {size}")
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


@torch.no_grad()
def encode_samples(
    loaded: LoadedDensityModel,
    samples: Sequence[VoxelSample],
    batch_size: int = 16,
    progress: Progress = None,
) -> Encoded:
    """μ, log σ² and the conditioning scale m of voxel samples made on the model's grid."""
    model, device = _model_parts(loaded)
    n = loaded.grid.n
    mus, logvars, scales = [], [], []
    for k, sl in enumerate(parts := _chunks(len(samples), batch_size)):
        batch = samples[sl]
        for s in batch:
            if s.density.shape != (n, n, n):
                raise ValueError(
                    f"a sample of shape {s.density.shape} does not match the model's {n}³ grid"
                )
        dens = torch.from_numpy(np.stack([s.density for s in batch])).unsqueeze(1).to(device)
        max_z = torch.tensor(
            [float(s.numbers.max()) if len(s.numbers) else 1.0 for s in batch], device=device
        )
        scale = model.condition_scale(dens, max_z)
        mu, logvar = model.encode(dens, scale)
        mus.append(mu.cpu().numpy())
        logvars.append(logvar.cpu().numpy())
        scales.append(np.ones(len(batch)) if scale is None else scale.cpu().numpy())
        if progress is not None:
            progress(k + 1, len(parts))
    latent = model.latent
    cat = lambda xs, shape: np.concatenate(xs) if xs else np.zeros(shape)  # noqa: E731
    return Encoded(
        mu=cat(mus, (0, latent)).astype(np.float64),
        logvar=cat(logvars, (0, latent)).astype(np.float64),
        scale=cat(scales, (0,)).astype(np.float64),
        crystal=np.zeros(len(samples), dtype=np.int64),
        samples=list(samples),
    )


def encode_crystals(
    loaded: LoadedDensityModel, crystals: Sequence[Atoms], rotations: int = 1, seed: int = 0,
    regime: str | None = None, rotate: bool = True, batch_size: int = 16,
    ids: Sequence[str] | None = None, progress: Progress = None,
) -> Encoded:  # fmt: skip
    """Encode ``crystals`` with a loaded density model (``load_density_model``), §8.

    Each crystal gives ``rotations`` seeded samples in the model's regime (``meta["regime"]``,
    else ``single``; override with ``regime``). In the single-cell regime every lattice vector
    must be shorter than the box (:func:`check_fits_box`). ``progress(done, total)`` counts
    voxelised samples, then encoded batches.
    """
    crystals = list(crystals)
    regime = regime or loaded.meta.get("regime", "single")
    if regime == "single":
        check_fits_box(crystals, loaded.grid, ids)
    n = len(crystals) * rotations

    def shifted(offset: int, per_call: int) -> Progress:
        """Report phase progress on one bar of 2n steps (voxelising, then encoding)."""
        if progress is None:
            return None
        return lambda done, _: progress(offset + min(done * per_call, n), 2 * n)

    samples = make_samples(
        crystals, loaded.grid, regime, rotations, seed, rotate, progress=shifted(0, 1)
    )
    enc = encode_samples(loaded, samples, batch_size, shifted(n, batch_size))
    enc.crystal = np.repeat(np.arange(len(crystals)), rotations)
    return enc


def alpha_inputs(
    loaded: LoadedDensityModel, z: np.ndarray, alpha: float | np.ndarray
) -> tuple[np.ndarray, Any]:
    """(latents, decode scale) for a target α (§8).

    A conditioned model decodes z with m = α (z_dec = α·z inside the decoder); a model without
    conditioning gets the latents α·z and no scale.
    """
    z = np.asarray(z, dtype=np.float64)
    if loaded.model.condition == "none":
        return alter(z, alpha), None
    a = np.broadcast_to(np.asarray(alpha, dtype=np.float64), (z.shape[0],)).copy()
    if not np.all(a > 0):
        raise ValueError(f"alpha is the target conditioning value m and must be > 0, got {alpha}")
    return z, a


@torch.no_grad()
def decode_latents(
    loaded: LoadedDensityModel, z: np.ndarray, scale: float | np.ndarray | None = None,
    batch_size: int = 8, connectivity: int = 6, weighted: bool = False, progress: Progress = None,
) -> Decoded:  # fmt: skip
    """Decode latents [N, latent] → M̂ → U-Net → atoms (§6, §8).

    ``scale`` is the conditioning factor m (one number or one per row) and is required by a
    conditioned model (the encodings' ``scale``, or α when sampling); a model without
    conditioning refuses it (use :func:`alpha_inputs`).
    """
    model, device = _model_parts(loaded)
    z = np.asarray(z, dtype=np.float64)
    if z.ndim == 1:
        z = z[None]
    if z.ndim != 2 or z.shape[1] != model.latent:
        raise ValueError(
            f"latents of shape {z.shape} do not fit the model: it expects [N, {model.latent}]"
        )
    if model.condition == "none" and scale is not None:
        raise ValueError(
            "this model has no conditioning (model.condition: none); scale the latents "
            "instead (alpha_inputs / alter)"
        )
    if model.condition != "none":
        if scale is None:
            raise ValueError(
                f"this model is conditioned ({model.condition}): give the target value m for "
                "each latent (the encodings' scale, or --alpha when sampling)"
            )
        scale = np.broadcast_to(np.asarray(scale, dtype=np.float64), (len(z),)).copy()
    n, dens, spec, atoms = loaded.grid.n, [], [], []
    parts = _chunks(len(z), batch_size)
    for k, sl in enumerate(parts):
        zt = torch.as_tensor(z[sl], dtype=torch.float32, device=device)
        st = (
            None
            if scale is None
            else torch.as_tensor(scale[sl], dtype=torch.float32, device=device)
        )
        recon = model.decode(zt, st)
        logits = model.segment(recon)
        atoms += recover_atoms(
            logits, loaded.grid, loaded.class_map, connectivity=connectivity, density=recon,
            weighted=weighted,
        )  # fmt: skip
        dens.append(recon[:, 0].cpu().numpy())
        spec.append(loaded.class_map.to_z(logits.argmax(dim=1).cpu().numpy()).astype(np.int16))
        if progress is not None:
            progress(k + 1, len(parts))
    empty = np.zeros((0, n, n, n))
    return Decoded(
        densities=np.concatenate(dens).astype(np.float32) if dens else empty.astype(np.float32),
        species=np.concatenate(spec) if spec else empty.astype(np.int16),
        atoms=atoms,
    )
