"""Crystals as 3-D densities: voxel grids, augmentation, datasets, density VAE, atom recovery.

docs/density_vae.md (Hoffmann et al., *Data-driven approach to encoding and decoding
3-D crystal structures*). Modules:

- ``grid``: the Z-weighted Gaussian density M and the species matrix S on a cubic grid (§1);
- ``samples``: single-cell and repeated-lattice samples with random SO(3) rotations (§2);
- ``crystal_sets``: crystals from CSVs of CIFs, CIF folders, datasets and the AFLOW prototypes
  (§9), split by crystal group;
- ``dataset``: a torch ``Dataset`` of on-the-fly (or cached) samples, the class map and collate;
- ``recovery``: atoms from per-voxel class logits (connected components, §6);
- ``metrics``: atom placement, count and species metrics of the paper (§7);
- ``model``, ``model_io``, ``training``: the β-VAE + attention U-Net (§3–5);
- ``latent_tools``, ``images``, ``evaluate``: latent-space tools, figures, evaluation (§8).
"""
