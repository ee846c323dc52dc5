"""A script that starts local workers without a ``__main__`` guard gets one clear error."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_a_script_without_a_main_guard_is_told_how_to_fix_it(tmp_path):
    script = tmp_path / "unguarded.py"
    script.write_text(
        textwrap.dedent("""
        from deepatoms.distribute.cluster import open_cluster

        with open_cluster(2):
            pass
        """)
    )
    res = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=300)  # fmt: skip
    assert res.returncode != 0
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("deepatoms.core.errors.DeepatomsError: the 2 local Dask worker")
    assert 'if __name__ == "__main__":' in last
