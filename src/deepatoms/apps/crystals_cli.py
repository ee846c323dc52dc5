"""``deepatoms crystals``: crystals as 3-D densities (density VAE, specs/crystal-density-vae.md).

Commands (all with ``--json``; outputs written atomically, never overwritten unless asked):

- ``train``: train the β-VAE + attention U-Net on crystals (§3–5, §9–10) → run folder + model.pt;
- ``voxelize``: voxel samples M and S of crystals (§1–2) → .npz for inspection;
- ``encode``: μ, log σ² per sample → .npz (§8);
- ``decode``: latents (.npz) → densities → U-Net → atoms (§6) → extxyz / CIF + images;
- ``sample``: z ~ N(0, I) (optionally α·z) → structures (§8);
- ``interpolate A B``: k equally spaced intermediates between two encoded crystals (§8);
- ``alter``: single-dimension sweeps with difference maps, or α conditioning (§8);
- ``evaluate``: the paper's metrics on held-out crystals beside its numbers (§7).

Crystal sources (``--data`` / INPUT): CSVs of CIFs, CIF folders, dataset .h5 files, ASE-readable
structure files, or the token ``prototypes`` (``density.crystal_sets.load_crystals``);
``SOURCE@K`` picks crystal K (0-based) or the crystal with id K.

The group lives on ``crystals_app``; ``deepatoms.cli`` adds it with :func:`register`
(idempotent). Importing this module registers nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from deepatoms.cli_support import (
    JsonOpt,
    OverwriteOpt,
    QuietOpt,
    add_group_once,
    check_new_output,
    emit_json,
    err,
    fail_cleanly,
    out,
)
from deepatoms.core.progress import ProgressBar

crystals_app = typer.Typer(
    help="Crystals as 3-D densities: train, encode, decode, sample, interpolate, evaluate "
    "(density VAE, Hoffmann et al.).",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add the ``crystals`` command group to ``app`` once."""
    add_group_once(app, crystals_app, "crystals")


__all__ = ["crystals_app", "register"]

#: Structure output suffix → ASE format.
STRUCTURE_FORMATS = {".xyz": "extxyz", ".extxyz": "extxyz", ".cif": "cif"}

ModelArg = Annotated[
    Path, typer.Argument(help="Density VAE model file (model.pt) or run folder.", metavar="MODEL")
]
SeedOpt = Annotated[int, typer.Option(help="Random seed (rotations, prior draws).")]
DeviceOpt = Annotated[str, typer.Option(help="Torch device: cpu, or cuda for large models.")]
BatchOpt = Annotated[int, typer.Option("--batch-size", help="Samples per model batch.")]
RotateOpt = Annotated[
    bool,
    typer.Option(
        "--rotate/--no-rotate", help="Random SO(3) rotation of each single-cell sample (§2)."
    ),
]
SkipLargeOpt = Annotated[
    bool,
    typer.Option(
        "--skip-large",
        help="Drop crystals with a lattice vector not shorter than the box instead of failing.",
    ),
]
ImagesOpt = Annotated[
    Path | None, typer.Option(help="Folder for PNG images of the structures.", metavar="DIR")
]
StructOutOpt = Annotated[
    Path,
    typer.Option(
        "--out", help="Structures: extended XYZ (.xyz/.extxyz) or CIF (.cif).", metavar="FILE"
    ),
]


# -- helpers ----------------------------------------------------------------------------------
def _model_path(path: Path) -> Path:
    if path.is_dir():
        path = path / "model.pt"
    if not path.is_file():
        raise FileNotFoundError(
            f"model file {path} does not exist; give a model.pt written by `deepatoms crystals "
            "train` or its run folder"
        )
    return path


def _load_model(path: Path, device: str = "cpu"):
    """(LoadedDensityModel on ``device``, model file path)."""
    from deepatoms.generate.cli import _device
    from deepatoms.models.loading import load_model

    file = _model_path(path)
    dev = _device(device)
    loaded = load_model(file, expect="density_vae")
    loaded.model.to(dev)
    return loaded, file


