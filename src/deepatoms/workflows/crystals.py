"""Crystals as 3-D densities with a trained density VAE (Hoffmann et al. 2019): the functions
behind ``deepatoms crystals voxelize | encode | decode | sample | interpolate | alter |
evaluate`` (training is :func:`deepatoms.workflows.training.train`).

Crystal sources: CSVs of CIFs, CIF folders, dataset .h5 files, ASE-readable structure files, or
``prototypes`` / ``prototypes:N`` (pymatgen's AFLOW library and N substituted variants);
``SOURCE@K`` picks crystal K (0-based) or the crystal with id K. Structures are written as
extended XYZ or CIF, arrays as .npz; every output is written atomically and refused if it
exists unless ``overwrite``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deepatoms.core.device import resolve_device
from deepatoms.core.errors import DeepatomsError
from deepatoms.core.files import check_new_file
from deepatoms.core.progress import ProgressBar
from deepatoms.core.results import Result
from deepatoms.models.loading import load_model, resolve_model_path

__all__ = [
    "CrystalsResult",
    "alter_latents",
    "decode_file",
    "encode",
    "evaluate_crystals",
    "interpolate_crystals",
    "load_crystal_sources",
    "sample_crystals",
    "voxelize",
]


class CrystalsResult(Result):
    """The result of a crystals function (keys: see its docstring); ``notes`` are things the
    user should know (crystals dropped for being larger than the box)."""


#: Structure output suffix → ASE format.
STRUCTURE_FORMATS = {".xyz": "extxyz", ".extxyz": "extxyz", ".cif": "cif"}


# -- helpers ----------------------------------------------------------------------------------
def _load_model(path: str | os.PathLike, device: str = "cpu") -> tuple[Any, Path]:
    """(the density model on ``device``, its model file)."""
    file = resolve_model_path(path)
    loaded = load_model(file, expect="density_vae")
    loaded.model.to(resolve_device(device))
    return loaded, file


def _model_for_structures(model: str | os.PathLike, device: str, out_file: Path, overwrite: bool):
    """Check the structure output ``out_file`` (before any work), then load the model:
    (LoadedDensityModel on ``device``, model file path)."""
    _check_structure_output(out_file, overwrite)
    return _load_model(model, device)


def _decode_to_file(
    loaded, z, scale, out_file: Path, labels: list[str], overwrite: bool, progress: bool,
    **decode_kw,
) -> tuple[Any, dict]:  # fmt: skip
    """Decode latents ``z`` (with ``scale`` for a conditioned model) under a progress bar and
    write the structures in the box frame with ``labels``: (Decoded, written-file summary)."""
    from deepatoms.density.latent_tools import decode_latents

    with ProgressBar("decoding", quiet=not progress) as bar:
        decoded = decode_latents(loaded, z, scale, progress=bar, **decode_kw)
    return decoded, _write_structures(out_file, _box_structures(decoded), labels, overwrite)


def _split_pick(spec: str) -> tuple[str, str | None]:
    """``SOURCE@K`` → (SOURCE, K); a plain source → (source, None)."""
    if "@" in spec and not Path(spec).exists():
        src, _, pick = spec.rpartition("@")
        return src, pick
    return spec, None


def load_crystal_sources(sources: Sequence[str], seed: int = 0, progress: bool = True, grid=None,
                         skip_large: bool = False) -> Any:  # fmt: skip
    """A CrystalSet of ``sources`` (CSVs of CIFs, CIF folders, datasets, structure files,
    ``prototypes``; ``SOURCE@K`` picks crystal K or the crystal with id K); with ``grid`` and
    ``skip_large``: crystals not shorter than the box dropped (``notes["dropped_large"]``)."""
    from deepatoms.data.voxels.crystal_sets import CrystalSet, load_crystals

    parts = []
    for spec in sources:
        src, pick = _split_pick(spec)
        cs = load_crystals([src], seed=seed, progress=progress)
        if pick is not None:
            cs = cs.subset([_pick_index(cs, pick, spec)])
        parts.append(cs)
    crystals = CrystalSet.concatenate(parts)
    if grid is not None and skip_large:
        crystals = _drop_large(crystals, grid.box)
    if len(crystals) == 0:
        raise DeepatomsError(f"no crystals left in {', '.join(sources)}")
    return crystals


def _drop_large(crystals, box: float):
    """Crystals with every lattice vector shorter than ``box`` (Å); ``notes["dropped_large"]``
    says how many were dropped."""
    kept = crystals.filter_max_side(box)
    note = kept.notes["max_side"]
    if note["dropped"]:
        kept.notes["dropped_large"] = (
            f"dropped {note['dropped']} crystals with a lattice vector ≥ {box:g} Å "
            f"(e.g. {', '.join(note['dropped_examples'][:3])})"
        )
    if len(kept) == 0:
        raise ValueError(f"no crystal has all lattice vectors shorter than the {box:g} Å box")
    return kept


def _pick_index(cs, pick: str, spec: str) -> int:
    if pick in cs.ids:
        return cs.ids.index(pick)
    try:
        k = int(pick)
    except ValueError:
        raise ValueError(
            f"{spec}: no crystal with id {pick!r} (first ids: {', '.join(cs.ids[:5])})"
        ) from None
    if not 0 <= k < len(cs):
        raise ValueError(f"{spec}: index {k} is out of range; the source holds {len(cs)} crystals")
    return k


def _one(spec: str, seed: int, progress: bool):
    """Exactly one crystal from ``spec`` (a single-crystal source or ``SOURCE@K``)."""
    cs = load_crystal_sources([spec], seed, progress)
    if len(cs) != 1:
        raise ValueError(
            f"{spec} holds {len(cs)} crystals; pick one with {spec}@INDEX or {spec}@ID "
            f"(e.g. {spec}@0 = {cs.ids[0]})"
        )
    return cs


def _check_npz_output(path: Path, overwrite: bool) -> None:
    if path.suffix.lower() != ".npz":
        raise ValueError(f"output {path} must end in .npz")
    check_new_file(path, overwrite)


def _save_npz(path: Path, arrays: dict[str, Any]) -> None:
    from deepatoms.core.files import atomic_target

    with atomic_target(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)


def _check_structure_output(path: Path, overwrite: bool) -> str:
    fmt = STRUCTURE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(
            f"output {path}: unknown suffix {path.suffix!r}; use .xyz / .extxyz (extended XYZ) "
            "or .cif"
        )
    check_new_file(path, overwrite)
    return fmt


def _write_structures(path: Path, structures: list, labels: list[str], overwrite: bool) -> dict:
    """Write recovered structures (``ase.Atoms``) with a ``label`` and ``index`` per frame.

    CIF cannot hold an empty structure: those are left out of a .cif file and counted."""
    from ase.io import write

    from deepatoms.core.files import atomic_target

    fmt = _check_structure_output(path, overwrite)
    frames = []
    for i, (a, label) in enumerate(zip(structures, labels, strict=True)):
        a.info.update({"index": i, "label": label})
        frames.append(a)
    kept = [a for a in frames if len(a)] if fmt == "cif" else frames
    if not kept:
        raise ValueError(
            f"no atoms were recovered in any structure and CIF cannot hold empty ones; nothing "
            f"to write to {path} (write .xyz to keep the empty structures)"
        )
    with atomic_target(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        write(fh, kept, format=fmt)
    return {"out": str(path), "written": len(kept), "empty_left_out": len(frames) - len(kept)}


def _images(folder: Path | None, decoded, labels: list[str], grid, limit: int) -> list[str]:
    """One three-view PNG per decoded structure (at most ``limit``) in ``folder``."""
    from deepatoms.density.images import plot_density

    if folder is None:
        return []
    paths = []
    for i in range(min(limit, len(labels))):
        p = plot_density(
            decoded.densities[i], grid, folder / f"structure_{i:04d}.png", atoms=decoded.atoms[i],
            title=f"{labels[i]}: {len(decoded.atoms[i])} atoms",
        )  # fmt: skip
        paths.append(str(p))
    return paths


def _atom_counts(decoded) -> dict:
    n = np.array([len(a) for a in decoded.atoms], dtype=np.int64)
    return {
        "n_structures": len(n),
        "atoms_min": int(n.min()) if len(n) else 0,
        "atoms_mean": float(n.mean()) if len(n) else 0.0,
        "atoms_max": int(n.max()) if len(n) else 0,
        "n_empty": int((n == 0).sum()),
    }


def _box_structures(decoded) -> list:
    return [a.to_atoms() for a in decoded.atoms]


def _grid_for(preset: str | None, model: Path | None, n: int | None, box: float | None,
              sigma: float | None):  # fmt: skip
    from deepatoms.data.voxels.grid import GridSpec

    if preset is not None and model is not None:
        raise ValueError("give either --preset or --model for the grid, not both")
    if model is not None:
        base = _load_model(model)[0].grid.as_dict()
    elif preset is not None:
        from deepatoms.workflows.training import training_config

        base = dict(training_config(preset)["grid"])
    else:
        base = GridSpec().as_dict()
    for key, v in (("n", n), ("box", box), ("sigma", sigma)):
        if v is not None:
            base[key] = v
    return GridSpec.from_dict(base)


def _encode_input(
    loaded, sources: Sequence[str], rotations: int, seed: int, regime: str | None, rotate: bool,
    batch_size: int, skip_large: bool, progress: bool,
):  # fmt: skip
    """(Encoded, ids per sample, notes) of crystal sources or of a voxelised .npz (grids must match)."""
    from deepatoms.density.latent_tools import encode_crystals, encode_samples

    if len(sources) == 1 and sources[0].endswith(".npz"):
        samples, ids = _samples_from_npz(Path(sources[0]), loaded.grid)
        with ProgressBar("encoding", quiet=not progress) as bar:
            enc = encode_samples(loaded, samples, batch_size, bar)
        return enc, ids, []
    crystals = load_crystal_sources(sources, seed, progress, loaded.grid, skip_large)
    with ProgressBar("voxelising and encoding", quiet=not progress) as bar:
        enc = encode_crystals(
            loaded, crystals.atoms, rotations=rotations, seed=seed, regime=regime, rotate=rotate,
            batch_size=batch_size, ids=crystals.ids, progress=bar,
        )  # fmt: skip
    return enc, [crystals.ids[c] for c in enc.crystal], _notes(crystals)


def _samples_from_npz(path: Path, grid) -> tuple[list, list[str]]:
    """Voxel samples stored by ``crystals voxelize``; the grid must be the model's."""
    import json

    from deepatoms.data.voxels.grid import GridSpec
    from deepatoms.data.voxels.samples import VoxelSample

    data = _read_npz(path, ("density", "species", "grid", "offsets", "numbers", "positions"))
    saved = GridSpec.from_dict(json.loads(str(data["grid"])))
    if saved != grid:
        raise ValueError(
            f"{path} was voxelised on a different grid ({saved.n}³ over {saved.box:g} Å, σ "
            f"{saved.sigma:g} Å) than the model's ({grid.n}³ over {grid.box:g} Å, σ "
            f"{grid.sigma:g} Å); voxelise again with `deepatoms crystals voxelize --model MODEL`"
        )
    off = data["offsets"]
    samples = [
        VoxelSample(
            density=data["density"][i],
            species=data["species"][i],
            numbers=data["numbers"][off[i] : off[i + 1]],
            positions=data["positions"][off[i] : off[i + 1]],
            n_dropped=int(data["n_dropped"][i]),
            rotation=data["rotation"][i],
            translation=data["translation"][i],
            cell=data["cell"][i],
            regime=str(data["regime"]),
        )
        for i in range(len(data["density"]))
    ]
    return samples, [str(x) for x in data["ids"]]


