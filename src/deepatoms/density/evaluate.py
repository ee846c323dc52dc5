"""Evaluate a trained density VAE on held-out crystals: the paper's metrics beside its numbers.

docs/density_vae.md §7 (metrics) and "Reference results" (Hoffmann et al. §4.1–4.2,
Figs. 3–5). Every crystal gives ``rotations`` seeded samples in the model's regime (§2; single
cell by Default). For each sample, in eval mode (z = μ):

    M → E → μ → M̂ = D(μ) → Ŝ = U(M̂) → atoms (§6)          row "model"
    M → U(M) → atoms                                        row "U-Net on true M"
    S (true species) → atoms                                row "oracle (true S)"

The oracle row measures what the atom recovery alone loses (close pairs merging, voxels too
coarse); the U-Net row what the segmentation loses on a perfect density; the model row adds the
VAE's reconstruction error. Each row holds ``density.metrics.atom_metrics`` (counts, distances in
both directions, species among matched atoms), the model row also the voxel MSE and the voxel
top-1 species accuracy (compared as atomic numbers, so elements outside the model's class map
count as errors, not as failures). Count metrics are also given on up to 120 random samples, the
number the paper plots.

Outputs in ``out_dir``: ``metrics.json`` (everything, plus settings and clipping counts),
``metrics.md`` (the table beside the paper's single-cell or repeated-lattice numbers) and
``plots/`` (``evaluation.png``: distance histograms, Δn histogram, Z parity;
``examples.png``: true vs decoded densities with atoms; ``nn_distances.png``: nearest-neighbour
distances of true and reconstructed atoms). All files are written atomically.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.spatial.distance import cdist

from deepatoms.core.files import atomic_write_text, write_json
from deepatoms.data.voxels.crystal_sets import CrystalSet
from deepatoms.data.voxels.dataset import ClassMap
from deepatoms.density.images import plot_evaluation, plot_nn_histogram, plot_panels
from deepatoms.density.latent_tools import check_fits_box, make_samples
from deepatoms.density.metrics import (
    VoxelMetrics,
    atom_metrics,
    compare_distance_histograms,
    nearest_neighbour_distances,
)
from deepatoms.density.recovery import recover_atoms
from deepatoms.models.loaded import LoadedDensityModel

__all__ = ["PAPER", "ROWS", "evaluate_density_model", "format_markdown"]

#: Samples of the paper's count plots (Fig. 3).
N_PLOTTED = 120

#: Table rows: (label, path into the metrics dict).
ROWS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("true atoms within 0.5 Å of a predicted atom", ("true_to_pred", "within_0.5")),
    ("predicted atoms within 0.5 Å of a true atom", ("pred_to_true", "within_0.5")),
    ("true atoms within 0.2 Å", ("true_to_pred", "within_0.2")),
    ("predicted atoms within 0.2 Å", ("pred_to_true", "within_0.2")),
    ("distance true → predicted, p50 (Å)", ("true_to_pred", "p50")),
    ("distance true → predicted, p75 (Å)", ("true_to_pred", "p75")),
    ("distance true → predicted, p90 (Å)", ("true_to_pred", "p90")),
    ("distance predicted → true, p50 (Å)", ("pred_to_true", "p50")),
    ("distance predicted → true, p75 (Å)", ("pred_to_true", "p75")),
    ("distance predicted → true, p90 (Å)", ("pred_to_true", "p90")),
    ("exact atom count", ("count_exact",)),
    ("|Δn| ≤ 1", ("count_within_1",)),
    ("|Δn| ≤ 2", ("count_within_2",)),
    (f"exact atom count ({N_PLOTTED} random samples)", ("random", "count_exact")),
    (f"|Δn| ≤ 1 ({N_PLOTTED} random samples)", ("random", "count_within_1")),
    ("species exact, matched within 0.5 Å", ("species_exact_0.5",)),
    ("species exact, matched within 0.33 Å", ("species_exact_0.33",)),
    ("species within 2 atomic numbers (0.5 Å)", ("species_within_2z",)),
    ("Pearson r of Z (0.5 Å)", ("z_pearson",)),
    ("voxel MSE, mean over samples (Å⁻⁶)", ("voxel", "mse_mean")),
    ("voxel MSE, median over samples (Å⁻⁶)", ("voxel", "mse_p50")),
    ("voxel species accuracy, all voxels", ("voxel", "species_accuracy")),
    ("voxel species accuracy, atom voxels", ("voxel", "species_accuracy_atoms")),
)

#: The paper's numbers per regime (text of Hoffmann et al. §4.1–4.2), keyed by row path.
PAPER: dict[str, dict[tuple[str, ...], str]] = {
    "single": {
        ("true_to_pred", "within_0.5"): "≈ 0.99 (“nearly 99% of atoms placed within 0.5 Å”)",
        ("count_exact",): "≈ 0.90 (“nearly 90% of unit cells”)",
        ("count_within_1",): "0.97 (“less than 2 atoms extra or missing”)",
        ("random", "count_exact"): "≈ 0.90 (Fig. 3, 120 cells)",
        ("random", "count_within_1"): "0.97 (Fig. 3, 120 cells)",
        ("species_exact_0.5",): "0.66 (“66% of species correctly classified”)",
        ("species_within_2z",): "0.98 (“off by one or two atomic numbers”)",
    },
    "repeated": {
        ("pred_to_true", "within_0.2"): "0.50 (“50% of reconstructed atoms within 0.2 Å”)",
        ("true_to_pred", "p75"): "< 1 Å",
        ("true_to_pred", "p90"): "≤ 2 Å",
        ("pred_to_true", "p50"): "≈ 0.2 Å",
        ("pred_to_true", "p75"): "< 1 Å",
        ("pred_to_true", "p90"): "≤ 2 Å",
        ("species_exact_0.5",): "0.654",
        ("species_exact_0.33",): "≈ 0.70 (“nearly 70%”)",
        ("z_pearson",): "0.98",
    },
}

_COLUMNS = (("model", "model"), ("unet_true_density", "U-Net on true M"), ("oracle", "oracle"))


def _get(d: dict, path: tuple[str, ...]) -> Any:
    for k in path:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e-3 and v != 0 else f"{v:.3f}"
    return str(v)


def format_markdown(result: dict) -> str:
    """``metrics.md``: settings, then one row per metric with the model, U-Net-on-true-M and
    oracle columns beside the paper's number for the evaluated regime."""
    regime = result["settings"]["regime"]
    paper = PAPER.get(regime, {})
    s = result["settings"]
    lines = [
        f"# Density VAE evaluation ({regime} regime)",
        "",
        f"Model `{s['model']}`; {s['n_crystals']} crystals × {s['rotations']} rotations = "
        f"{s['n_samples']} samples (seed {s['seed']}); grid {s['grid']['n']}³ over "
        f"{s['grid']['box']:g} Å, σ {s['grid']['sigma']:g} Å; z = μ; {s['connectivity']}-connected "
        f"components; {s['matching']} matching.",
        f"Clipped samples (atoms left the box): {result['clipping']['samples_clipped']} "
        f"({result['clipping']['atoms_dropped']} atoms dropped).",
        "",
        "Columns: **model** = E → μ → D → U-Net → atoms; **U-Net on true M** = the segmentation "
        "of the true density; **oracle** = atoms recovered from the true species matrix S. "
        "Paper numbers: Hoffmann et al. (text of §4.1 single cell, §4.2 repeated lattice).",
        "",
        "| metric | model | U-Net on true M | oracle | paper |",
        "|---|---|---|---|---|",
    ]
    for label, path in ROWS:
        vals = [_fmt(_get(result[key], path)) for key, _ in _COLUMNS]
        cell = label.replace("|", "\\|")  # |Δn| must not split the table row
        lines.append(f"| {cell} | {' | '.join(vals)} | {paper.get(path, '')} |")
    nn = result["model"].get("nn_distances") or {}
    if nn.get("overlap") is not None:
        lines += [
            "",
            f"Nearest-neighbour distances, reconstructed vs true atoms: histogram overlap "
            f"{nn['overlap']:.3f}, Wasserstein distance {nn['wasserstein']:.3f} Å.",
        ]
    return "\n".join(lines) + "\n"


