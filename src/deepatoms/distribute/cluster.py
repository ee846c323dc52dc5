"""Where chunks run: this process, an embedded Dask ``LocalCluster`` or an existing cluster.

``workers=1`` and no scheduler is a plain in-process run (no Dask involved). ``workers=N > 1``
starts a ``LocalCluster`` of N worker processes with one thread each on this machine and closes
it afterwards. ``scheduler`` connects to a running scheduler (``tcp://HOST:8786``, as printed by
``dask scheduler``) or reads a scheduler file (``dask scheduler --scheduler-file F``,
dask-jobqueue); that cluster is left running. Worker processes import deepatoms themselves, so
every worker machine needs the same deepatoms installed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from deepatoms.core.errors import DeepatomsError

__all__ = ["Cluster", "check_workers", "on_cluster", "open_cluster", "worker_slot"]

_ADDRESS = re.compile(r"^(tcp|tls|inproc|ucx|ws|wss)://\S+$")
_TRAILING_NUMBER = re.compile(r"(\d+)$")


class Cluster:
    """Where chunks run: ``client`` is a ``distributed.Client`` or None (this process);
    ``n_workers`` the workers seen at start; ``dashboard`` the dashboard address (or None)."""

    def __init__(self, client: Any = None, description: str = "this process") -> None:
        self.client = client
        self.description = description
        self.n_workers = len(client.scheduler_info().get("workers", {})) if client else 1
        self.dashboard = getattr(client, "dashboard_link", None) if client else None

    @property
    def distributed(self) -> bool:
        """Whether chunks run on Dask workers."""
        return self.client is not None

    @property
    def address(self) -> str | None:
        """The scheduler address, for a nested call that should use the same workers (None:
        this process)."""
        return self.client.scheduler.address if self.client is not None else None


def check_workers(workers: Any, scheduler: str | os.PathLike | None) -> int:
    """``workers`` as an int ≥ 1; a clear error for bad values or ``workers > 1`` together with
    ``scheduler``."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise DeepatomsError(f"--workers must be a whole number ≥ 1, got {workers!r}")
    if scheduler is not None and workers != 1:
        raise DeepatomsError(
            "--workers starts a cluster on this machine and --scheduler uses an existing one; "
            "give one of them"
        )
    return workers


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError:  # pragma: no cover - dask is a dependency
        raise DeepatomsError(
            "--workers/--scheduler need dask.distributed; install it with "
            "`pip install 'dask[distributed]'`"
        ) from None
    logging.getLogger("distributed").setLevel(logging.ERROR)
    return distributed


def _connect(scheduler: str | os.PathLike, timeout: float) -> Any:
    distributed = _import_distributed()
    text = str(scheduler)
    if _ADDRESS.match(text):
        kwargs: dict[str, Any] = {"address": text}
    elif Path(text).is_file():
        kwargs = {"scheduler_file": text}
    else:
        raise DeepatomsError(
            f"--scheduler {text!r} is neither an address such as tcp://HOST:8786 nor an existing "
            "scheduler file; start a scheduler with `dask scheduler` and give the address it "
            "prints"
        )
    try:
        return distributed.Client(timeout=timeout, **kwargs)
    except (OSError, TimeoutError) as exc:
        raise DeepatomsError(
            f"cannot reach the Dask scheduler at {text} ({exc}); check that `dask scheduler` "
            "runs there and that this machine can reach its port"
        ) from None


@contextlib.contextmanager
def open_cluster(
    workers: int = 1, scheduler: str | os.PathLike | None = None, *,
    announce: Callable[[str], None] | None = None, timeout: float = 30.0,
) -> Iterator[Cluster]:  # fmt: skip
    """The :class:`Cluster` for ``--workers``/``--scheduler`` (module docstring), closed on exit.

    ``announce`` receives one line naming the cluster and its dashboard address.
    """
    workers = check_workers(workers, scheduler)
    if scheduler is None and workers == 1:
        yield Cluster()
        return
    if scheduler is not None:
        client = _connect(scheduler, timeout)
        cluster = Cluster(client, f"the Dask cluster at {scheduler}")
        try:
            if cluster.n_workers == 0:
                client.wait_for_workers(1, timeout=timeout)
                cluster.n_workers = len(client.scheduler_info().get("workers", {}))
        except TimeoutError:
            client.close()
            raise DeepatomsError(
                f"the Dask scheduler at {scheduler} has no workers; start some with "
                f"`dask worker {scheduler}`"
            ) from None
        try:
            if announce is not None:
                announce(f"{cluster.n_workers} Dask worker(s) at {scheduler}; "
                         f"dashboard {cluster.dashboard}")  # fmt: skip
            yield cluster
        finally:
            client.close()
        return
    distributed = _import_distributed()
    try:
        local = distributed.LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
            silence_logs=logging.ERROR,
        )  # fmt: skip
    except RuntimeError as exc:  # "Nanny failed to start": the worker processes died at start
        raise DeepatomsError(
            f"the {workers} local Dask worker processes failed to start ({exc}). In a Python "
            'script, call deepatoms with workers under `if __name__ == "__main__":`: each '
            "worker process imports the script again (docs/scale-out.md)"
        ) from None
    client = distributed.Client(local)
    cluster = Cluster(client, f"a local Dask cluster of {workers} worker processes")
    try:
        if announce is not None:
            announce(f"{workers} local Dask worker processes; dashboard {cluster.dashboard}")
        yield cluster
    finally:
        client.close()
        local.close()


def on_cluster(
    workers: int = 1, scheduler: str | os.PathLike | None = None, progress: bool = True
) -> contextlib.AbstractContextManager[Cluster]:
    """:func:`open_cluster` for a library function: the cluster line goes to stderr unless
    ``progress`` is False."""
    from deepatoms.core.progress import note

    return open_cluster(workers, scheduler, announce=note if progress else None)


def worker_slot() -> int | None:
    """The number of the Dask worker running the caller: the trailing number of its name (0 … N-1
    for ``--workers N``; the process index within a job for dask-jobqueue, as in
    ``SLURMCluster-3-1``); None in a plain process or for a worker named without a number."""
    try:
        from distributed import get_worker
    except ImportError:  # pragma: no cover - dask is a dependency
        return None
    try:
        name = get_worker().name
    except ValueError:  # not inside a worker's task
        return None
    match = _TRAILING_NUMBER.search(str(name))
    return int(match.group(1)) if match else None