def _read_npz(path: Path, required: tuple[str, ...]) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path} is not a readable .npz file ({exc})") from None
    missing = [k for k in required if k not in data]
    if missing:
        raise ValueError(
            f"{path} lacks the arrays {missing} (it has {sorted(data)}); write it with "
            "`deepatoms crystals voxelize` or `deepatoms crystals encode`"
        )
    return data


def _encoding_arrays(enc, ids: list[str], model_file: Path, seed: int) -> dict[str, Any]:
    s = enc.samples
    return {
        "mu": enc.mu, "logvar": enc.logvar, "scale": enc.scale, "crystal": enc.crystal,
        "ids": np.array(ids, dtype=str),
        "rotation": np.stack([x.rotation for x in s]),
        "translation": np.stack([x.translation for x in s]),
        "cell": np.stack([x.cell for x in s]), "n_atoms": np.array([len(x.numbers) for x in s]),
        "n_dropped": np.array([x.n_dropped for x in s]), "model": np.array(str(model_file)),
        "seed": np.array(seed), "regime": np.array(s[0].regime if s else ""),
    }  # fmt: skip


def _split_crystals(model: Path, data: Sequence[str], split: str, seed: int, progress: bool):
    """The crystals of ``data`` (split ``all``) or one part of the run's split.json."""
    if split == "all":
        return load_crystal_sources(data, seed, progress)
    if split not in ("train", "val", "test"):
        raise ValueError(f"--split must be all, train, val or test, got {split!r}")
    from deepatoms.data.splits import load_split
    from deepatoms.data.voxels.crystal_sets import select_crystals
    from deepatoms.models.registry import load_run_config
    from deepatoms.train.run_folder import RunFolder

    run = RunFolder(Path(model).parent)
    if not run.split.is_file() or not run.config.is_file():
        raise ValueError(
            f"--split {split} needs the run folder with split.json and config.yaml; {run.root} "
            "has none (use --split all with held-out --data)"
        )
    cfg = load_run_config(run.config)
    parts, meta = load_split(run.split, with_meta=True)
    crystals = load_crystal_sources(data, int(cfg["train"]["seed"]), progress)
    crystals = select_crystals(crystals, cfg["data"]["max_side"])  # the run's filters, in order
    if meta.get("n_crystals") not in (None, len(crystals)):
        raise ValueError(
            f"--data gives {len(crystals)} crystals after the max-side and Z ≤ 94 filters, but the run was "
            f"split over {meta['n_crystals']}; pass the same --data sources as for training"
        )
    chosen = crystals.subset(parts[split])
    want = (meta.get("ids") or {}).get(split)
    if want is not None and list(want) != chosen.ids:
        raise ValueError(
            f"the {split} crystals of --data do not match {run.split} (different ids); pass the "
            "same --data sources, in the same order, as for training"
        )
    if len(chosen) == 0:
        raise ValueError(f"the {split} split of {run.root} is empty")
    return chosen


