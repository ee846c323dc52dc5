#!/usr/bin/env python
"""VIMPNN reproduction report (docs/vimpnn.md Tables 2 and 3) at CPU scale.

    .venv/bin/python benchmarks/vimpnn_report.py data                 # datasets (xTB, EMT)
    .venv/bin/python benchmarks/vimpnn_report.py train --jobs 2       # every model run
    .venv/bin/python benchmarks/vimpnn_report.py report               # curves, tables, JSON

Stages (each cached in ``--workdir``, default ``runs/vimpnn_report``; a finished run is not
retrained, an interrupted one resumes):

``data``
    ``deepatoms datagen scaled`` on the first ``--molecules`` QM9 molecules × 10 scalings
    (GFN2-xTB), ``datagen crystal`` (fcc Al and Cu, EMT, ``--crystal-points`` per element, 8
    training points each) and ``datagen growth`` (Stable and Unstable crystal growth, Al and Cu,
    EMT, ``--growth-runs`` / ``--unstable-runs`` runs per element, 15–75 atoms).
``train``
    Table 2: MPNN and VIMPNN on the four datasets, plus SchNet and NMP-edge trained on the same
    data and split (baselines the paper did not have). Table 3: the channel variants a.i, a.ii,
    b.i, b.ii, c without auxiliary heads, and the no-bond-type baseline, on augmented QM9. Every
    run uses the fast presets and the same ``--epochs`` budget (``--crystal-epochs`` for the
    infinite crystal, whose 16 training cells make one step per epoch, validated every 10 steps;
    ``--minutes`` caps wall time);
    ``--jobs`` runs in parallel with ``--threads`` torch threads each; ``--accelerator gpu``
    trains on a GPU.
``report``
    ``deepatoms curves`` on each dataset's test split for all its models: MAE, MSE, RE as
    mean (std) and DSC on a 0.005 grid, energy-curve figures, error against size; writes
    ``report.md`` and ``report.json`` in the work dir. The last line printed is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: dataset name → (file name, preset suffix of the MPNN/VIMPNN presets, batch size)
DATASETS = {
    "qm9aug": ("qm9aug.h5", "qm9aug-fast", 20),
    "crystal": ("crystal.h5", "qm9aug-fast", 20),
    "cg_stable": ("cg_stable.h5", "growth-fast", 5),
    "cg_unstable": ("cg_unstable.h5", "growth-fast", 5),
}
#: baselines beyond the paper: preset and the overrides that put them on the same data
BASELINES = {
    "schnet": "schnet-fast",
    "nmpedge": "nmpedge-fast",
}
#: Table 3 rows on augmented QM9: label → overrides of vimpnn-qm9aug-fast
VARIANTS = {
    "a.i": ["model.channels=a.i", "model.aux=[]"],
    "a.ii": ["model.channels=a.ii", "model.aux=[]"],
    "b.i": ["model.channels=b.i", "model.aux=[]"],
    "b.ii": ["model.channels=b.ii", "model.aux=[]"],
    "c": ["model.channels=c", "model.aux=[]"],
}


def deepatoms(*args: str, log: Path | None = None) -> None:
    """Run the deepatoms command line (the same interpreter), failing loudly."""
    cmd = [sys.executable, "-m", "deepatoms.cli", *args]
    print("$", " ".join(cmd[2:]), flush=True)
    if log is None:
        subprocess.run(cmd, check=True)
        return
    with open(log, "a") as fh:
        rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT).returncode
    if rc:
        raise RuntimeError(f"`{' '.join(cmd[2:])}` failed (exit {rc}); see {log}")


def stage_data(a: argparse.Namespace, work: Path) -> None:
    """Generate the four datasets (resumable: each generator continues an unfinished file)."""
    d = work / "data"
    d.mkdir(parents=True, exist_ok=True)
    seed = str(a.seed)
    deepatoms("datagen", "scaled", "--molecules", str(a.molecules), "--seed", seed,
              "--out", str(d / "qm9aug.h5"))  # fmt: skip
    deepatoms("datagen", "crystal", "--elements", "Al,Cu", "--points", str(a.crystal_points),
              "--seed", seed, "--out", str(d / "crystal.h5"))  # fmt: skip
    deepatoms("datagen", "growth", "--elements", "Al,Cu", "--runs", str(a.growth_runs),
              "--seed", seed, "--out", str(d / "cg_stable.h5"))  # fmt: skip
    deepatoms("datagen", "growth", "--elements", "Al,Cu", "--runs", str(a.growth_runs),
              "--unstable", "--unstable-runs", str(a.unstable_runs), "--seed", seed,
              "--out", str(d / "cg_unstable.h5"))  # fmt: skip


def jobs(a: argparse.Namespace) -> list[tuple[str, str, str, list[str]]]:
    """(dataset, model label, preset, overrides) of every run of the report."""
    out = []
    for ds, (_, suffix, batch) in DATASETS.items():
        out.append((ds, "mpnn", f"mpnn-{suffix}", []))
        out.append((ds, "vimpnn", f"vimpnn-{suffix}", []))
        for label, preset in BASELINES.items():
            same = ["data.target=energy", "data.split_column=split", "data.readout=sum",
                    "data.atomref=fit", f"train.batch_size={batch}", "data.forces=null"]  # fmt: skip
            out.append((ds, label, preset, same))
    for label, sets in VARIANTS.items():
        out.append(("qm9aug", f"vimpnn-{label}", "vimpnn-qm9aug-fast", sets))
    out.append(("qm9aug", "no-bt", "mpnn-qm9aug-fast", ["model.edge_features=distance"]))
    if a.only:
        keep = set(a.only.split(","))
        out = [j for j in out if j[0] in keep or f"{j[0]}/{j[1]}" in keep]
    return out


def run_one(a: argparse.Namespace, work: Path, job: tuple[str, str, str, list[str]]) -> dict:
    """Train one model (resumes or skips a finished run) and return its summary."""
    ds, label, preset, sets = job
    run = work / "runs" / ds / label
    summary = run / "summary.json"
    if summary.is_file():
        return json.loads(summary.read_text())
    run.parent.mkdir(parents=True, exist_ok=True)
    extra = [f"train.num_threads={a.threads}", f"train.accelerator={a.accelerator}"]
    if a.minutes:
        extra.append(f"train.max_time={a.minutes}")
    epochs = a.crystal_epochs if ds == "crystal" else a.epochs
    if ds == "crystal":  # 16 training cells = 1 step per epoch: validate every 10 steps and
        # stop after 30 validations without improvement (300 steps), not after 20 single steps
        extra += ["train.val_every_steps=10", "train.early_stopping_patience=30"]
        if label in ("mpnn", "vimpnn"):  # as the growth presets: raw Z saturates the GRU on Al/Cu
            extra.append("model.z_scale=29")
    args = ["train", "--preset", preset, "--data", str(work / "data" / DATASETS[ds][0]),
            "--out", str(run), "--max-epochs", str(epochs), "--seed", str(a.seed), "--quiet"]  # fmt: skip
    for s in [*sets, *extra]:
        args += ["--set", s]
    t0 = time.time()
    deepatoms(*args, log=run.parent / f"{label}.log")
    print(f"  {ds}/{label} done in {time.time() - t0:.0f} s", flush=True)
    return json.loads(summary.read_text())


def stage_train(a: argparse.Namespace, work: Path) -> None:
    """Run every job, ``--jobs`` at a time."""
    todo = jobs(a)
    print(f"{len(todo)} runs, {a.jobs} at a time, {a.epochs} epochs each", flush=True)
    with ThreadPoolExecutor(max_workers=a.jobs) as pool:
        for f in [pool.submit(run_one, a, work, j) for j in todo]:
            f.result()


def _fmt(m: dict, key: str, digits: int = 4) -> str:
    v, sd = m.get(key), m.get(f"{key}_std")
    if v is None:
        return "-"
    return f"{v:.{digits}g} ({sd:.{digits}g})"


def displaced_cluster(work: Path) -> tuple[Path, int]:
    """A 15-atom cluster at s = 1 (the 14-atom seed plus the first added atom) from the
    Unstable CG data, written as XYZ; returns the file and the index of the added atom."""
    import ase.io

    from deepatoms.data.dataset import read_dataset
    from deepatoms.data.scaling import scale_atoms

    data, _ = read_dataset(work / "data" / DATASETS["cg_unstable"][0])
    k = int(next(i for i in range(len(data)) if data.n_atoms[i] == 15))
    atoms = data.get_atoms(k)
    stable = scale_atoms(atoms, 1.0 / float(data.system_props["scale"][k]))
    path = work / "cluster15.xyz"
    ase.io.write(path, stable)
    return path, 14


def stage_report(a: argparse.Namespace, work: Path) -> dict:
    """``deepatoms curves`` per dataset; collect the tables."""
    results: dict[str, dict] = {}
    keep = set(a.only.split(",")) if a.only else set(DATASETS)
    for ds, (fname, _, _) in DATASETS.items():
        runs = sorted(p.parent for p in (work / "runs" / ds).glob("*/model.pt"))
        out = work / "curves" / ds
        if not runs or ds not in keep:
            if (out / "metrics.json").is_file():  # evaluated by an earlier call
                results[ds] = json.loads((out / "metrics.json").read_text())
            continue
        args = ["curves", *map(str, runs), "--data", str(work / "data" / fname),
                "--split", "test", "--out", str(out), "--overwrite", "--json", "--quiet"]  # fmt: skip
        if ds == "cg_unstable":
            xyz, atom = displaced_cluster(work)
            args += ["--displace-cluster", str(xyz), "--atom", str(atom)]
        deepatoms(*args, log=work / f"curves_{ds}.log")
        results[ds] = json.loads((out / "metrics.json").read_text())
    lines = [
        "| Dataset | Model | MAE (eV) | MSE (eV²) | RE | DSC (s) | DSC (Å) | s per estimate |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for ds, res in results.items():
        for m in res.get("models", []):
            t = m.get("seconds_per_estimate")
            lines.append(
                f"| {ds} | {m['name']} | {_fmt(m, 'mae')} | {_fmt(m, 'mse')} | {_fmt(m, 're', 2)} "
                f"| {_fmt(m, 'dsc', 3)} | {_fmt(m, 'dsc_angstrom', 3)} "
                f"| {'-' if t is None else f'{t:.2g}'} |"
            )
    (work / "report.md").write_text("\n".join(lines) + "\n")
    (work / "report.json").write_text(json.dumps(results, indent=1, default=str))
    print("\n".join(lines))
    return {ds: {m["name"]: {k: m.get(k) for k in ("mae", "mse", "re", "dsc")}
                 for m in res.get("models", [])} for ds, res in results.items()}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("stage", choices=["data", "train", "report", "all"])
    p.add_argument("--workdir", type=Path, default=ROOT / "runs" / "vimpnn_report")
    p.add_argument("--molecules", type=int, default=1000)
    p.add_argument("--crystal-points", type=int, default=2000, help="per element (paper: 20,000)")
    p.add_argument("--growth-runs", type=int, default=20)
    p.add_argument("--unstable-runs", type=int, default=5)
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument(
        "--crystal-epochs", type=int, default=400, help="16 training cells: 1 step/epoch"
    )
    p.add_argument("--minutes", type=float, default=None, help="wall-clock cap per run")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--accelerator", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", default="", help="datasets or dataset/model labels, comma-separated")
    a = p.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    work = a.workdir.resolve()
    if a.stage in ("data", "all"):
        stage_data(a, work)
    if a.stage in ("train", "all"):
        stage_train(a, work)
    if a.stage in ("report", "all"):
        print(json.dumps(stage_report(a, work)))


if __name__ == "__main__":
    main()
