"""Active learning: committee selection against random selection from the same explored pool.

For each system (ethanol with GFN2-xTB, a 32-atom Cu cell with EMT) ``deepatoms learn`` runs
twice with the same seeds, start, test set and budgets: once picking the frames whose maximum
force deviation lies between the trust levels (``--select deviation``) and once picking as
many frames uniformly from the frames the committee explored (``--select random``). The test
set is reference MD at the exploration temperatures (the conditions the potential is for). The
table
gives the test force MAE (eV/Å) after each round against the labels used, and the figure
``active_learning.png`` both curves per system. The issue's goal: active selection reaches the
final force error of random selection with at most half the labels.

    .venv/bin/python benchmarks/active_learning.py [--quick] [--systems cu ethanol]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import loadavg

SYSTEMS = {
    "cu": {"bulk": "Cu", "size": 32, "temperatures": (600.0, 1200.0), "trust": (0.05, 0.6)},
    "ethanol": {"molecule": "ethanol", "temperatures": (500.0, 1000.0), "trust": (0.1, 1.0)},
}


def run(system: str, select: str, folder: Path, args: argparse.Namespace) -> list[dict]:
    from deepatoms.workflows.learn import learn

    spec = dict(SYSTEMS[system])
    lo, hi = spec.pop("trust")
    temps = spec.pop("temperatures")
    res = learn(folder / f"{system}-{select}", **spec, temperatures=temps, initial=args.initial,
                test=args.test, rounds=args.rounds, ensemble=args.ensemble,
                max_epochs=args.epochs, steps=args.steps, interval=args.interval,
                explorers=args.explorers, trust_low=lo, trust_high=hi,
                per_round=args.per_round, select=select, seed=args.seed, progress=False,
                workers=args.workers)  # fmt: skip
    return res["rounds"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--systems", nargs="+", default=["cu", "ethanol"], choices=sorted(SYSTEMS))
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--initial", type=int, default=10)
    p.add_argument("--test", type=int, default=100)
    p.add_argument("--per-round", type=int, default=10)
    p.add_argument("--ensemble", type=int, default=3)
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--interval", type=int, default=10)
    p.add_argument("--explorers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--out", type=Path, default=None, help="keep the runs here")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    if args.quick:
        args.rounds, args.epochs, args.steps, args.test, args.ensemble = 3, 10, 100, 30, 2
    print(f"load before: {loadavg()}")
    t0 = time.time()
    table = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.out or Path(tmp)
        for system in args.systems:
            for select in ("deviation", "random"):
                table[(system, select)] = run(system, select, folder, args)
                rows = table[(system, select)]
                print(f"{system:8s} {select:9s} " + "  ".join(
                    f"{r['labels']}:{r['test_force_mae']:.4f}" for r in rows), flush=True)  # fmt: skip
    print("\n| system | selection | labels → test force MAE (eV/Å) |\n| --- | --- | --- |")
    for (system, select), rows in table.items():
        cells = ", ".join(f"{r['labels']} → {r['test_force_mae']:.4f}" for r in rows)
        print(f"| {system} | {select} | {cells} |")
    for system in args.systems:
        act, rnd = table[(system, "deviation")], table[(system, "random")]
        final = rnd[-1]["test_force_mae"]
        reach = next((r["labels"] for r in act if r["test_force_mae"] <= final), None)
        ratio = f"{reach / rnd[-1]['labels']:.2f}" if reach else "not reached"
        print(
            f"{system}: random reaches {final:.4f} eV/Å with {rnd[-1]['labels']} labels; "
            f"committee selection reaches it with {reach} labels (fraction {ratio})"
        )
    _plot(table, args.systems)
    print(json.dumps({f"{s}/{m}": [(r["labels"], r["test_force_mae"]) for r in rows]
                      for (s, m), rows in table.items()}))  # fmt: skip
    print(f"wall {time.time() - t0:.0f} s; load after: {loadavg()}")


def _plot(table: dict, systems: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(systems), figsize=(5 * len(systems), 4), squeeze=False)
    for ax, system in zip(axes[0], systems, strict=True):
        for select, style in (("deviation", "o-"), ("random", "s--")):
            rows = table[(system, select)]
            ax.plot([r["labels"] for r in rows], [r["test_force_mae"] for r in rows], style,
                    label="committee" if select == "deviation" else "random")  # fmt: skip
        ax.set(xlabel="labelled frames", ylabel="test force MAE (eV/Å)", title=system,
               yscale="log")  # fmt: skip
        ax.legend()
    fig.tight_layout()
    fig.savefig("active_learning.png", dpi=120)
    print("figure: active_learning.png")


if __name__ == "__main__":
    main()
