"""Shared machinery of the VIMPNN data generators (Morgan et al. 2020, the Augmented QM9,
Infinite Crystal and Crystal Growth sets; docs/vimpnn.md §8): resumable writing, recommended
splits by group, argument checks and provenance.

A generator has a fixed, ordered list of base structures (molecules, crystal cells, grown
clusters); each base structure's samples (its scaled copies) are labelled independently of the
others. The list is cut into chunks of ``flush_every`` base structures, computed in this process
or on Dask workers (:mod:`deepatoms.distribute`), and each finished chunk is written at once,
atomically, into the folder ``OUT.parts``. After the run, and also when it is interrupted, the
dataset file ``OUT`` is rewritten from all finished chunks in base-structure order, with
``provenance["n_bases_done"]``, ``["done_ranges"]`` and ``["complete"]``; the chunk folder is
removed once the file is complete. The same command given again computes only the missing chunks,
so no base structure is lost or written twice, and the result equals one uninterrupted serial
run; different settings are refused. Points that failed are listed in ``metadata["failures"]``
as {group, scale, reason}.

Recommended split: one seeded permutation of the group ids
(:func:`deepatoms.data.splits.random_split`, fractions rounded to counts, test = the rest).
"""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Callable, Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from deepatoms import __version__
from deepatoms.core.progress import Progress
from deepatoms.core.results import Result
from deepatoms.data.dataset import read_dataset, write_dataset
from deepatoms.data.packed import PackedSystems
from deepatoms.data.splits import random_split
from deepatoms.distribute.chunks import ChunkStore, chunk_ranges, parts_folder
from deepatoms.distribute.cluster import Cluster
from deepatoms.distribute.engine import run_chunks

__all__ = [
    "DatagenResult",
    "GeneratedDataset",
    "check_count",
    "label_bases",
    "labelled_pack",
    "parse_fractions",
    "split_labels",
    "versions",
]

SPLIT_NAMES = ("train", "val", "test")


class DatagenResult(Result):
    """What a generator wrote: ``out``, ``n_samples``/``n_systems``, timings, ``complete``
    (False when a resumable run stopped early) and ``failures`` (points skipped, with the
    reason)."""


def versions(*packages: str) -> dict[str, str]:
    """Installed versions of deepatoms and ``packages`` ("unknown" if absent)."""
    out = {"deepatoms": __version__}
    for package in packages:
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "unknown"
    return out


def check_count(value: Any, name: str, minimum: int = 1) -> int:
    """``value`` as an int ≥ ``minimum``, else a ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be a whole number ≥ {minimum}, got {value!r}")
    return int(value)


def parse_fractions(spec: str | Sequence[float], name: str = "--split") -> tuple[float, ...]:
    """Train/val/test fractions from ``"0.8,0.1,0.1"`` or a sequence: three numbers ≥ 0 with a
    positive training share, summing to 1."""
    try:
        parts = [float(x) for x in (spec.split(",") if isinstance(spec, str) else spec)]
    except (TypeError, ValueError):
        raise ValueError(
            f"{name} takes three fractions such as 0.8,0.1,0.1; got {spec!r}"
        ) from None
    if len(parts) != 3 or min(parts) < 0 or parts[0] <= 0 or abs(sum(parts) - 1) > 1e-6:
        raise ValueError(
            f"{name} takes three fractions train,val,test ≥ 0 (train > 0) that sum to 1, "
            f"such as 0.8,0.1,0.1; got {spec!r}"
        )
    return tuple(parts)


def split_labels(n_groups: int, fractions: Sequence[float], seed: int) -> np.ndarray:
    """``"train"``/``"val"``/``"test"`` for each of ``n_groups`` groups (seeded permutation;
    train and val counts rounded from the fractions, test = the rest)."""
    split = random_split(n_groups, float(fractions[0]), float(fractions[1]), None, seed=seed)
    labels = np.full(n_groups, "test", dtype="<U5")
    for name in ("train", "val"):
        labels[split[name]] = name
    return labels


def labelled_pack(
    samples: Sequence[Any],
    props: Mapping[str, Any],
    forces: Sequence[np.ndarray],
    bonds: Sequence[Any],
    bond_types: Sequence[str],
) -> PackedSystems:
    """The scaled copies ``samples`` of one base structure as a pack: system ``props`` (arrays,
    or scalars repeated for every sample), ``forces`` per sample (eV/Å) and the base
    structure's ``bonds`` kept for every copy (channels ``bond_types``)."""
    from deepatoms.data.bonds import bond_graph, replicate_bonds

    n = len(samples)
    system_props = {k: np.asarray(v) if np.ndim(v) else np.full(n, v) for k, v in props.items()}
    pack = PackedSystems.from_atoms(
        list(samples), system_props=system_props, atom_props={"forces": list(forces)}
    )
    pack.edges, _ = bond_graph(list(samples), replicate_bonds(bonds, n), list(bond_types))
    return pack


def _jsonable(obj: Any) -> Any:
    return json.loads(
        json.dumps(obj, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))
    )


