"""Work split into chunks, run in this process or on a Dask cluster (docs/scale-out.md).

- :mod:`~deepatoms.distribute.cluster`: ``--workers N`` (an embedded ``LocalCluster``) or
  ``--scheduler ADDRESS`` (an existing cluster) as one :class:`Cluster` context;
- :mod:`~deepatoms.distribute.chunks`: a folder of finished chunks next to the output, each
  written atomically, which a rerun of the same command continues;
- :mod:`~deepatoms.distribute.engine`: :func:`run_chunks`, which computes the missing chunks and
  stores each one as it arrives.
"""

from deepatoms.distribute.chunks import ChunkStore, chunk_ranges
from deepatoms.distribute.cluster import Cluster, open_cluster
from deepatoms.distribute.engine import ChunkRun, run_chunks

__all__ = ["ChunkRun", "ChunkStore", "Cluster", "chunk_ranges", "open_cluster", "run_chunks"]