def _pairs(true: Sequence[Any], pred: Sequence[Any], cutoff: float = 0.5) -> dict[str, np.ndarray]:
    """Per-atom nearest distances both ways, Δn per sample and the (Z_true, Z_pred) pairs of
    predicted atoms within ``cutoff`` (Å) of their nearest true atom (for the plots)."""
    d_tp, d_pt, zt, zp, dn = [], [], [], [], []
    for t, p in zip(true, pred, strict=True):
        tz, tx = np.asarray(t.numbers), np.asarray(t.positions).reshape(-1, 3)
        pz, px = np.asarray(p.numbers), np.asarray(p.positions).reshape(-1, 3)
        dn.append(len(pz) - len(tz))
        if len(tz) and len(px):
            d = cdist(tx, px)
            d_tp.append(d.min(axis=1))
            d_pt.append(d.min(axis=0))
            near = d.argmin(axis=0)
            ok = d_pt[-1] <= cutoff
            zt.append(tz[near[ok]])
            zp.append(pz[ok])
    cat = lambda xs: np.concatenate(xs) if xs else np.zeros(0)  # noqa: E731
    return {
        "true_to_pred": cat(d_tp),
        "pred_to_true": cat(d_pt),
        "count_errors": np.asarray(dn, dtype=np.int64),
        "z_true": cat(zt),
        "z_pred": cat(zp),
    }


