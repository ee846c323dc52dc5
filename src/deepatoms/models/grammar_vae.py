"""Grammar variational autoencoder over production sequences (Kusner et al. 2017;
Paper D App. B).

A string x is its leftmost derivation: a sequence of production indices x⁽¹⁾ … x⁽ᵀ⁾ (T =
``max_len``, padded with NULL), fed one-hot (R = ``n_rules`` columns). The model is a VAE with a
diagonal Gaussian posterior and a standard normal prior (Paper D App. B; Paper C):

    q_φ(z|x) = N(μ_φ(x), diag σ²_φ(x)),   p(z) = N(0, I),   z = μ + σ ⊙ ε,  ε ~ N(0, I)
    p_θ(x|z) = Π_t Cat(x⁽ᵗ⁾ | π_t),       π_t = softmax(W h_t + b)

Architecture ``gru`` (Default, §2): encoder GRU(H) over the whole padded sequence → final state →
dense(D, ReLU) → linear heads μ and log σ² (size d). Decoder GRU(H) with teacher forcing: the
input at step t is [one-hot(x⁽ᵗ⁻¹⁾); z] (zeros at t = 1) and the initial state tanh(W_s z + b_s)
(``z_input`` = ``both``; ``state``: z only in the initial state; ``input``: only in the inputs,
initial state 0). Defaults d = 32, H = 256, D = 128.

Architecture ``kusner2017`` (§2 option, after the public code of Kusner et al. 2017): encoder
Conv1d(9, width 9) → Conv1d(9, 9) → Conv1d(10, 11) (ReLU, no padding) → flatten → dense(435,
ReLU) → μ, log σ² (d = 56); decoder dense(d, ReLU) repeated T times → 3 stacked GRU(501) →
time-distributed linear; no teacher forcing (the authors' batch normalisation is left out).

Objective per string (Paper D Eq. B2; Paper C Eq. 10), one reparameterised sample:

    L(x) = −Σ_{t=1}^{T} log π_t[x⁽ᵗ⁾] + α · KL(q_φ(z|x) ‖ p(z)),
    KL = ½ Σ_j (μ_j² + σ_j² − 1 − log σ_j²)

summed over all T steps, NULL padding included (Default; ``exclude_padding`` drops steps whose
target is NULL). α = 0.08 in training, α = 1 for the evidence lower bound. ``mask_in_loss``
(Kusner et al. 2017) renormalises π_t over the productions of the nonterminal being expanded
(``allowed`` masks from ``grammar.decode.rule_masks``). Free bits (Kingma et al. 2016; thesis
Ch. 4): the KL term becomes Σ_j max(λ, mean_batch KL_j).

Decoding (§1): :meth:`GrammarVAE.decode` runs the decoder one step at a time inside
``grammar.decode.masked_decode``, which pops the stack, masks the logits to the popped
nonterminal's productions and chooses greedily or by sampling.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:  # pragma: no cover
    from deepatoms.grammar.cfg import Grammar
    from deepatoms.grammar.decode import DecodeResult

__all__ = [
    "ARCHITECTURE_DEFAULTS",
    "GrammarVAE",
    "kl_divergence",
    "kl_per_dimension",
    "resolve_vae_config",
    "shift_right",
    "token_accuracy",
    "vae_loss",
]

ARCHITECTURE_DEFAULTS: dict[str, dict[str, Any]] = {
    "gru": {"latent_dim": 32, "hidden": 256, "dense": 128, "z_input": "both"},
    "kusner2017": {
        "latent_dim": 56,
        "hidden": 501,
        "dense": 435,
        "conv_filters": [9, 9, 10],
        "conv_kernels": [9, 9, 11],
        "decoder_layers": 3,
    },
}
_KEYS = {"name", "n_rules", "max_len", "architecture"} | {
    k for d in ARCHITECTURE_DEFAULTS.values() for k in d
}
_Z_INPUTS = ("both", "state", "input")


def resolve_vae_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a model config and fill unset (missing or ``None``) keys with the defaults.

    Required: ``n_rules`` (productions incl. NULL) and ``max_len`` (derivation steps). Keys of the
    other architecture are dropped. Raises ``ValueError`` naming the bad key.
    """
    unknown = sorted(set(config) - _KEYS)
    if unknown:
        raise ValueError(f"unknown grammar-VAE model keys {unknown}; known keys: {sorted(_KEYS)}")
    arch = config.get("architecture") or "gru"
    if arch not in ARCHITECTURE_DEFAULTS:
        raise ValueError(
            f"model.architecture must be one of {list(ARCHITECTURE_DEFAULTS)}, got {arch!r}"
        )
    out: dict[str, Any] = {"name": "grammar-vae", "architecture": arch}
    for key in ("n_rules", "max_len"):
        if config.get(key) is None:
            raise ValueError(f"the grammar-VAE model config needs {key!r}")
        out[key] = int(config[key])
    for key, default in ARCHITECTURE_DEFAULTS[arch].items():
        value = config.get(key)
        out[key] = default if value is None else value
    for key in ("latent_dim", "hidden", "dense"):
        if int(out[key]) < 1:
            raise ValueError(f"model.{key} must be a positive integer, got {out[key]!r}")
        out[key] = int(out[key])
    if arch == "gru" and out["z_input"] not in _Z_INPUTS:
        raise ValueError(f"model.z_input must be one of {list(_Z_INPUTS)}, got {out['z_input']!r}")
    if arch == "kusner2017":
        out["conv_filters"] = [int(v) for v in out["conv_filters"]]
        out["conv_kernels"] = [int(v) for v in out["conv_kernels"]]
        if len(out["conv_filters"]) != len(out["conv_kernels"]) or not out["conv_filters"]:
            raise ValueError("model.conv_filters and model.conv_kernels need the same length ≥ 1")
        shrink = sum(k - 1 for k in out["conv_kernels"])
        if out["max_len"] - shrink < 1:
            raise ValueError(
                f"max_len {out['max_len']} is too short for convolutions of widths "
                f"{out['conv_kernels']}; it must exceed {shrink}"
            )
        out["decoder_layers"] = int(out["decoder_layers"])
    return out


