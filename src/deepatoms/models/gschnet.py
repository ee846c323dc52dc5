"""G-SchNet: autoregressive 3-D molecule generation (Gebauer et al. 2019; docs/gschnet.md §1–5).

A partial molecule ("step") is its placed atoms plus two tokens, the **focus token** (type 10, on
the focus atom c_i) and the **origin token** (type 11, on the centre of mass), all connected to
all (§2). A SchNet feature extractor (``models/schnet.py``, §3: untied blocks, 25 Gaussians
0–10 Å of width equal to their spacing, filters dense(25→F, ssp) → dense(F→F) · cosine cutoff
10 Å) gives node features x_j. One embedding table A (rows = atomic numbers, tokens 10 and 11)
serves the node inputs and both heads (per the authors' public code).

Type of the next atom (Eq. 4, §4), classes k ∈ {H, C, N, O, F, stop} = Z ∈ (1, 6, 7, 8, 9, 10):

    s_jk = MLP_type(x_j ⊙ A[k])                    widths F → 128 → 96 → 64 → 32 → 1
    log p(Z_{i+1} = k) = log_softmax_k( Σ_j log_softmax_k(s_jk) )      (the 1/β of Eq. 4)

Distance of the next atom (type Z_{i+1}) to node j (Eq. 3, §4), over 300 bins μ_l:

    log p(d_{(i+1)j} ∈ l) = log_softmax_l( MLP_dist(x_j ⊙ A[Z_{i+1}]) )   F → 128 → 171 → 214 → 257 → 300

ssp on hidden layers, last layer linear. Bins (§4): μ_l = linspace(0, 15 Å, 300), spacing
Δ = 15/299 = 0.050167 Å; distances above 15 Å fall into the last bin.

Labels (§5): type one-hot; distances Gaussian-smoothed,

    [q]_l = exp(−(d − μ_l)²/γ) / Σ_l′ exp(−(d − μ_l′)²/γ),   γ = w·Δ  (w = 0.1 → 0.0050167 Å²),

d > μ_last → one-hot last bin; w = 0 → one-hot nearest bin.

Loss (§5). Default (per the authors' public code): KL divergences (gradients equal to the
cross-entropy's, which differs only by the label entropy Σ q log q),

    L = mean_s KL(q_type,s ‖ p_type,s) + mean_{(s,j): s placement} KL(q_dist,sj ‖ p_dist,sj),

distance terms masked at steps whose target is stop. Option ``weighting="paper"`` (Gebauer et
al. 2019, loss per step i): L = mean_s [ KL_type,s + (1/max(i_s, 1)) Σ_j KL_dist,sj ], i_s = number
of placed atoms of step s (the first step, with only the two tokens, has weight 1).
"""

from __future__ import annotations

import torch
from torch import nn

from deepatoms.data.graph import Batch
from deepatoms.models.schnet import SchNet
from deepatoms.nn.mlp import mlp
from deepatoms.nn.scatter import scatter_sum

__all__ = [
    "FOCUS_TOKEN",
    "GSCHNET_DEFAULTS",
    "ORIGIN_TOKEN",
    "STOP",
    "TYPE_CLASSES",
    "GSchNet",
    "distance_bins",
    "gschnet_loss",
    "smoothed_distance_labels",
    "type_class_index",
]

#: Atomic numbers of the type classes; class 5 (Z = 10) is **stop** (per the authors' code).
TYPE_CLASSES = (1, 6, 7, 8, 9, 10)
STOP = 10
#: Node "atomic numbers" of the tokens (per the authors' public code; focus reuses the stop row).
FOCUS_TOKEN = 10
ORIGIN_TOKEN = 11
LOSS_WEIGHTINGS = ("default", "paper")