def _save_chunk(path: Path, result: tuple[PackedSystems | None, list, dict]) -> None:
    """One finished chunk of a generator: its samples (HDF5) or, without samples, JSON."""
    pack, failures, stats = result
    extra = {"failures": _jsonable(list(failures)), "stats": _jsonable(dict(stats))}
    if pack is not None and len(pack):
        write_dataset(path, pack, {"units": {}, "source": "deepatoms chunk", "provenance": extra})
    else:
        path.write_text(json.dumps(extra), encoding="utf-8")


def _load_chunk(path: Path) -> tuple[PackedSystems | None, list, dict]:
    with open(path, "rb") as f:
        is_hdf5 = f.read(4) == b"\x89HDF"
    if is_hdf5:
        pack, meta = read_dataset(path)
        extra = meta["provenance"]
    else:
        pack, extra = None, json.loads(path.read_text(encoding="utf-8"))
    return pack, list(extra["failures"]), dict(extra["stats"])


def _merged(ranges: Sequence[tuple[int, int]]) -> list[list[int]]:
    """Sorted ``[start, stop)`` ranges with touching ones joined."""
    out: list[list[int]] = []
    for a, b in ranges:
        if out and out[-1][1] == a:
            out[-1][1] = b
        else:
            out.append([a, b])
    return out


