"""How busy the benchmark machine is: shared by the speed benchmarks (printed before and after)."""

from __future__ import annotations

import os
import time


def cpu_busy(seconds: float = 1.0) -> float | None:
    """Fraction of all cores busy during the next ``seconds`` (from /proc/stat; None elsewhere)."""

    def sample():
        with open("/proc/stat") as fh:
            v = [int(x) for x in fh.readline().split()[1:]]
        return v[3] + v[4], sum(v)  # idle + iowait, total

    try:
        i0, t0 = sample()
        time.sleep(seconds)
        i1, t1 = sample()
    except OSError:
        return None
    return 1.0 - (i1 - i0) / max(t1 - t0, 1)


def loadavg() -> str:
    """The 1/5/15-minute load average as text."""
    try:
        a, b, c = os.getloadavg()
    except OSError:  # pragma: no cover - not on every platform
        return "n/a"
    return f"{a:.2f} / {b:.2f} / {c:.2f} (1 / 5 / 15 min, {os.cpu_count()} cores)"
