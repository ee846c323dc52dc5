"""Compute the missing chunks of a job, here or on Dask workers, and store each as it arrives.

A task is a top-level function ``task(items, *args, on_item=None)`` that returns the result of
a slice of items; it must depend on nothing but its arguments (seeds come from the item
indices, never from the order in which chunks run), so a chunk computed on a worker equals the
same chunk computed here and a rerun after a crash computes the same values. On Dask, the
arguments shared by all chunks are sent to the workers once (``Client.scatter``); a chunk whose
worker dies is computed again on another worker by the scheduler (up to
``distributed.scheduler.allowed-failures`` times), and because results are stored by their item
range, a chunk computed twice is still written once. Dask's worker processes start with glibc
told to hand freed memory back at once (``MALLOC_TRIM_THRESHOLD_``); torch then page-faults its
tensors in again on every call (model inference ran at half speed), so the workers are switched
to keep freed memory (:func:`deepatoms.core.allocator.keep_freed_memory`) before the chunks.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from deepatoms.core.allocator import keep_freed_memory
from deepatoms.core.errors import DeepatomsError
from deepatoms.core.results import Result
from deepatoms.distribute.chunks import ChunkStore
from deepatoms.distribute.cluster import Cluster

__all__ = ["ChunkRun", "chunk_size", "run_chunks"]


class ChunkRun(Result):
    """What :func:`run_chunks` did: ``n_items``, ``n_done_before`` (items found finished),
    ``n_new`` (items computed now), ``n_chunks`` (chunks computed now), ``workers``, ``where``
    and ``wall_time_s``."""


def chunk_size(chunk: int, n_items: int, cluster: Cluster | None) -> int:
    """Items per chunk: ``chunk`` in this process; on a cluster at most ``chunk`` and small
    enough for about four chunks per worker, so that all workers have work to the end."""
    if cluster is None or not cluster.distributed:
        return chunk
    return max(1, min(chunk, -(-n_items // (4 * max(cluster.n_workers, 1)))))


def run_chunks(
    task: Callable[..., Any], items: Sequence[Any], ranges: Sequence[tuple[int, int]],
    store: ChunkStore, cluster: Cluster | None = None, *, args: Sequence[Any] = (),
    progress: Callable[[int, int], None] | None = None, name: str = "chunk",
) -> ChunkRun:  # fmt: skip
    """Compute ``task(items[a:b], *args)`` for each ``(a, b)`` of ``ranges`` and save it in
    ``store`` as it finishes (in this process, or on ``cluster``'s Dask workers).

    ``progress(done, total)`` counts items of the whole job, finished chunks included. An
    error in a task stops the run after cancelling the chunks not yet started; the chunks
    already stored stay, so the same command continues from them.
    """
    cluster = cluster or Cluster()
    t0 = time.perf_counter()
    total = store.n_items
    done = store.n_done()
    before = done
    if progress is not None:
        progress(done, total)
    if not cluster.distributed:
        for a, b in ranges:
            start, size = done, b - a

            def on_item(k: int, start: int = start, size: int = size) -> None:
                if progress is not None and k < size:  # the last one once it is stored
                    progress(start + k, total)

            store.save(a, b, task(items[a:b], *args, on_item=on_item))
            done += b - a
            if progress is not None:
                progress(done, total)
    elif ranges:
        done = _run_on_dask(task, items, ranges, store, cluster, args, progress, name, done)
    return ChunkRun(
        n_items=total, n_done_before=before, n_new=done - before, n_chunks=len(ranges),
        workers=cluster.n_workers, where=cluster.description,
        wall_time_s=round(time.perf_counter() - t0, 3),
    )  # fmt: skip


def _run_on_dask(
    task: Callable[..., Any], items: Sequence[Any], ranges: Sequence[tuple[int, int]],
    store: ChunkStore, cluster: Cluster, args: Sequence[Any],
    progress: Callable[[int, int], None] | None, name: str, done: int,
) -> int:  # fmt: skip
    from distributed import KilledWorker, as_completed

    client = cluster.client
    client.run(keep_freed_memory)  # Dask's workers return freed memory at once by default
    shared = client.scatter(list(args), broadcast=False, hash=False) if args else []
    token = uuid.uuid4().hex[:8]
    futures = {
        client.submit(task, items[a:b], *shared, key=f"{name}-{token}-{a}-{b}", pure=False): (a, b)
        for a, b in ranges
    }
    try:
        for future in as_completed(futures):
            a, b = futures[future]
            try:
                result = future.result()
            except KilledWorker:
                raise DeepatomsError(
                    f"items {a}–{b - 1} of {name} killed every worker that ran them (out of "
                    "memory, or a crash in a compiled library); the finished chunks are kept in "
                    f"{store.folder}: run the same command again, with smaller chunks or "
                    "workers with more memory"
                ) from None
            store.save(a, b, result)
            future.release()
            done += b - a
            if progress is not None:
                progress(done, store.n_items)
    finally:
        client.cancel([f for f in futures if not f.done()])
        for f in shared:
            f.release()
    return done
