"""``deepatoms evaluate-generated``: the G-SchNet evaluation suite (specs/gschnet.md §11).

:func:`evaluate_report` does the work (no printing), in stages:

1. read the generated molecules (ASE db or extxyz) and check each one
   (``deepatoms.analysis.molecule_validity``): validity, identity key, bonds;
2. uniqueness (hashing keys, mirror images merged) and tags against the reference dataset made
   by ``deepatoms data qm9-generative``: its ``canonical_smiles`` / ``mirror_smiles`` and split.
   The training set is the reference's ``split`` column, or, with ``--train-split RUN_DIR``
   (repeatable, e.g. base run and fine-tuning run), the ``train``/``val`` indices of each run's
   ``split.json`` applied to the dataset that run was trained on (its path is recorded in the
   split file; the reference when the sizes match); every other QM9 molecule counts as ``test``;
3. Table 1 rows, atom/bond/ring statistics and distance/angle distributions vs the reference
   (``deepatoms.analysis.generated_eval``);
4. gaps from a property model trained with this project (``--gap-model``; on the generated
   geometries of all unique valid molecules, and on the relaxed ones of the sample);
5. on a seeded sample of unique valid molecules (``--relax-sample``): relaxation (GFN2-xTB or
   MMFF) with Kabsch RMSDs grouped by tag, and optionally the GFN2-xTB orbital gap.

Gaps and relaxations substitute the paper's DFT (B3LYP/6-31G(2df,p) gaps, PBE relaxations);
outputs say so. Files: OUT/metrics.json, OUT/table1.md, OUT/molecules.csv and plots
(distributions.png, statistics.png, gap.png, rmsd.png).
"""

from __future__ import annotations

import csv
import io
import math
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from deepatoms.analysis.generated_eval import (
    ANGLE_BINS,
    DISTANCE_BINS,
    PAPER_TABLE1,
    bonded_angles,
    check_all,
    distribution_distance,
    first_occurrence,
    kabsch_rmsd,
    key_labels,
    molecule_statistics,
    pair_distances,
    read_generated,
    table1,
    tag_molecules,
)
from deepatoms.analysis.molecule_validity import ring_counts
from deepatoms.core.progress import ProgressBar
from deepatoms.data.packed import PackedSystems
from deepatoms.simulate.molecules import relax_molecule, xtb_gap

__all__ = ["RELAX_METHODS", "evaluate_report", "format_table1", "training_labels", "write_report"]

#: Relaxation methods of ``--relax``.
RELAX_METHODS = ("xtb", "mmff", "none")
#: Pair distances and bonded chains compared with the reference, by element numbers.
PAIRS = {"C-C": (6, 6), "C-O": (6, 8)}
CHAINS = {"C-C-C": (6, 6, 6), "C-C-O": (6, 6, 8)}
GAP_THRESHOLD = 5.0  # eV, Table 1
_ORDER = {"single": 1, "double": 2, "triple": 3}


# -- reference ------------------------------------------------------------------------------------
def _keys(data: PackedSystems, where: str) -> np.ndarray:
    """Identity keys (min of canonical and mirror SMILES) of a prepared dataset."""
    props = data.system_props
    if "canonical_smiles" not in props or "mirror_smiles" not in props:
        raise ValueError(
            f"{where} has no 'canonical_smiles' / 'mirror_smiles' columns; prepare it with "
            "`deepatoms data qm9-generative --out FILE.h5`"
        )
    a, b = np.asarray(props["canonical_smiles"]).astype(str), np.asarray(props["mirror_smiles"])
    b = b.astype(str)
    return np.where(a <= b, a, b)


def _split_file(run: Path) -> Path:
    path = Path(run)
    path = path / "split.json" if path.is_dir() else path
    if not path.is_file():
        raise FileNotFoundError(
            f"--train-split {run}: no split.json there; pass a training run folder (it holds "
            "split.json) or the split file itself"
        )
    return path


