#!/usr/bin/env python
"""Voxel grid construction speed (crystals/s) and oracle atom recovery of the density VAE data.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/density_grid.py             # AFLOW prototypes
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/density_grid.py --data ../shared/data/perov_5/val.csv --limit 500
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/density_grid.py --grids 30 20 --skip-speed

docs/density_vae.md §1, §2, §6. Crystals: pymatgen's bundled
AFLOW prototypes with all lattice vectors < 10 Å (243), or ``--data`` (anything
``deepatoms.density.crystal_sets.load_crystals`` reads), filtered the same way.

1. Speed: samples (crystals × rotations) per second of the vectorised M and S
   (``deepatoms.density.grid.density`` / ``species``: separable Gaussians + one matmul; per-atom
   index windows) against the brute-force baseline in the same run (``brute_force=True``: a full
   n³ distance grid per atom, as in the paper's "about 16 ms per single-cell sample with
   brute-force numpy"), for the single-cell (random rotation) and repeated-lattice (random shift
   and rotation) regimes at the 30³ grid. Both produce the same grids (checked on every sample).
2. Oracle recovery (§6 on the true S, one-hot classes) per grid size over the same 10 Å box,
   3 rotations per crystal: exact atom counts with 6- and 26-connectivity, centroid errors (each
   true atom to its nearest recovered atom: median, 95th percentile, max), fraction within
   0.5 Å, atoms that mark no voxel, mean voxels per atom; optionally with the
   ``species_nearest_voxel`` rule (``--nearest-voxel``, default on for grids with h > 2ρ/√3).
3. Containment (single cell): fraction of samples keeping every atom, mean fraction of atoms
   kept; normalisation Σ M h³ / Σ Z of the atoms more than 3 Å from every face.

One process, one thread (set ``OMP_NUM_THREADS=1``). The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def _samples(crystals, grid, regime, rotations, brute_force, seed=0):
    from deepatoms.data.voxels.samples import repeated_lattice, single_cell

    out = []
    for k, atoms in enumerate(crystals):
        for r in range(rotations):
            rng = np.random.default_rng([seed, k, r])
            if regime == "single":
                out.append(single_cell(atoms, grid, rng, brute_force=brute_force))
            else:
                out.append(repeated_lattice(atoms, grid, rng, brute_force=brute_force))
    return out


def speed(crystals, rotations: int, repeats: int) -> dict:
    """Samples/s and ms/sample, vectorised vs brute force, per regime (30³ grid)."""
    from deepatoms.data.voxels.grid import GridSpec

    grid = GridSpec()
    out = {}
    for regime in ("single", "repeated"):
        times = {}
        for brute in (False, True):
            best = math.inf
            for _ in range(repeats if not brute else 1):
                t0 = time.perf_counter()
                got = _samples(crystals, grid, regime, rotations, brute)
                best = min(best, time.perf_counter() - t0)
            times[brute] = (best, got)
        (tv, fast), (tb, slow) = times[False], times[True]
        for a, b in zip(fast, slow, strict=True):
            if not (np.allclose(a.density, b.density, atol=1e-5) and
                    np.array_equal(a.species, b.species)):  # fmt: skip
                raise SystemExit(f"{regime}: vectorised and brute-force grids differ")
        n = len(fast)
        atoms = np.array([len(s.numbers) for s in fast])
        out[regime] = {
            "samples": n,
            "atoms_in_box_mean": float(atoms.mean()),
            "atoms_in_box_max": int(atoms.max()),
            "vectorised_samples_per_s": n / tv,
            "vectorised_ms_per_sample": 1e3 * tv / n,
            "brute_force_samples_per_s": n / tb,
            "brute_force_ms_per_sample": 1e3 * tb / n,
            "speedup": tb / tv,
        }
        print(
            f"{regime:9s} {n} samples ({atoms.mean():.1f} atoms in the box): vectorised "
            f"{1e3 * tv / n:.2f} ms/sample ({n / tv:.0f}/s), brute force {1e3 * tb / n:.2f} "
            f"ms/sample ({n / tb:.0f}/s), ×{tb / tv:.1f}",
            flush=True,
        )
    return out


def oracle(crystals, n: int, nearest_voxel: bool, rotations: int) -> dict:
    """Oracle recovery statistics on an n³ grid over the 10 Å box (single-cell samples)."""
    from scipy.spatial import cKDTree

    from deepatoms.data.voxels.dataset import ClassMap
    from deepatoms.data.voxels.grid import GridSpec, density
    from deepatoms.density.recovery import recover_atoms

    grid = GridSpec(n=n, species_nearest_voxel=nearest_voxel)
    cm = ClassMap.from_mode("compact", crystals)
    samples = _samples(crystals, grid, "single", rotations, False)
    res: dict = {"n": n, "h": grid.h, "species_nearest_voxel": nearest_voxel}
    for conn in (6, 26):
        exact, errs = 0, []
        for s in samples:
            (rec,) = recover_atoms(cm.to_class(s.species), grid, cm, connectivity=conn)
            exact += len(rec) == len(s.numbers)
            if len(s.numbers):
                d = cKDTree(rec.positions).query(s.positions)[0] if len(rec) else \
                    np.full(len(s.numbers), np.inf)  # fmt: skip
                errs.append(d)
        e = np.concatenate(errs)
        res[f"conn{conn}"] = {
            "exact_count": exact / len(samples),
            "centroid_error_p50": float(np.median(e)),
            "centroid_error_p95": float(np.percentile(e, 95)),
            "centroid_error_max": float(e.max()),
            "within_0.5": float((e <= 0.5).mean()),
        }
    marked = np.concatenate([_voxels_per_atom(s, grid) for s in samples])
    res["atoms_without_voxel"] = int((marked == 0).sum())
    res["voxels_per_atom_mean"] = float(marked.mean())
    res["n_atoms"] = len(marked)
    ratios = []
    for s in samples:  # normalisation of atoms > 3 Å from every face
        far = np.all((s.positions > 3.0) & (s.positions < grid.box - 3.0), axis=1)
        if far.any():
            m = density(s.numbers[far], s.positions[far], grid)
            ratios.append((m.sum() * grid.h**3, s.numbers[far].sum()))
    r = np.array(ratios)
    res["normalisation_far_atoms"] = float(r[:, 0].sum() / r[:, 1].sum()) if len(r) else None
    res["all_atoms_kept"] = float(np.mean([s.n_dropped == 0 for s in samples]))
    res["atoms_kept_mean"] = float(
        np.mean([len(s.numbers) / (len(s.numbers) + s.n_dropped) for s in samples])
    )
    c6, c26 = res["conn6"], res["conn26"]
    print(
        f"grid {n}³ (h {grid.h:.3f} Å{', nearest voxel' if nearest_voxel else ''}): exact "
        f"{c6['exact_count']:.4f} (6) / {c26['exact_count']:.4f} (26); centroid error p50 "
        f"{c6['centroid_error_p50']:.3f} p95 {c6['centroid_error_p95']:.3f} Å; within 0.5 Å "
        f"{c6['within_0.5']:.4f}; atoms without voxel {res['atoms_without_voxel']}/{len(marked)}; "
        f"voxels/atom {res['voxels_per_atom_mean']:.2f}",
        flush=True,
    )
    return res


def _voxels_per_atom(sample, grid) -> np.ndarray:
    """Marked voxels (S ≠ 0) per atom, each voxel credited to its nearest atom [k]."""
    k = len(sample.numbers)
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    c = grid.centres().reshape(-1, 3)[sample.species.reshape(-1) > 0]
    if len(c) == 0:
        return np.zeros(k, dtype=np.int64)
    owner = ((c[:, None, :] - sample.positions[None]) ** 2).sum(-1).argmin(axis=1)
    return np.bincount(owner, minlength=k)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", nargs="*", default=["prototypes"], help="crystal sources")
    p.add_argument("--limit", type=int, default=None, help="use the first N crystals")
    p.add_argument("--rotations", type=int, default=3, help="samples per crystal (default 3)")
    p.add_argument("--repeats", type=int, default=2, help="timing repeats (best of)")
    p.add_argument("--grids", type=int, nargs="*", default=[30, 24, 20, 15], help="oracle grids")
    p.add_argument("--skip-speed", action="store_true", help="only the oracle statistics")
    p.add_argument("--skip-oracle", action="store_true", help="only the speed comparison")
    args = p.parse_args(argv)

    from deepatoms.data.voxels.crystal_sets import load_crystals
    from deepatoms.data.voxels.grid import GridSpec
    from machine import loadavg

    print(f"load before: {loadavg()}", flush=True)
    cs = load_crystals(args.data, progress=False).filter_max_side(10.0)
    crystals = cs.atoms[: args.limit] if args.limit else cs.atoms
    print(f"{len(crystals)} crystals with sides < 10 Å from {args.data}", flush=True)
    result: dict = {"data": args.data, "n_crystals": len(crystals), "rotations": args.rotations}
    if not args.skip_speed:
        result["speed"] = speed(crystals, args.rotations, args.repeats)
    if not args.skip_oracle:
        result["oracle"] = []
        for n in args.grids:
            h = 10.0 / n
            options = [False, True] if h > 2 * 0.5 / math.sqrt(3) else [False]
            for nv in options:
                result["oracle"].append(oracle(crystals, n, nv, args.rotations))
    print(f"load after: {loadavg()}", flush=True)
    result["grid_default"] = GridSpec().as_dict()
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