def _row(true: Sequence[Any], pred: Sequence[Any], hungarian: bool, pick: np.ndarray) -> dict:
    out = atom_metrics(true, pred, hungarian=hungarian)
    sub = atom_metrics([true[i] for i in pick], [pred[i] for i in pick], hungarian=hungarian)
    out["random"] = {k: sub[k] for k in ("n_samples", "count_exact", "count_within_1")}
    return out


@torch.no_grad()
def evaluate_density_model(
    loaded: LoadedDensityModel, crystals: CrystalSet, out_dir: str | Path, rotations: int = 3,
    seed: int = 0, regime: str | None = None, batch_size: int = 8, connectivity: int = 6,
    hungarian: bool = False, n_examples: int = 4, plots: bool = True, model_name: str = "",
    progress: Callable[[int, int], None] | None = None,
) -> dict:  # fmt: skip
    """Evaluate ``loaded`` on ``crystals`` (module docstring); returns the ``metrics.json`` dict.

    ``regime``: ``single`` | ``repeated`` (default: the model's training regime). In the single
    regime every lattice vector must be shorter than the box (filter the set first with
    ``CrystalSet.filter_max_side``). ``plots=False`` writes the metrics files only.
    ``progress(done, total)`` counts samples.
    """
    if len(crystals) == 0:
        raise ValueError("no crystals to evaluate")
    if rotations < 1:
        raise ValueError(f"rotations must be at least 1, got {rotations}")
    model, grid, cmap = loaded.model, loaded.grid, loaded.class_map
    model.eval()
    device = next(model.parameters()).device
    regime = regime or loaded.meta.get("regime", "single")
    if regime == "single":
        check_fits_box(crystals.atoms, grid, crystals.ids)
    samples = make_samples(crystals.atoms, grid, regime, rotations, seed)
    oracle_map = ClassMap.compact(np.concatenate([a.numbers for a in crystals.atoms]))
    voxel = VoxelMetrics()
    unet_voxel = VoxelMetrics()
    pred, unet_pred, oracle, recon_keep = [], [], [], []
    for start in range(0, len(samples), batch_size):
        batch = samples[start : start + batch_size]
        dens = torch.from_numpy(np.stack([s.density for s in batch])).unsqueeze(1).to(device)
        species = np.stack([s.species for s in batch])
        max_z = torch.tensor([float(max(s.numbers, default=1)) for s in batch], device=device)
        out = model(dens, gamma=1.0, scale=model.condition_scale(dens, max_z))
        logits, true_logits = out["seg_logits"], model.segment(dens)
        pred += recover_atoms(logits, grid, cmap, connectivity=connectivity)
        unet_pred += recover_atoms(true_logits, grid, cmap, connectivity=connectivity)
        oracle += recover_atoms(oracle_map.to_class(species), grid, oracle_map, connectivity)
        to_z = lambda lg: cmap.to_z(lg.argmax(dim=1).cpu().numpy())  # noqa: E731
        voxel.update(dens, out["recon"], species, to_z(logits))
        unet_voxel.update(dens, dens, species, to_z(true_logits))
        if len(recon_keep) < n_examples:
            recon_keep += list(out["recon"][:, 0].cpu().numpy()[: n_examples - len(recon_keep)])
        if progress is not None:
            progress(min(start + batch_size, len(samples)), len(samples))

    truth = list(samples)
    pick = np.sort(
        np.random.default_rng(seed).permutation(len(truth))[: min(N_PLOTTED, len(truth))]
    )
    result: dict[str, Any] = {
        "settings": {
            "model": model_name,
            "regime": regime,
            "n_crystals": len(crystals),
            "rotations": rotations,
            "n_samples": len(samples),
            "seed": seed,
            "connectivity": connectivity,
            "matching": "hungarian" if hungarian else "nearest",
            "grid": grid.as_dict(),
            "n_classes": cmap.n_classes,
            "latent": "mu",
        },
        "clipping": {
            "samples_clipped": int(sum(s.n_dropped > 0 for s in samples)),
            "atoms_dropped": int(sum(s.n_dropped for s in samples)),
        },
        "model": _row(truth, pred, hungarian, pick),
        "unet_true_density": _row(truth, unet_pred, hungarian, pick),
        "oracle": _row(truth, oracle, hungarian, pick),
    }
    result["model"]["voxel"] = voxel.result()
    unet_acc = unet_voxel.result()
    result["unet_true_density"]["voxel"] = {
        k: unet_acc[k] for k in ("n_samples", "species_accuracy", "species_accuracy_atoms")
    }
    nn_true = nearest_neighbour_distances(truth)
    nn_pred = nearest_neighbour_distances(pred)
    result["model"]["nn_distances"] = {
        k: v
        for k, v in compare_distance_histograms(nn_true, nn_pred).items()
        if k in ("n_a", "n_b", "overlap", "wasserstein")
    }
    result["paper"] = {".".join(k): v for k, v in PAPER.get(regime, {}).items()}
    out = Path(out_dir)
    files = {"metrics_json": str(out / "metrics.json"), "metrics_md": str(out / "metrics.md")}
    if plots:
        files.update(_plots(out / "plots", result, truth, pred, recon_keep, nn_true, nn_pred, grid))
    result["files"] = files
    write_json(out / "metrics.json", result)
    atomic_write_text(out / "metrics.md", format_markdown(result))
    return result


