"""glibc ``malloc`` settings that keep freed memory for reuse during simulations.

Every force call of a model allocates and frees the same few dozen tensors. Tensors above glibc's
mmap threshold (128 KiB, raised dynamically only after frees) are mapped fresh from the kernel
each time and page-faulted in again, and freed heap memory above the trim threshold is given back
to the kernel. For a 500-atom cell (MB-sized edge tensors) that page-fault traffic cost 20–100 %
of a force call on this 2-core machine, and made step times erratic. Raising both thresholds
keeps the memory in the process for the next call, as jemalloc or tcmalloc would
(``benchmarks/md_speed.py``; see ``benchmarks/README.md``).

The same effect without code: ``MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=1073741824``
in the environment. Only glibc (Linux) is touched; elsewhere this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1  # glibc <malloc.h>
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # bytes; glibc's maximum on 64-bit systems
TRIM_THRESHOLD = 1024 * 1024 * 1024  # bytes of free heap kept before returning memory

_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Raise glibc's mmap threshold to 32 MiB and its trim threshold to 1 GiB for this process.

    Returns True when the settings are in effect (glibc found and accepted them), else False.
    Idempotent; the cost is up to ~1 GiB of freed memory kept mapped by the process.
    """
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl): leave the allocator alone
        log.debug("no glibc mallopt; allocator settings unchanged")
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    _applied = bool(
        mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
    log.debug("glibc malloc thresholds raised: %s", _applied)
    return _applied


__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "keep_freed_memory"]