def distance_bins(
    n_bins: int = 300, max_distance: float = 15.0, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """Distance-bin centres [n_bins] (Å): linspace(0, max_distance, n_bins) (§4)."""
    if n_bins < 2 or max_distance <= 0:
        raise ValueError(
            f"distance bins need n_bins >= 2 and max_distance > 0 Å, got {n_bins}, {max_distance}"
        )
    return torch.linspace(0.0, float(max_distance), n_bins, dtype=dtype or torch.float64)


def smoothed_distance_labels(
    d: torch.Tensor, bins: torch.Tensor, width_factor: float = 0.1
) -> torch.Tensor:
    """Gaussian-smoothed distance labels [M, n_bins] for distances ``d`` [M] (Å), §5.

    γ = ``width_factor`` · spacing (Å², divides the squared distance); rows sum to 1; d beyond the
    last centre → one-hot last bin; ``width_factor = 0`` → one-hot nearest bin.
    """
    if width_factor < 0:
        raise ValueError(f"label width factor must be >= 0, got {width_factor}")
    bins = bins.to(d.dtype)
    diff = d.unsqueeze(-1) - bins
    if width_factor == 0:
        q = torch.zeros_like(diff)
        q.scatter_(-1, diff.abs().argmin(dim=-1, keepdim=True), 1.0)
    else:
        gamma = width_factor * float(bins[1] - bins[0])
        q = torch.softmax(-(diff * diff) / gamma, dim=-1)
    beyond = d > bins[-1]
    if bool(beyond.any()):
        last = torch.zeros_like(q[0])
        last[-1] = 1.0
        q = torch.where(beyond.unsqueeze(-1), last, q)
    return q


def type_class_index(numbers: torch.Tensor) -> torch.Tensor:
    """Class index in :data:`TYPE_CLASSES` of each atomic number (stop = 10 → 5); others raise."""
    table = torch.full((max(TYPE_CLASSES) + 2,), -1, dtype=torch.long, device=numbers.device)
    table[torch.tensor(TYPE_CLASSES, device=numbers.device)] = torch.arange(len(TYPE_CLASSES))
    z = numbers.long()
    cls = table[z.clamp(0, len(table) - 1)]
    bad = (cls < 0) | (z >= len(table))
    if bool(bad.any()):
        found = sorted({int(v) for v in z[bad].tolist()})
        raise ValueError(
            f"G-SchNet types are H, C, N, O, F (Z = 1, 6, 7, 8, 9) and stop (10); found Z = {found}; "
            "filter the dataset to these elements"
        )
    return cls


class GSchNet(nn.Module):
    """G-SchNet model: ``forward(batch, next_type)`` → ``{"type_logp" [S, 6], "dist_logp" [N, bins]}``.

    ``batch``: S partial molecules (see ``deepatoms.generate.steps.partial_batch``);
    ``next_type`` [S]: atomic number whose distances are predicted (any valid row at stop steps).
    Options as in :data:`GSCHNET_DEFAULTS`; ``type_head``/``distance_head`` are hidden widths.
    """

    def __init__(
        self, n_atom_basis: int = 128, n_interactions: int = 9, n_filters: int | None = None,
        rbf: dict | None = None, cutoff_fn: str | None = "cosine", cutoff: float | None = 10.0,
        type_head: list[int] | None = None, distance_head: list[int] | None = None,
        n_bins: int = 300, max_distance: float = 15.0, config: dict | None = None,
    ) -> None:  # fmt: skip
        super().__init__()
        self.representation = SchNet(
            n_atom_basis=n_atom_basis,
            n_interactions=n_interactions,
            n_filters=n_filters,
            rbf=rbf if rbf is not None else {"n_rbf": 25, "start": 0.0, "stop": 10.0},
            cutoff_fn=cutoff_fn,
            cutoff=cutoff,
            filter_last_activation=None,
            aggregation="sum",
        )
        th = list(type_head if type_head is not None else [128, 96, 64, 32])
        dh = list(distance_head if distance_head is not None else [128, 171, 214, 257])
        self.type_net = mlp([n_atom_basis, *th, 1], activation="ssp")
        self.dist_net = mlp([n_atom_basis, *dh, n_bins], activation="ssp")
        self.register_buffer("bins", distance_bins(n_bins, max_distance, torch.get_default_dtype()))
        self.register_buffer("type_numbers", torch.tensor(TYPE_CLASSES, dtype=torch.long))
        self.type_classes = TYPE_CLASSES
        self.property = "gschnet"
        self.config = dict(config or {"name": "gschnet"})

    @property
    def embedding(self) -> nn.Embedding:
        """The shared embedding table A (rows = atomic numbers and token types)."""
        return self.representation.embedding

    def forward(self, batch: Batch, next_type: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.representation(batch)  # [N, F]
        emb = self.embedding
        # Type head: x_j ⊙ A[k] for every class k, per-node log-softmax, sum, log-softmax (Eq. 4).
        xt = x.unsqueeze(1) * emb(self.type_numbers).unsqueeze(0)  # [N, 6, F]
        node_type = torch.log_softmax(self.type_net(xt).squeeze(-1), dim=-1)
        summed = scatter_sum(node_type, batch.batch, batch.num_systems)
        type_logp = torch.log_softmax(summed, dim=-1)
        # Distance head: x_j ⊙ A[Z_{i+1}] of the node's step (Eq. 3).
        z_next = next_type.long().index_select(0, batch.batch)
        dist_logp = torch.log_softmax(self.dist_net(x * emb(z_next)), dim=-1)
        return {"type_logp": type_logp, "dist_logp": dist_logp}


def gschnet_loss(
    out: dict[str, torch.Tensor], type_class: torch.Tensor, distances: torch.Tensor,
    batch: torch.Tensor, placement: torch.Tensor, bins: torch.Tensor, width_factor: float = 0.1,
    weighting: str = "default", n_placed: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:  # fmt: skip
    """G-SchNet loss of one flat batch of steps (§5; module docstring).

    ``type_class`` [S] class index (stop = 5), ``distances`` [N] (Å) from every node to the
    step's new atom (ignored at stop steps), ``batch`` [N] step of each node, ``placement`` [S]
    bool (False = stop step), ``n_placed`` [S] placed atoms per step (``weighting="paper"``).
    Returns ``{"loss", "type", "distance"}`` (type and distance terms as they enter the loss).
    """
    if weighting not in LOSS_WEIGHTINGS:
        raise ValueError(f"loss weighting must be one of {LOSS_WEIGHTINGS}, got {weighting!r}")
    type_logp, dist_logp = out["type_logp"], out["dist_logp"]
    # One-hot type labels: KL = −log p of the true class (label entropy 0).
    type_kl = -type_logp.gather(1, type_class.long().view(-1, 1)).squeeze(1)  # [S]
    node_mask = placement.index_select(0, batch)
    q = smoothed_distance_labels(distances[node_mask].to(dist_logp.dtype), bins, width_factor)
    dist_kl = (torch.special.xlogy(q, q) - q * dist_logp[node_mask]).sum(-1)  # [M]
    if weighting == "default":
        dist_term = dist_kl.sum() / max(int(node_mask.sum()), 1)
        type_term = type_kl.mean()
    else:
        if n_placed is None:
            raise ValueError("weighting='paper' needs n_placed (placed atoms per step)")
        n_steps = type_kl.shape[0]
        per_step = scatter_sum(dist_kl, batch[node_mask], n_steps)
        per_step = per_step / n_placed.to(per_step.dtype).clamp(min=1)
        dist_term = per_step.sum() / n_steps
        type_term = type_kl.mean()
    return {"loss": type_term + dist_term, "type": type_term, "distance": dist_term}


#: Options of the ``gschnet`` family with their defaults (the paper preset, §3–4).
GSCHNET_DEFAULTS = {
    "n_atom_basis": 128,
    "n_interactions": 9,
    "n_filters": None,
    "rbf": {"n_rbf": 25, "start": 0.0, "stop": 10.0},
    "cutoff_fn": "cosine",
    "cutoff": 10.0,
    "type_head": [128, 96, 64, 32],
    "distance_head": [128, 171, 214, 257],
    "n_bins": 300,
    "max_distance": 15.0,
}


def build_gschnet(property: str, readout: str, config: dict, **options) -> GSchNet:
    """Registry builder (``build_model({"name": "gschnet", ...})``); property/readout unused."""
    return GSchNet(**options, config=config)
