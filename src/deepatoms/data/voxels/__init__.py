"""Crystals as voxel densities (Hoffmann et al. 2019, §3.1): the grid, single-cell and
repeated-lattice samples, species classes, training datasets and crystal sets from any source."""
