"""``deepatoms evaluate-generated``: the G-SchNet evaluation suite (docs/gschnet.md §11).

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
from deepatoms.distribute.chunks import (
    ChunkStore,
    MemoryStore,
    chunk_ranges,
    load_arrays,
    save_arrays,
)
from deepatoms.distribute.cluster import Cluster, on_cluster
from deepatoms.distribute.engine import run_chunks
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


def _relax_molecules(
    items: Sequence[tuple[int, np.ndarray, np.ndarray, Any]], relax: str, xtb_gaps: bool,
    on_item: Any = None,
) -> dict[str, np.ndarray]:  # fmt: skip
    """A chunk task: relax each molecule ``(index, numbers, positions Å, RDKit mol)`` with
    ``relax`` (``xtb``, ``mmff``, ``none``) and, with ``xtb_gaps``, its GFN2-xTB gap (eV) at the
    relaxed geometry (the generated one if not relaxed); failures are named, not raised."""
    pos_out, relax_err, gaps, gap_err = [], [], [], []
    xtb_s = 0.0
    for n, (_, numbers, positions, mol) in enumerate(items, start=1):
        pos, err = positions, ""
        if relax != "none":
            try:
                pos, _ = relax_molecule(Atoms(numbers=numbers, positions=positions), relax, mol)
            except Exception as exc:  # SCF failures, missing MMFF parameters …
                pos, err = positions, type(exc).__name__
        pos_out.append(np.asarray(pos, dtype=np.float64))
        relax_err.append(err)
        gap, gerr = math.nan, ""
        if xtb_gaps:
            t1 = time.perf_counter()
            try:
                gap = xtb_gap(numbers, pos)
            except Exception as exc:  # reported as a failure count
                gerr = type(exc).__name__
            xtb_s += time.perf_counter() - t1
        gaps.append(gap)
        gap_err.append(gerr)
        if on_item is not None:
            on_item(n)
    return {
        "index": np.array([k for k, *_ in items], dtype=np.int64),
        "positions": np.concatenate(pos_out).reshape(-1, 3),
        "relax_error": np.array(relax_err, dtype=str),
        "gap_xtb": np.array(gaps, dtype=np.float64),
        "gap_error": np.array(gap_err, dtype=str),
        "xtb_seconds": np.array(xtb_s),
    }


# -- the report -----------------------------------------------------------------------------------
def evaluate_report(
    generated: Path, reference: Path, train_splits: Sequence[Path] = (), relax: str = "xtb",
    relax_sample: int = 100, gap_model: Path | None = None, xtb_gaps: bool = False, seed: int = 0,
    progress: bool = True, workers: int = 1, scheduler: str | None = None,
    out_dir: Path | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Evaluate generated molecules against a prepared QM9 reference (module docstring).

    Returns a dict: ``metrics`` (JSON-ready: counts, Table 1 rows, statistics, distribution
    distances, RMSDs, gaps, timings), ``molecules`` (per-molecule rows) and ``plots`` (arrays
    for :mod:`deepatoms.analysis.generated_plots`).

    The relaxations and xTB gaps of the sample run in chunks of 10 molecules, on ``workers``
    local Dask processes or the cluster at ``scheduler`` when given; with ``out_dir`` finished
    chunks wait in ``out_dir/.parts`` and the same call after a kill continues from them.
    """
    if not Path(reference).is_file():
        raise FileNotFoundError(f"reference dataset '{reference}' does not exist")
    if relax not in RELAX_METHODS:
        raise ValueError(f"unknown --relax {relax!r}; choose one of {', '.join(RELAX_METHODS)}")
    if relax_sample < 0:
        raise ValueError(f"--relax-sample must be ≥ 0, got {relax_sample}")
    ev = _Evaluation(Path(generated), Path(reference), gap_model, progress)
    ev.check_and_compare(train_splits)
    parts = Path(out_dir) / ".parts" if out_dir is not None else None
    with on_cluster(workers, scheduler, progress) as cluster:
        ev.relax_sample(relax, relax_sample, seed, xtb_gaps, cluster, parts)
    return {"metrics": ev.metrics(), "molecules": ev.molecules(), "plots": ev.plots()}


