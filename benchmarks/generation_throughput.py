#!/usr/bin/env python
"""G-SchNet generation throughput in molecules per minute (docs/gschnet.md §8, issue 6).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/generation_throughput.py          # both sizes
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/generation_throughput.py -n 100 --chunk 100
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/generation_throughput.py --model runs/g/model.pt

Without ``--model`` the models are **untrained** (random weights) at the sizes of the presets
``gschnet-qm9-fast`` (4 blocks × 64 features) and ``gschnet-qm9`` (paper: 9 blocks × 128). An
untrained model rarely predicts stop, so most of its molecules grow to the 35-atom cap and are
discarded: its "finished molecules per minute" says little about a trained model. The numbers
that carry over are the cost per step and per placed atom; ``attempts_per_minute`` of an
untrained model is a lower bound (its molecules are as large as the cap allows, QM9-like ones
have 18 atoms on average). ``--model`` measures a trained model (a run folder or model.pt).

Reported per model: molecules attempted and finished per minute, steps (type draws) and
placements (atoms placed, on the 3-D grid from the second atom on) per second, mean atoms placed
per attempt, and the share of the wall time spent in the model's forward calls (the rest is
mostly the 140,214-point grid). ``--threads`` torch threads (default 1), float32, CPU. The
machine's load is printed before and after. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torch import nn

from deepatoms.generate.gschnet_sampler import generate_molecules
from deepatoms.models.loading import load_model, resolve_model_path
from deepatoms.models.registry import build_model, load_preset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import cpu_busy, loadavg

PRESETS = {"fast": "gschnet-qm9-fast", "paper": "gschnet-qm9"}


class Timed(nn.Module):
    """Wraps a G-SchNet and adds up the wall time of its forward calls (s)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.inner = model
        self.bins = model.bins
        self.seconds = 0.0

    def forward(self, batch, next_type):
        t0 = time.perf_counter()
        out = self.inner(batch, next_type)
        self.seconds += time.perf_counter() - t0
        return out


def measure(label: str, model: nn.Module, args: argparse.Namespace) -> dict:
    """Generate ``args.n`` molecules with ``model`` and return the throughput record."""
    timed = Timed(model)
    _, st = generate_molecules(timed, args.n, temperature=args.temperature, seed=args.seed,
                               max_atoms=args.max_atoms, chunk=args.chunk)  # fmt: skip
    wall = st["wall_s"]
    rec = {
        "model": label,
        "n": args.n,
        "finished": st["finished"],
        "discarded_cap": st["discarded_cap"],
        "discarded_nan": st["discarded_nan"],
        "wall_s": wall,
        "attempts_per_minute": round(60 * args.n / wall, 2),
        "finished_per_minute": round(60 * st["finished"] / wall, 2),
        "steps_per_s": round(st["steps"] / wall, 2),
        "placements_per_s": round(st["placements"] / wall, 2),
        "atoms_per_attempt": round(st["placements"] / args.n, 2),
        "model_time_share": round(timed.seconds / wall, 3),
    }
    print(
        f"{label}: {rec['attempts_per_minute']} attempts/min, {rec['finished_per_minute']} "
        f"finished/min ({st['finished']}/{args.n} finished, {st['discarded_cap']} at the cap), "
        f"{rec['steps_per_s']} steps/s, {rec['placements_per_s']} placements/s, "
        f"{rec['atoms_per_attempt']} atoms/attempt, model {100 * rec['model_time_share']:.0f} % "
        f"of {wall} s",
        flush=True,
    )
    return rec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", type=int, default=20, help="molecules per model (attempts)")
    ap.add_argument("--chunk", type=int, default=20, help="molecules generated together")
    ap.add_argument("--sizes", default="fast,paper", help="untrained sizes: fast, paper")
    ap.add_argument("--model", type=Path, help="a trained G-SchNet (model.pt or run folder)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--temperature", type=float, default=0.1)
    ap.add_argument("--max-atoms", type=int, default=35)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"load before: {loadavg()}, busy {cpu_busy():.0%}", flush=True)
    records = []
    if args.model is not None:
        path = resolve_model_path(args.model)
        model = load_model(path, expect="gschnet").model
        records.append(measure(f"trained {path}", model, args))
    else:
        for size in [s.strip() for s in args.sizes.split(",") if s.strip()]:
            torch.manual_seed(args.seed)
            model = build_model(load_preset(PRESETS[size])["model"])
            records.append(measure(f"untrained {size} ({PRESETS[size]})", model, args))
    print(f"load after: {loadavg()}", flush=True)
    print(json.dumps({"threads": args.threads, "device": "cpu", "results": records}))


if __name__ == "__main__":
    main()