def _notes(crystals: Any) -> list[str]:
    note = crystals.notes.get("dropped_large")
    return [note] if note else []


def voxelize(
    inputs: Sequence[str], out: str | os.PathLike, *, model: str | os.PathLike | None = None,
    preset: str | None = None, n: int | None = None, box: float | None = None,
    sigma: float | None = None, regime: str = "single", rotations: int = 1, rotate: bool = True,
    seed: int = 0, skip_large: bool = False, overwrite: bool = False, progress: bool = True,
) -> CrystalsResult:  # fmt: skip
    """Density M (Eq. 1 of the paper, Å⁻³) and species matrix S (Z per voxel) of ``rotations``
    samples per crystal → ``out`` (.npz), on the grid of ``model``, of ``preset`` or the default
    30³ over 10 Å (σ 1 Å), with ``n``, ``box``, ``sigma`` overriding it. Arrays: density,
    species, ids, crystal, n_dropped, rotation, translation, cell, the atoms inside the box
    (numbers, positions Å, offsets) and the grid."""
    from deepatoms.density.latent_tools import check_fits_box, make_samples

    if rotations < 1:
        raise DeepatomsError(f"--rotations must be at least 1, got {rotations}")
    out = Path(out)
    _check_npz_output(out, overwrite)
    grid = _grid_for(preset, model, n, box, sigma)
    crystals = load_crystal_sources(inputs, seed, progress, grid, skip_large)
    if regime == "single":
        check_fits_box(crystals.atoms, grid, crystals.ids)
    with ProgressBar("voxelising", quiet=not progress) as bar:
        samples = make_samples(crystals.atoms, grid, regime, rotations, seed, rotate, progress=bar)
    counts = np.array([len(s.numbers) for s in samples], dtype=np.int64)
    crystal = np.repeat(np.arange(len(crystals)), rotations)
    _save_npz(out, {
        "density": np.stack([s.density for s in samples]),
        "species": np.stack([s.species for s in samples]),
        "ids": np.array([crystals.ids[c] for c in crystal], dtype=str), "crystal": crystal,
        "n_dropped": np.array([s.n_dropped for s in samples]),
        "rotation": np.stack([s.rotation for s in samples]),
        "translation": np.stack([s.translation for s in samples]),
        "cell": np.stack([s.cell for s in samples]),
        "numbers": np.concatenate([s.numbers for s in samples]),
        "positions": np.concatenate([s.positions for s in samples]).reshape(-1, 3),
        "offsets": np.concatenate([[0], np.cumsum(counts)]),
        "grid": np.array(json.dumps(grid.as_dict())), "regime": np.array(regime),
        "seed": np.array(seed),
    })  # fmt: skip
    return CrystalsResult(
        out=str(out), n_crystals=len(crystals), n_samples=len(samples), grid=grid.as_dict(),
        regime=regime, atoms_in_box=int(counts.sum()),
        atoms_dropped=int(sum(s.n_dropped for s in samples)),
        samples_clipped=int(sum(s.n_dropped > 0 for s in samples)), notes=_notes(crystals),
    )  # fmt: skip


