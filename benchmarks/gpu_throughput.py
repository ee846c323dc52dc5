#!/usr/bin/env python
"""Training and inference throughput on a GPU, fp32 and bf16 mixed precision, deepatoms vs
SchNetPack 2.1.1 on the same GPU when it is importable.

Same model and data as ``throughput.py`` (SchNetPack's QM9 default SchNet, deepatoms preset
``schnet-benchmark``: F = 128, T = 6, 20 Gaussians, 5 Å cutoff, batch 32, target U0, the same QM9
molecules for both libraries, loaders without worker processes). Each library is measured in
fp32 and under ``torch.autocast(dtype=torch.bfloat16)`` (what ``--precision bf16-mixed`` does in
training); batches are moved to the GPU in the timed loop, and the GPU is synchronised after
every step. Rates are molecules per second, best of ``--repeats`` rounds; peak GPU memory of the
training loop is reported per setting.

    .venv/bin/python benchmarks/gpu_throughput.py                 # on a machine with a GPU
    .venv-spk/bin/python benchmarks/gpu_throughput.py             # with SchNetPack side by side
    .venv/bin/python benchmarks/gpu_throughput.py --device cpu --quick   # check the script on a CPU

The last line is JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import spk_support
from deepatoms.data.sources.qm9 import load_qm9
from throughput import deepatoms_subject, endless, rate, schnetpack_subject


def _on_device(subject, device: torch.device, bf16: bool):
    """``subject`` with its model on ``device``, batches moved there in the loop, steps under
    bf16 autocast when asked and synchronised with the device."""
    subject.model.to(device)

    def move(b):
        if isinstance(b, dict):
            return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in b.items()}
        return b.to(device)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def wrap(step):
        def run(b) -> int:
            ctx = (
                torch.autocast(device.type, dtype=torch.bfloat16)
                if bf16
                else contextlib.nullcontext()
            )
            with ctx:
                n = step(move(b))
            sync()
            return n

        return run

    return wrap(subject.train_step), wrap(subject.infer_step)


def measure(subject, device: torch.device, args) -> dict[str, dict[str, float]]:
    out = {}
    for precision in ("fp32", "bf16-mixed"):
        train, infer = _on_device(subject, device, precision != "fp32")
        best = {"train": 0.0, "infer": 0.0}
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        for r in range(args.repeats):
            subject.model.train()
            t = rate(endless(subject.loader(True)), train, args.train_molecules, args.warmup)
            subject.model.eval()
            i = rate(endless(subject.loader(False)), infer, args.infer_molecules, 2)
            best = {"train": max(best["train"], t), "infer": max(best["infer"], i)}
            print(f"  {subject.name:10s} {precision:10s} round {r + 1}: train {t:8.1f} mol/s, "
                  f"infer {i:8.1f} mol/s", flush=True)  # fmt: skip
        if device.type == "cuda":
            best["peak_memory_MiB"] = torch.cuda.max_memory_allocated(device) / 2**20
        out[precision] = best
    subject.model.train()
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu (to check the script)")
    p.add_argument("--molecules", type=int, default=5000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--train-molecules", type=int, default=3200)
    p.add_argument("--infer-molecules", type=int, default=6400)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--preset", default="schnet-benchmark")
    p.add_argument("--spk-neighbors", choices=["ase", "matscipy"], default="ase")
    p.add_argument("--no-spk", action="store_true")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    if args.quick:
        args.molecules, args.train_molecules, args.infer_molecules = 400, 128, 256
        args.warmup, args.repeats = 2, 1
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU visible to torch; run on a GPU machine or pass --device cpu")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"gpu throughput: torch {torch.__version__}, device {name}")
    spk, spk_info = (None, "skipped") if args.no_spk else spk_support.import_schnetpack()
    print(f"SchNetPack: {spk_info if spk is None else 'version ' + spk_info}")
    data, meta = load_qm9(limit=args.molecules, seed=0, progress=False)
    idx = np.arange(len(data))
    res = {}
    with tempfile.TemporaryDirectory(prefix="spk-gpu-") as tmp:
        res["deepatoms"] = measure(deepatoms_subject(data, meta, idx, args), device, args)
        if spk is not None:
            res["SchNetPack"] = measure(schnetpack_subject(spk, data, meta, idx, args, tmp),
                                        device, args)  # fmt: skip
    print("\n| library | precision | train mol/s | infer mol/s | peak memory MiB |\n"
          "| --- | --- | --- | --- | --- |")  # fmt: skip
    for lib, by in res.items():
        for prec, r in by.items():
            mem = f"{r['peak_memory_MiB']:.0f}" if "peak_memory_MiB" in r else "–"
            print(f"| {lib} | {prec} | {r['train']:.1f} | {r['infer']:.1f} | {mem} |")
    record = {"device": name, "torch": torch.__version__, "results": res,
              "date": time.strftime("%Y-%m-%d")}  # fmt: skip
    print(json.dumps(record))
    return record


if __name__ == "__main__":
    main()