def _model_for_structures(model: Path, device: str, out_file: Path, overwrite: bool):
    """Check the structure output ``out_file`` (before any work), then load the model:
    (LoadedDensityModel on ``device``, model file path)."""
    _check_structure_output(out_file, overwrite)
    return _load_model(model, device)


def _decode_to_file(loaded, z, scale, out_file: Path, labels: list[str], overwrite: bool,
                    quiet: bool, **decode_kw) -> tuple[Any, dict]:  # fmt: skip
    """Decode latents ``z`` (with ``scale`` for a conditioned model) under a progress bar and
    write the structures in the box frame with ``labels``: (Decoded, written-file summary)."""
    from deepatoms.density.latent_tools import decode_latents

    with ProgressBar("decoding", quiet) as bar:
        decoded = decode_latents(loaded, z, scale, progress=bar, **decode_kw)
    return decoded, _write_structures(out_file, _box_structures(decoded), labels, overwrite)


def _split_pick(spec: str) -> tuple[str, str | None]:
    """``SOURCE@K`` → (SOURCE, K); a plain source → (source, None)."""
    if "@" in spec and not Path(spec).exists():
        src, _, pick = spec.rpartition("@")
        return src, pick
    return spec, None


def _load(sources: list[str], seed: int, quiet: bool, grid=None, skip_large: bool = False):
    """A CrystalSet of ``sources`` (``SOURCE@K`` picks one crystal); with ``grid`` and
    ``skip_large``: crystals not shorter than the box dropped, with a note on stderr."""
    from deepatoms.data.voxels.crystal_sets import CrystalSet, load_crystals

    parts = []
    for spec in sources:
        src, pick = _split_pick(spec)
        cs = load_crystals([src], seed=seed, progress=not quiet)
        if pick is not None:
            cs = cs.subset([_pick_index(cs, pick, spec)])
        parts.append(cs)
    crystals = CrystalSet.concatenate(parts)
    if grid is not None and skip_large:
        crystals = _drop_large(crystals, grid.box)
    if len(crystals) == 0:
        raise ValueError(f"no crystals left in {', '.join(sources)}")
    return crystals