def encode(
    model: str | os.PathLike, inputs: Sequence[str], out: str | os.PathLike, *, rotations: int = 1,
    rotate: bool = True, regime: str | None = None, seed: int = 0, batch_size: int = 16,
    skip_large: bool = False, device: str = "cpu", overwrite: bool = False, progress: bool = True,
) -> CrystalsResult:  # fmt: skip
    """μ and log σ² of ``rotations`` samples per crystal of ``inputs`` (crystal sources, or one
    .npz from :func:`voxelize`) → ``out`` (.npz, with ids, rotation, translation, cell and the
    target m of conditioned models)."""
    if rotations < 1:
        raise DeepatomsError(f"--rotations must be at least 1, got {rotations}")
    out = Path(out)
    _check_npz_output(out, overwrite)
    loaded, model_file = _load_model(model, device)
    enc, ids, notes = _encode_input(loaded, inputs, rotations, seed, regime, rotate,
                                    batch_size, skip_large, progress)  # fmt: skip
    _save_npz(out, _encoding_arrays(enc, ids, model_file, seed))
    return CrystalsResult(
        out=str(out), model=str(model_file), n_samples=len(enc.mu), latent=int(enc.mu.shape[1]),
        n_crystals=len(set(ids)), atoms_dropped=int(sum(s.n_dropped for s in enc.samples)),
        notes=notes,
    )  # fmt: skip