def shift_right(x: torch.Tensor) -> torch.Tensor:
    """Teacher-forcing inputs: ``[0, x⁽¹⁾, …, x⁽ᵀ⁻¹⁾]`` along dim 1 of ``x [B, T, R]``."""
    return torch.cat([torch.zeros_like(x[:, :1]), x[:, :-1]], dim=1)


def kl_per_dimension(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, σ²) ‖ N(0, 1)) per latent dimension, ``[B, d]`` in nats."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q(z|x) ‖ N(0, I)) = ½ Σ_j (μ_j² + σ_j² − 1 − log σ_j²) per string, ``[B]`` in nats."""
    return kl_per_dimension(mu, logvar).sum(-1)


def vae_loss(
    logits: torch.Tensor, targets: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
    alpha: float = 1.0, *, null_index: int | None = None, exclude_padding: bool = False,
    allowed: torch.Tensor | None = None, free_bits: float = 0.0,
) -> dict[str, torch.Tensor]:  # fmt: skip
    """The α-weighted negative ELBO (module docstring; Paper D Eq. B2), averaged over the batch.

    ``logits [B, T, R]``, ``targets [B, T]`` production indices, ``mu``/``logvar [B, d]``.
    ``allowed [B, T, R]`` (bool): mask the softmax (``mask_in_loss``); ``exclude_padding`` needs
    ``null_index``; ``free_bits`` λ (nats per dimension, 0 = off). Returns ``loss``, ``recon``,
    ``kl`` (batch means, nats) and ``recon_per_string``, ``kl_per_string`` ``[B]``.
    """
    if allowed is not None:
        from deepatoms.grammar.decode import masked_log_softmax

        logp = masked_log_softmax(logits, allowed)
    else:
        logp = F.log_softmax(logits, dim=-1)
    nll = -logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    if exclude_padding:
        if null_index is None:
            raise ValueError("exclude_padding needs the grammar's null_index")
        nll = nll * (targets != null_index)
    recon = nll.sum(1)
    kl_dims = kl_per_dimension(mu, logvar)
    kl = kl_dims.sum(-1)
    if free_bits > 0:
        kl_term = kl_dims.mean(0).clamp(min=float(free_bits)).sum()
    else:
        kl_term = kl.mean()
    recon_mean = recon.mean()
    return {
        "loss": recon_mean + float(alpha) * kl_term,
        "recon": recon_mean,
        "kl": kl.mean(),
        "recon_per_string": recon,
        "kl_per_string": kl,
    }


def token_accuracy(
    logits: torch.Tensor, targets: torch.Tensor, null_index: int | None = None
) -> tuple[int, int]:
    """(correct, counted) teacher-forced argmax predictions; steps with a NULL target skipped."""
    keep = torch.ones_like(targets, dtype=torch.bool)
    if null_index is not None:
        keep = targets != null_index
    hits = (logits.argmax(-1) == targets) & keep
    return int(hits.sum()), int(keep.sum())


