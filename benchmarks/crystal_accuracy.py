#!/usr/bin/env python
"""Formation-energy accuracy of the crystal models by k-fold cross-validation (Perov-5).

    .venv/bin/python benchmarks/crystal_accuracy.py                       # 5 models, 5 folds
    .venv/bin/python benchmarks/crystal_accuracy.py --minutes-per-fold 4 --models voronoi-sym-fast

Data (``--dataset``): ``perov5`` = ``../shared/data/perov_5/{val,test}.csv`` (7,572 cubic ABX3
perovskites, one prototype, target ``heat_ref`` in eV/atom) or ``mp20`` = the MP-20 subset
(1,110 crystals after the noble-gas and duplicate filters, ``formation_energy_per_atom``),
converted once with ``deepatoms data cif-csv`` into ``--workdir``.
Models (fast CPU presets; paper presets differ in width and schedule only):

* ``nmpedge-mp-fast`` (k-nearest K = 24, distances) against ``schnet-mp-fast`` (5 Å cutoff);
* ``voronoi-dist-fast`` / ``voronoi-sym-fast`` / ``voronoi-nosym-fast`` (Voronoi graphs with
  distances, with facet symmetry labels, with nothing: Paper B's Dist. / Sym / No sym).

Each model is cross-validated with ``deepatoms.workflows.crossval.cross_validate`` (5 folds, 10 % of
the training part for early stopping, the same folds for every model), each fold trained for
``--epochs`` epochs (the same for every model, so the comparison does not depend on the load of
the machine; ``--minutes-per-fold`` adds a wall-clock cap) with ``--threads`` torch threads. Reported: pooled test MAE and RMSE (meV/atom) with the
bootstrap 95th percentile of the MAE, the mean ± std over folds. Runs are cached in
``--workdir`` (a finished fold is not retrained). The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SHARED = ROOT.parent / "shared" / "data"
#: name → (CSV files under ../shared/data, target, extra `data cif-csv` options)
DATASETS = {
    "perov5": (["perov_5/val.csv", "perov_5/test.csv"], "heat_ref", []),
    "mp20": (["mp_20_subset/train.csv", "mp_20_subset/val.csv", "mp_20_subset/test.csv"],
             "formation_energy_per_atom", ["--dedupe", "--prototype-column", "spacegroup.number"]),
}  # fmt: skip
MODELS = ["schnet-mp-fast", "nmpedge-mp-fast", "voronoi-nosym-fast", "voronoi-sym-fast",
          "voronoi-dist-fast"]  # fmt: skip


def dataset(workdir: Path, name: str) -> Path:
    """The shared data set ``name`` as a deepatoms dataset (made once with the CLI)."""
    h5 = workdir / f"{name}.h5"
    if not h5.is_file():
        files, _, extra = DATASETS[name]
        csvs = [str(SHARED / f) for f in files]
        for c in csvs:
            if not Path(c).is_file():
                sys.exit(f"no data: {c} does not exist (this benchmark needs ../shared)")
        cmd = [sys.executable, "-m", "deepatoms.cli", "data", "cif-csv", *csvs, "--out", str(h5)]
        subprocess.run([*cmd, *extra], check=True)
    return h5


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/deepatoms-crystal-accuracy"))
    p.add_argument("--models", nargs="+", default=MODELS)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--minutes-per-fold", type=float, default=None, help="wall-clock budget")
    p.add_argument("--epochs", type=int, default=30, help="epoch budget per fold (default 30)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run")
    p.add_argument("--tag", default="", help="suffix of the run folders")
    p.add_argument("--dataset", choices=sorted(DATASETS), default="perov5")
    p.add_argument("--target", default=None, help="default: the data set's formation energy")
    p.add_argument("--set", dest="overrides", nargs="*", default=[], help="config overrides")
    p.add_argument("--bootstrap", type=int, default=100_000)
    args = p.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    h5 = dataset(args.workdir, args.dataset)
    args.target = args.target or DATASETS[args.dataset][1]

    from deepatoms.config.overrides import apply_overrides
    from deepatoms.models.registry import load_preset
    from deepatoms.workflows.crossval import cross_validate

    rows = {}
    for name in args.models:
        cfg = apply_overrides(
            load_preset(name),
            [f"data.target={args.target}", f"train.max_epochs={args.epochs}",
             f"train.num_threads={args.threads}", *args.overrides]
            + ([f"train.max_time={args.minutes_per_fold}"] if args.minutes_per_fold else []),
        )  # fmt: skip
        t0 = time.time()
        s = cross_validate(cfg, h5, args.workdir / f"{args.dataset}-{name}{args.tag}", k=args.folds, seed=0, progress=False,
                           n_bootstrap=args.bootstrap)  # fmt: skip
        pooled = s["pooled"] if "pooled" in s else s
        rows[name] = {"summary": s, "wall_s": round(time.time() - t0, 1)}
        print(f"{name}: {json.dumps(pooled)[:300]} ({rows[name]['wall_s']} s)", flush=True)
    out = {"data": str(h5), "target": args.target, "folds": args.folds,
           "minutes_per_fold": args.minutes_per_fold, "epochs": args.epochs,
           "models": {k: v["summary"] for k, v in rows.items()}}  # fmt: skip
    (
        args.workdir / f"crystal_accuracy_{args.dataset}{args.tag}_{'_'.join(args.models)}.json"
    ).write_text(json.dumps(out, indent=1, default=str))
    print(json.dumps(out, default=str))
    return out


if __name__ == "__main__":
    main()
