"""A folder of finished chunks: how a chunked run survives a kill and continues.

Items ``0 … n_items-1`` of a job are computed in chunks, contiguous ranges ``[start, stop)``.
Each finished chunk is one file ``chunk-START-STOP.part`` in the folder, written atomically
(:func:`deepatoms.core.files.atomic_target`) by the process that runs the command, as the chunk
arrives. ``manifest.json`` holds the job's name, item count and settings; a rerun with other
settings is refused instead of mixing two runs. A rerun computes only the ranges no file
covers, so no item is computed into the output twice or lost; ranges never overlap because new
chunks are cut from the missing ranges only. The file format of a chunk belongs to the job
(``save(path, result)`` / ``load(path)``). A file ``lock`` holds the process id of the run
filling the folder; a second live run of the same command is refused, a killed one is taken
over.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from deepatoms.core.errors import DeepatomsError
from deepatoms.core.files import (
    atomic_target,
    atomic_write_text,
    json_ready,
    read_json,
    write_json,
)

__all__ = [
    "ChunkStore",
    "MemoryStore",
    "chunk_ranges",
    "load_arrays",
    "parts_folder",
    "save_arrays",
]

_NAME = re.compile(r"^chunk-(\d+)-(\d+)\.part$")
FORMAT = "deepatoms-chunks"


def parts_folder(out: str | Path) -> Path:
    """The chunk folder of the output ``out``: ``OUT.parts`` next to a file, ``OUT/.parts``
    inside a folder output."""
    out = Path(out)
    return out / ".parts" if out.is_dir() else out.with_name(out.name + ".parts")


def save_arrays(path: Path, arrays: Mapping[str, Any]) -> None:
    """A chunk codec for results that are named numpy arrays (``.npz`` content)."""
    import numpy as np

    with open(path, "wb") as f:
        np.savez(f, **{k: np.asarray(v) for k, v in arrays.items()})


def load_arrays(path: Path) -> dict[str, Any]:
    """Read a chunk written by :func:`save_arrays` (no pickled objects are loaded)."""
    import numpy as np

    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def chunk_ranges(
    missing: list[tuple[int, int]], size: int, limit: int | None = None
) -> list[tuple[int, int]]:
    """``missing`` ranges cut into chunks of at most ``size`` items, in order; with ``limit``
    only the first ``limit`` items."""
    if size < 1:
        raise ValueError(f"chunk size must be ≥ 1, got {size!r}")
    out: list[tuple[int, int]] = []
    left = limit
    for start, stop in missing:
        for a in range(start, stop, size):
            b = min(a + size, stop)
            if left is not None:
                if left <= 0:
                    return out
                b = min(b, a + left)
                left -= b - a
            out.append((a, b))
    return out


class ChunkStore:
    """The chunk folder of one job (module docstring).

    Args:
        folder: the folder (created on the first save).
        job: what the job is (``"deepatoms datagen scaled"``); part of the manifest.
        n_items: number of items of the whole job.
        settings: everything that determines the results; a rerun must give the same.
        save: ``save(path, result)`` writes one chunk's result to ``path``.
        load: ``load(path)`` reads it back.
        overwrite: discard the chunks of an earlier run.
    """

    def __init__(
        self, folder: str | Path, *, job: str, n_items: int, settings: Mapping[str, Any],
        save: Callable[[Path, Any], None], load: Callable[[Path], Any], overwrite: bool = False,
    ) -> None:  # fmt: skip
        self.folder = Path(folder)
        self.job = job
        self.n_items = int(n_items)
        self.settings = json_ready(dict(settings))
        self._save, self._load = save, load
        self._locked = False
        if self.folder.exists() and not self.folder.is_dir():
            raise DeepatomsError(
                f"{self.folder} is a file, but this run keeps its finished chunks there; move "
                "it away or choose another output"
            )
        self._check_lock()
        if overwrite:
            self.remove()
        elif self.folder.exists():
            self._check_manifest()

    def _check_lock(self) -> None:
        """Refuse a folder another live process is filling (the same command started twice)."""
        lock = self.folder / "lock"
        try:
            pid = int(lock.read_text(encoding="utf-8").strip())
        except (OSError, ValueError):
            return
        if pid == os.getpid():
            return
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return  # its process was killed: this run takes over
        except PermissionError:
            pass
        raise DeepatomsError(
            f"another process (pid {pid}) is writing chunks to {self.folder}; wait for it to "
            "finish or stop it, then run the command again (a Python script that uses workers "
            'must start them under `if __name__ == "__main__":`)'
        )

    def _check_manifest(self) -> None:
        path = self.folder / "manifest.json"
        try:
            manifest = read_json(path)
        except (OSError, ValueError):
            manifest = None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise DeepatomsError(
                f"{self.folder} is not a chunk folder of deepatoms (no readable manifest.json); "
                "move it away or pass --overwrite"
            )
        theirs = manifest.get("settings", {})
        diff = [
            f"{k}: {theirs.get(k)!r} (saved) vs {self.settings.get(k)!r}"
            for k in sorted(set(theirs) | set(self.settings))
            if theirs.get(k) != self.settings.get(k)
        ]
        if manifest.get("job") != self.job or manifest.get("n_items") != self.n_items:
            diff.insert(0, f"job {manifest.get('job')!r} of {manifest.get('n_items')} items "
                           f"(saved) vs {self.job!r} of {self.n_items}")  # fmt: skip
        if diff:
            raise DeepatomsError(
                f"cannot continue the unfinished run in {self.folder}: the settings differ "
                f"({'; '.join(diff)}); repeat the saved settings to continue, pass --overwrite "
                "to start again, or choose another output"
            )

    def _entries(self) -> Iterator[tuple[int, int, Path]]:
        if not self.folder.is_dir():
            return
        for path in self.folder.iterdir():
            match = _NAME.match(path.name)
            if match:
                yield int(match[1]), int(match[2]), path

    def done(self) -> list[tuple[int, int]]:
        """The finished ranges, sorted; overlapping or out-of-range files are an error."""
        ranges = sorted((a, b) for a, b, _ in self._entries())
        end = 0
        for a, b in ranges:
            if a < end or b <= a or b > self.n_items:
                raise DeepatomsError(
                    f"{self.folder} holds chunk files that overlap or lie outside 0…"
                    f"{self.n_items} (chunk {a}-{b}); it was changed by hand; pass --overwrite "
                    "to start again"
                )
            end = b
        return ranges

    def n_done(self) -> int:
        """Items finished so far."""
        return sum(b - a for a, b in self.done())

    def missing(self) -> list[tuple[int, int]]:
        """The ranges of items no chunk covers, in order."""
        out, end = [], 0
        for a, b in self.done():
            if a > end:
                out.append((end, a))
            end = b
        if end < self.n_items:
            out.append((end, self.n_items))
        return out

    @property
    def complete(self) -> bool:
        """Whether every item is in a chunk."""
        return not self.missing()

    def save(self, start: int, stop: int, result: Any) -> Path:
        """Write the result of items ``[start, stop)`` atomically; returns the chunk file."""
        if not self._locked:
            self.folder.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.folder / "lock", f"{os.getpid()}\n")
            self._locked = True
        if not (self.folder / "manifest.json").exists():
            write_json(self.folder / "manifest.json", {
                "format": FORMAT, "version": 1, "job": self.job, "n_items": self.n_items,
                "settings": self.settings,
            })  # fmt: skip
        path = self.folder / f"chunk-{start:09d}-{stop:09d}.part"
        with atomic_target(path) as tmp:
            self._save(tmp, result)
        return path

    def results(self) -> Iterator[tuple[int, int, Any]]:
        """``(start, stop, result)`` of every finished chunk, in item order."""
        for a, b in self.done():
            path = self.folder / f"chunk-{a:09d}-{b:09d}.part"
            try:
                yield a, b, self._load(path)
            except (OSError, ValueError, KeyError) as exc:
                raise DeepatomsError(
                    f"chunk file {path} cannot be read ({exc}); delete it and rerun the same "
                    "command to compute it again"
                ) from None

    def remove(self) -> None:
        """Delete the folder (after the output is complete, or to start again)."""
        if self.folder.is_dir():
            shutil.rmtree(self.folder)


class MemoryStore(ChunkStore):
    """A :class:`ChunkStore` that keeps the chunks in memory: for runs that need no resumption
    (library calls without an output folder)."""

    def __init__(self, n_items: int) -> None:
        self.folder = Path("<memory>")
        self.job, self.n_items, self.settings = "in memory", int(n_items), {}
        self._chunks: dict[tuple[int, int], Any] = {}

    def done(self) -> list[tuple[int, int]]:
        return sorted(self._chunks)

    def save(self, start: int, stop: int, result: Any) -> Path:
        self._chunks[(start, stop)] = result
        return self.folder

    def results(self) -> Iterator[tuple[int, int, Any]]:
        for a, b in self.done():
            yield a, b, self._chunks[(a, b)]

    def remove(self) -> None:
        self._chunks.clear()