class GeneratedDataset:
    """A dataset file computed in chunks of base structures, resumable (module docstring).

    Args:
        path: output file (.h5); finished chunks wait in ``PATH.parts`` until all are done.
        source: ``metadata["source"]`` (the generating command).
        settings: everything that determines the data; a resumed run must give the same.
        n_bases: number of base structures of the complete dataset.
        units: ``metadata["units"]``.
        extra_metadata: further metadata keys (``bond_types``, ``bond_rule``…).
        provenance: further provenance entries (labeller, references…).
        flush_every: base structures per chunk (the unit of work, of distribution and of
            resumption).
        overwrite: start again even if ``path`` or its chunk folder holds a run.
    """

    def __init__(
        self, path: str | Path, *, source: str, settings: Mapping[str, Any], n_bases: int,
        units: Mapping[str, str], extra_metadata: Mapping[str, Any] | None = None,
        provenance: Mapping[str, Any] | None = None, flush_every: int = 50, overwrite: bool = False,
    ) -> None:  # fmt: skip
        self.path = Path(path)
        self.source = source
        self.settings = _jsonable(dict(settings))
        self.n_bases = check_count(n_bases, "the number of base structures")
        self.flush_every = check_count(flush_every, "flush_every")
        self.units = dict(units)
        self.extra = dict(extra_metadata or {})
        self.provenance = dict(provenance or {})
        self.stats: dict[str, float] = {}  # summed over the chunks computed by this call
        self.failures: list[dict[str, Any]] = []
        self.n_samples = 0
        self._wall = 0.0
        self._t0 = time.perf_counter()
        self._finished: dict[str, Any] | None = None  # summary of a complete file found
        self.chunk_run: Any = None
        if self.path.is_dir():
            raise ValueError(f"--out {self.path} is a folder; give a dataset file (.h5)")
        self.store = ChunkStore(
            parts_folder(self.path), job=source, n_items=self.n_bases, settings=self.settings,
            save=self._save, load=_load_chunk, overwrite=overwrite,
        )  # fmt: skip
        if self.path.exists() and not overwrite:
            self._load()
        self.n_skipped = self.n_bases if self._finished else self.store.n_done()

    def _save(self, path: Path, result: tuple[PackedSystems | None, list, dict]) -> None:
        _save_chunk(path, result)
        for key, value in result[2].items():
            self.stats[key] = self.stats.get(key, 0) + value

    def _load(self) -> None:
        try:
            data, meta = read_dataset(self.path)
        except ValueError as exc:
            raise ValueError(
                f"{self.path} exists and is not a dataset this command can continue ({exc}); "
                "pass --overwrite to replace it or choose another --out"
            ) from None
        prov = meta.get("provenance", {})
        if meta.get("source") != self.source or "settings" not in prov:
            raise ValueError(
                f"{self.path} was not written by `{self.source}`; pass --overwrite to replace "
                "it or choose another --out"
            )
        saved = prov["settings"]
        diff = [
            f"{k}: {saved.get(k)!r} (saved) vs {self.settings.get(k)!r}"
            for k in sorted(set(saved) | set(self.settings))
            if saved.get(k) != self.settings.get(k)
        ]
        if diff:
            raise ValueError(
                f"cannot continue {self.path}: the settings differ ({'; '.join(diff)}); repeat "
                "the saved settings to continue, pass --overwrite to start again, or choose "
                "another --out"
            )
        self._wall = float(prov.get("wall_time_s", 0.0))
        if prov.get("complete") and not self.store.done():
            self._finished = {"n_samples": len(data), "failures": list(meta.get("failures", []))}
            self.failures = self._finished["failures"]
            self.n_samples = len(data)
        elif not self.store.folder.exists():
            # the chunk folder is gone (or the file predates it): what the file holds is one
            # finished prefix of the base structures when it says so, else start again
            ranges = prov.get("done_ranges", [[0, int(prov.get("n_bases_done", 0))]])
            if len(ranges) == 1 and ranges[0][0] == 0 and ranges[0][1] > 0:
                self.store.save(0, int(ranges[0][1]), (data, meta.get("failures", []), {}))
                self.stats = {}
            elif ranges and ranges != [[0, 0]]:
                raise ValueError(
                    f"{self.path} is unfinished and its chunk folder {self.store.folder} is "
                    "missing; pass --overwrite to start again"
                )

    @property
    def n_done(self) -> int:
        """Base structures finished (in the file or the chunk folder)."""
        return self.n_bases if self._finished else self.store.n_done()

    @property
    def complete(self) -> bool:
        """Whether every base structure is done."""
        return self.n_done >= self.n_bases

    def run(
        self, task: Callable[..., tuple[PackedSystems | None, list, dict]], items: Sequence[Any],
        args: Sequence[Any] = (), *, cluster: Cluster | None = None,
        progress: Progress | None = None, limit: int | None = None,
    ) -> None:  # fmt: skip
        """Compute the missing chunks with ``task(items[a:b], *args, on_item=None)`` →
        ``(pack or None, failures, stats)``, here or on ``cluster``; then (also when
        interrupted) write the file from all finished chunks. ``limit``: at most this many
        new base structures."""
        if len(items) != self.n_bases:
            raise ValueError(f"{len(items)} items given for {self.n_bases} base structures")
        if self._finished:
            if progress is not None:
                progress(self.n_bases, self.n_bases)
            return
        ranges = chunk_ranges(self.store.missing(), self.flush_every, limit)
        try:
            self.chunk_run = run_chunks(task, items, ranges, self.store, cluster, args=args,
                                        progress=progress, name="datagen")  # fmt: skip
        finally:
            self.write()

    def metadata(self) -> dict[str, Any]:
        """The metadata written with the data (units, source, provenance, failures…)."""
        wall = self._wall + time.perf_counter() - self._t0
        done = self.store.done()
        return {
            "units": dict(self.units),
            "source": self.source,
            **self.extra,
            "failures": list(self.failures),
            "provenance": {
                **self.provenance,
                "settings": self.settings,
                "n_bases": self.n_bases,
                "n_bases_done": self.n_done,
                "done_ranges": _merged(done),
                "complete": self.complete,
                "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "wall_time_s": round(wall, 3),
            },
        }

    def write(self) -> None:
        """Write the file from every finished chunk, in base-structure order (nothing before
        the first sample); remove the chunk folder once the file is complete."""
        if self._finished:
            return
        packs, failures = [], []
        for _, _, (pack, fails, _) in self.store.results():
            if pack is not None:
                packs.append(pack)
            failures.extend(fails)
        self.failures = failures
        self.n_samples = sum(len(p) for p in packs)
        if packs:
            data = PackedSystems.concatenate(packs) if len(packs) > 1 else packs[0]
            write_dataset(self.path, data, self.metadata())
        if self.complete:
            self.store.remove()
            self._finished = {"n_samples": self.n_samples, "failures": failures}

    def summary(self, t0: float, **extra: Any) -> DatagenResult:
        """What a generator returns: ``out``, ``n_samples``, ``n_new`` (base structures done by
        this call), ``n_skipped``, ``n_failures``, ``complete``, ``workers``, ``extra``,
        ``wall_time_s`` since ``t0`` (``time.perf_counter()``) and the ``failures`` of the whole
        file."""
        return DatagenResult(
            out=str(self.path),
            n_samples=self.n_samples,
            n_new=self.n_done - self.n_skipped,
            n_skipped=self.n_skipped,
            n_failures=len(self.failures),
            complete=self.complete,
            workers=self.chunk_run["workers"] if self.chunk_run else 1,
            **extra,
            wall_time_s=round(time.perf_counter() - t0, 3),
            failures=list(self.failures),
        )


def label_bases(
    bases: Sequence[Any], label: Callable[..., tuple[PackedSystems | None, list, dict]],
    *args: Any, on_item: Callable[[int], None] | None = None,
) -> tuple[PackedSystems | None, list, dict]:  # fmt: skip
    """A chunk task for :meth:`GeneratedDataset.run`: ``label(base, *args)`` → ``(pack or None,
    failures, stats)`` for each base structure, joined into one pack, failures and summed
    stats."""
    packs, failures, stats = [], [], {}
    for k, base in enumerate(bases, start=1):
        pack, fails, st = label(base, *args)
        if pack is not None and len(pack):
            packs.append(pack)
        failures.extend(fails)
        for key, value in st.items():
            stats[key] = stats.get(key, 0) + value
        if on_item is not None:
            on_item(k)
    joined = (
        None if not packs else packs[0] if len(packs) == 1 else PackedSystems.concatenate(packs)
    )
    return joined, failures, stats
