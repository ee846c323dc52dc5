"""Building blocks: activations, radial bases, cutoffs, scatter reductions and dense layers."""

from deepatoms.nn.activations import ShiftedSoftplus, get_activation, shifted_softplus
from deepatoms.nn.cutoff import CosineCutoff, HardCutoff, build_cutoff
from deepatoms.nn.mlp import Dense, mlp
from deepatoms.nn.radial import GaussianRBF
from deepatoms.nn.scatter import scatter_mean, scatter_reduce, scatter_sum, segment_counts

__all__ = [
    "CosineCutoff",
    "Dense",
    "GaussianRBF",
    "HardCutoff",
    "ShiftedSoftplus",
    "build_cutoff",
    "get_activation",
    "mlp",
    "scatter_mean",
    "scatter_reduce",
    "scatter_sum",
    "segment_counts",
    "shifted_softplus",
]
