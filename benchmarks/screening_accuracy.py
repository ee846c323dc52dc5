#!/usr/bin/env python
"""Ground-state ranking from initial prototype graphs on the EMT prototype set (Paper B §VI.G logic).

    .venv/bin/python benchmarks/screening_accuracy.py                   # 4 models, 5 folds
    .venv/bin/python benchmarks/screening_accuracy.py --minutes-per-fold 2 --models voronoi-sym-fast

The selenide experiment of Paper B, with a reference calculator available here: binary and
ternary alloys of the EMT metals (Al, Cu, Ni, Pd, Ag, Pt, Au) on 17 prototypes, relaxed with EMT
(cell and positions), formation energies against the relaxed elements (``deepatoms datagen
prototypes``, 630 candidates, made once in ``--workdir``).

Protocol: 5-fold cross-validation **by composition** (all candidates of a composition are in the
same fold). Each model trains on the *relaxed* structures of the training compositions (10 % of
them for early stopping) and predicts the held-out compositions from their *initial* prototype
structures (the unrelaxed, volume-rescaled candidates a screening run sees), and, for
comparison, from the relaxed ones. Per held-out composition with at least two candidates the
ML ground state is compared with the EMT ground state (``crystal_metrics.ground_state_ranking``):
number correct against the random-guess expectation Σ_c 1/|S_c|, mean and max ΔE_c =
E_ML(G_EMT) − E_ML(G_ML), and the EMT energy lost by taking the ML pick, E_EMT(G_ML) − E_EMT(G_EMT),
against a random pick (its expectation: the mean over candidates of E − min E). The last line
is JSON.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

MODELS = ["voronoi-nosym-fast", "voronoi-sym-fast", "voronoi-dist-fast", "nmpedge-mp-fast"]


def make_set(workdir: Path) -> Path:
    """The EMT prototype set (initial.h5 + relaxed.h5), made once with the CLI."""
    folder = workdir / "emt_set"
    if not (folder / "relaxed.h5").is_file():
        cmd = [sys.executable, "-m", "deepatoms.cli", "datagen", "prototypes", "--out",
               str(folder), "--no-progress"]  # fmt: skip
        subprocess.run(cmd, check=True)
    return folder


def composition_folds(comp: np.ndarray, k: int, seed: int) -> list[np.ndarray]:
    """k folds of row indices with every composition's rows in one fold (seeded)."""
    from deepatoms.workflows.crossval import kfold_indices

    names = np.unique(comp)
    folds = kfold_indices(len(names), k=k, seed=seed)
    return [np.flatnonzero(np.isin(comp, names[f])) for f in folds]


def regret(comp: np.ndarray, e_ml: np.ndarray, e_ref: np.ndarray) -> float:
    """Mean over compositions of E_ref(G_ML) − min E_ref (eV/atom): what the ML pick costs."""
    out = []
    for c in np.unique(comp):
        m = comp == c
        out.append(e_ref[m][np.argmin(e_ml[m])] - e_ref[m].min())
    return float(np.mean(out))


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/deepatoms-screening-accuracy"))
    p.add_argument("--models", nargs="+", default=MODELS)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--minutes-per-fold", type=float, default=1.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    folder = make_set(args.workdir)

    from deepatoms.analysis.crystal_metrics import ground_state_ranking
    from deepatoms.config.overrides import apply_overrides
    from deepatoms.data.dataset import read_dataset
    from deepatoms.models.inference import predict_packed
    from deepatoms.models.loading import load_model
    from deepatoms.models.registry import load_preset
    from deepatoms.workflows.crossval import fold_split
    from deepatoms.workflows.training import train

    relaxed, _ = read_dataset(folder / "relaxed.h5")
    initial, _ = read_dataset(folder / "initial.h5")
    comp = relaxed.system_props["composition"].astype(str)
    cand = relaxed.system_props["candidate_id"].astype(str)
    y = relaxed.system_props["formation_energy_per_atom"]
    assert (initial.system_props["candidate_id"].astype(str) == cand).all()
    folds = composition_folds(comp, args.folds, args.seed)
    counts = {c: n for c, n in zip(*np.unique(comp, return_counts=True), strict=True)}
    ranked = np.array([counts[c] >= 2 for c in comp])
    print(f"{len(y)} candidates, {len(counts)} compositions, "
          f"{sum(n >= 2 for n in counts.values())} with >= 2 candidates", flush=True)  # fmt: skip

    results = {}
    for name in args.models:
        cfg = apply_overrides(
            load_preset(name),
            ["data.target=formation_energy_per_atom", f"train.max_time={args.minutes_per_fold}",
             f"train.num_threads={args.threads}", f"train.seed={args.seed}"],
        )  # fmt: skip
        pred = {"initial": np.full(len(y), np.nan), "relaxed": np.full(len(y), np.nan)}
        t0 = time.time()
        for i in range(args.folds):
            split = fold_split(folds, i, n_val=0.1, seed=args.seed)
            run = args.workdir / name / f"fold{i}"
            if not (run / "model.pt").is_file():
                train(cfg, folder / "relaxed.h5", run, progress=False, split=split)
            loaded = load_model(run / "model.pt")
            test = split["test"]
            pred["initial"][test] = predict_packed(loaded, initial, test)
            pred["relaxed"][test] = predict_packed(loaded, relaxed, test)
        row = {"wall_s": round(time.time() - t0, 1)}
        for geom, e in pred.items():
            row[f"mae_{geom}_meV"] = float(np.mean(np.abs(e - y)) * 1000)
            gs = ground_state_ranking(comp[ranked], cand[ranked], e[ranked], y[ranked])
            row[f"ranking_{geom}"] = {
                k: gs[k] for k in ("n_compositions", "n_correct", "random_expectation")
            } | {
                k: gs[k] * 1000
                for k in ("mad", "max_delta_e", "mean_delta_e_wrong", "gs_energy_mae")
            }
            row[f"regret_{geom}_meV"] = regret(comp[ranked], e[ranked], y[ranked]) * 1000
        results[name] = row
        r = row["ranking_initial"]
        print(f"{name:20s} MAE initial {row['mae_initial_meV']:6.1f} / relaxed "
              f"{row['mae_relaxed_meV']:6.1f} meV/atom; ground state correct "
              f"{r['n_correct']}/{r['n_compositions']} (random {r['random_expectation']:.1f}), "
              f"ΔE mean {r['mad']:.1f} max {r['max_delta_e']:.1f} meV/atom; EMT energy lost by "
              f"picking the ML ground state {row['regret_initial_meV']:.1f} meV/atom "
              f"({row['wall_s']} s)",
              flush=True)  # fmt: skip
    # the random-ranking baseline's expected ΔE: mean over candidates of E(c) − min E (reference)
    rand_de = []
    for c in np.unique(comp[ranked]):
        e = y[comp == c]
        rand_de.append(np.mean(e - e.min()))
    out = {"set": str(folder), "n_candidates": len(y), "folds": args.folds,
           "minutes_per_fold": args.minutes_per_fold, "models": results,
           "random_baseline": {"expected_correct": float(sum(1 / counts[c] for c in counts if counts[c] >= 2)),
                               "expected_delta_e_meV": float(np.mean(rand_de) * 1000)}}  # fmt: skip
    print(
        f"random ranking: expected correct {out['random_baseline']['expected_correct']:.1f}, "
        f"expected ΔE (reference energies) {out['random_baseline']['expected_delta_e_meV']:.1f} meV/atom"
    )
    (args.workdir / "screening_accuracy.json").write_text(json.dumps(out, indent=1))
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
