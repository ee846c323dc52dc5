"""Active learning: committee selection against random selection from the same explored pool.

For each system (ethanol with GFN2-xTB, a 32-atom Cu cell with EMT) and each seed, ``deepatoms
learn`` runs twice with the same seed, start, test set and budgets: once picking frames whose
maximum force deviation lies between the trust levels (``--select deviation``) and once picking
as many frames uniformly from the frames the committee explored (``--select random``). The test
set is reference MD at the exploration temperatures (the conditions the potential is for). The
table gives the test force MAE (eV/Å) after each round against the labels used, per seed and as
the mean over seeds; the figure ``active_learning.png`` shows both mean curves per system. The
issue's goal: active selection reaches the final force error of random selection with at most
half the labels.

With ``--explore pool`` both selections draw from one fixed pool of unlabelled frames of
reference MD from 300 K to far above the exploration temperatures (``make_pool``); the test set
is then drawn from the pool as well (``deepatoms learn --pool``). ``--selections deviation largest
random`` adds query by committee (the largest deviation first) to the comparison.

    .venv/bin/python benchmarks/active_learning.py [--quick] [--systems cu ethanol] [--seeds 0 1 2]
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

# Trust levels (eV/Å) as DP-GEN sets them: the lower one a little above the committee's deviation
# on frames it has learned (about 0.01-0.02 eV/Å for Cu/EMT and 0.2-0.3 eV/Å for ethanol/xTB
# after a few rounds at these sizes), the upper one where the MD turns unphysical.
SYSTEMS = {
    "cu": {"bulk": "Cu", "size": 32, "temperatures": (600.0, 1200.0), "trust": (0.02, 0.6)},
    "ethanol": {"molecule": "ethanol", "temperatures": (500.0, 1000.0), "trust": (0.25, 1.5)},
}


#: Temperatures (K) of the reference MD whose frames (positions only) make the candidate pool of
#: ``--explore pool``: from near equilibrium to far beyond the exploration temperatures.
POOL_TEMPERATURES = {
    "cu": (300.0, 800.0, 1400.0, 2000.0),
    "ethanol": (300.0, 600.0, 1000.0, 1500.0),
}


def make_pool(system: str, seed: int, folder: Path, size: int) -> Path:
    """An extxyz pool of ``size`` unlabelled frames of reference MD at :data:`POOL_TEMPERATURES`
    (seeds ``5000 + seed + k``, independent of the runs' own MD); built once per system and
    seed. The benchmark pays the reference calls of this MD outside the label count: in use a
    pool comes from a cheaper method or from a database."""
    import ase.io
    from ase import Atoms

    from deepatoms.datagen.md import generate_md
    from deepatoms.simulate.reference import DEFAULT_CALCULATOR, make_calculator
    from deepatoms.workflows.datagen import starting_structure

    path = folder / f"{system}-pool-s{seed}.extxyz"
    if path.is_file():
        return path
    spec = SYSTEMS[system]
    atoms = starting_structure(spec.get("molecule"), spec.get("bulk"), None, spec.get("size"),
                               None, seed)  # fmt: skip
    name = DEFAULT_CALCULATOR[atoms.info["kind"]]
    temps = POOL_TEMPERATURES[system]
    frames = []
    for k, temp in enumerate(temps):
        calc, prov = make_calculator(name, atoms, **({"threads": 1} if name == "xtb" else {}))
        data, _ = generate_md(atoms, calc, prov, temperature=temp, n_frames=size // len(temps),
                              stride=10, equilibration_steps=100, seed=5000 + seed + k,
                              strain=0.02 if atoms.info["kind"] == "bulk" else 0.0)  # fmt: skip
        frames += [Atoms(a.numbers, a.positions, cell=a.cell, pbc=a.pbc)
                   for a in (data.get_atoms(i) for i in range(len(data)))]  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.extxyz")
    ase.io.write(tmp, frames)
    tmp.rename(path)
    return path


def run(system: str, select: str, seed: int, folder: Path, args: argparse.Namespace) -> list[dict]:
    """One ``learn`` run; its rounds (``labels``, ``test_force_mae`` …)."""
    from deepatoms.workflows.learn import learn

    spec = dict(SYSTEMS[system])
    lo, hi = spec.pop("trust")
    temps = spec.pop("temperatures")
    if args.explore == "pool":
        spec = {"pool": make_pool(system, seed, folder, args.pool_size)}
    res = learn(folder / f"{system}-{args.explore}-{select}-s{seed}", **spec, temperatures=temps,
                initial=args.initial, test=args.test, rounds=args.rounds, ensemble=args.ensemble,
                max_epochs=args.epochs, steps=args.steps, interval=args.interval,
                explorers=args.explorers, trust_low=lo, trust_high=hi,
                per_round=args.per_round, select=select, seed=seed, progress=True,
                workers=args.workers)  # fmt: skip
    return res["rounds"]


def mean_curve(runs: list[list[dict]]) -> list[tuple[float, float, float, float]]:
    """Round by round over the seeds: mean labels, mean, min and max test force MAE (eV/Å)."""
    out = []
    for rows in zip(*runs, strict=True):
        f = [r["test_force_mae"] for r in rows]
        out.append((sum(r["labels"] for r in rows) / len(rows), sum(f) / len(f), min(f), max(f)))
    return out


def labels_to_reach(active: list[tuple[float, float]], target: float) -> float | None:
    """The first label count at which the ``(labels, error)`` curve is at or below ``target``."""
    return next((n for n, e in active if e <= target), None)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--systems", nargs="+", default=["cu", "ethanol"], choices=sorted(SYSTEMS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--initial", type=int, default=10)
    p.add_argument("--test", type=int, default=100)
    p.add_argument("--per-round", type=int, default=10)
    p.add_argument("--ensemble", type=int, default=3)
    p.add_argument("--epochs", type=int, default=80)
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--interval", type=int, default=10)
    p.add_argument("--explorers", type=int, default=2)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--explore", choices=("md", "pool"), default="md",
                   help="committee MD (default) or a fixed pool of reference-MD frames shared "
                        "by both selections")  # fmt: skip
    p.add_argument("--pool-size", type=int, default=800)
    p.add_argument("--selections", nargs="+", default=["deviation", "random"],
                   choices=("deviation", "largest", "random"),
                   help="learn --select modes to run; each is compared with random")  # fmt: skip
    p.add_argument("--out", type=Path, default=None, help="keep the runs here (a rerun continues)")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    if args.quick:
        args.rounds, args.epochs, args.steps, args.test, args.ensemble = 3, 10, 100, 30, 2
        args.seeds = args.seeds[:1]
    print(f"load before: {loadavg()}")
    t0 = time.time()
    table: dict[tuple[str, str], list[list[dict]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.out or Path(tmp)
        for system in args.systems:
            for seed in args.seeds:
                for select in args.selections:
                    rows = run(system, select, seed, folder, args)
                    table.setdefault((system, select), []).append(rows)
                    print(f"{system:8s} {select:9s} seed {seed}  " + "  ".join(
                        f"{r['labels']}:{r['test_force_mae']:.4f}" for r in rows), flush=True)  # fmt: skip
    print(
        "\n| system | selection | seed | labels → test force MAE (eV/Å) |\n| --- | --- | --- | --- |"
    )
    for (system, select), runs in table.items():
        for seed, rows in zip(args.seeds, runs, strict=True):
            cells = ", ".join(f"{r['labels']} → {r['test_force_mae']:.4f}" for r in rows)
            print(f"| {system} | {select} | {seed} | {cells} |")
        cells = ", ".join(f"{n:g} → {m:.4f} ({lo:.4f}–{hi:.4f})"
                          for n, m, lo, hi in mean_curve(runs))  # fmt: skip
        print(f"| {system} | {select} | mean (min–max) | {cells} |")
    for system, select in ((s, m) for s in args.systems for m in args.selections):
        if select == "random" or "random" not in args.selections:
            continue
        act, rnd = table[(system, select)], table[(system, "random")]
        for seed, a, r in zip(args.seeds, act, rnd, strict=True):
            final = r[-1]["test_force_mae"]
            reach = labels_to_reach([(x["labels"], x["test_force_mae"]) for x in a], final)
            print(f"{system} seed {seed}: random {final:.4f} eV/Å with {r[-1]['labels']} labels; "
                  f"--select {select} reaches it with {reach} labels"
                  + (f" (fraction {reach / r[-1]['labels']:.2f})" if reach else ""))  # fmt: skip
        ma, mr = mean_curve(act), mean_curve(rnd)
        reach = labels_to_reach([(n, m) for n, m, _, _ in ma], mr[-1][1])
        print(f"{system} mean over seeds: random {mr[-1][1]:.4f} eV/Å with {mr[-1][0]:g} labels; "
              f"--select {select} reaches it with {reach} labels"
              + (f" (fraction {reach / mr[-1][0]:.2f})" if reach else " (not reached)"))  # fmt: skip
    _plot(
        table,
        args.systems,
        args.selections,
        f"active_learning{'_pool' if args.explore == 'pool' else ''}.png",
    )
    print(json.dumps({f"{s}/{m}": [[(r["labels"], r["test_force_mae"]) for r in rows] for rows in runs]
                      for (s, m), runs in table.items()}))  # fmt: skip
    print(f"wall {time.time() - t0:.0f} s; load after: {loadavg()}")


def _plot(table: dict, systems: list[str], selections: list[str], name: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(systems), figsize=(5 * len(systems), 4), squeeze=False)
    for ax, system in zip(axes[0], systems, strict=True):
        styles = {"deviation": "o-", "largest": "^-", "random": "s--"}
        names = {"deviation": "committee (trust levels)", "largest": "committee (largest first)",
                 "random": "random"}  # fmt: skip
        for select in selections:
            curve = mean_curve(table[(system, select)])
            n, m, lo, hi = (list(c) for c in zip(*curve, strict=True))
            style, label = styles[select], names[select]
            line = ax.plot(n, m, style, label=f"{label} (mean of {len(table[(system, select)])})")
            ax.fill_between(n, lo, hi, color=line[0].get_color(), alpha=0.2)
        ax.set(xlabel="labelled frames", ylabel="test force MAE (eV/Å)", title=system,
               yscale="log")  # fmt: skip
        ax.legend()
    fig.tight_layout()
    fig.savefig(name, dpi=120)
    print(f"figure: {name} (mean over seeds, band: min–max)")


if __name__ == "__main__":
    main()