def training_labels(
    reference: PackedSystems, reference_path: Path, runs: Sequence[Path] = ()
) -> tuple[dict[str, str], list[str]]:
    """Map identity key → ``train``/``val``/``test`` (module docstring, stage 2) and notes on
    where the labels came from."""
    from deepatoms.data.dataset import read_dataset
    from deepatoms.data.splits import column_split, load_split

    ref_keys = _keys(reference, f"reference '{reference_path}'")
    if not runs:
        if "split" not in reference.system_props:
            raise ValueError(
                f"reference '{reference_path}' has no 'split' column; pass --train-split RUN_DIR"
            )
        column = np.asarray(reference.system_props["split"]).astype(str)
        column_split(column, f"the 'split' column of '{reference_path}'")  # validates labels
        return key_labels(ref_keys, column), [f"training set: 'split' column of {reference_path}"]
    keys_parts, label_parts, notes = [ref_keys], [np.full(len(ref_keys), "test")], []
    for run in runs:
        path = _split_file(run)
        split, meta = load_split(path, with_meta=True)
        n_expected = meta.get("n_systems")
        dataset = Path(meta["dataset"]) if meta.get("dataset") else None
        same = dataset is not None and dataset.resolve() == Path(reference_path).resolve()
        if dataset is not None and not same and dataset.is_file():
            data, _ = read_dataset(dataset)
            keys, where = _keys(data, f"the training data '{dataset}' of {path}"), str(dataset)
        elif same or n_expected is None or int(n_expected) == len(reference):
            data, keys, where = reference, ref_keys, str(reference_path)
        else:
            raise ValueError(
                f"{path} was made for the dataset '{dataset}' ({n_expected} systems), which is "
                f"missing, and the reference has {len(reference)}; pass the run's dataset as "
                "--reference or restore it"
            )
        if n_expected is not None and int(n_expected) != len(data):
            raise ValueError(
                f"{path} was made for {int(n_expected)} systems but '{where}' has {len(data)}; "
                "use the dataset the run was trained on"
            )
        labels = np.full(len(data), "test", dtype="<U5")
        for name in ("val", "train"):  # train last: it wins
            idx = np.asarray(split.get(name, []), np.int64)
            if len(idx) and (idx.min() < 0 or idx.max() >= len(data)):
                raise ValueError(f"{path}: {name} indices outside 0…{len(data) - 1} of '{where}'")
            labels[idx] = name
        keys_parts.append(keys)
        label_parts.append(labels)
        notes.append(f"training set: {path} on {where}")
    return key_labels(np.concatenate(keys_parts), np.concatenate(label_parts)), notes


def _reference_bonds(data: PackedSystems, meta: dict) -> tuple[np.ndarray, list[np.ndarray]]:
    """Global bonded pairs [P, 2] (each bond once) and per-molecule bond orders of a prepared
    dataset's stored bond graph."""
    edges = data.edges
    if edges is None or getattr(edges.spec, "kind", None) != "bonds":
        raise ValueError(
            "the reference has no stored bond graph; prepare it with `deepatoms data "
            "qm9-generative`"
        )
    vocab = list(meta.get("bond_types", []))
    try:
        order_of = np.array([_ORDER[name] for name in vocab], np.int64)
    except KeyError as err:
        raise ValueError(f"reference bond types {vocab} are not single/double/triple") from err
    system = np.repeat(np.arange(len(data)), np.diff(edges.offsets))
    i, j = edges.edge_index
    once = i < j
    pairs = np.stack([i[once], j[once]], axis=1) + data.offsets[system[once]][:, None]
    orders = order_of[np.asarray(edges.attrs["bond_type"], np.int64)[once]]
    counts = np.bincount(system[once], minlength=len(data))
    return pairs, np.split(orders, np.cumsum(counts)[:-1])


def _samples(
    numbers: np.ndarray, positions: np.ndarray, offsets: np.ndarray, pairs: np.ndarray
) -> dict[str, np.ndarray]:
    """Pair distances (Å) and bonded angles (degrees) of packed molecules with global bonded
    ``pairs``, by distribution name."""
    out = {f"r({name})": pair_distances(numbers, positions, offsets, pair)
           for name, pair in PAIRS.items()}  # fmt: skip
    for name, chain in CHAINS.items():
        out[f"angle({name})"] = bonded_angles(numbers, positions, pairs, chain)
    return out


