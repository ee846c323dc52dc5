"""A write killed half-way leaves a hidden temporary file; the next write of the same output
removes it (its process is gone) and leaves those of live writers alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

from deepatoms.core.files import atomic_write_text


def test_a_killed_write_leaves_nothing_after_the_next_write(tmp_path):
    out = tmp_path / "data.txt"
    child = textwrap.dedent(f"""
        import os, signal
        from deepatoms.core.files import atomic_target
        with atomic_target({str(out)!r}) as tmp:
            tmp.write_text("half")
            os.kill(os.getpid(), signal.SIGKILL)
    """)  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", child], capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL
    stale = list(tmp_path.glob(".data.txt.*.tmp"))
    assert len(stale) == 1 and not out.exists()  # what a kill leaves
    live = tmp_path / f".data.txt.{os.getpid()}.x.tmp"  # a writer that is still running
    live.write_text("busy")
    atomic_write_text(out, "whole")
    assert out.read_text() == "whole"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["data.txt", live.name])
