"""``deepatoms crystals ...``: crystals as 3-D densities with the density VAE (Hoffmann et al.
2019): train (``deepatoms.workflows.training``), voxelize, encode, decode, sample, interpolate,
alter and evaluate (``deepatoms.workflows.crystals``).

Crystal sources (``--data`` / INPUT): CSVs of CIFs, CIF folders, dataset .h5 files, ASE-readable
structure files, or ``prototypes`` / ``prototypes:N``; ``SOURCE@K`` picks crystal K (0-based)
or the crystal with id K.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from deepatoms.cli.common import (
    Run,
    SetOpt,
    command,
    commands,
    out,
    print_notes,
    run_options,
    training_verb,
)

app = commands(
    "Crystals as 3-D densities: train, encode, decode, sample, interpolate, evaluate "
    "(density VAE, Hoffmann et al.)."
)

__all__ = ["app"]


ModelArg = Annotated[
    Path, typer.Argument(help="Density VAE model file (model.pt) or run folder.", metavar="MODEL")
]
SeedOpt = Annotated[int, typer.Option(help="Random seed (rotations, prior draws).")]
BatchOpt = Annotated[int, typer.Option("--batch-size", help="Samples per model batch.")]
RotateOpt = Annotated[
    bool,
    typer.Option(
        "--rotate/--no-rotate",
        help="Random SO(3) rotation of each single-cell sample (docs/density_vae.md §2).",
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


# -- commands ---------------------------------------------------------------------------------
@command(app, "train", run_options(overwrite=False))
def train_command(
    data: Annotated[list[str], typer.Option(metavar="PATH")],
    out_dir: Annotated[Path, typer.Option("--out")], preset: str = "density-vae-fast",
    regime: str | None = None, set_: SetOpt = None,
    init: Annotated[Path | None, typer.Option(metavar="MODEL")] = None, init_part: str = "all", *,
    run: Run,
) -> None:  # fmt: skip
    """Train the density β-VAE + attention U-Net; writes a run folder with model.pt.

    Crystals are filtered by maximum lattice-vector length, split by crystal (material id or
    parent prototype) and voxelised on the fly. The same command on a run folder resumes it.

    Args:
        data: Crystal source (repeatable): CSV of CIFs, CIF folder, dataset .h5, structure file,
            or 'prototypes' / 'prototypes:N' (N substituted variants).
        out_dir: Run folder (created; resumed if it holds a run).
        preset: Preset: density-vae-fast (CPU), density-vae-paper, …
        regime: single (unit cell) or repeated (lattice); default: preset's.
        init: Start from this density model.pt (weights copied, optimiser fresh).
        init_part: What --init copies: all, vae (encoder + decoder, e.g. for a new U-Net) or
            unet.
    """
    from deepatoms.workflows.crystals import load_crystal_sources
    from deepatoms.workflows.training import train, training_config

    cfg = training_config(preset, list(set_ or []), regime=regime)
    crystals = load_crystal_sources(data, int(cfg["train"]["seed"]), run.progress)
    summary = train(preset, crystals, out_dir, overrides=list(set_ or []), regime=regime,
                    init=init, init_part=init_part, progress=run.progress,
                    command="deepatoms crystals train")  # fmt: skip
    verb = training_verb(summary)
    out.print(
        f"{verb} {preset} ({summary['regime']} regime) on "
        f"{sum(summary['n_crystals'].values())} crystals: {summary['epochs']} epochs, "
        f"{summary['steps']} steps, stopped by {summary['stopped']} ({summary['wall_time_s']} s)"
    )
    best, monitor = summary["best"], summary["monitor"]
    if best is not None:
        line = f"best epoch {summary['best_epoch']}: {monitor} {best[monitor]:.5g}"
        if best.get("val_recon_mse") is not None:
            line += (f", validation voxel MSE {best['val_recon_mse']:.4g}, atom-voxel accuracy "
                     f"{best['val_acc_atom']:.3f}")  # fmt: skip
        out.print(line)
    out.print(f"model: {summary['model_file']}")
    run.emit(summary)


@command(app, "voxelize", run_options())
def voxelize_command(
    inputs: Annotated[list[str], typer.Argument(metavar="INPUT...")],
    out_file: Annotated[Path, typer.Option("--out", metavar="FILE.npz")],
    model: Annotated[Path | None, typer.Option(metavar="MODEL")] = None, preset: str | None = None,
    n: int | None = None, box: float | None = None, sigma: float | None = None,
    regime: str = "single", rotations: int = 1, rotate: RotateOpt = True, seed: SeedOpt = 0,
    skip_large: SkipLargeOpt = False, *, run: Run,
) -> None:  # fmt: skip
    """Voxelise crystals: density M (Eq. 1) and species matrix S per sample → .npz.

    Arrays: density [N,n,n,n] (Å⁻³), species [N,n,n,n] (Z), ids, crystal, n_dropped, rotation,
    translation, cell, the atoms inside the box (numbers, positions Å, offsets) and the grid.

    Args:
        inputs: Crystal sources.
        out_file: Output .npz.
        model: Use this model's grid.
        preset: Use this preset's grid.
        n: Voxels per side (default 30).
        box: Box side in Å (default 10).
        sigma: Gaussian width σ in Å (default 1).
        regime: single or repeated.
        rotations: Samples per crystal.
    """
    from deepatoms.workflows.crystals import voxelize

    res = voxelize(inputs, out_file, model=model, preset=preset, n=n, box=box, sigma=sigma,
                   regime=regime, rotations=rotations, rotate=rotate, seed=seed,
                   skip_large=skip_large, overwrite=run.overwrite, progress=run.progress)  # fmt: skip
    print_notes(res.notes)
    g = res.grid
    out.print(
        f"wrote {res.n_samples} samples of {res.n_crystals} crystals ({g['n']}³ voxels over "
        f"{g['box']:g} Å) to {out_file}; {res.atoms_dropped} atoms left the box"
    )
    run.emit(res)


@command(app, "encode", run_options(device=True))
def encode_command(
    model: ModelArg, inputs: Annotated[list[str], typer.Argument(metavar="INPUT...")],
    out_file: Annotated[Path, typer.Option("--out", metavar="FILE.npz")], rotations: int = 1,
    rotate: RotateOpt = True, regime: str | None = None, seed: SeedOpt = 0,
    batch_size: BatchOpt = 16, skip_large: SkipLargeOpt = False, *, run: Run,
) -> None:  # fmt: skip
    """Encode crystals: μ and log σ² per sample → .npz (with ids, rotation, cell, scale m).

    Args:
        inputs: Crystal sources, or one .npz from `voxelize`.
        out_file: Output .npz.
        rotations: Samples per crystal.
        regime: single or repeated (default: model's).
    """
    from deepatoms.workflows.crystals import encode

    res = encode(model, inputs, out_file, rotations=rotations, rotate=rotate, regime=regime,
                 seed=seed, batch_size=batch_size, skip_large=skip_large, device=run.device,
                 overwrite=run.overwrite, progress=run.progress)  # fmt: skip
    print_notes(res.notes)
    out.print(f"wrote {res.n_samples} encodings ({res.latent} dimensions) to {out_file}")
    run.emit(res)


@command(app, "decode", run_options(device=True))
def decode_command(
    model: ModelArg, latents: Annotated[Path, typer.Argument(metavar="LATENTS.npz")],
    out_file: StructOutOpt, key: str = "mu", frame: str = "box", images: ImagesOpt = None,
    max_images: int = 8, connectivity: int = 6, batch_size: BatchOpt = 8, *, run: Run,
) -> None:  # fmt: skip
    """Decode latents: densities → U-Net → atoms; writes structures (and images).

    Args:
        latents: .npz of latents (e.g. from `encode`).
        key: Array of latents in the .npz [N, latent].
        frame: box: positions in the box; crystal: back in the encoded crystal's cell (needs
            rotation, translation and cell from `encode`).
        max_images: At most this many images.
        connectivity: 6 or 26-connected components (docs/density_vae.md §6).
    """
    from deepatoms.workflows.crystals import decode_file

    res = decode_file(model, latents, out_file, key=key, frame=frame, images=images,
                      max_images=max_images, connectivity=connectivity, batch_size=batch_size,
                      device=run.device, overwrite=run.overwrite, progress=run.progress)  # fmt: skip
    out.print(
        f"decoded {res.n_latents} latents: {res.atoms_mean:.1f} atoms on average "
        f"({res.n_empty} empty); wrote {res.written} structures to {out_file}"
    )
    run.emit(res, drop=("n_latents",))


@command(app, "sample", run_options(device=True))
def sample_command(
    model: ModelArg, out_file: StructOutOpt, n: Annotated[int, typer.Option("-n", "--n")] = 10,
    seed: SeedOpt = 0, alpha: float | None = None, images: ImagesOpt = None, max_images: int = 8,
    compare: Annotated[list[str] | None, typer.Option(metavar="PATH")] = None,
    batch_size: BatchOpt = 8, *, run: Run,
) -> None:  # fmt: skip
    """Decode random latents z ~ N(0, I) into structures, optionally α-conditioned.

    Method: docs/density_vae.md §8.

    Args:
        n: Number of draws z ~ N(0, I).
        alpha: Target α: a conditioned model decodes with m = α; otherwise z is scaled to α·z.
        max_images: At most this many structure images.
        compare: Real crystals (source, repeatable) whose nearest-neighbour distances are
            compared with the samples' (docs/density_vae.md §7).
    """
    from deepatoms.workflows.crystals import sample_crystals

    res = sample_crystals(model, out_file, n=n, seed=seed, alpha=alpha, images=images,
                          max_images=max_images, compare=compare, batch_size=batch_size,
                          device=run.device, overwrite=run.overwrite, progress=run.progress)  # fmt: skip
    out.print(
        f"sampled {n} structures: {res.atoms_mean:.1f} atoms on average ({res.n_empty} "
        f"empty); wrote {res.written} to {out_file}"
    )
    run.emit(res)


@command(app, "interpolate", run_options(device=True))
def interpolate_command(
    model: ModelArg, a: Annotated[str, typer.Argument(metavar="A")],
    b: Annotated[str, typer.Argument(metavar="B")], out_file: StructOutOpt, steps: int = 3,
    image: Annotated[Path | None, typer.Option(metavar="FILE.png")] = None,
    rotate: RotateOpt = True, seed: SeedOpt = 0, *, run: Run,
) -> None:  # fmt: skip
    """Encode A and B, decode A, STEPS equally spaced intermediates and B.

    Method: docs/density_vae.md §8.

    Args:
        a: First crystal (source or SOURCE@K).
        b: Second crystal (source or SOURCE@K).
        steps: Intermediates between A and B (the paper: 3).
        image: PNG strip of the decoded path.
    """
    from deepatoms.workflows.crystals import interpolate_crystals

    res = interpolate_crystals(model, a, b, out_file, steps=steps, image=image, rotate=rotate,
                               seed=seed, device=run.device, overwrite=run.overwrite,
                               progress=run.progress)  # fmt: skip
    out.print(
        f"interpolated {res.a} → {res.b} in {steps + 1} steps; atoms per structure "
        f"{res.atoms}; wrote {res.written} structures to {out_file}"
    )
    run.emit(res)


@command(app, "alter", run_options(device=True))
def alter_command(
    model: ModelArg, out_file: StructOutOpt,
    source: Annotated[str | None, typer.Argument(metavar="[INPUT]")] = None, dim: int | None = None,
    values: str = "-3:3:7", alpha: str | None = None,
    image: Annotated[Path | None, typer.Option(metavar="FILE.png")] = None,
    rotate: RotateOpt = True, seed: SeedOpt = 0, *, run: Run,
) -> None:  # fmt: skip
    """Sweep one latent dimension, or scale the latent by α, with difference maps.

    Method: docs/density_vae.md §8.

    --dim K --values -3:3:7 sets dimension K of the encoding of INPUT (or of a prior draw) to
    each value; --alpha VALUES decodes α·z (a conditioned model: m = α). The image shows the
    decodes and their differences to the unaltered decode.

    Args:
        source: Crystal to encode (source or SOURCE@K); default: a prior draw.
        dim: Latent dimension K to sweep.
        values: Sweep values START:STOP:COUNT or a,b,c (paper: -3:3:7).
        alpha: Instead of a sweep: α values (START:STOP:COUNT or a,b,c) for α·z / m = α.
        image: PNG of the decodes and difference maps.
    """
    from deepatoms.workflows.crystals import alter_latents

    res = alter_latents(model, out_file, source=source, dim=dim, values=values, alpha=alpha,
                        image=image, rotate=rotate, seed=seed, device=run.device,
                        overwrite=run.overwrite, progress=run.progress)  # fmt: skip
    out.print(
        f"{res.mode} of {res.input} over {res.label} = "
        f"{', '.join(f'{v:.3g}' for v in res.swept)}: atoms {res.atoms} (unaltered "
        f"{res.reference_atoms}); wrote {res.written} structures to {out_file}"
    )
    # ``values`` is the JSON key of the swept values (the name of the option)
    run.emit({("values" if k == "swept" else k): v for k, v in res.items() if k != "label"})


@command(app, "evaluate", run_options(device=True))
def evaluate_command(
    model: Annotated[Path, typer.Argument(metavar="RUN_DIR_OR_MODEL")],
    data: Annotated[list[str], typer.Option(metavar="PATH")],
    out_dir: Annotated[Path, typer.Option("--out")], split: str = "all", rotations: int = 3,
    regime: str | None = None, seed: SeedOpt = 0, connectivity: int = 6, hungarian: bool = False,
    batch_size: BatchOpt = 8, plots: Annotated[bool, typer.Option("--plots/--no-plots")] = True,
    skip_large: SkipLargeOpt = False, *, run: Run,
) -> None:  # fmt: skip
    """The paper's metrics on held-out crystals, beside its numbers, plus an oracle row.

    Metrics: docs/density_vae.md §7.

    Args:
        model: Run folder or model.pt.
        data: Crystal source (repeatable).
        out_dir: Folder for metrics.json, metrics.md, plots/.
        split: all, or train/val/test of the run's split.json (MODEL must be the run folder and
            --data the training sources).
        rotations: Samples per crystal (the paper: 3).
        regime: single or repeated (default: model's).
        connectivity: 6 or 26-connected components (docs/density_vae.md §6).
        hungarian: One-to-one (Hungarian) atom matching.
        plots: Write plots/ too.
    """
    from deepatoms.workflows.crystals import evaluate_crystals

    res = evaluate_crystals(
        model, data, out_dir, split=split, rotations=rotations, regime=regime, seed=seed,
        connectivity=connectivity, hungarian=hungarian, batch_size=batch_size, plots=plots,
        skip_large=skip_large, device=run.device, overwrite=run.overwrite, progress=run.progress,
    )  # fmt: skip
    print_notes(res["notes"])
    m = res["model"]

    def f(v):
        return "–" if v is None else f"{v:.3f}"

    out.print(
        f"{res['settings']['n_samples']} samples of {res['n_crystals']} crystals: atoms within "
        f"0.5 Å {f(m['true_to_pred']['within_0.5'])}, exact count {f(m['count_exact'])}, "
        f"|Δn| ≤ 1 {f(m['count_within_1'])}, species exact {f(m['species_exact_0.5'])} (oracle "
        f"exact count {f(res['oracle']['count_exact'])})"
    )
    out.print(f"wrote {res['files']['metrics_md']} and {res['files']['metrics_json']}")
    run.emit(res, drop=("notes", "n_crystals"))
