"""Energy-only vs energy+force training of a SchNet potential, then MD with it (issue 3).

The protocol of the Schütt 2018 thesis Tables 5.3/5.4 on offline data:

1. ``deepatoms datagen md``: ethanol at 500 K, GFN2-xTB (tblite), Langevin, 0.5 fs; frames every
   ``--stride`` steps, so that the frames are decorrelated.
2. ``schnet-md17-fast`` trained twice on the same 1,000 frames (same split, seed and epoch budget):
   once on energies only, once on energies and forces (Eq. 5.7, ρ = 0.01).
3. Energy and force MAE on 1,000 held-out frames (``deepatoms evaluate``).
4. ``--md-ps`` of NVT (Langevin, 500 K, 0.5 fs) MD with the energy+force model and the same length
   of xTB MD; their intramolecular pair-distance distributions (the molecular RDF) are compared
   and plotted.

Every step is skipped when its output exists in ``--workdir``, so the script can be resumed. The
last output line is JSON. xTB labels are a stand-in for the thesis' PBE+vdW^TS data: compare the
trend (the ratio between energy-only and energy+force errors), not the absolute numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

KCAL = 0.0433641  # eV per kcal/mol
THESIS_ETHANOL_1K = {"energy_only": {"E": 0.93, "F": 6.56}, "energy_forces": {"E": 0.08, "F": 0.39}}


def sh(*args: str, capture: bool = False) -> str:
    """Run the deepatoms CLI (raises on failure); its output streams to the terminal, so long
    steps show their progress bars, unless ``capture``, which returns stdout instead."""
    exe = Path(sys.executable).with_name("deepatoms")
    cmd = [str(exe), *args]
    print("+", " ".join(cmd), flush=True)
    stdout = subprocess.PIPE if capture else None
    return subprocess.run(cmd, check=True, stdout=stdout, text=True).stdout or ""


def last_json(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--workdir", default="pes_accuracy", help="folder for data, runs and plots")
    p.add_argument("--frames", type=int, default=3000, help="labelled frames to generate")
    p.add_argument("--stride", type=int, default=20, help="MD steps between frames (0.5 fs each)")
    p.add_argument("--epochs", type=int, default=1500, help="epoch budget of each training run")
    p.add_argument("--minutes", type=float, default=45, help="wall-clock cap of each training run")
    p.add_argument("--md-ps", type=float, default=10.0, help="length of the NVT runs (ps)")
    p.add_argument("--temperature", type=float, default=500.0, help="K")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def rdf_comparison(model_traj: Path, ref_data: Path, out_png: Path) -> dict:
    """Pair-distance distributions of the model and xTB trajectories, plot and overlap metrics."""
    import ase.io

    from deepatoms.analysis.plots import pyplot, save_figure
    from deepatoms.data.dataset import read_dataset
    from deepatoms.simulate.analysis import radial_distribution

    ref_pack, _ = read_dataset(ref_data)
    ref_frames = [ref_pack.get_atoms(k) for k in range(len(ref_pack))]
    model_frames = ase.io.read(model_traj, ":")
    curves, metrics = {}, {}
    for label, pairs in (("all pairs", None), ("C–C", ("C", "C")), ("O–H", ("O", "H"))):
        r, g_model = radial_distribution(model_frames, rmax=5.0, nbins=200, pairs=pairs)
        _, g_ref = radial_distribution(ref_frames, rmax=5.0, nbins=200, pairs=pairs)
        dr = r[1] - r[0]
        curves[label] = (r, g_model, g_ref)
        # Both are probability densities over r: the integrated absolute difference is in [0, 2].
        metrics[label] = {"integrated_abs_difference": float(np.sum(np.abs(g_model - g_ref)) * dr)}
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), dpi=130)
    for ax, (label, (r, gm, gr)) in zip(axes, curves.items(), strict=True):
        ax.plot(r, gr, label="GFN2-xTB MD", color="black", lw=1.2)
        ax.plot(r, gm, label="SchNet (E+F) MD", color="tab:red", lw=1.0, ls="--")
        ax.set_xlabel("r [Å]")
        ax.set_title(f"ethanol, {label}")
        ax.legend(fontsize=8)
    axes[0].set_ylabel("pair-distance density [1/Å]")
    fig.tight_layout()
    save_figure(fig, out_png)
    return metrics


def main(argv=None) -> dict:
    args = parse_args(argv)
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    data = work / "ethanol_500K.h5"
    if not data.is_file():
        sh("datagen", "md", "--molecule", "ethanol", "--temperature", str(args.temperature),
           "--frames", str(args.frames), "--stride", str(args.stride), "--seed", str(args.seed + 11),
           "--out", str(data))  # fmt: skip

    results = {}
    for name, extra in (("energy_forces", []), ("energy_only", ["--forces", "none"])):
        run = work / f"run_{name}"
        if not (run / "model.pt").is_file():
            sh("train", "--preset", "schnet-md17-fast", "--data", str(data), "--out", str(run),
               "--n-train", "1000", "--n-val", "200", "--set", "data.n_test=1000",
               "--set", "train.early_stopping_patience=200", "--set", "train.plateau_patience=25",
               "--max-epochs", str(args.epochs), "--max-time", str(args.minutes),
               "--seed", str(args.seed), *extra)  # fmt: skip
        ev = last_json(
            sh("evaluate", str(run), "--data", str(data), "--quiet", "--json", capture=True)
        )
        summary = json.loads((run / "summary.json").read_text())
        results[name] = {
            "test_frames": ev["n"],
            "energy_mae_meV": ev["mae"] * 1e3,
            "energy_rmse_meV": ev["rmse"] * 1e3,
            "force_mae_meV_per_A": ev["force_mae"] * 1e3,
            "force_rmse_meV_per_A": ev["force_rmse"] * 1e3,
            "energy_mae_kcal_mol": ev["mae"] / KCAL,
            "force_mae_kcal_mol_A": ev["force_mae"] / KCAL,
            "epochs": summary["epochs"],
            "steps": summary["steps"],
            "train_wall_s": summary["wall_time_s"],
        }
    ratio = {
        "energy": results["energy_only"]["energy_mae_meV"]
        / results["energy_forces"]["energy_mae_meV"],
        "forces": results["energy_only"]["force_mae_meV_per_A"]
        / results["energy_forces"]["force_mae_meV_per_A"],
    }

    steps = round(args.md_ps * 1000 / 0.5)
    model_traj = work / "nvt_schnet.traj"
    if not model_traj.is_file():
        sh("md", str(work / "run_energy_forces"), "ethanol", "--ensemble", "nvt",
           "--temperature", str(args.temperature), "--timestep", "0.5", "--steps", str(steps),
           "--interval", "10", "--seed", str(args.seed), "--out", str(model_traj))  # fmt: skip
    ref = work / "nvt_xtb.h5"
    if not ref.is_file():
        sh("datagen", "md", "--molecule", "ethanol", "--temperature", str(args.temperature),
           "--frames", str(steps // 10), "--stride", "10", "--seed", str(args.seed + 23),
           "--out", str(ref))  # fmt: skip
    rdf = rdf_comparison(model_traj, ref, work / "rdf_ethanol.png")

    print("\nethanol 500 K, GFN2-xTB labels, schnet-md17-fast, 1,000 training frames")
    print(f"{'':16}{'E MAE meV':>11}{'F MAE meV/Å':>13}{'E kcal/mol':>12}{'F kcal/mol/Å':>14}")
    for name, r in results.items():
        print(
            f"{name:16}{r['energy_mae_meV']:11.2f}{r['force_mae_meV_per_A']:13.1f}"
            f"{r['energy_mae_kcal_mol']:12.3f}{r['force_mae_kcal_mol_A']:14.3f}"
        )
    print(
        f"energy-only / energy+force: energy ×{ratio['energy']:.1f}, forces ×{ratio['forces']:.1f}"
    )
    t = THESIS_ETHANOL_1K
    print(
        f"thesis (MD17 ethanol, N=1,000): energy ×{t['energy_only']['E'] / t['energy_forces']['E']:.1f},"
        f" forces ×{t['energy_only']['F'] / t['energy_forces']['F']:.1f}"
    )
    for label, m in rdf.items():
        print(
            f"RDF {label}: ∫|g_model − g_xTB| dr = {m['integrated_abs_difference']:.3f} (0 = same)"
        )
    print(f"plot: {work / 'rdf_ethanol.png'}")
    out = {
        "results": results,
        "improvement": ratio,
        "thesis_ethanol_1k_kcal": THESIS_ETHANOL_1K,
        "rdf": rdf,
        "md_ps": args.md_ps,
        "wall_s": round(time.time() - t0, 1),
    }
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
