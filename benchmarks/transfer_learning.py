#!/usr/bin/env python
"""Transfer learning (Paper B §VI.G logic): pretrain on MP-20, fine-tune on few perovskites.

    .venv/bin/python benchmarks/transfer_learning.py                  # N = 50, 100, 200, 500
    .venv/bin/python benchmarks/transfer_learning.py --preset voronoi-dist-fast --sizes 100

Pretrains ``--preset`` on the MP-20 subset (``../shared/data/mp_20_subset``, 1,110 crystals after
the noble-gas and duplicate filters, target ``formation_energy_per_atom``), then trains on N
Perov-5 crystals (target ``heat_ref``, both eV/atom) twice with the same budget: from the
pretrained weights (``--init``: every weight; the output statistics refitted to the perovskites
by default, ``--init-statistics keep`` takes MP-20's) and from scratch. N
training crystals plus 10 % of N for early stopping; the test set is a fixed 2,000 other
perovskites. Reported: test MAE (meV/atom) per N for both. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "data"


def convert(out: Path, csvs: list[Path], extra: list[str]) -> Path:
    """A dataset made with ``deepatoms data cif-csv`` (once)."""
    if not out.is_file():
        for c in csvs:
            if not c.is_file():
                sys.exit(f"missing {c}: this benchmark needs ../shared/data")
        cmd = [sys.executable, "-m", "deepatoms.cli", "data", "cif-csv", *map(str, csvs),
               "--out", str(out), "-q", *extra]  # fmt: skip
        subprocess.run(cmd, check=True)
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/deepatoms-transfer"))
    p.add_argument("--preset", default="voronoi-sym-fast")
    p.add_argument("--sizes", type=int, nargs="+", default=[50, 100, 200, 500])
    p.add_argument("--pretrain-minutes", type=float, default=4.0)
    p.add_argument("--minutes", type=float, default=1.0, help="budget of each small-set run")
    p.add_argument("--n-test", type=int, default=2000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--init-statistics",
        choices=["keep", "refit"],
        default="refit",
        help="output statistics of the fine-tuned model (train.init_statistics)",
    )
    args = p.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    mp = convert(args.workdir / "mp20.h5", [SHARED / "mp_20_subset" / f"{s}.csv"
                                            for s in ("train", "val", "test")],
                 ["--dedupe", "--prototype-column", "spacegroup.number"])  # fmt: skip
    perov = convert(args.workdir / "perov5.h5", [SHARED / "perov_5" / "val.csv"], [])

    from deepatoms.config.overrides import apply_overrides
    from deepatoms.data.dataset import read_dataset
    from deepatoms.models.inference import predict_packed
    from deepatoms.models.loading import load_model
    from deepatoms.models.registry import load_preset
    from deepatoms.workflows.training import train

    base = [f"train.num_threads={args.threads}"]
    pre_cfg = apply_overrides(load_preset(args.preset),
                              [*base, "data.target=formation_energy_per_atom",
                               f"train.max_time={args.pretrain_minutes}"])  # fmt: skip
    pre = train(pre_cfg, mp, args.workdir / "pretrain", progress=False)
    print(f"pretrained on MP-20: validation MAE {pre['best_val_mae'] * 1000:.1f} meV/atom "
          f"({pre['epochs']} epochs)", flush=True)  # fmt: skip

    data, _ = read_dataset(perov)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(data))
    test, pool = order[: args.n_test], order[args.n_test :]
    y = data.system_props["heat_ref"]
    # fine-tuning from another target (MP-20 formation energies) on purpose: init_force
    cfg = apply_overrides(load_preset(args.preset),
                          [*base, "data.target=heat_ref", f"train.max_time={args.minutes}",
                           f"train.init_statistics={args.init_statistics}",
                           "train.init_force=true"])  # fmt: skip
    rows = {}
    for n in args.sizes:
        n_val = max(5, n // 10)
        split = {"train": pool[:n], "val": pool[n : n + n_val], "test": test}
        row = {}
        for mode, init in (("pretrained", Path(pre["model_file"])), ("scratch", None)):
            tag = f"{mode}-{args.init_statistics}" if init is not None else mode
            run = args.workdir / f"n{n}_{tag}"
            if not (run / "model.pt").is_file():
                train(cfg, perov, run, progress=False, split=split, init=init)
            pred = predict_packed(load_model(run / "model.pt"), data, test)
            row[mode] = float(np.mean(np.abs(pred - y[test])) * 1000)
        rows[n] = row
        print(f"N = {n:4d}: test MAE pretrained {row['pretrained']:6.1f}, from scratch "
              f"{row['scratch']:6.1f} meV/atom", flush=True)  # fmt: skip
    out = {"preset": args.preset, "init_statistics": args.init_statistics, "pretrain": {"data": str(mp), "best_val_mae_eV": pre["best_val_mae"],
           "epochs": pre["epochs"]}, "n_test": args.n_test, "minutes_per_run": args.minutes,
           "test_mae_meV": rows}  # fmt: skip
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