def decode_file(
    model: str | os.PathLike, latents: str | os.PathLike, out: str | os.PathLike, *,
    key: str = "mu", frame: str = "box", images: str | os.PathLike | None = None,
    max_images: int = 8, connectivity: int = 6, batch_size: int = 8, device: str = "cpu",
    overwrite: bool = False, progress: bool = True,
) -> CrystalsResult:  # fmt: skip
    """Decode the latents ``key`` of an .npz (e.g. from :func:`encode`): densities → U-Net →
    atoms (connected components, ``connectivity`` 6 or 26) → structures in ``out`` (extended
    XYZ or CIF), in the box or (``frame="crystal"``) back in the encoded crystal's cell; PNG
    images of up to ``max_images`` structures in the folder ``images``."""
    from deepatoms.density.latent_tools import decode_latents

    if frame not in ("box", "crystal"):
        raise DeepatomsError(f"--frame must be box or crystal, got {frame!r}")
    out = Path(out)
    loaded, model_file = _model_for_structures(model, device, out, overwrite)
    data = _read_npz(Path(latents), (key,))
    z = data[key]
    scale = data.get("scale") if loaded.model.condition != "none" else None
    if loaded.model.condition != "none" and scale is None:
        raise DeepatomsError(
            f"the model is conditioned ({loaded.model.condition}) but {latents} has no 'scale' "
            "array (the target m per latent); encode with `deepatoms crystals encode`"
        )
    with ProgressBar("decoding", quiet=not progress) as bar:
        decoded = decode_latents(loaded, z, scale, batch_size=batch_size,
                                 connectivity=connectivity, progress=bar)  # fmt: skip
    ids = [str(x) for x in data["ids"]] if "ids" in data else [f"{key}[{i}]" for i in range(len(z))]
    structures = _box_structures(decoded) if frame == "box" else _in_cells(decoded, data, latents)
    written = _write_structures(out, structures, ids, overwrite)
    pics = _images(Path(images) if images else None, decoded, ids, loaded.grid, max_images)
    return CrystalsResult(model=str(model_file), **written, **_atom_counts(decoded), images=pics,
                          n_latents=len(z))  # fmt: skip


