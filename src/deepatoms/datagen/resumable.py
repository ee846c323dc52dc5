"""Shared machinery of the VIMPNN data generators (Morgan et al. 2020, the Augmented QM9,
Infinite Crystal and Crystal Growth sets; docs/vimpnn.md §8): resumable writing, recommended
splits by group, argument checks and provenance.

A generator walks through its base structures (molecules, crystal curves, grown clusters) in a
fixed order; the samples of each base structure (its scaled copies) are appended as one block.
Every ``flush_every`` base structures the whole dataset is rewritten atomically
(:func:`deepatoms.data.dataset.write_dataset`) with ``provenance["n_bases_done"]``, so an
interrupted run continues where it stopped when the same command is given again; different
settings are refused. Points that failed are listed in ``metadata["failures"]`` as
{group, scale, reason}.

Recommended split: one seeded permutation of the group ids
(:func:`deepatoms.data.splits.random_split`, fractions rounded to counts, test = the rest).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from deepatoms import __version__
from deepatoms.core.results import Result
from deepatoms.data.dataset import read_dataset, write_dataset
from deepatoms.data.packed import PackedSystems
from deepatoms.data.splits import random_split

__all__ = [
    "DatagenResult",
    "GeneratedDataset",
    "check_count",
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


class GeneratedDataset:
    """A dataset file written block by block, resumable (module docstring).

    Args:
        path: output file (.h5).
        source: ``metadata["source"]`` (the generating command).
        settings: everything that determines the data; a resumed run must give the same.
        n_bases: number of base structures of the complete dataset.
        units: ``metadata["units"]``.
        extra_metadata: further metadata keys (``bond_types``, ``bond_rule``…).
        provenance: further provenance entries (labeller, references…).
        flush_every: base structures between writes.
        overwrite: start again even if ``path`` holds a run.
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
        self.parts: list[PackedSystems] = []
        self.failures: list[dict[str, Any]] = []
        self.n_done = 0
        self.n_skipped = 0  # base structures already in the file when this run started
        self._wall = 0.0
        self._t0 = time.perf_counter()
        self._dirty = False
        if self.path.is_dir():
            raise ValueError(f"--out {self.path} is a folder; give a dataset file (.h5)")
        if self.path.exists() and not overwrite:
            self._load()

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
        self.parts = [data] if len(data) else []
        self.failures = list(meta.get("failures", []))
        self.n_done = self.n_skipped = int(prov.get("n_bases_done", 0))
        self._wall = float(prov.get("wall_time_s", 0.0))

    @property
    def complete(self) -> bool:
        """Whether every base structure is done."""
        return self.n_done >= self.n_bases

    @property
    def n_samples(self) -> int:
        """Samples held so far (written or pending)."""
        return sum(len(p) for p in self.parts)

    def add(
        self, samples: PackedSystems | None, failures: Sequence[Mapping[str, Any]] = ()
    ) -> None:
        """Record the next base structure: its samples (None or empty: none) and failures."""
        if samples is not None and len(samples):
            self.parts.append(samples)
        self.failures.extend(_jsonable(list(failures)))
        self.n_done += 1
        self._dirty = True
        if self.n_done % self.flush_every == 0:
            self.flush()

    def metadata(self) -> dict[str, Any]:
        """The metadata written with the data (units, source, provenance, failures…)."""
        wall = self._wall + time.perf_counter() - self._t0
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
                "complete": self.complete,
                "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "wall_time_s": round(wall, 3),
            },
        }

    def data(self) -> PackedSystems | None:
        """All samples so far as one pack (None if there are none)."""
        if not self.parts:
            return None
        if len(self.parts) > 1:
            self.parts = [PackedSystems.concatenate(self.parts)]
        return self.parts[0]

    def flush(self) -> None:
        """Write everything so far (nothing to write before the first sample)."""
        data = self.data()
        if data is None or not self._dirty:
            return
        write_dataset(self.path, data, self.metadata())
        self._dirty = False

    def summary(self, t0: float, **extra: Any) -> DatagenResult:
        """What a generator returns: ``out``, ``n_samples``, ``n_new`` (base structures done by
        this call), ``n_skipped``, ``n_failures``, ``complete``, ``extra``, ``wall_time_s``
        since ``t0`` (``time.perf_counter()``) and the ``failures`` of the whole file."""
        return DatagenResult(
            out=str(self.path),
            n_samples=self.n_samples,
            n_new=self.n_done - self.n_skipped,
            n_skipped=self.n_skipped,
            n_failures=len(self.failures),
            complete=self.complete,
            **extra,
            wall_time_s=round(time.perf_counter() - t0, 3),
            failures=list(self.failures),
        )

    @contextlib.contextmanager
    def session(self) -> Iterator[GeneratedDataset]:
        """Context in which base structures are added; finished ones are written on exit, also
        when interrupted (so the same command continues the run)."""
        try:
            yield self
        finally:
            self.flush()