class GrammarVAE(nn.Module):
    """Grammar VAE (module docstring) built from a config dict (see :func:`resolve_vae_config`)."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__()
        self.config = resolve_vae_config(config)
        c = self.config
        R, T, d, H, D = c["n_rules"], c["max_len"], c["latent_dim"], c["hidden"], c["dense"]
        self.n_rules, self.max_len, self.latent_dim = R, T, d
        self.architecture = c["architecture"]
        if self.architecture == "gru":
            self.z_input = c["z_input"]
            self.enc_rnn = nn.GRU(R, H, batch_first=True)
            self.enc_dense = nn.Linear(H, D)
            use_state = self.z_input in ("both", "state")
            self.dec_init = nn.Linear(d, H) if use_state else None
            z_in = d if self.z_input in ("both", "input") else 0
            self.dec_rnn = nn.GRU(R + z_in, H, batch_first=True)
        else:
            layers: list[nn.Module] = []
            width, length = R, T
            for n_filters, kernel in zip(c["conv_filters"], c["conv_kernels"], strict=True):
                layers += [nn.Conv1d(width, n_filters, kernel), nn.ReLU()]
                width, length = n_filters, length - kernel + 1
            self.enc_conv = nn.Sequential(*layers)
            self.enc_dense = nn.Linear(width * length, D)
            self.dec_dense = nn.Linear(d, d)
            self.dec_rnn = nn.GRU(d, H, num_layers=c["decoder_layers"], batch_first=True)
        self.mu_head = nn.Linear(D, d)
        self.logvar_head = nn.Linear(D, d)
        self.out = nn.Linear(H, R)

    # -- encoder ---------------------------------------------------------------------------
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One-hot production sequences ``x [B, T, R]`` → (μ, log σ²), each ``[B, d]``."""
        self._check_input(x)
        if self.architecture == "gru":
            _, h = self.enc_rnn(x)
            feat = h[-1]
        else:
            feat = self.enc_conv(x.transpose(1, 2)).flatten(1)
        e = F.relu(self.enc_dense(feat))
        return self.mu_head(e), self.logvar_head(e)

    @staticmethod
    def reparameterize(
        mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """One sample z = μ + exp(½ log σ²) ⊙ ε, ε ~ N(0, I)."""
        eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
        return mu + torch.exp(0.5 * logvar) * eps

    # -- decoder ---------------------------------------------------------------------------
    def _h0(self, z: torch.Tensor) -> torch.Tensor | None:
        if self.dec_init is None:
            return None
        return torch.tanh(self.dec_init(z)).unsqueeze(0)

    def _gru_inputs(self, prev: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Decoder inputs from one-hot previous productions ``prev [B, t, R]``."""
        if self.z_input == "state":
            return prev
        return torch.cat([prev, z.unsqueeze(1).expand(-1, prev.shape[1], -1)], dim=-1)

    def decoder_logits(self, z: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``[B, T, R]`` of p(x|z); ``gru``: teacher forcing on one-hot ``x [B, T, R]``.

        Step t sees only x⁽<ᵗ⁾ (inputs are :func:`shift_right` of ``x``). ``kusner2017`` ignores
        ``x`` (no teacher forcing).
        """
        if self.architecture == "kusner2017":
            h = F.relu(self.dec_dense(z)).unsqueeze(1).expand(-1, self.max_len, -1)
            out, _ = self.dec_rnn(h.contiguous())
            return self.out(out)
        if x is None:
            raise ValueError("the gru decoder needs the one-hot sequence x for teacher forcing")
        self._check_input(x)
        out, _ = self.dec_rnn(self._gru_inputs(shift_right(x), z), self._h0(z))
        return self.out(out)

    def forward(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """Encode, draw one z, decode with teacher forcing: ``mu``, ``logvar``, ``z``, ``logits``."""
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar, generator)
        return {"mu": mu, "logvar": logvar, "z": z, "logits": self.decoder_logits(z, x)}

    def step_logits_fn(self, z: torch.Tensor) -> Callable[[int, torch.Tensor], torch.Tensor]:
        """``logits_fn(t, prev_rule)`` for ``masked_decode``: the decoder run one step at a time.

        ``prev_rule [B]`` is the production chosen at step t−1; any negative value (the start,
        t = 0) means "no previous production" (a zero one-hot vector, as in teacher forcing).
        Steps must be called in order t = 0, 1, …
        """
        if self.architecture == "kusner2017":
            logits = self.decoder_logits(z)
            return lambda t, prev: logits[:, t]
        state = {"h": self._h0(z)}
        R = self.n_rules

        def logits_fn(t: int, prev: torch.Tensor) -> torch.Tensor:
            prev = prev.to(z.device).long()
            onehot = F.one_hot(prev.clamp(min=0), R).to(z.dtype)
            onehot = onehot * (prev >= 0).unsqueeze(-1).to(z.dtype)
            out, state["h"] = self.dec_rnn(self._gru_inputs(onehot.unsqueeze(1), z), state["h"])
            return self.out(out[:, 0])

        return logits_fn

    @torch.no_grad()
    def decode(
        self,
        z: torch.Tensor,
        grammar: Grammar,
        greedy: bool = True,
        generator: torch.Generator | None = None,
    ) -> DecodeResult:
        """Stack-masked decoding of latent points ``z [B, d]`` (§1): greedy or sampled."""
        from deepatoms.grammar.decode import masked_decode

        if grammar.n_rules != self.n_rules:
            raise ValueError(
                f"grammar {grammar.name!r} has {grammar.n_rules} productions but the model was "
                f"built for {self.n_rules}"
            )
        return masked_decode(
            self.step_logits_fn(z),
            grammar,
            z.shape[0],
            self.max_len,
            greedy=greedy,
            generator=generator,
        )

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 3 or x.shape[1] != self.max_len or x.shape[2] != self.n_rules:
            raise ValueError(
                f"expected one-hot productions of shape [B, {self.max_len}, {self.n_rules}], "
                f"got {list(x.shape)}"
            )