def _in_cells(decoded: Any, data: dict, latents: Any) -> list:
    """Decoded structures moved back into the encoded crystals' cells."""
    missing = [k for k in ("rotation", "translation", "cell") if k not in data]
    if missing:
        raise DeepatomsError(f"--frame crystal needs {missing} in {latents} (from `encode`)")
    return [
        a.to_atoms(cell=data["cell"][i], rotation=data["rotation"][i],
                   translation=data["translation"][i])
        for i, a in enumerate(decoded.atoms)
    ]  # fmt: skip


def sample_crystals(
    model: str | os.PathLike, out: str | os.PathLike, *, n: int = 10, seed: int = 0,
    alpha: float | None = None, images: str | os.PathLike | None = None, max_images: int = 8,
    compare: Sequence[str] | None = None, batch_size: int = 8, device: str = "cpu",
    overwrite: bool = False, progress: bool = True,
) -> CrystalsResult:  # fmt: skip
    """Decode ``n`` random latents z ~ N(0, I) into structures (§4.3 of the paper); ``alpha``:
    a conditioned model decodes with m = α, otherwise z is scaled to α·z. ``compare``: real
    crystals whose nearest-neighbour distances are compared with the samples'. Keys: counts of
    atoms, ``nn_median`` (Å), ``nn_comparison``, ``images``, ``written``."""
    from deepatoms.density.images import plot_nn_histogram
    from deepatoms.density.latent_tools import alpha_inputs, make_samples, sample_prior
    from deepatoms.density.metrics import compare_distance_histograms, nearest_neighbour_distances

    if n < 1:
        raise DeepatomsError(f"-n must be at least 1, got {n}")
    out = Path(out)
    loaded, model_file = _model_for_structures(model, device, out, overwrite)
    if loaded.model.condition != "none" and alpha is None:
        raise DeepatomsError(
            f"the model is conditioned ({loaded.model.condition}); give the target value with "
            "--alpha (e.g. the max density of typical inputs)"
        )
    z = sample_prior(n, seed, dim=loaded.model.latent)
    z, scale = (z, None) if alpha is None else alpha_inputs(loaded, z, alpha)
    labels = [f"sample {i} (seed {seed})" for i in range(n)]
    decoded, written = _decode_to_file(loaded, z, scale, out, labels, overwrite, progress,
                                       batch_size=batch_size)  # fmt: skip
    images = Path(images) if images else None
    res = CrystalsResult(model=str(model_file), seed=seed, alpha=alpha, **written,
                         **_atom_counts(decoded),
                         images=_images(images, decoded, labels, loaded.grid, max_images))  # fmt: skip
    nn = {"sampled": nearest_neighbour_distances(decoded.atoms)}
    if compare:
        real = load_crystal_sources(compare, seed, progress, loaded.grid, skip_large=True)
        regime = loaded.meta.get("regime", "single")
        nn["real"] = nearest_neighbour_distances(
            make_samples(real.atoms, loaded.grid, regime, 1, seed)
        )
        cmp = compare_distance_histograms(nn["real"], nn["sampled"])
        res["nn_comparison"] = {k: cmp[k] for k in ("n_a", "n_b", "overlap", "wasserstein")}
    if len(nn["sampled"]):
        res["nn_median"] = float(np.median(nn["sampled"]))
    if images is not None:
        res["images"].append(str(plot_nn_histogram(nn, images / "nn_distances.png")))
    return res


