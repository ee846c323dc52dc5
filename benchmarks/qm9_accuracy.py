#!/usr/bin/env python
"""QM9 U0 accuracy at a fixed budget: deepatoms presets vs SchNetPack's SchNet (not run in CI).

Fixed budget for every model: the same 13,000-molecule QM9 subset (seed 0), the same split —
10,000 training, 1,000 validation and a fixed 2,000-molecule test set — target U0, and the same
wall-clock training time (30 minutes each by default). Reports the test MAE in meV.

    .venv-spk/bin/python benchmarks/qm9_accuracy.py                      # all models, 30 min each
    .venv-spk/bin/python benchmarks/qm9_accuracy.py --minutes 10 --models schnet-fast,schnetpack
    .venv-spk/bin/python benchmarks/qm9_accuracy.py --quick              # smoke run, ~1 min each

Models (``--models``, comma-separated): any deepatoms preset (``schnet-fast``, ``nmpedge-fast``,
…; an unknown preset is skipped with a message), and ``schnetpack``: SchNetPack 2.1.1's SchNet
in its QM9 default configuration (F = 128, T = 6, 20 Gaussians, 5 Å cosine cutoff, MatScipy
neighbour list, batch 100, AdamW lr 5e-4, ReduceLROnPlateau(0.5, patience 75), EMA 0.995),
trained with SchNetPack's own ``AtomisticTask`` and Lightning trainer on the same split (skipped
when SchNetPack cannot be imported; see ``benchmarks/setup_schnetpack_env.sh``).

deepatoms models are trained with ``deepatoms.workflows.training.train`` (config overrides:
``data.n_train``/``n_val``/``n_test``, ``train.seed``, ``train.max_time``) and evaluated with
``deepatoms.workflows.evaluation.evaluate`` on the test split. The split is the seeded permutation of
``deepatoms.data.splits.random_split`` with ``train.seed``; every run's ``split.json`` is checked
against the benchmark's ``split.json`` in the output folder.

Output folder (``--out``, default ``runs/qm9_accuracy``): the dataset (``qm9_<n>_seed<s>.h5``),
``split.json``, one folder per model under ``models/``, and ``results.json``. A model whose
result is already there is not trained again (``--force`` retrains). The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from deepatoms.config.overrides import apply_overrides
from deepatoms.config.presets import preset_names
from deepatoms.data.dataset import read_dataset, write_dataset
from deepatoms.data.sources.qm9 import load_qm9
from deepatoms.data.splits import load_split, random_split, save_split
from deepatoms.models.registry import load_preset

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import spk_support

TARGET = "U0"
DEFAULT_MODELS = "schnet-fast,nmpedge-fast,schnetpack"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# -- data and split ---------------------------------------------------------------------------
def prepare_data(out: Path, n_total: int, seed: int) -> Path:
    """The QM9 subset as a deepatoms dataset file in ``out`` (reused when already there)."""
    path = out / f"qm9_{n_total}_seed{seed}.h5"
    if path.is_file():
        data, meta = read_dataset(path)
        prov = meta.get("provenance", {})
        if len(data) == n_total and prov.get("limit") == n_total and prov.get("seed") == seed:
            log(f"dataset: reusing {path} ({len(data)} molecules)")
            return path
    log(f"dataset: loading {n_total} QM9 molecules (seed {seed}) from qm9pack")
    data, meta = load_qm9(limit=n_total, seed=seed, progress=False)
    write_dataset(path, data, meta)
    log(f"dataset: wrote {path}")
    return path


def same_split(a: dict, b: dict) -> bool:
    return all(np.array_equal(a[k], b[k]) for k in ("train", "val", "test"))


# -- deepatoms ---------------------------------------------------------------------------------
def run_deepatoms(preset: str, data_path: Path, split: dict, run_dir: Path, args) -> dict:
    from deepatoms.workflows.evaluation import evaluate
    from deepatoms.workflows.training import train

    config = load_preset(preset)
    config = apply_overrides(
        config,
        [
            f"data.target={TARGET}",
            f"data.n_train={args.n_train}",
            f"data.n_val={args.n_val}",
            f"data.n_test={args.n_test}",
            f"train.seed={args.split_seed}",  # the seed of the split (and of the model init)
            f"train.max_time={args.minutes}",
            "train.max_epochs=-1",  # the wall-clock budget is the limit
            "train.max_steps=-1",
            f"train.num_threads={args.threads}",
        ],
    )
    log(f"{preset}: training for {args.minutes} min in {run_dir}")
    t0 = time.time()
    summary = train(config, data_path, run_dir, progress=not args.no_progress)
    train_s = time.time() - t0
    run_split = load_split(run_dir / "split.json")
    if not same_split(run_split, split):
        raise RuntimeError(
            f"{preset}: the run's split ({run_dir / 'split.json'}) differs from the benchmark's; "
            "the test sets would not be comparable"
        )
    log(f"{preset}: split verified (same train/val/test indices); evaluating the test set")
    res = evaluate(run_dir, data_path, split="test")
    return {
        "library": "deepatoms",
        "preset": preset,
        "mae_meV": res["mae_meV"],
        "rmse_meV": res["rmse_meV"],
        "n_test": res["n"],
        "epochs": summary["epochs"],
        "steps": summary["steps"],
        "best_val_mae_meV": summary["best_val_mae"] * 1e3,
        "train_wall_s": round(train_s, 1),
        "run": str(run_dir),
    }


# -- SchNetPack --------------------------------------------------------------------------------
def run_schnetpack(spk, data_path: Path, split: dict, run_dir: Path, args) -> dict:
    import pytorch_lightning as pl
    import torchmetrics
    from pytorch_lightning.loggers import CSVLogger

    torch.set_num_threads(args.threads)
    pl.seed_everything(args.split_seed, workers=True, verbose=False)
    data, meta = read_dataset(data_path)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_split(run_dir / "split.json", split, {"dataset": str(data_path), "n_systems": len(data)})
    log(f"schnetpack: writing {len(data)} molecules to an ASE db")
    db = spk_support.write_ase_db(spk, data, meta, run_dir / "qm9.db", TARGET)
    refs = spk_support.atomref_table(meta, TARGET)
    mean = spk_support.mean_per_atom(data, split["train"], refs, TARGET)
    key = spk_support.SPK_PROPERTY

    def loader(idx, shuffle, offsets=True):
        ds = spk_support.make_dataset(
            spk, db, refs, mean, neighbors=args.spk_neighbors, subset_idx=[int(i) for i in idx]
        )
        if not offsets:  # test set: absolute targets are compared in float64 below
            ds.transforms = [t for t in ds.transforms if type(t).__name__ != "RemoveOffsets"]
        return spk.data.AtomsLoader(
            ds,
            batch_size=args.spk_batch_size,
            shuffle=shuffle,
            num_workers=args.spk_workers,
        )

    model = spk_support.build_schnet(spk, refs, mean)
    task = spk.task.AtomisticTask(
        model=model,
        outputs=[
            spk.task.ModelOutput(
                name=key,
                loss_fn=torch.nn.MSELoss(),
                loss_weight=1.0,
                metrics={"MAE": torchmetrics.MeanAbsoluteError()},
            )
        ],
        optimizer_cls=torch.optim.AdamW,
        optimizer_args={"lr": args.spk_lr, "weight_decay": 0.0},
        scheduler_cls=spk_support.ReduceLROnPlateau,  # spk's, minus `verbose`
        scheduler_args={
            "mode": "min",
            "factor": 0.5,
            "patience": 75,
            "threshold": 0.0,
            "threshold_mode": "rel",
            "cooldown": 10,
            "min_lr": 0.0,
            "smoothing_factor": 0.0,
        },
        scheduler_monitor="val_loss",
    )
    best_path = run_dir / "best_model"
    callbacks = [
        spk.train.ModelCheckpoint(
            model_path=str(best_path),
            dirpath=str(run_dir / "checkpoints"),
            monitor="val_loss",
            save_top_k=1,
            save_last=True,
            mode="min",
        ),
        pl.callbacks.EarlyStopping(monitor="val_loss", patience=200, mode="min"),
        spk.train.ExponentialMovingAverage(decay=0.995),
    ]
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=-1,
        max_time={"seconds": round(args.minutes * 60)},
        callbacks=callbacks,
        logger=CSVLogger(str(run_dir), name="logs"),
        enable_progress_bar=not args.no_progress,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        inference_mode=False,
    )
    log(f"schnetpack: training for {args.minutes} min in {run_dir}")
    t0 = time.time()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*max_epochs.*")
        trainer.fit(task, loader(split["train"], True), loader(split["val"], False))
    train_s = time.time() - t0
    log(f"schnetpack: evaluating the test set with {best_path.name}")
    best = torch.load(best_path, map_location="cpu", weights_only=False)  # our own file
    best.do_postprocessing = True  # CastTo64 + AddOffsets: absolute U0 in eV, float64
    best.eval()
    preds = []
    with torch.no_grad():
        for b in loader(split["test"], False, offsets=False):
            preds.append(best(b)[key].double().reshape(-1))
    pred = torch.cat(preds).numpy()
    ref = data.system_props[TARGET][split["test"]]
    err = pred - ref
    ckpt_cb = callbacks[0]
    best_val = ckpt_cb.best_model_score
    return {
        "library": f"schnetpack {spk_support.import_schnetpack()[1]}",
        "preset": "SchNetPack QM9 default (F=128, T=6)",
        "mae_meV": float(np.mean(np.abs(err)) * 1e3),
        "rmse_meV": float(np.sqrt(np.mean(err**2)) * 1e3),
        "n_test": len(ref),
        "epochs": trainer.current_epoch,
        "steps": trainer.global_step,
        # val_loss is the MSE in eV² of the offset-removed target; its square root is the RMSE
        "best_val_rmse_meV": float(best_val) ** 0.5 * 1e3 if best_val is not None else None,
        "train_wall_s": round(train_s, 1),
        "run": str(run_dir),
    }


# -- main ---------------------------------------------------------------------------------------
def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--models", default=DEFAULT_MODELS, help=f"comma-separated (default {DEFAULT_MODELS})"
    )
    p.add_argument(
        "--minutes", type=float, default=30.0, help="training wall-clock budget per model"
    )
    p.add_argument("--out", type=Path, default=Path("runs/qm9_accuracy"))
    p.add_argument("--n-total", type=int, default=13000, help="QM9 subset size")
    p.add_argument("--n-train", type=int, default=10000)
    p.add_argument("--n-val", type=int, default=1000)
    p.add_argument("--n-test", type=int, default=2000)
    p.add_argument("--data-seed", type=int, default=0, help="seed of the QM9 subset")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the split (train.seed)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--spk-batch-size", type=int, default=100, help="SchNetPack QM9 default: 100")
    p.add_argument("--spk-lr", type=float, default=5e-4, help="SchNetPack QM9 default: 5e-4")
    p.add_argument("--spk-neighbors", choices=["ase", "matscipy"], default="matscipy")
    p.add_argument("--spk-workers", type=int, default=0, help="AtomsLoader worker processes")
    p.add_argument("--force", action="store_true", help="retrain models that have a result")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--quick", action="store_true", help="smoke run: tiny sizes, 1 minute each")
    args = p.parse_args(argv)
    if args.quick:
        args.n_total, args.n_train, args.n_val, args.n_test = 700, 500, 100, 100
        args.minutes = min(args.minutes, 1.0)
        if args.out == Path("runs/qm9_accuracy"):
            args.out = Path("runs/qm9_accuracy_quick")
    if args.n_train + args.n_val + args.n_test > args.n_total:
        p.error("n_train + n_val + n_test exceed --n-total")
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    log(
        f"QM9 {TARGET} accuracy benchmark: models {models}; {args.n_train} train / {args.n_val} val "
        f"/ {args.n_test} test of {args.n_total} molecules; {args.minutes:g} min per model; "
        f"load average {os.getloadavg()[0]:.2f}"
    )

    known = set(preset_names())
    spk, spk_info = (None, "") if "schnetpack" not in models else spk_support.import_schnetpack()
    skipped: dict[str, str] = {}
    todo = []
    for m in models:
        if m == "schnetpack":
            if spk is None:
                skipped[m] = f"SchNetPack is not importable ({spk_info}); run it in .venv-spk"
            else:
                todo.append(m)
        elif m in known:
            todo.append(m)
        else:
            skipped[m] = f"no deepatoms preset named {m!r} (available: {', '.join(sorted(known))})"
    for m, why in skipped.items():
        log(f"skipping {m}: {why}")

    data_path = prepare_data(out, args.n_total, args.data_seed)
    split = random_split(args.n_total, args.n_train, args.n_val, args.n_test, seed=args.split_seed)
    split_file = out / "split.json"
    if split_file.is_file() and not same_split(load_split(split_file), split):
        raise RuntimeError(f"{split_file} holds a different split; use a new --out folder")
    save_split(
        split_file,
        split,
        {
            "dataset": str(data_path.resolve()),
            "n_systems": args.n_total,
            "seed": args.split_seed,
            "qm9_subset_seed": args.data_seed,
            "how": "deepatoms.data.splits.random_split(n_total, n_train, n_val, n_test, seed)",
        },
    )
    log(f"split: {split_file} (test set: {len(split['test'])} molecules, seed {args.split_seed})")

    results_path = out / "results.json"
    results = json.loads(results_path.read_text())["models"] if results_path.is_file() else {}
    for m in todo:
        run_dir = out / "models" / m
        budget_same = results.get(m, {}).get("minutes") == args.minutes
        if m in results and budget_same and not args.force:
            log(
                f"{m}: result already in {results_path} (MAE {results[m]['mae_meV']:.1f} meV); --force retrains"
            )
            continue
        if run_dir.exists():
            log(f"{m}: removing the unfinished or outdated run {run_dir}")
            shutil.rmtree(run_dir)
        if m == "schnetpack":
            res = run_schnetpack(spk, data_path, split, run_dir, args)
        else:
            res = run_deepatoms(m, data_path, split, run_dir, args)
        res["minutes"] = args.minutes
        results[m] = res
        log(
            f"{m}: test MAE {res['mae_meV']:.1f} meV (RMSE {res['rmse_meV']:.1f}) after "
            f"{res['epochs']} epochs / {res['steps']} steps"
        )
        results_path.write_text(json.dumps({"models": results}, indent=2) + "\n")

    print()
    print(f"{'model':16s} {'test MAE / meV':>15s} {'RMSE / meV':>11s} {'epochs':>7s} {'steps':>7s}")
    for m in todo:
        r = results[m]
        print(
            f"{m:16s} {r['mae_meV']:15.1f} {r['rmse_meV']:11.1f} {r['epochs']:7d} {r['steps']:7d}"
        )
    mae = {m: round(results[m]["mae_meV"], 2) for m in todo}
    checks = {}
    pairs = [("nmpedge-fast", "schnet-fast"), ("schnet-fast", "schnetpack")]
    for a, b in pairs:
        if a in mae and b in mae:
            ok = mae[a] <= mae[b]
            checks[f"{a} <= {b}"] = ok
            print(f"expected ordering {a} <= {b}: {'yes' if ok else 'NO'}")
    final = {
        "mae_meV": mae,
        "minutes": args.minutes,
        "n_train": args.n_train,
        "n_val": args.n_val,
        "n_test": args.n_test,
        "checks": checks,
        "skipped": skipped,
        "out": str(out),
    }
    print(json.dumps(final))
    return final


if __name__ == "__main__":
    main()