class _Evaluation:
    """The stages of :func:`evaluate_report`, each timed: read, check, reference, match,
    statistics, distributions, gap model, relaxation of a sample, xTB gaps."""

    def __init__(self, generated: Path, reference: Path, gap_model: Path | None,
                 progress: bool) -> None:  # fmt: skip
        from deepatoms.data.dataset import read_dataset

        self.generated, self.reference, self.gap_model = generated, reference, gap_model
        self.progress = progress
        self.timing: dict[str, float] = {}
        self.t_all = t0 = time.perf_counter()
        self.atoms, self.provenance = read_generated(generated)
        self.ref, self.ref_meta = read_dataset(reference)
        self.loaded = None
        if gap_model is not None:
            from deepatoms.models.loading import PROPERTY_FAMILIES, load_model

            self.loaded = load_model(gap_model, expect=PROPERTY_FAMILIES)
            if self.loaded.unit != "eV":
                raise ValueError(
                    f"--gap-model predicts {self.loaded.property!r} in {self.loaded.unit!r}; "
                    "pass a model of the HOMO-LUMO gap in eV"
                )
        n = len(self.atoms)
        self.gap_raw, self.gap_relaxed, self.gap_xtb = (np.full(n, np.nan) for _ in range(3))
        self.rmsd_all, self.rmsd_heavy = np.full(n, np.nan), np.full(n, np.nan)
        self.relaxed: dict[int, np.ndarray] = {}
        self.failures: Counter = Counter()
        self.timing["read"] = time.perf_counter() - t0

    def _bar(self, label: str) -> ProgressBar:
        return ProgressBar(label, quiet=not self.progress)

    def check_and_compare(self, train_splits: Sequence[Path]) -> None:
        """Validity, uniqueness and novelty; statistics, distributions, model gaps."""
        atoms, ref = self.atoms, self.ref
        t0 = time.perf_counter()
        with self._bar("checking molecules") as cb:
            self.checks = check_all(atoms, cb)
        self.valid = np.array([c.valid for c in self.checks], bool)
        self.keys = [c.key for c in self.checks]
        self.timing["check"] = time.perf_counter() - t0
        t0 = time.perf_counter()  # the reference side: a fixed cost
        seen, self.notes = training_labels(ref, self.reference, train_splits)
        ref_pairs, ref_orders = _reference_bonds(ref, self.ref_meta)
        if "rings" in ref.system_props:
            ref_rings = np.asarray(ref.system_props["rings"], np.int64)
        else:
            ref_rings = np.array([ring_counts(s) for s in ref.system_props["canonical_smiles"]])
        ref_numbers = np.split(ref.numbers, ref.offsets[1:-1])
        self.ref_stats = molecule_statistics(ref_numbers, ref_orders, ref_rings)
        ref_samples = _samples(ref.numbers, ref.positions, ref.offsets, ref_pairs)
        self.timing["reference"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        self.unique, self.duplicate_of = first_occurrence(self.keys, self.valid)
        self.tags = tag_molecules(self.keys, self.valid, seen)
        self.n_heavy = np.array([int(np.sum(a.numbers != 1)) for a in atoms], np.int64)
        self.timing["match"] = time.perf_counter() - t0
        self._statistics()
        t0 = time.perf_counter()
        gen_pack = PackedSystems.from_atoms([atoms[k] for k in self.uidx])
        gen_pairs = np.concatenate(
            [self.checks[k].bonds + gen_pack.offsets[n] for n, k in enumerate(self.uidx)]
        ).reshape(-1, 2)
        gen_samples = _samples(gen_pack.numbers, gen_pack.positions, gen_pack.offsets, gen_pairs)
        self.dists = _distributions(gen_samples, ref_samples)
        self.timing["distributions"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        if self.loaded is not None:
            from deepatoms.models.inference import predict_packed

            with self._bar("gap model") as cb:
                self.gap_raw[self.uidx] = predict_packed(self.loaded, gen_pack, progress=cb)
        self.timing["gap_model"] = time.perf_counter() - t0

    def _statistics(self) -> None:
        t0 = time.perf_counter()
        self.uidx = uidx = np.flatnonzero(self.unique)
        if len(uidx) == 0:
            reasons = dict(Counter(c.reason for c in self.checks))
            raise ValueError(
                f"none of the {len(self.atoms)} molecules in '{self.generated}' is valid "
                f"({reasons}); nothing to compare"
            )
        gen_rings = np.array([ring_counts(self.checks[k].smiles) for k in uidx]).reshape(-1, 4)
        self.gen_stats = molecule_statistics(
            [self.atoms[k].numbers for k in uidx], [self.checks[k].orders for k in uidx], gen_rings
        )
        self.timing["statistics"] = time.perf_counter() - t0

    def relax_sample(self, relax: str, size: int, seed: int, xtb_gaps: bool,
                     cluster: Cluster | None = None, parts: Path | None = None) -> None:  # fmt: skip
        """Relax a random sample of the unique molecules (RMSD to the generated geometry) and,
        when asked, compute their GFN2-xTB gaps, in chunks of molecules here or on ``cluster``
        (finished chunks wait in ``parts`` when given); model gaps on the relaxed geometries.
        ``timing["relax"]`` is the wall time of the chunked stage, ``timing["xtb_gap"]`` the
        summed time of the gap calculations in it."""
        self.relax, self.xtb_gaps = relax, xtb_gaps
        rng = np.random.default_rng(seed)
        self.n_sample = n_sample = min(int(size), len(self.uidx))
        self.sample = (np.sort(rng.choice(self.uidx, size=n_sample, replace=False)) if n_sample
                       else self.uidx[:0])  # fmt: skip
        t0 = time.perf_counter()
        self.timing["xtb_gap"] = 0.0
        if (relax != "none" or xtb_gaps) and n_sample:
            items = [(int(k), self.atoms[k].numbers, self.atoms[k].positions, self.checks[k].mol)
                     for k in self.sample]  # fmt: skip
            settings = {"generated": str(self.generated.resolve()), "relax": relax,
                        "xtb_gaps": xtb_gaps, "sample": [int(k) for k in self.sample]}  # fmt: skip
            store = (ChunkStore(parts, job="deepatoms evaluate-generated", n_items=n_sample,
                                settings=settings, save=save_arrays, load=load_arrays)
                     if parts is not None else MemoryStore(n_sample))  # fmt: skip
            with self._bar(f"relaxing ({relax})" if relax != "none" else "GFN2-xTB gaps") as cb:
                run_chunks(_relax_molecules, items, chunk_ranges(store.missing(), 10), store,
                           cluster, args=(relax, xtb_gaps), progress=cb, name="relax")  # fmt: skip
            for _, _, r in store.results():
                self._take(r)
            store.remove()
        self.timing["relax"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        if self.loaded is not None and self.relaxed:
            from deepatoms.models.inference import predict_packed

            done = np.array(sorted(self.relaxed), np.int64)
            pack = PackedSystems.from_atoms(
                [Atoms(numbers=self.atoms[k].numbers, positions=self.relaxed[int(k)]) for k in done]
            )
            self.gap_relaxed[done] = predict_packed(self.loaded, pack)
        self.timing["gap_model"] += time.perf_counter() - t0

    def _take(self, r: dict[str, np.ndarray]) -> None:
        """Record one chunk of :func:`_relax_molecules`."""
        start = 0
        for n, k in enumerate(r["index"].tolist()):
            a = self.atoms[k]
            stop = start + len(a)
            if r["relax_error"][n]:
                self.failures[str(r["relax_error"][n])] += 1
            elif self.relax != "none":
                pos = r["positions"][start:stop]
                self.relaxed[k] = pos
                self.rmsd_all[k] = kabsch_rmsd(a.positions, pos)
                self.rmsd_heavy[k] = kabsch_rmsd(a.positions, pos, a.numbers != 1)
            if r["gap_error"][n]:
                self.failures[f"xtb_gap:{r['gap_error'][n]}"] += 1
            self.gap_xtb[k] = r["gap_xtb"][n]
            start = stop
        self.timing["xtb_gap"] += float(r["xtb_seconds"])

    def _table1(self) -> tuple[list[dict[str, Any]], str | None]:
        """Table 1 rows (with the paper's numbers) and where the gap column comes from."""
        all_relaxed = self.relax != "none" and len(self.relaxed) == len(self.uidx)
        gap_row, gap_source = None, None
        if self.loaded is not None:
            gap_row = self.gap_relaxed if all_relaxed else self.gap_raw
            where = f"relaxed ({self.relax})" if all_relaxed else "generated"
            gap_source = (f"model {self.loaded.property!r} on {where} geometries (substitute for "
                          "the paper's B3LYP gap)")  # fmt: skip
        rows = table1(self.valid, self.unique, self.tags, self.n_heavy, gap_row, GAP_THRESHOLD)
        for row in rows:
            row["paper_gschnet_50k"] = PAPER_TABLE1.get(row["row"])
        return rows, gap_source

    def metrics(self) -> dict[str, Any]:
        """The JSON-ready metrics (``metrics.json``)."""
        rows, gap_source = self._table1()
        self.timing["total"] = time.perf_counter() - self.t_all
        valid, unique, tags = self.valid, self.unique, self.tags
        return {
            "generated": str(self.generated),
            "reference": str(self.reference),
            "provenance": self.provenance,
            "training_set": self.notes,
            "n_generated": len(self.atoms),
            "n_valid": int(valid.sum()),
            "validity": float(valid.mean()),
            "invalid_reasons": dict(Counter(c.reason for c in self.checks if not c.valid)),
            "n_unique": int(unique.sum()),
            "n_duplicates": int(valid.sum() - unique.sum()),
            "tags_unique": {t: int(np.sum(tags[unique] == t)) for t in _TAGS},
            "table1": rows,
            "table1_percent_of": "valid molecules",
            "gap_source": gap_source,
            "qm9_reference": self._reference_summary(),
            "statistics": {"generated_unique": self.gen_stats, "qm9": self.ref_stats},
            "distributions": {
                name: {k: d[k] for k in ("w1", "tv", "n_generated", "n_reference", "unit")}
                for name, d in self.dists.items()
            },
            "relaxation": self._relaxation_summary(),
            "gaps": self._gap_summary(),
            "timing_s": self._timing_summary(),
        }

    def _reference_summary(self) -> dict[str, Any]:
        dropped = self.ref_meta.get("dropped", {})
        checked = dropped.get("n_checked")
        ref_gap = self._ref_gap()
        return {
            "checker_validity": dropped["n_valid"] / checked if checked else math.nan,
            "checker_dropped": {k: v for k, v in dropped.items() if k != "qm9_index"},
            "n_molecules": len(self.ref),
            "gap_le_5eV_percent": (
                float(100 * np.mean(ref_gap <= GAP_THRESHOLD)) if len(ref_gap) else None
            ),
            "gap_source": "QM9 labels (B3LYP/6-31G(2df,p))",
        }

    def _ref_gap(self) -> np.ndarray:
        return np.asarray(self.ref.system_props.get("gap", np.zeros(0)), float)

    def _relaxation_summary(self) -> dict[str, Any]:
        sample, tags = self.sample, self.tags
        groups = {}
        for tag in _TAGS:
            sel = sample[tags[sample] == tag] if self.n_sample else sample
            groups[tag] = {"all_atoms": _summary(self.rmsd_all[sel]),
                           "heavy_atoms": _summary(self.rmsd_heavy[sel])}  # fmt: skip
        return {
            "method": self.relax,
            "method_label": _RELAX_LABELS[self.relax],
            "sample_size": self.n_sample if self.relax != "none" or self.xtb_gaps else 0,
            "n_relaxed": len(self.relaxed),
            "failures": dict(self.failures),
            "rmsd_by_tag": groups,
            "rmsd_all": {
                "all_atoms": _summary(self.rmsd_all),
                "heavy_atoms": _summary(self.rmsd_heavy),
            },
        }

    def _gap_summary(self) -> dict[str, Any]:
        xtb = self.gap_xtb[np.isfinite(self.gap_xtb)]
        return {
            "model": str(self.gap_model) if self.gap_model is not None else None,
            "model_generated_geometry": _summary(self.gap_raw),
            "model_relaxed_geometry": _summary(self.gap_relaxed),
            "xtb": {
                **_summary(self.gap_xtb),
                "geometry": "relaxed" if self.relaxed else "generated",
                "label": "GFN2-xTB orbital gap (tblite) — cross-check, not B3LYP",
                "le_5eV_percent_of_sample": (
                    float(100 * np.mean(xtb <= GAP_THRESHOLD)) if len(xtb) else None
                ),
            },
        }

    def _timing_summary(self) -> dict[str, Any]:
        t, n_relaxed = self.timing, len(self.relaxed)
        per_molecule = ("check", "match", "statistics", "distributions", "gap_model")
        return {
            **{k: round(v, 3) for k, v in t.items()},
            "fixed_reference_cost": round(t["read"] + t["reference"], 3),
            "per_1000_without_relaxation": round(
                1000 * sum(t[k] for k in per_molecule) / len(self.atoms), 3
            ),
            "per_relaxed_molecule": round(t["relax"] / n_relaxed, 3) if n_relaxed else None,
        }

    def molecules(self) -> list[dict[str, Any]]:
        """One row per generated molecule (``molecules.csv``)."""
        return [
            {
                "index": k,
                "valid": bool(self.valid[k]),
                "reason": c.reason,
                "smiles": c.smiles,
                "key": self.keys[k],
                "unique": bool(self.unique[k]),
                "duplicate_of": int(self.duplicate_of[k]),
                "tag": str(self.tags[k]),
                "n_atoms": len(self.atoms[k]),
                "n_heavy": int(self.n_heavy[k]),
                "gap_model": self.gap_raw[k],
                "gap_model_relaxed": self.gap_relaxed[k],
                "gap_xtb": self.gap_xtb[k],
                "rmsd": self.rmsd_all[k],
                "rmsd_heavy": self.rmsd_heavy[k],
            }
            for k, c in enumerate(self.checks)
        ]

    def plots(self) -> dict[str, Any]:
        """The arrays the report's plots draw."""
        sample, tags = self.sample, self.tags
        xtb_label = "relaxed (GFN2-xTB)" if self.relaxed else "generated (GFN2-xTB)"
        return {
            "distributions": self.dists,
            "statistics": (self.gen_stats, self.ref_stats),
            "gaps": {
                "QM9 (B3LYP labels)": self._ref_gap(),
                "generated (model)": self.gap_raw[np.isfinite(self.gap_raw)],
                "relaxed (model)": self.gap_relaxed[np.isfinite(self.gap_relaxed)],
                xtb_label: self.gap_xtb[np.isfinite(self.gap_xtb)],
            },
            "rmsd": {
                f"{tag} ({kind})": arr[sample[(tags[sample] == tag) & np.isfinite(arr[sample])]]
                for tag in _TAGS
                for kind, arr in (("all", self.rmsd_all), ("heavy", self.rmsd_heavy))
            },
        }


_TAGS = ("train", "val", "test", "novel")
_RELAX_LABELS = {
    "xtb": "GFN2-xTB (tblite), BFGS to fmax 0.05 eV/Å — substitute for the paper's DFT",
    "mmff": "RDKit MMFF94 — substitute for the paper's DFT",
    "none": "not relaxed",
}


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
