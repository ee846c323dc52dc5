"""The SLURM example of docs/scale-out.md renders a valid batch script (no batch system here:
the cluster is built and its job script read, nothing is submitted)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

dask_jobqueue = pytest.importorskip("dask_jobqueue")
DOC = Path(__file__).resolve().parents[2] / "docs" / "scale-out.md"


def test_the_documented_slurm_cluster_renders_its_job_script():
    text = DOC.read_text(encoding="utf-8")
    block = re.search(r"```python\n# cluster.py.*?\n```", text, re.S).group(0)
    call = re.search(r"SLURMCluster\((.*?)\)\n", block, re.S).group(1)
    kwargs = eval(f"dict({call})")  # the documented arguments, as written
    with dask_jobqueue.SLURMCluster(**kwargs) as cluster:
        script = cluster.job_script()
    assert "#SBATCH -p compute" in script and "#SBATCH -A myproject" in script
    assert "#SBATCH --exclusive" in script and "--nworkers 32" in script
    assert "--nthreads 1" in script and "#SBATCH -t 04:00:00" in script