def interpolate_crystals(
    model: str | os.PathLike, a: str, b: str, out: str | os.PathLike, *, steps: int = 3,
    image: str | os.PathLike | None = None, rotate: bool = True, seed: int = 0, device: str = "cpu",
    overwrite: bool = False, progress: bool = True,
) -> CrystalsResult:  # fmt: skip
    """Encode the crystals ``a`` and ``b``, then decode A, ``steps`` equally spaced
    intermediates and B (§4.4 of the paper) into ``out``; a PNG strip of the path to
    ``image``. Keys: ``a``, ``b`` (ids), ``t``, ``atoms`` (per structure), ``written``."""
    from deepatoms.data.voxels.crystal_sets import CrystalSet
    from deepatoms.density.images import plot_strip
    from deepatoms.density.latent_tools import encode_crystals, interpolate

    if steps < 0:
        raise DeepatomsError(f"--steps must be ≥ 0, got {steps}")
    out = Path(out)
    loaded, model_file = _model_for_structures(model, device, out, overwrite)
    pair = CrystalSet.concatenate([_one(a, seed, progress), _one(b, seed, progress)])
    enc = encode_crystals(loaded, pair.atoms, 1, seed, rotate=rotate, ids=pair.ids)
    z = interpolate(enc.mu[0], enc.mu[1], steps)
    t = np.linspace(0.0, 1.0, steps + 2)
    scale = None
    if loaded.model.condition != "none":
        scale = (1.0 - t) * enc.scale[0] + t * enc.scale[1]
    labels = [f"t={x:.3g} ({pair.ids[0]} → {pair.ids[1]})" for x in t]
    decoded, written = _decode_to_file(loaded, z, scale, out, labels, overwrite, progress)
    res = CrystalsResult(model=str(model_file), a=pair.ids[0], b=pair.ids[1], t=t.tolist(),
                         **written, atoms=[len(x) for x in decoded.atoms])  # fmt: skip
    if image is not None:
        titles = [f"t = {x:.2f}: {len(at)} atoms" for x, at in zip(t, decoded.atoms, strict=True)]
        res["image"] = str(
            plot_strip(list(decoded.densities), loaded.grid, Path(image), atoms=decoded.atoms,
                       titles=titles, suptitle=f"{pair.ids[0]} → {pair.ids[1]}")
        )  # fmt: skip
    return res