def _drop_large(crystals, box: float):
    """Crystals with every lattice vector shorter than ``box`` (Å); a note names the dropped."""
    kept = crystals.filter_max_side(box)
    note = kept.notes["max_side"]
    if note["dropped"]:
        err.print(
            f"note: dropped {note['dropped']} crystals with a lattice vector ≥ {box:g} Å "
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


def _one(spec: str, seed: int, quiet: bool):
    """Exactly one crystal from ``spec`` (a single-crystal source or ``SOURCE@K``)."""
    cs = _load([spec], seed, quiet)
    if len(cs) != 1:
        raise ValueError(
            f"{spec} holds {len(cs)} crystals; pick one with {spec}@INDEX or {spec}@ID "
            f"(e.g. {spec}@0 = {cs.ids[0]})"
        )
    return cs


def _check_npz_output(path: Path, overwrite: bool) -> None:
    if path.suffix.lower() != ".npz":
        raise ValueError(f"output {path} must end in .npz")
    check_new_output(path, overwrite)


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
    check_new_output(path, overwrite)
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


def _encode_input(loaded, sources: list[str], rotations: int, seed: int, regime: str | None,
                  rotate: bool, batch_size: int, skip_large: bool, quiet: bool):  # fmt: skip
    """(Encoded, ids per sample) of crystal sources or of a voxelised .npz (grids must match)."""
    from deepatoms.density.latent_tools import encode_crystals, encode_samples

    if len(sources) == 1 and sources[0].endswith(".npz"):
        samples, ids = _samples_from_npz(Path(sources[0]), loaded.grid)
        with ProgressBar("encoding", quiet) as bar:
            enc = encode_samples(loaded, samples, batch_size, bar)
        return enc, ids
    crystals = _load(sources, seed, quiet, loaded.grid, skip_large)
    with ProgressBar("voxelising and encoding", quiet) as bar:
        enc = encode_crystals(
            loaded, crystals.atoms, rotations=rotations, seed=seed, regime=regime, rotate=rotate,
            batch_size=batch_size, ids=crystals.ids, progress=bar,
        )  # fmt: skip
    return enc, [crystals.ids[c] for c in enc.crystal]


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


# -- commands ---------------------------------------------------------------------------------
@crystals_app.command("train")
@fail_cleanly
def train_command(
    data: Annotated[
        list[str],
        typer.Option(
            help="Crystal source (repeatable): CSV of CIFs, CIF folder, dataset .h5, structure "
            "file, or 'prototypes' / 'prototypes:N' (N substituted variants).",
            metavar="PATH",
        ),
    ],
    out_dir: Annotated[
        Path, typer.Option("--out", help="Run folder (created; resumed if it holds a run).")
    ],
    preset: Annotated[
        str, typer.Option(help="Preset: density-vae-fast (CPU), density-vae-paper, …")
    ] = "density-vae-fast",
    regime: Annotated[
        str | None,
        typer.Option(help="single (unit cell) or repeated (lattice); default: preset's."),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set", help="Override a config value, e.g. --set train.lr=1e-4 (repeatable)."
        ),
    ] = None,
    init: Annotated[
        Path | None,
        typer.Option(
            help="Start from this density model.pt (weights copied, optimiser fresh).",
            metavar="MODEL",
        ),
    ] = None,
    init_part: Annotated[
        str,
        typer.Option(
            help="What --init copies: all, vae (encoder + decoder, e.g. for a new U-Net) or unet."
        ),
    ] = "all",
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Train the density β-VAE + attention U-Net; writes a run folder with model.pt.

    Crystals are filtered by maximum lattice-vector length, split by crystal (material id or
    parent prototype) and voxelised on the fly. The same command on a run folder resumes it.
    """
    from deepatoms.workflows.training import train, training_config

    cfg = training_config(preset, list(set_ or []), regime=regime)
    crystals = _load(data, int(cfg["train"]["seed"]), quiet)
    summary = train(preset, crystals, out_dir, overrides=list(set_ or []), regime=regime,
                    init=init, init_part=init_part, progress=not quiet,
                    command="deepatoms crystals train")  # fmt: skip
    best, monitor = summary["best"], summary["monitor"]
    verb = "resumed and finished" if summary["resumed"] else "finished"
    out.print(
        f"{verb} {preset} ({cfg['data']['regime']} regime) on "
        f"{sum(summary['n_crystals'].values())} crystals: {summary['epochs']} epochs, "
        f"{summary['steps']} steps, stopped by {summary['stopped']} ({summary['wall_time_s']} s)"
    )
    line = f"best epoch {summary['best_epoch']}: {monitor} {best[monitor]:.5g}"
    if best.get("val_recon_mse") is not None:
        line += (
            f", validation voxel MSE {best['val_recon_mse']:.4g}, atom-voxel accuracy "
            f"{best['val_acc_atom']:.3f}"
        )
    out.print(line)
    out.print(f"model: {summary['model_file']}")
    if as_json:
        emit_json(dict(summary))


@crystals_app.command("voxelize")
@fail_cleanly
def voxelize_command(
    inputs: Annotated[list[str], typer.Argument(help="Crystal sources.", metavar="INPUT...")],
    out_file: Annotated[Path, typer.Option("--out", help="Output .npz.", metavar="FILE.npz")],
    model: Annotated[
        Path | None, typer.Option(help="Use this model's grid.", metavar="MODEL")
    ] = None,
    preset: Annotated[str | None, typer.Option(help="Use this preset's grid.")] = None,
    n: Annotated[int | None, typer.Option(help="Voxels per side (default 30).")] = None,
    box: Annotated[float | None, typer.Option(help="Box side in Å (default 10).")] = None,
    sigma: Annotated[float | None, typer.Option(help="Gaussian width σ in Å (default 1).")] = None,
    regime: Annotated[str, typer.Option(help="single or repeated.")] = "single",
    rotations: Annotated[int, typer.Option(help="Samples per crystal.")] = 1,
    rotate: RotateOpt = True,
    seed: SeedOpt = 0,
    skip_large: SkipLargeOpt = False,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Voxelise crystals: density M (Eq. 1) and species matrix S per sample → .npz.

    Arrays: density [N,n,n,n] (Å⁻³), species [N,n,n,n] (Z), ids, crystal, n_dropped, rotation,
    translation, cell, the atoms inside the box (numbers, positions Å, offsets) and the grid.
    """
    import json

    from deepatoms.density.latent_tools import check_fits_box, make_samples

    if rotations < 1:
        raise ValueError(f"--rotations must be at least 1, got {rotations}")
    _check_npz_output(out_file, overwrite)
    grid = _grid_for(preset, model, n, box, sigma)
    crystals = _load(inputs, seed, quiet, grid, skip_large)
    if regime == "single":
        check_fits_box(crystals.atoms, grid, crystals.ids)
    with ProgressBar("voxelising", quiet) as bar:
        samples = make_samples(crystals.atoms, grid, regime, rotations, seed, rotate, progress=bar)
    counts = np.array([len(s.numbers) for s in samples], dtype=np.int64)
    crystal = np.repeat(np.arange(len(crystals)), rotations)
    _save_npz(out_file, {
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
    dropped = int(sum(s.n_dropped for s in samples))
    res = {
        "out": str(out_file), "n_crystals": len(crystals), "n_samples": len(samples),
        "grid": grid.as_dict(), "regime": regime, "atoms_in_box": int(counts.sum()),
        "atoms_dropped": dropped, "samples_clipped": int(sum(s.n_dropped > 0 for s in samples)),
    }  # fmt: skip
    out.print(
        f"wrote {len(samples)} samples of {len(crystals)} crystals ({grid.n}³ voxels over "
        f"{grid.box:g} Å) to {out_file}; {dropped} atoms left the box"
    )
    if as_json:
        emit_json(res)


@crystals_app.command("encode")
@fail_cleanly
def encode_command(
    model: ModelArg,
    inputs: Annotated[
        list[str],
        typer.Argument(help="Crystal sources, or one .npz from `voxelize`.", metavar="INPUT..."),
    ],
    out_file: Annotated[Path, typer.Option("--out", help="Output .npz.", metavar="FILE.npz")],
    rotations: Annotated[int, typer.Option(help="Samples per crystal.")] = 1,
    rotate: RotateOpt = True,
    regime: Annotated[
        str | None, typer.Option(help="single or repeated (default: model's).")
    ] = None,
    seed: SeedOpt = 0,
    batch_size: BatchOpt = 16,
    skip_large: SkipLargeOpt = False,
    device: DeviceOpt = "cpu",
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Encode crystals: μ and log σ² per sample → .npz (with ids, rotation, cell, scale m)."""
    if rotations < 1:
        raise ValueError(f"--rotations must be at least 1, got {rotations}")
    _check_npz_output(out_file, overwrite)
    loaded, model_file = _load_model(model, device)
    enc, ids = _encode_input(
        loaded, inputs, rotations, seed, regime, rotate, batch_size, skip_large, quiet
    )
    _save_npz(out_file, _encoding_arrays(enc, ids, model_file, seed))
    out.print(f"wrote {len(enc.mu)} encodings ({enc.mu.shape[1]} dimensions) to {out_file}")
    if as_json:
        emit_json({
            "out": str(out_file), "model": str(model_file), "n_samples": len(enc.mu),
            "latent": int(enc.mu.shape[1]), "n_crystals": len(set(ids)),
            "atoms_dropped": int(sum(s.n_dropped for s in enc.samples)),
        })  # fmt: skip


@crystals_app.command("decode")
@fail_cleanly
def decode_command(
    model: ModelArg,
    latents: Annotated[
        Path, typer.Argument(help=".npz of latents (e.g. from `encode`).", metavar="LATENTS.npz")
    ],
    out_file: StructOutOpt,
    key: Annotated[str, typer.Option(help="Array of latents in the .npz [N, latent].")] = "mu",
    frame: Annotated[
        str,
        typer.Option(
            help="box: positions in the box; crystal: back in the encoded crystal's cell "
            "(needs rotation, translation and cell from `encode`)."
        ),
    ] = "box",
    images: ImagesOpt = None,
    max_images: Annotated[int, typer.Option(help="At most this many images.")] = 8,
    connectivity: Annotated[int, typer.Option(help="6 or 26-connected components (§6).")] = 6,
    batch_size: BatchOpt = 8,
    device: DeviceOpt = "cpu",
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Decode latents: densities → U-Net → atoms; writes structures (and images)."""
    from deepatoms.density.latent_tools import decode_latents

    if frame not in ("box", "crystal"):
        raise ValueError(f"--frame must be box or crystal, got {frame!r}")
    loaded, model_file = _model_for_structures(model, device, out_file, overwrite)
    data = _read_npz(latents, (key,))
    z = data[key]
    scale = data.get("scale") if loaded.model.condition != "none" else None
    if loaded.model.condition != "none" and scale is None:
        raise ValueError(
            f"the model is conditioned ({loaded.model.condition}) but {latents} has no 'scale' "
            "array (the target m per latent); encode with `deepatoms crystals encode`"
        )
    with ProgressBar("decoding", quiet) as bar:
        decoded = decode_latents(
            loaded, z, scale, batch_size=batch_size, connectivity=connectivity, progress=bar
        )
    ids = [str(x) for x in data["ids"]] if "ids" in data else [f"{key}[{i}]" for i in range(len(z))]
    if frame == "crystal":
        missing = [k for k in ("rotation", "translation", "cell") if k not in data]
        if missing:
            raise ValueError(f"--frame crystal needs {missing} in {latents} (from `encode`)")
        structures = [
            a.to_atoms(cell=data["cell"][i], rotation=data["rotation"][i],
                       translation=data["translation"][i])
            for i, a in enumerate(decoded.atoms)
        ]  # fmt: skip
    else:
        structures = _box_structures(decoded)
    written = _write_structures(out_file, structures, ids, overwrite)
    pics = _images(images, decoded, ids, loaded.grid, max_images)
    res = {"model": str(model_file), **written, **_atom_counts(decoded), "images": pics}
    out.print(
        f"decoded {len(z)} latents: {res['atoms_mean']:.1f} atoms on average "
        f"({res['n_empty']} empty); wrote {written['written']} structures to {out_file}"
    )
    if as_json:
        emit_json(res)


@crystals_app.command("sample")
@fail_cleanly
def sample_command(
    model: ModelArg,
    out_file: StructOutOpt,
    n: Annotated[int, typer.Option("-n", "--n", help="Number of draws z ~ N(0, I).")] = 10,
    seed: SeedOpt = 0,
    alpha: Annotated[
        float | None,
        typer.Option(
            help="Target α: a conditioned model decodes with m = α; otherwise z is scaled to α·z."
        ),
    ] = None,
    images: ImagesOpt = None,
    max_images: Annotated[int, typer.Option(help="At most this many structure images.")] = 8,
    compare: Annotated[
        list[str] | None,
        typer.Option(
            help="Real crystals (source, repeatable) whose nearest-neighbour distances are "
            "compared with the samples' (§7).",
            metavar="PATH",
        ),
    ] = None,
    batch_size: BatchOpt = 8,
    device: DeviceOpt = "cpu",
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Decode random latents z ~ N(0, I) into structures (§8), optionally α-conditioned."""
    from deepatoms.density.images import plot_nn_histogram
    from deepatoms.density.latent_tools import alpha_inputs, sample_prior
    from deepatoms.density.metrics import compare_distance_histograms, nearest_neighbour_distances

    if n < 1:
        raise ValueError(f"-n must be at least 1, got {n}")
    loaded, model_file = _model_for_structures(model, device, out_file, overwrite)
    if loaded.model.condition != "none" and alpha is None:
        raise ValueError(
            f"the model is conditioned ({loaded.model.condition}); give the target value with "
            "--alpha (e.g. the max density of typical inputs)"
        )
    z = sample_prior(n, seed, dim=loaded.model.latent)
    z, scale = (z, None) if alpha is None else alpha_inputs(loaded, z, alpha)
    labels = [f"sample {i} (seed {seed})" for i in range(n)]
    decoded, written = _decode_to_file(
        loaded, z, scale, out_file, labels, overwrite, quiet, batch_size=batch_size
    )
    res = {
        "model": str(model_file), "seed": seed, "alpha": alpha, **written,
        **_atom_counts(decoded),
        "images": _images(images, decoded, labels, loaded.grid, max_images),
    }  # fmt: skip
    nn = {"sampled": nearest_neighbour_distances(decoded.atoms)}
    if compare:
        from deepatoms.density.latent_tools import make_samples

        real = _load(compare, seed, quiet, loaded.grid, skip_large=True)
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
    out.print(
        f"sampled {n} structures: {res['atoms_mean']:.1f} atoms on average ({res['n_empty']} "
        f"empty); wrote {written['written']} to {out_file}"
    )
    if as_json:
        emit_json(res)


@crystals_app.command("interpolate")
@fail_cleanly
def interpolate_command(
    model: ModelArg,
    a: Annotated[str, typer.Argument(help="First crystal (source or SOURCE@K).", metavar="A")],
    b: Annotated[str, typer.Argument(help="Second crystal (source or SOURCE@K).", metavar="B")],
    out_file: StructOutOpt,
    steps: Annotated[int, typer.Option(help="Intermediates between A and B (the paper: 3).")] = 3,
    image: Annotated[
        Path | None, typer.Option(help="PNG strip of the decoded path.", metavar="FILE.png")
    ] = None,
    rotate: RotateOpt = True,
    seed: SeedOpt = 0,
    device: DeviceOpt = "cpu",
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Encode A and B, decode A, STEPS equally spaced intermediates and B (§8)."""
    from deepatoms.data.voxels.crystal_sets import CrystalSet
    from deepatoms.density.images import plot_strip
    from deepatoms.density.latent_tools import encode_crystals, interpolate

    if steps < 0:
        raise ValueError(f"--steps must be ≥ 0, got {steps}")
    loaded, model_file = _model_for_structures(model, device, out_file, overwrite)
    pair = CrystalSet.concatenate([_one(a, seed, quiet), _one(b, seed, quiet)])
    enc = encode_crystals(loaded, pair.atoms, 1, seed, rotate=rotate, ids=pair.ids)
    z = interpolate(enc.mu[0], enc.mu[1], steps)
    t = np.linspace(0.0, 1.0, steps + 2)
    scale = None
    if loaded.model.condition != "none":
        scale = (1.0 - t) * enc.scale[0] + t * enc.scale[1]
    labels = [f"t={x:.3g} ({pair.ids[0]} → {pair.ids[1]})" for x in t]
    decoded, written = _decode_to_file(loaded, z, scale, out_file, labels, overwrite, quiet)
    res = {"model": str(model_file), "a": pair.ids[0], "b": pair.ids[1], "t": t.tolist(),
           **written, "atoms": [len(x) for x in decoded.atoms]}  # fmt: skip
    if image is not None:
        titles = [f"t = {x:.2f}: {len(at)} atoms" for x, at in zip(t, decoded.atoms, strict=True)]
        res["image"] = str(
            plot_strip(list(decoded.densities), loaded.grid, image, atoms=decoded.atoms,
                       titles=titles, suptitle=f"{pair.ids[0]} → {pair.ids[1]}")
        )  # fmt: skip
    out.print(
        f"interpolated {pair.ids[0]} → {pair.ids[1]} in {steps + 1} steps; atoms per structure "
        f"{res['atoms']}; wrote {written['written']} structures to {out_file}"
    )
    if as_json:
        emit_json(res)


@crystals_app.command("alter")
@fail_cleanly
def alter_command(
    model: ModelArg,
    out_file: StructOutOpt,
    source: Annotated[
        str | None,
        typer.Argument(
            help="Crystal to encode (source or SOURCE@K); default: a prior draw.", metavar="[INPUT]"
        ),
    ] = None,
    dim: Annotated[int | None, typer.Option(help="Latent dimension K to sweep.")] = None,
    values: Annotated[
        str, typer.Option(help="Sweep values START:STOP:COUNT or a,b,c (paper: -3:3:7).")
    ] = "-3:3:7",
    alpha: Annotated[
        str | None,
        typer.Option(
            help="Instead of a sweep: α values (START:STOP:COUNT or a,b,c) for α·z / m = α."
        ),
    ] = None,
    image: Annotated[
        Path | None,
        typer.Option(help="PNG of the decodes and difference maps.", metavar="FILE.png"),
    ] = None,
    rotate: RotateOpt = True,
    seed: SeedOpt = 0,
    device: DeviceOpt = "cpu",
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Sweep one latent dimension, or scale the latent by α, with difference maps (§8).

    --dim K --values -3:3:7 sets dimension K of the encoding of INPUT (or of a prior draw) to
    each value; --alpha VALUES decodes α·z (a conditioned model: m = α). The image shows the
    decodes and their differences to the unaltered decode.
    """
    from deepatoms.density.images import plot_sweep
    from deepatoms.density.latent_tools import (
        alpha_inputs,
        decode_latents,
        encode_crystals,
        parse_values,
        sample_prior,
        sweep,
    )

    if (dim is None) == (alpha is None):
        raise ValueError("give exactly one of --dim K (a sweep) or --alpha VALUES (conditioning)")
    loaded, model_file = _model_for_structures(model, device, out_file, overwrite)
    conditioned = loaded.model.condition != "none"
    if source is not None:
        cs = _one(source, seed, quiet)
        enc = encode_crystals(loaded, cs.atoms, 1, seed, rotate=rotate, ids=cs.ids)
        z0, m0, name = enc.mu[0], float(enc.scale[0]), cs.ids[0]
    else:
        if conditioned and alpha is None:
            raise ValueError("a conditioned model needs an INPUT crystal for a sweep (its m)")
        z0, m0, name = (
            sample_prior(1, seed, loaded.model.latent)[0],
            1.0,
            f"prior draw (seed {seed})",
        )
    if alpha is not None:
        vals = parse_values(alpha)
        z, scale = alpha_inputs(loaded, np.repeat(z0[None], len(vals), 0), vals)
        label, what = "α", "alpha"
    else:
        vals = parse_values(values)
        z, scale = sweep(z0, dim, vals), (np.full(len(vals), m0) if conditioned else None)
        label, what = f"z[{dim}]", "sweep"
    labels = [f"{label}={v:.3g} ({name})" for v in vals]
    decoded, written = _decode_to_file(loaded, z, scale, out_file, labels, overwrite, quiet)
    ref = decode_latents(loaded, z0[None], m0 if conditioned else None)
    diff = np.abs(decoded.densities.astype(np.float64) - ref.densities[0]).reshape(len(vals), -1)
    res = {
        "model": str(model_file), "input": name, "mode": what, "dim": dim,
        "values": vals.tolist(), **written, "atoms": [len(x) for x in decoded.atoms],
        "reference_atoms": len(ref.atoms[0]), "max_abs_difference": diff.max(axis=1).tolist(),
    }  # fmt: skip
    if image is not None:
        res["image"] = str(
            plot_sweep(list(decoded.densities), ref.densities[0], vals, loaded.grid, image,
                       atoms=decoded.atoms, label=label)
        )  # fmt: skip
    out.print(
        f"{what} of {name} over {label} = {', '.join(f'{v:.3g}' for v in vals)}: atoms "
        f"{res['atoms']} (unaltered {res['reference_atoms']}); wrote {written['written']} "
        f"structures to {out_file}"
    )
    if as_json:
        emit_json(res)


@crystals_app.command("evaluate")
@fail_cleanly
def evaluate_command(
    model: Annotated[
        Path, typer.Argument(help="Run folder or model.pt.", metavar="RUN_DIR_OR_MODEL")
    ],
    data: Annotated[list[str], typer.Option(help="Crystal source (repeatable).", metavar="PATH")],
    out_dir: Annotated[
        Path, typer.Option("--out", help="Folder for metrics.json, metrics.md, plots/.")
    ],
    split: Annotated[
        str,
        typer.Option(
            help="all, or train/val/test of the run's split.json (MODEL must be the run folder "
            "and --data the training sources)."
        ),
    ] = "all",
    rotations: Annotated[int, typer.Option(help="Samples per crystal (the paper: 3).")] = 3,
    regime: Annotated[
        str | None, typer.Option(help="single or repeated (default: model's).")
    ] = None,
    seed: SeedOpt = 0,
    connectivity: Annotated[int, typer.Option(help="6 or 26-connected components (§6).")] = 6,
    hungarian: Annotated[bool, typer.Option(help="One-to-one (Hungarian) atom matching.")] = False,
    batch_size: BatchOpt = 8,
    plots: Annotated[bool, typer.Option("--plots/--no-plots", help="Write plots/ too.")] = True,
    skip_large: SkipLargeOpt = False,
    device: DeviceOpt = "cpu",
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """The paper's metrics on held-out crystals (§7), beside its numbers, plus an oracle row."""
    from deepatoms.density.evaluate import evaluate_density_model

    check_new_output(out_dir / "metrics.json", overwrite)
    loaded, model_file = _load_model(model, device)
    crystals = _split_crystals(model, data, split, seed, quiet)
    if skip_large:
        crystals = _drop_large(crystals, loaded.grid.box)
    with ProgressBar("evaluating", quiet) as bar:
        res = evaluate_density_model(
            loaded, crystals, out_dir, rotations=rotations, seed=seed, regime=regime,
            batch_size=batch_size, connectivity=connectivity, hungarian=hungarian, plots=plots,
            model_name=str(model_file), progress=bar,
        )  # fmt: skip
    m = res["model"]

    def f(v):
        return "–" if v is None else f"{v:.3f}"

    out.print(
        f"{res['settings']['n_samples']} samples of {len(crystals)} crystals: atoms within 0.5 Å "
        f"{f(m['true_to_pred']['within_0.5'])}, exact count {f(m['count_exact'])}, |Δn| ≤ 1 "
        f"{f(m['count_within_1'])}, species exact {f(m['species_exact_0.5'])} (oracle exact "
        f"count {f(res['oracle']['count_exact'])})"
    )
    out.print(f"wrote {res['files']['metrics_md']} and {res['files']['metrics_json']}")
    if as_json:
        emit_json(res)


def _split_crystals(model: Path, data: list[str], split: str, seed: int, quiet: bool):
    """The crystals of ``data`` (split ``all``) or one part of the run's split.json."""
    if split == "all":
        return _load(data, seed, quiet)
    if split not in ("train", "val", "test"):
        raise ValueError(f"--split must be all, train, val or test, got {split!r}")
    import yaml

    from deepatoms.data.splits import load_split
    from deepatoms.data.voxels.crystal_sets import select_crystals
    from deepatoms.train.run_folder import RunFolder

    run = RunFolder(model if model.is_dir() else model.parent)
    if not run.split.is_file() or not run.config.is_file():
        raise ValueError(
            f"--split {split} needs the run folder with split.json and config.yaml; {run.root} "
            "has none (use --split all with held-out --data)"
        )
    cfg = yaml.safe_load(run.config.read_text()) or {}
    parts, meta = load_split(run.split, with_meta=True)
    crystals = _load(data, int(cfg["train"]["seed"]), quiet)
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