def _distributions(
    gen: dict[str, np.ndarray], ref: dict[str, np.ndarray]
) -> dict[str, dict[str, Any]]:
    """Densities and distances of each distribution, generated vs reference (:func:`_samples`)."""
    out: dict[str, dict[str, Any]] = {}
    for name in gen:
        bins, unit = (DISTANCE_BINS, "Å") if name.startswith("r(") else (ANGLE_BINS, "deg")
        out[name] = {**distribution_distance(gen[name], ref[name], bins), "unit": unit}
    return out


def _model_file(path: Path) -> Path:
    path = Path(path)
    model = path / "model.pt" if path.is_dir() else path
    if not model.is_file():
        where = f"run folder {path} has no model.pt" if path.is_dir() else f"{path} not found"
        raise FileNotFoundError(f"--gap-model: {where}; pass a trained gap model (model.pt)")
    return model


def _summary(values: Sequence[float]) -> dict[str, float]:
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return {"n": 0, "mean": math.nan, "median": math.nan, "std": math.nan}
    return {
        "n": len(v),
        "mean": float(v.mean()),
        "median": float(np.median(v)),
        "std": float(v.std()),
    }


# -- the report -----------------------------------------------------------------------------------
def evaluate_report(
    generated: Path, reference: Path, train_splits: Sequence[Path] = (), relax: str = "xtb",
    relax_sample: int = 100, gap_model: Path | None = None, xtb_gaps: bool = False, seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:  # fmt: skip
    """Evaluate generated molecules against a prepared QM9 reference (module docstring).

    Returns a dict: ``metrics`` (JSON-ready: counts, Table 1 rows, statistics, distribution
    distances, RMSDs, gaps, timings), ``molecules`` (per-molecule rows) and ``plots`` (arrays
    for :mod:`deepatoms.analysis.generated_plots`).
    """
    from deepatoms.data.dataset import read_dataset

    if not Path(reference).is_file():
        raise FileNotFoundError(f"reference dataset '{reference}' does not exist")
    if relax not in RELAX_METHODS:
        raise ValueError(f"unknown --relax {relax!r}; choose one of {', '.join(RELAX_METHODS)}")
    if relax_sample < 0:
        raise ValueError(f"--relax-sample must be ≥ 0, got {relax_sample}")
    bar = lambda label: ProgressBar(label, quiet=not progress)  # noqa: E731
    timing: dict[str, float] = {}
    t_all = t0 = time.perf_counter()
    atoms, provenance = read_generated(generated)
    ref, ref_meta = read_dataset(reference)
    loaded = None
    if gap_model is not None:
        from deepatoms.models.loading import PROPERTY_FAMILIES, load_model

        loaded = load_model(_model_file(gap_model), expect=PROPERTY_FAMILIES)
        if loaded.unit != "eV":
            raise ValueError(
                f"--gap-model predicts {loaded.property!r} in {loaded.unit!r}; pass a model of "
                "the HOMO-LUMO gap in eV"
            )
    timing["read"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    with bar("checking molecules") as cb:
        checks = check_all(atoms, cb)
    valid = np.array([c.valid for c in checks], bool)
    keys = [c.key for c in checks]
    timing["check"] = time.perf_counter() - t0

    # reference side: keys by split, statistics and distribution samples (a fixed cost)
    t0 = time.perf_counter()
    seen, notes = training_labels(ref, Path(reference), train_splits)
    ref_pairs, ref_orders = _reference_bonds(ref, ref_meta)
    if "rings" in ref.system_props:
        ref_rings = np.asarray(ref.system_props["rings"], np.int64)
    else:
        ref_rings = np.array([ring_counts(s) for s in ref.system_props["canonical_smiles"]])
    ref_stats = molecule_statistics(np.split(ref.numbers, ref.offsets[1:-1]), ref_orders, ref_rings)
    ref_samples = _samples(ref.numbers, ref.positions, ref.offsets, ref_pairs)
    timing["reference"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    unique, duplicate_of = first_occurrence(keys, valid)
    tags = tag_molecules(keys, valid, seen)
    n_heavy = np.array([int(np.sum(a.numbers != 1)) for a in atoms], np.int64)
    timing["match"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    uidx = np.flatnonzero(unique)
    if len(uidx) == 0:
        raise ValueError(
            f"none of the {len(atoms)} molecules in '{generated}' is valid "
            f"({dict(Counter(c.reason for c in checks))}); nothing to compare"
        )
    gen_rings = np.array([ring_counts(checks[k].smiles) for k in uidx]).reshape(-1, 4)
    gen_stats = molecule_statistics(
        [atoms[k].numbers for k in uidx], [checks[k].orders for k in uidx], gen_rings
    )
    timing["statistics"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    gen_pack = PackedSystems.from_atoms([atoms[k] for k in uidx])
    gen_pairs = np.concatenate(
        [checks[k].bonds + gen_pack.offsets[n] for n, k in enumerate(uidx)]
    ).reshape(-1, 2)
    dists = _distributions(
        _samples(gen_pack.numbers, gen_pack.positions, gen_pack.offsets, gen_pairs), ref_samples
    )
    timing["distributions"] = time.perf_counter() - t0

    gap_raw = np.full(len(atoms), np.nan)
    t0 = time.perf_counter()
    if loaded is not None:
        from deepatoms.models.inference import predict_packed

        with bar("gap model") as cb:
            gap_raw[uidx] = predict_packed(loaded, gen_pack, progress=cb)
    timing["gap_model"] = time.perf_counter() - t0

    # -- sample: relaxation, RMSD, gaps on relaxed geometries --------------------------------
    rng = np.random.default_rng(seed)
    n_sample = min(int(relax_sample), len(uidx))
    sample = np.sort(rng.choice(uidx, size=n_sample, replace=False)) if n_sample else uidx[:0]
    rmsd_all = np.full(len(atoms), np.nan)
    rmsd_heavy = np.full(len(atoms), np.nan)
    gap_relaxed = np.full(len(atoms), np.nan)
    gap_xtb = np.full(len(atoms), np.nan)
    failures: Counter = Counter()
    relaxed: dict[int, np.ndarray] = {}
    t0 = time.perf_counter()
    if relax != "none" and n_sample:
        with bar(f"relaxing ({relax})") as cb:
            for n, k in enumerate(sample):
                try:
                    pos, _ = relax_molecule(atoms[k], relax, checks[k].mol)
                except Exception as exc:  # SCF failures, missing MMFF parameters …
                    failures[type(exc).__name__] += 1
                    continue
                relaxed[int(k)] = pos
                rmsd_all[k] = kabsch_rmsd(atoms[k].positions, pos)
                rmsd_heavy[k] = kabsch_rmsd(atoms[k].positions, pos, atoms[k].numbers != 1)
                if cb is not None:
                    cb(n + 1, n_sample)
    timing["relax"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    if loaded is not None and relaxed:
        from deepatoms.models.inference import predict_packed

        done = np.array(sorted(relaxed), np.int64)
        pack = PackedSystems.from_atoms(
            [Atoms(numbers=atoms[k].numbers, positions=relaxed[int(k)]) for k in done]
        )
        gap_relaxed[done] = predict_packed(loaded, pack)
    timing["gap_model"] += time.perf_counter() - t0
    t0 = time.perf_counter()
    if xtb_gaps and n_sample:
        with bar("GFN2-xTB gaps") as cb:
            for n, k in enumerate(sample):
                pos = relaxed.get(int(k), atoms[k].positions)
                try:
                    gap_xtb[k] = xtb_gap(atoms[k].numbers, pos)
                except Exception as exc:  # reported as a failure count
                    failures[f"xtb_gap:{type(exc).__name__}"] += 1
                if cb is not None:
                    cb(n + 1, n_sample)
    timing["xtb_gap"] = time.perf_counter() - t0

    # -- Table 1 ----------------------------------------------------------------------------
    all_relaxed = relax != "none" and len(relaxed) == len(uidx)
    gap_row, gap_source = None, None
    if loaded is not None:
        gap_row = gap_relaxed if all_relaxed else gap_raw
        gap_source = (
            f"model {loaded.property!r} on {'relaxed (' + relax + ')' if all_relaxed else 'generated'}"
            " geometries (substitute for the paper's B3LYP gap)"
        )
    rows = table1(valid, unique, tags, n_heavy, gap_row, GAP_THRESHOLD)
    for row in rows:
        row["paper_gschnet_50k"] = PAPER_TABLE1.get(row["row"])
    timing["total"] = time.perf_counter() - t_all

    n = len(atoms)
    dropped = ref_meta.get("dropped", {})
    checker_rate = (
        dropped["n_valid"] / dropped["n_checked"] if dropped.get("n_checked") else math.nan
    )
    ref_gap = np.asarray(ref.system_props.get("gap", np.zeros(0)), float)
    groups = {}
    for tag in ("train", "val", "test", "novel"):
        sel = sample[tags[sample] == tag] if n_sample else sample
        groups[tag] = {
            "all_atoms": _summary(rmsd_all[sel]),
            "heavy_atoms": _summary(rmsd_heavy[sel]),
        }
    per_molecule = ("check", "match", "statistics", "distributions", "gap_model")
    metrics: dict[str, Any] = {
        "generated": str(generated),
        "reference": str(reference),
        "provenance": provenance,
        "training_set": notes,
        "n_generated": n,
        "n_valid": int(valid.sum()),
        "validity": float(valid.mean()),
        "invalid_reasons": dict(Counter(c.reason for c in checks if not c.valid)),
        "n_unique": int(unique.sum()),
        "n_duplicates": int(valid.sum() - unique.sum()),
        "tags_unique": {
            t: int(np.sum(tags[unique] == t)) for t in ("train", "val", "test", "novel")
        },
        "table1": rows,
        "table1_percent_of": "valid molecules",
        "gap_source": gap_source,
        "qm9_reference": {
            "checker_validity": checker_rate,
            "checker_dropped": {k: v for k, v in dropped.items() if k != "qm9_index"},
            "n_molecules": len(ref),
            "gap_le_5eV_percent": float(100 * np.mean(ref_gap <= GAP_THRESHOLD))
            if len(ref_gap)
            else None,
            "gap_source": "QM9 labels (B3LYP/6-31G(2df,p))",
        },
        "statistics": {"generated_unique": gen_stats, "qm9": ref_stats},
        "distributions": {
            name: {k: d[k] for k in ("w1", "tv", "n_generated", "n_reference", "unit")}
            for name, d in dists.items()
        },
        "relaxation": {
            "method": relax,
            "method_label": {
                "xtb": "GFN2-xTB (tblite), BFGS to fmax 0.05 eV/Å — substitute for the paper's DFT",
                "mmff": "RDKit MMFF94 — substitute for the paper's DFT",
                "none": "not relaxed",
            }[relax],
            "sample_size": n_sample if relax != "none" or xtb_gaps else 0,
            "n_relaxed": len(relaxed),
            "failures": dict(failures),
            "rmsd_by_tag": groups,
            "rmsd_all": {"all_atoms": _summary(rmsd_all), "heavy_atoms": _summary(rmsd_heavy)},
        },
        "gaps": {
            "model": str(gap_model) if gap_model is not None else None,
            "model_generated_geometry": _summary(gap_raw),
            "model_relaxed_geometry": _summary(gap_relaxed),
            "xtb": {
                **_summary(gap_xtb),
                "geometry": "relaxed" if relaxed else "generated",
                "label": "GFN2-xTB orbital gap (tblite) — cross-check, not B3LYP",
                "le_5eV_percent_of_sample": float(
                    100 * np.mean(gap_xtb[np.isfinite(gap_xtb)] <= GAP_THRESHOLD)
                )
                if np.isfinite(gap_xtb).any()
                else None,
            },
        },
        "timing_s": {
            **{k: round(v, 3) for k, v in timing.items()},
            "fixed_reference_cost": round(timing["read"] + timing["reference"], 3),
            "per_1000_without_relaxation": round(
                1000 * sum(timing[k] for k in per_molecule) / n, 3
            ),
            "per_relaxed_molecule": round(timing["relax"] / len(relaxed), 3) if relaxed else None,
        },
    }
    molecules = [
        {
            "index": k,
            "valid": bool(valid[k]),
            "reason": checks[k].reason,
            "smiles": checks[k].smiles,
            "key": keys[k],
            "unique": bool(unique[k]),
            "duplicate_of": int(duplicate_of[k]),
            "tag": str(tags[k]),
            "n_atoms": len(atoms[k]),
            "n_heavy": int(n_heavy[k]),
            "gap_model": gap_raw[k],
            "gap_model_relaxed": gap_relaxed[k],
            "gap_xtb": gap_xtb[k],
            "rmsd": rmsd_all[k],
            "rmsd_heavy": rmsd_heavy[k],
        }
        for k in range(n)
    ]
    plots = {
        "distributions": dists,
        "statistics": (gen_stats, ref_stats),
        "gaps": {
            "QM9 (B3LYP labels)": ref_gap,
            "generated (model)": gap_raw[np.isfinite(gap_raw)],
            "relaxed (model)": gap_relaxed[np.isfinite(gap_relaxed)],
            "relaxed (GFN2-xTB)" if relaxed else "generated (GFN2-xTB)": gap_xtb[
                np.isfinite(gap_xtb)
            ],
        },
        "rmsd": {
            f"{tag} ({kind})": arr[sample[(tags[sample] == tag) & np.isfinite(arr[sample])]]
            for tag in ("train", "val", "test", "novel")
            for kind, arr in (("all", rmsd_all), ("heavy", rmsd_heavy))
        },
    }
    return {"metrics": metrics, "molecules": molecules, "plots": plots}


# -- output ---------------------------------------------------------------------------------------
def _pct(v: float | None) -> str:
    return "—" if v is None or not math.isfinite(v) else f"{v:.1f}%"


def format_table1(metrics: dict[str, Any]) -> str:
    """Table 1 of the report as Markdown, with the paper's G-SchNet 50k column."""
    lines = [
        f"Generated: {metrics['n_generated']} molecules, {metrics['n_valid']} valid "
        f"({100 * metrics['validity']:.1f}%); percentages below are of the valid molecules.",
        "",
        "| row | count | % of valid | paper G-SchNet 50k |",
        "|---|---|---|---|",
    ]
    for row in metrics["table1"]:
        lines.append(
            f"| {row['row']} | {row['count']} | {_pct(row['percent'])} | "
            f"{_pct(row['paper_gschnet_50k'])} |"
        )
    ref = metrics["qm9_reference"]
    lines += [
        "",
        f"QM9 checker validity (ceiling): {_pct(100 * ref['checker_validity'])} of "
        f"{ref['checker_dropped'].get('n_checked', '?')} reference molecules; QM9 gap ≤ 5 eV: "
        f"{_pct(ref['gap_le_5eV_percent'])} (B3LYP labels).",
    ]
    if metrics["gap_source"]:
        lines.append(f"Gap row: {metrics['gap_source']}.")
    return "\n".join(lines) + "\n"


def _molecules_csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {
                k: ("" if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in row.items()
            }
        )
    return buf.getvalue()


def write_report(report: dict[str, Any], out_dir: Path) -> list[Path]:
    """Write metrics.json, table1.md, molecules.csv and the plots to ``out_dir``."""
    from deepatoms.analysis.generated_plots import (
        plot_distributions,
        plot_histograms,
        plot_statistics,
    )
    from deepatoms.core.files import atomic_write_text, write_json

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics, plots = report["metrics"], report["plots"]
    write_json(out_dir / "metrics.json", _finite(metrics))
    atomic_write_text(out_dir / "table1.md", format_table1(metrics))
    atomic_write_text(out_dir / "molecules.csv", _molecules_csv(report["molecules"]))
    files = [out_dir / "metrics.json", out_dir / "table1.md", out_dir / "molecules.csv"]
    files.append(plot_distributions(out_dir / "distributions.png", plots["distributions"]))
    files.append(plot_statistics(out_dir / "statistics.png", *plots["statistics"]))
    if any(np.isfinite(v).any() for k, v in plots["gaps"].items() if not k.startswith("QM9")):
        files.append(
            plot_histograms(
                out_dir / "gap.png", plots["gaps"], "HOMO-LUMO gap (eV)", threshold=GAP_THRESHOLD
            )
        )
    if any(np.isfinite(v).any() for v in plots["rmsd"].values()):
        files.append(plot_histograms(out_dir / "rmsd.png", plots["rmsd"], "RMSD to relaxed (Å)"))
    return files


def _finite(obj: Any) -> Any:
    """NaN / inf → None, numpy scalars → Python, recursively (strict JSON)."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