def alter_latents(
    model: str | os.PathLike, out: str | os.PathLike, *, source: str | None = None,
    dim: int | None = None, values: str = "-3:3:7", alpha: str | None = None,
    image: str | os.PathLike | None = None, rotate: bool = True, seed: int = 0, device: str = "cpu",
    overwrite: bool = False, progress: bool = True,
) -> CrystalsResult:  # fmt: skip
    """Sweep latent dimension ``dim`` of the encoding of ``source`` (or of a prior draw) over
    ``values`` (START:STOP:COUNT or a,b,c), or decode α·z for the ``alpha`` values (a
    conditioned model: m = α), with the differences to the unaltered decode (§4.5 of the
    paper). Keys: ``mode``, ``swept`` (the values), ``atoms``, ``reference_atoms``,
    ``max_abs_difference``, ``written``, ``image``."""
    from deepatoms.density.images import plot_sweep
    from deepatoms.density.latent_tools import alpha_inputs, decode_latents, parse_values, sweep

    if (dim is None) == (alpha is None):
        raise DeepatomsError(
            "give exactly one of --dim K (a sweep) or --alpha VALUES (conditioning)"
        )
    out = Path(out)
    loaded, model_file = _model_for_structures(model, device, out, overwrite)
    conditioned = loaded.model.condition != "none"
    z0, m0, name = _start_latent(loaded, source, seed, rotate, progress, alpha is not None)
    if alpha is not None:
        vals = parse_values(alpha)
        z, scale = alpha_inputs(loaded, np.repeat(z0[None], len(vals), 0), vals)
        label, what = "α", "alpha"
    else:
        vals = parse_values(values)
        z, scale = sweep(z0, dim, vals), (np.full(len(vals), m0) if conditioned else None)
        label, what = f"z[{dim}]", "sweep"
    labels = [f"{label}={v:.3g} ({name})" for v in vals]
    decoded, written = _decode_to_file(loaded, z, scale, out, labels, overwrite, progress)
    ref = decode_latents(loaded, z0[None], m0 if conditioned else None)
    diff = np.abs(decoded.densities.astype(np.float64) - ref.densities[0]).reshape(len(vals), -1)
    res = CrystalsResult(
        model=str(model_file), input=name, mode=what, dim=dim, label=label,
        swept=vals.tolist(), **written, atoms=[len(x) for x in decoded.atoms],
        reference_atoms=len(ref.atoms[0]), max_abs_difference=diff.max(axis=1).tolist(),
    )  # fmt: skip
    if image is not None:
        res["image"] = str(
            plot_sweep(list(decoded.densities), ref.densities[0], vals, loaded.grid, Path(image),
                       atoms=decoded.atoms, label=label)
        )  # fmt: skip
    return res


def _start_latent(loaded: Any, source: str | None, seed: int, rotate: bool, progress: bool,
                  alpha: bool) -> tuple[np.ndarray, float, str]:  # fmt: skip
    """The unaltered latent point, its target m and its name: the encoding of ``source``, or
    a prior draw."""
    from deepatoms.density.latent_tools import encode_crystals, sample_prior

    if source is not None:
        cs = _one(source, seed, progress)
        enc = encode_crystals(loaded, cs.atoms, 1, seed, rotate=rotate, ids=cs.ids)
        return enc.mu[0], float(enc.scale[0]), cs.ids[0]
    if loaded.model.condition != "none" and not alpha:
        raise DeepatomsError("a conditioned model needs an INPUT crystal for a sweep (its m)")
    return sample_prior(1, seed, loaded.model.latent)[0], 1.0, f"prior draw (seed {seed})"


def evaluate_crystals(
    model: str | os.PathLike, data: Sequence[str], out_dir: str | os.PathLike, *,
    split: str = "all", rotations: int = 3, regime: str | None = None, seed: int = 0,
    connectivity: int = 6, hungarian: bool = False, batch_size: int = 8, plots: bool = True,
    skip_large: bool = False, device: str = "cpu", overwrite: bool = False, progress: bool = True,
) -> CrystalsResult:  # fmt: skip
    """The paper's metrics (§4.1–4.2: atoms within 0.5 Å, exact atom counts, species) of the
    decoded samples of held-out crystals, beside its numbers, plus an oracle row (atoms from
    the true species matrix). ``split``: all crystals of ``data``, or train/val/test of the run's
    ``split.json`` (``data`` must then be the training sources). Writes OUT/metrics.json,
    OUT/metrics.md and plots."""
    from deepatoms.density.evaluate import evaluate_density_model

    out_dir = Path(out_dir)
    check_new_file(out_dir / "metrics.json", overwrite)
    loaded, model_file = _load_model(model, device)
    crystals = _split_crystals(model_file, data, split, seed, progress)
    if skip_large:
        crystals = _drop_large(crystals, loaded.grid.box)
    with ProgressBar("evaluating", quiet=not progress) as bar:
        res = evaluate_density_model(
            loaded, crystals, out_dir, rotations=rotations, seed=seed, regime=regime,
            batch_size=batch_size, connectivity=connectivity, hungarian=hungarian, plots=plots,
            model_name=str(model_file), progress=bar,
        )  # fmt: skip
    return CrystalsResult(res, n_crystals=len(crystals), notes=_notes(crystals))
