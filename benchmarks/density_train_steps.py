#!/usr/bin/env python
"""Density VAE training speed: optimiser steps per second for the paper and fast presets.

docs/density_vae.md §10, issue 8 benchmark.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/density_train_steps.py
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/density_train_steps.py --paper-batch 24 --steps 5
    .venv/bin/python benchmarks/density_train_steps.py --device cuda --paper-batch 24

Each preset's model (``density-vae-paper``: 30³ grid, 95 classes; ``density-vae-fast``: 20³,
compact classes) trains on real voxel samples: single-cell samples of pymatgen's AFLOW
prototypes (sides < 10 Å, random rotations; no download, no ../shared), batch size of the
preset unless ``--paper-batch`` / ``--fast-batch`` say otherwise (on a CPU the paper preset is
usually measured at a smaller batch; the per-sample time is what compares). One step is the
training step of ``train.tasks.density_vae.LossStep`` (forward through VAE and U-Net via gradscale,
joint loss of Eq. 2 plus the preset's extras, e.g. the fast preset's U-Net pass on the true
density), backward and Adam update; batch transfer to the device is inside the timing. Reported per
preset: parameter counts (encoder, decoder, U-Net), seconds per step (median of ``--steps``
after ``--warmup``), steps/s, samples/s, ms per sample, and the voxelisation time per batch
(made on the fly in training) measured separately. Also the fast/paper ratio of samples per
second. ``--threads`` torch threads (default 1). The machine's load is printed before and after;
the last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from deepatoms.data.voxels.crystal_sets import load_crystals
from deepatoms.data.voxels.dataset import ClassMap, DensityDataset, collate
from deepatoms.data.voxels.grid import GridSpec
from deepatoms.models.density_model import DensityVAEModel
from deepatoms.models.registry import load_preset as density_preset
from deepatoms.train.tasks.density_vae import LossStep

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_busy, loadavg

PRESETS = {"paper": "density-vae-paper", "fast": "density-vae-fast"}


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def measure(label: str, batch_size: int, args: argparse.Namespace, crystals) -> dict:
    """Time ``args.steps`` training steps of preset ``label`` at ``batch_size``."""
    cfg = density_preset(PRESETS[label])
    grid = GridSpec.from_dict(cfg["grid"])
    cmap = ClassMap.from_mode(cfg["data"]["classes"], crystals)
    ds = DensityDataset(crystals, grid, cmap, rotations_per_crystal=1, seed=0)
    rng = np.random.default_rng(0)
    n_batches = args.warmup + args.steps
    picks = [rng.choice(len(ds), batch_size, replace=False) for _ in range(n_batches)]
    t0 = time.perf_counter()
    batches = [collate([ds[int(i)] for i in p]) for p in picks]
    voxel_s = (time.perf_counter() - t0) / n_batches
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = DensityVAEModel(cfg["model"], grid_n=grid.n, n_classes=cmap.n_classes).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=float(cfg["train"]["lr"]))
    step = LossStep(model, cfg)
    times = []
    for k, b in enumerate(batches):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        loss, _ = step(b)
        opt.zero_grad(set_to_none=True)
        loss["total"].backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if k >= args.warmup:
            times.append(time.perf_counter() - t0)
        print(f"  {label} step {k + 1}/{n_batches}: {time.perf_counter() - t0:.3f} s", flush=True)
    step_s = statistics.median(times)
    return {
        "preset": PRESETS[label],
        "grid": grid.n,
        "n_classes": cmap.n_classes,
        "batch_size": batch_size,
        "parameters": {
            "encoder": _count(model.vae.encoder),
            "decoder": _count(model.vae.decoder),
            "unet": _count(model.unet),
        },
        "step_s": round(step_s, 4),
        "steps_per_s": round(1.0 / step_s, 3),
        "samples_per_s": round(batch_size / step_s, 2),
        "ms_per_sample": round(1000.0 * step_s / batch_size, 2),
        "voxelise_s_per_batch": round(voxel_s, 4),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--paper-batch", type=int, default=4, help="paper preset batch (preset: 24)")
    ap.add_argument("--fast-batch", type=int, default=None, help="fast preset batch (preset's)")
    ap.add_argument("--steps", type=int, default=5, help="timed steps per preset")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--only", choices=sorted(PRESETS), default=None, help="one preset only")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"load before: {loadavg()}; busy {cpu_busy()}", flush=True)
    crystals = load_crystals(["prototypes"], progress=False).filter_max_side(10.0)
    keep = [k for k, a in enumerate(crystals.atoms) if a.numbers.max() <= 94]
    crystals = crystals.subset(keep)
    results = {}
    for label in [args.only] if args.only else ["fast", "paper"]:
        cfg_batch = density_preset(PRESETS[label])["train"]["batch_size"]
        bs = {"paper": args.paper_batch, "fast": args.fast_batch}[label] or cfg_batch
        results[label] = measure(label, bs, args, crystals)
        print(json.dumps(results[label]), flush=True)
    if len(results) == 2:
        ratio = results["fast"]["samples_per_s"] / results["paper"]["samples_per_s"]
        results["fast_over_paper_samples_per_s"] = round(ratio, 2)
    results.update(threads=args.threads, device=args.device, load_after=loadavg())
    print(f"load after: {loadavg()}", flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