def _plots(
    plots: Path, result: dict, truth: list, pred: list, recon: list[np.ndarray],
    nn_true: np.ndarray, nn_pred: np.ndarray, grid,
) -> dict[str, str]:  # fmt: skip
    """The evaluation figures in ``plots``; returns {name: path}."""
    st = result["settings"]
    arrays = _pairs(truth, pred)
    title = f"density VAE, {st['regime']} regime, {st['n_samples']} samples"
    evaluation = plot_evaluation(
        arrays["true_to_pred"], arrays["pred_to_true"], arrays["count_errors"],
        arrays["z_true"], arrays["z_pred"], plots / "evaluation.png", title=title,
    )  # fmt: skip
    nn_plot = plot_nn_histogram(
        {"true atoms": nn_true, "reconstructed atoms": nn_pred}, plots / "nn_distances.png"
    )
    files = {
        "evaluation_plot": str(evaluation),
        "nn_plot": str(nn_plot),
    }
    if recon:
        ks = range(len(recon))
        titles = [
            [f"true M ({len(truth[i].numbers)} atoms)", f"decoded M̂ ({len(pred[i].numbers)} atoms)"]
            for i in ks
        ]
        examples = plot_panels(
            [[truth[i].density, recon[i]] for i in ks], grid, plots / "examples.png",
            atoms=[[truth[i], pred[i]] for i in ks], reference=[[None, truth[i]] for i in ks],
            titles=titles,
            suptitle="true (left) and reconstructed (right) samples; open circles: true atoms",
        )  # fmt: skip
        files["examples_plot"] = str(examples)
    return files
