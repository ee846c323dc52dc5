#!/usr/bin/env python
"""Crystal graph construction throughput (structures/s): cutoff, k-nearest and Voronoi.

    .venv/bin/python benchmarks/graph_throughput.py                 # Perov-5 (shared data)
    .venv/bin/python benchmarks/graph_throughput.py --limit 500     # fewer structures
    .venv/bin/python benchmarks/graph_throughput.py --data my.csv   # any CIF-in-CSV file

Builds the graphs of the same structures with every builder of ``deepatoms.data.neighbors``
(one structure at a time, as the Voronoi store does, and per batch of 100 for cutoff and k-NN,
as training does) and, as the baseline, pymatgen's ``VoronoiNN`` (``get_all_voronoi_polyhedra``
with ``cutoff`` 13 Å, retried site by site where pymatgen raises "No Voronoi neighbors found"
(failed sites are counted); the same periodic tessellation with facet areas and solid angles) on a
subset (``--pymatgen-limit``, it is slow). Data: ``../shared/data/perov_5/val.csv`` when it exists
(read with ``deepatoms.data.sources.crystals.load_cif_csv``); without it, pass ``--data``.
Reported: structures/s per builder, edges per structure, and the ratio to pymatgen. Single
process; ``OMP_NUM_THREADS`` does not matter (numpy/scipy per structure). The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "perov_5" / "val.csv"


def _time_per_structure(build, data, n: int) -> tuple[float, float]:
    """(structures/s, mean directed edges per structure) of ``build(k)`` over the first n."""
    t0 = time.perf_counter()
    edges = 0
    for k in range(n):
        edges += build(k)
    dt = time.perf_counter() - t0
    return n / dt, edges / n


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="CIF-in-CSV file")
    p.add_argument("--limit", type=int, default=2000, help="structures to read (default 2000)")
    p.add_argument("--pymatgen-limit", type=int, default=200, help="structures for VoronoiNN")
    p.add_argument("--cutoff", type=float, default=5.0, help="distance cutoff (Å)")
    p.add_argument("--k", type=int, default=24, help="neighbours of the k-NN graph")
    p.add_argument("--omega-cut", type=float, default=0.2, help="Voronoi solid-angle cut (sr)")
    args = p.parse_args(argv)
    if not args.data.is_file():
        sys.exit(
            f"no data: {args.data} does not exist (pass --data FILE.csv, CIFs in a 'cif' column)"
        )

    from deepatoms.data.neighbors import GraphSpec, build_edges
    from deepatoms.data.sources.crystals import load_cif_csv

    t0 = time.perf_counter()
    data, _ = load_cif_csv(args.data, limit=args.limit, progress=False)
    print(f"read {len(data)} structures from {args.data} in {time.perf_counter() - t0:.1f} s")
    n = len(data)
    specs = {
        f"cutoff {args.cutoff} Å": GraphSpec("cutoff", args.cutoff),
        f"k-NN k={args.k}": GraphSpec("knn", None, k=args.k),
        f"Voronoi Ω≥{args.omega_cut} + symmetry labels": GraphSpec(
            "voronoi", None, omega_cut=args.omega_cut
        ),
    }
    results = {}

    def one(spec):
        def build(k: int) -> int:
            s, e = data.offsets[k], data.offsets[k + 1]
            el = build_edges(data.positions[s:e], np.array([0, e - s]), data.cell[k : k + 1],
                             data.pbc[k : k + 1], spec)  # fmt: skip
            return el.edge_index.shape[1]

        return build

    for name, spec in specs.items():
        rate, edges = _time_per_structure(one(spec), data, n)
        results[name] = {"structures_per_s": round(rate, 1), "edges_per_structure": round(edges, 1)}
        print(f"  {name:40s} {rate:9.1f} structures/s  ({edges:.1f} directed edges each)")
    for name in list(specs)[:2]:  # batched, as training builds them
        spec = specs[name]
        t0 = time.perf_counter()
        for s in range(0, n, 100):
            idx = np.arange(s, min(s + 100, n))
            sub = data.subset(idx)
            build_edges(sub.positions, sub.offsets, sub.cell, sub.pbc, spec)
        rate = n / (time.perf_counter() - t0)
        results[name]["batched_structures_per_s"] = round(rate, 1)
        print(f"  {name + ' (batches of 100)':40s} {rate:9.1f} structures/s")

    from pymatgen.analysis.local_env import VoronoiNN
    from pymatgen.core import Lattice, Structure

    m = min(args.pymatgen_limit, n)
    vnn = VoronoiNN(cutoff=13.0, compute_adj_neighbors=False)
    failures: list[int] = []
    failed_sites: list[tuple[int, int]] = []

    def pmg(k: int) -> int:
        s, e = data.offsets[k], data.offsets[k + 1]
        st = Structure(Lattice(data.cell[k]), data.numbers[s:e], data.positions[s:e],
                       coords_are_cartesian=True)  # fmt: skip
        try:
            polys = vnn.get_all_voronoi_polyhedra(st)
        except ValueError:  # pymatgen: "No Voronoi neighbors found for site": per site instead
            failures.append(k)
            polys = []
            for i in range(len(st)):
                try:
                    polys.append(vnn.get_voronoi_polyhedra(st, i))
                except ValueError:
                    failed_sites.append((k, i))
        return sum(sum(1 for f in p.values() if f["solid_angle"] >= args.omega_cut) for p in polys)

    rate, edges = _time_per_structure(pmg, data, m)
    results["pymatgen VoronoiNN"] = {
        "structures_per_s": round(rate, 2),
        "edges_per_structure": round(edges, 1),
        "n": m,
    }
    print(
        f"  {'pymatgen VoronoiNN (first ' + str(m) + ')':40s} {rate:9.2f} structures/s  ({edges:.1f} facets ≥ Ω_cut each)"
    )
    vor = results[list(specs)[2]]["structures_per_s"]
    summary = {
        "n_structures": n,
        "data": str(args.data),
        "results": results,
        "voronoi_vs_pymatgen": round(vor / rate, 1),
    }
    print(f"deepatoms Voronoi (with symmetry labels) vs pymatgen VoronoiNN: {vor / rate:.1f}x")
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
