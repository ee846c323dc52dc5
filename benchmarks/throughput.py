#!/usr/bin/env python
"""Training, inference and data-loading throughput on QM9, deepatoms vs SchNetPack 2.1.1.

Model: SchNetPack's QM9 default SchNet (deepatoms preset ``schnet-benchmark``): F = 128, T = 6,
20 Gaussians, 5 Å cosine cutoff, batch 32, float32, target U0.

    .venv/bin/python benchmarks/throughput.py              # deepatoms only
    .venv-spk/bin/python benchmarks/throughput.py          # side by side with SchNetPack
    .venv-spk/bin/python benchmarks/throughput.py --quick  # under a minute

What is measured (molecules per second, ``torch.set_num_threads(2)`` for both libraries, the same
QM9 molecules for both, loaders without worker processes):

* train: full optimisation steps — next batch from the loader, forward, MSE loss, backward, Adam
  step — timed over ``--train-molecules`` after ``--warmup`` steps;
* infer: loader + forward under ``torch.no_grad()``;
* load: the loader alone (batch assembly and neighbour lists);
* model-only train/infer: the same on batches collated beforehand (to separate loader and model);
* peak_fraction: FLOP/s achieved in training (FLOPs of a training step counted by
  ``torch.utils.flop_counter.FlopCounterMode``, i.e. the matrix products) divided by the fp32
  matmul rate measured on this machine (2048×2048 ``torch.mm``).

Each number is the best of ``--repeats`` rounds (other processes only ever slow a run down);
within a round the libraries alternate, and every round's training rate is printed, so a
disturbed run shows as spread. The machine's load average is printed before and after. The last
line is JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from deepatoms.data.neighbors import GraphSpec
from deepatoms.data.sources.qm9 import load_qm9
from deepatoms.data.stats import atomref_sum, target_statistics
from deepatoms.models.registry import build_model, load_preset
from deepatoms.train.loader import make_loader

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import spk_support
from machine import cpu_busy, loadavg

TARGET = "U0"


# -- helpers --------------------------------------------------------------------------------
def endless(loader) -> Iterator:
    """Batches of ``loader``, epoch after epoch (``set_epoch`` on deepatoms' sampler)."""
    epoch = 0
    while True:
        sampler = getattr(loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        yield from loader
        epoch += 1


def rate(batches: Iterator, step: Callable[[object], int], n_molecules: int, warmup: int) -> float:
    """Molecules per second of ``step`` over batches drawn from ``batches`` (draw time included)."""
    for _ in range(warmup):
        step(next(batches))
    done = 0
    t0 = time.perf_counter()
    while done < n_molecules:
        done += step(next(batches))
    return done / (time.perf_counter() - t0)


def matmul_peak(n: int = 2048, reps: int = 10, trials: int = 3) -> float:
    """Measured fp32 ``torch.mm`` rate in FLOP/s (best of ``trials``)."""
    a = torch.randn(n, n)
    b = torch.randn(n, n)
    for _ in range(2):
        torch.mm(a, b)
    best = 0.0
    for _ in range(trials):
        t0 = time.perf_counter()
        for _ in range(reps):
            torch.mm(a, b)
        best = max(best, 2.0 * n**3 * reps / (time.perf_counter() - t0))
    return best


def flops_per_molecule(step: Callable[[object], int], batches: list) -> float:
    """FLOPs (matrix products) of a training step per molecule, averaged over ``batches``."""
    from torch.utils.flop_counter import FlopCounterMode

    total, mols = 0, 0
    for b in batches:
        with FlopCounterMode(display=False) as fc:
            mols += step(b)
        total += fc.get_total_flops()
    return total / mols


@dataclass
class Subject:
    """One library under test: its loader factory, steps and model."""

    name: str
    loader: Callable[[bool], object]  # shuffle -> iterable of batches
    train_step: Callable[[object], int]  # batch -> molecules done
    infer_step: Callable[[object], int]
    n_of: Callable[[object], int]  # batch -> molecules in it
    model: torch.nn.Module
    pre: list = field(default_factory=list)  # batches collated beforehand (model-only runs)


# -- deepatoms --------------------------------------------------------------------------------
def deepatoms_subject(data, meta, idx: np.ndarray, args) -> Subject:
    cfg = load_preset(args.preset)
    graph = GraphSpec.from_config(cfg["graph"])
    model = build_model({**cfg["model"], "property": TARGET, "readout": "sum"})
    refs = {int(z): float(v) for z, v in meta["atomrefs"][TARGET].items()}
    ref_sum = atomref_sum(data.numbers, data.offsets, refs)
    mean, std = target_statistics(data.system_props[TARGET], data.n_atoms, "sum", ref_sum)
    model.head.set_statistics(mean, std, refs)
    model.to(torch.float32)
    opt = torch.optim.Adam(model.parameters(), lr=cfg["train"]["lr"])
    bs = args.batch_size

    def loader(shuffle: bool):
        return make_loader(data, idx, graph, [TARGET], bs, shuffle, 0, torch.float32)

    def train_step(b) -> int:
        opt.zero_grad(set_to_none=True)
        pred = model(b)[TARGET]
        loss = torch.mean((pred - b.targets[TARGET]) ** 2)
        loss.backward()
        opt.step()
        return b.num_systems

    def infer_step(b) -> int:
        with torch.no_grad():
            model(b)
        return b.num_systems

    return Subject("deepatoms", loader, train_step, infer_step, lambda b: b.num_systems, model)


# -- SchNetPack -------------------------------------------------------------------------------
def schnetpack_subject(spk, data, meta, idx: np.ndarray, args, workdir: str) -> Subject:
    t0 = time.perf_counter()
    db = spk_support.write_ase_db(spk, data, meta, os.path.join(workdir, "qm9_subset.db"))
    print(
        f"SchNetPack: wrote the {len(data)} molecules to an ASE db in {time.perf_counter() - t0:.1f} s"
    )
    refs = spk_support.atomref_table(meta, TARGET)
    mean = spk_support.mean_per_atom(data, idx, refs, TARGET)
    dataset = spk_support.make_dataset(
        spk, db, refs, mean, neighbors=args.spk_neighbors, subset_idx=[int(i) for i in idx]
    )
    model = spk_support.build_schnet(spk, refs, mean)
    model.to(torch.float32)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.0)  # spk QM9 default
    key = spk_support.SPK_PROPERTY

    def n_of(b) -> int:
        return int(b[spk.properties.n_atoms].shape[0])

    def loader(shuffle: bool):
        return spk_support.make_loader(spk, dataset, args.batch_size, shuffle, seed=0)

    def train_step(b) -> int:
        target = b[key]
        model.do_postprocessing = False  # as in schnetpack.AtomisticTask.training_step
        opt.zero_grad(set_to_none=True)
        pred = model(dict(b))[key]  # a copy: the model writes its outputs into the dict
        loss = torch.nn.functional.mse_loss(pred, target)
        loss.backward()
        opt.step()
        return n_of(b)

    def infer_step(b) -> int:
        model.do_postprocessing = True  # CastTo64 + AddOffsets, as for predictions
        with torch.no_grad():
            model(dict(b))
        return n_of(b)

    return Subject("SchNetPack", loader, train_step, infer_step, n_of, model)


# -- measurement --------------------------------------------------------------------------------
KEYS = ("train", "infer", "load", "train_model_only", "infer_model_only")


def measure_once(s: Subject, args) -> dict[str, float]:
    """One rate per key for subject ``s``."""
    out = {}
    out["load"] = rate(endless(s.loader(True)), s.n_of, args.load_molecules, 1)
    s.model.train()
    out["train"] = rate(endless(s.loader(True)), s.train_step, args.train_molecules, args.warmup)
    out["train_model_only"] = rate(iter(s.pre * 2), s.train_step, args.train_molecules, args.warmup)
    s.model.eval()
    out["infer"] = rate(endless(s.loader(False)), s.infer_step, args.infer_molecules, 2)
    out["infer_model_only"] = rate(iter(s.pre * 2), s.infer_step, args.train_molecules, 2)
    s.model.train()
    return out


def measure(subjects: list[Subject], args) -> dict[str, dict]:
    """Best of ``args.repeats`` rounds; the libraries alternate within each round, so that a
    disturbance from another process hits both alike. Also the FLOPs of a training step."""
    n_pre = -(-args.train_molecules // args.batch_size) + args.warmup
    for s in subjects:
        s.pre = []
        for b in endless(s.loader(True)):
            s.pre.append(b)
            if len(s.pre) >= n_pre:
                break
    runs: dict[str, dict[str, list[float]]] = {s.name: {k: [] for k in KEYS} for s in subjects}
    for r in range(args.repeats):
        for s in subjects:
            t0 = time.perf_counter()
            for k, v in measure_once(s, args).items():
                runs[s.name][k].append(v)
            print(
                f"  round {r + 1}/{args.repeats} {s.name:10s}: train {runs[s.name]['train'][-1]:7.1f} "
                f"mol/s ({time.perf_counter() - t0:.1f} s; load avg {os.getloadavg()[0]:.2f})",
                flush=True,
            )
    res = {}
    for s in subjects:
        best = {k: max(v) for k, v in runs[s.name].items()}
        best["runs"] = runs[s.name]
        best["flops_per_mol"] = flops_per_molecule(s.train_step, s.pre[: min(4, len(s.pre))])
        res[s.name] = best
    return res


# -- main ---------------------------------------------------------------------------------------
def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="short run (under a minute)")
    p.add_argument("--molecules", type=int, default=2000, help="QM9 molecules used (seed 0)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--train-molecules", type=int, default=640, help="molecules timed in training")
    p.add_argument("--infer-molecules", type=int, default=1280)
    p.add_argument("--load-molecules", type=int, default=1280)
    p.add_argument("--warmup", type=int, default=5, help="warm-up steps before timing")
    p.add_argument("--repeats", type=int, default=5, help="rounds (the best is reported)")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads for both")
    p.add_argument("--preset", default="schnet-benchmark", help="deepatoms preset")
    p.add_argument(
        "--spk-neighbors",
        choices=["ase", "matscipy"],
        default="ase",
        help="SchNetPack neighbour list transform: ASENeighborList (QM9 tutorial, default) or "
        "MatScipyNeighborList (spktrain experiment=qm9_atomwise)",
    )
    p.add_argument("--no-spk", action="store_true", help="skip SchNetPack even if importable")
    args = p.parse_args(argv)
    if args.quick:
        args.molecules = min(args.molecules, 600)
        args.train_molecules = min(args.train_molecules, 192)
        args.infer_molecules = min(args.infer_molecules, 320)
        args.load_molecules = min(args.load_molecules, 320)
        args.warmup = min(args.warmup, 3)
        args.repeats = min(args.repeats, 2)
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    print(f"throughput benchmark ({'quick' if args.quick else 'full'}), torch {torch.__version__}")
    busy = cpu_busy()
    print(f"machine load before: {loadavg()}")
    if busy is not None:
        print(f"CPU busy right now (other processes): {100 * busy:.0f} %")
        if busy > 0.1:
            print("  warning: the machine is busy; the numbers below may be low and noisy")

    spk, spk_info = (None, "skipped (--no-spk)") if args.no_spk else spk_support.import_schnetpack()
    print(f"SchNetPack: {spk_info if spk is None else 'version ' + spk_info}")

    data, meta = load_qm9(limit=args.molecules, seed=0, progress=False)
    idx = np.arange(len(data))
    print(
        f"data: {len(data)} QM9 molecules (seed 0), {data.n_atoms.mean():.1f} atoms on average; "
        f"batch {args.batch_size}; {args.threads} threads"
    )
    peak = matmul_peak()
    print(f"fp32 matmul peak (2048x2048 torch.mm): {peak / 1e9:.1f} GFLOP/s")

    with tempfile.TemporaryDirectory(prefix="spk-bench-") as tmp:
        subjects = [deepatoms_subject(data, meta, idx, args)]
        if spk is not None:
            subjects.append(schnetpack_subject(spk, data, meta, idx, args, tmp))
        res = measure(subjects, args)
    dp, sp = res["deepatoms"], res.get("SchNetPack")
    peak = max(peak, matmul_peak())  # once more: the better of before and after

    def frac(r):
        return r["train"] * r["flops_per_mol"] / peak

    rows = [
        ("train (loader + step)", "train", "mol/s"),
        ("infer (loader + no-grad forward)", "infer", "mol/s"),
        ("load (loader alone)", "load", "mol/s"),
        ("train, model only", "train_model_only", "mol/s"),
        ("infer, model only", "infer_model_only", "mol/s"),
    ]
    print()
    head = f"{'':36s} {'deepatoms':>12s}"
    if sp:
        head += f" {'SchNetPack':>12s} {'ratio':>8s}"
    print(head)
    for label, key, _unit in rows:
        line = f"{label:36s} {dp[key]:12.1f}"
        if sp:
            line += f" {sp[key]:12.1f} {dp[key] / sp[key]:8.2f}"
        print(line)
    line = f"{'MFLOP per molecule (train step)':36s} {dp['flops_per_mol'] / 1e6:12.1f}"
    if sp:
        line += f" {sp['flops_per_mol'] / 1e6:12.1f}"
    print(line)
    line = f"{'fraction of fp32 matmul peak':36s} {frac(dp):12.3f}"
    if sp:
        line += f" {frac(sp):12.3f}"
    print(line)
    print()
    for r, name in ((dp, "deepatoms"), (sp, "SchNetPack")):
        if r is None:
            continue
        runs = ", ".join(f"{v:.0f}" for v in r["runs"]["train"])
        print(
            f"{name}: training rounds {runs} mol/s; the loader takes "
            f"{100 * r['train'] / r['load']:.1f} % of a training step's time (it delivers "
            f"{r['load'] / r['train']:.1f}x what training consumes)"
        )
    if sp:
        ok = dp["train"] / sp["train"] >= 2.0
        print(f"target train ratio >= 2x SchNetPack: {'met' if ok else 'NOT met'}")
    print(f"machine load after: {loadavg()}; wall time {time.perf_counter() - t_start:.0f} s")

    out = {
        "train_mol_per_s": round(dp["train"], 2),
        "infer_mol_per_s": round(dp["infer"], 2),
        "load_mol_per_s": round(dp["load"], 2),
        "peak_fraction": round(frac(dp), 4),
        "train_model_only_mol_per_s": round(dp["train_model_only"], 2),
        "infer_model_only_mol_per_s": round(dp["infer_model_only"], 2),
        "matmul_peak_gflops": round(peak / 1e9, 1),
        "loadavg_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }
    if sp:
        out.update(
            spk_train_mol_per_s=round(sp["train"], 2),
            spk_infer_mol_per_s=round(sp["infer"], 2),
            spk_load_mol_per_s=round(sp["load"], 2),
            train_ratio=round(dp["train"] / sp["train"], 3),
            infer_ratio=round(dp["infer"] / sp["infer"], 3),
            load_ratio=round(dp["load"] / sp["load"], 3),
            spk_peak_fraction=round(frac(sp), 4),
            spk_neighbors=args.spk_neighbors,
        )
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        main()
