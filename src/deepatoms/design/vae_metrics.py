"""Metrics of a trained grammar VAE (docs/grammar_vae.md §4; Paper C).

- Reconstruction accuracy: encode each string to its mean μ(x), greedy masked decode, success
  only on an exact string match.
- Prior validity: decode z ~ N(0, I) greedily; ``finished`` = stack emptied within ``max_len``;
  ``valid`` = finished and accepted by the grammar's validity checker (SMILES: RDKit parse and
  sanitisation; ``grammar.validity``); ``unique`` = distinct canonical keys among the valid
  decodes / valid decodes; ``novel`` = unique keys not among the training strings' keys /
  unique keys. All fractions of the counts named.
- ELBO at α = 1 (one reparameterised sample per string, recon over all T steps):
  ELBO(x) = E_q[log p(x|z)] − KL(q(z|x) ‖ p(z)), reported as nats per string.
- Importance-weighted bound (Burda et al. 2016; §3 option), K samples z_k ~ q(z|x):
  log p(x) ≥ log (1/K) Σ_k p(x|z_k) p(z_k) / q(z_k|x).
- Active latent dimensions: mean over strings of KL_j(q(z|x) ‖ p(z)) > 0.01 nats (Paper C).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from deepatoms.models.grammar_vae import kl_per_dimension

if TYPE_CHECKING:  # pragma: no cover
    from deepatoms.models.latent_space import LatentSpace

__all__ = [
    "active_dimensions",
    "elbo",
    "evaluate_vae",
    "importance_weighted_bound",
    "prior_metrics",
    "reconstruct",
    "reconstruction_accuracy",
]

Progress = Callable[[int, int], None]


def reconstruct(
    space: LatentSpace,
    strings: Sequence[str],
    batch_size: int = 1024,
    progress: Progress | None = None,
) -> list[str | None]:
    """Greedy masked decodes of the encoder means of ``strings`` (None = unfinished)."""
    z = space.encode_mean(strings, batch_size)
    if progress is None:
        return space.decode_greedy(z, batch_size)
    return space.decode(z, batch_size=batch_size, progress=progress)


def reconstruction_accuracy(
    space: LatentSpace,
    strings: Sequence[str],
    batch_size: int = 1024,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Fraction of exact reconstructions: ``accuracy``, ``n``, ``n_exact``, ``n_unfinished``."""
    strings = list(strings)
    dec = reconstruct(space, strings, batch_size, progress)
    exact = sum(d == s for d, s in zip(dec, strings, strict=True))
    return {
        "accuracy": exact / max(len(strings), 1),
        "n": len(strings),
        "n_exact": exact,
        "n_unfinished": sum(d is None for d in dec),
    }


def prior_metrics(
    space: LatentSpace, n: int, seed: int = 0, training: Iterable[str] = (),
    is_valid: Callable[[str], bool] | None = None, key: Callable[[str], str] | None = None,
    batch_size: int = 1024, progress: Progress | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Validity, uniqueness and novelty of ``n`` greedy decodes of z ~ N(0, I) (module doc).

    ``is_valid``/``key`` default to ``grammar.validity`` for the space's grammar.
    """
    from deepatoms.grammar.validity import canonical, validity_checker

    is_valid = is_valid or validity_checker(space.grammar)
    key = key or partial(canonical, space.grammar)
    dec = space.decode(space.sample_prior(n, seed), batch_size=batch_size, progress=progress)
    finished = [s for s in dec if s is not None]
    valid = [s for s in finished if is_valid(s)]
    keys = {key(s) for s in valid}
    train_keys = set()
    for s in training:
        try:
            train_keys.add(key(s))
        except ValueError:
            continue
    novel = keys - train_keys
    return {
        "n": int(n),
        "seed": int(seed),
        "finished": len(finished) / max(n, 1),
        "valid": len(valid) / max(n, 1),
        "unique": len(keys) / max(len(valid), 1),
        "novel": len(novel) / max(len(keys), 1),
        "n_valid": len(valid),
        "n_unique": len(keys),
        "n_novel": len(novel),
        "examples": sorted(valid)[:10],
    }


def _batches(space: LatentSpace, strings: Sequence[str], batch_size: int):
    idx = space.indices(strings)
    p = next(space.model.parameters())
    for s in range(0, len(idx), batch_size):
        t = torch.as_tensor(idx[s : s + batch_size], device=p.device)
        yield t, F.one_hot(t, space.model.n_rules).to(p.dtype)


def _log_px_z(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log p(x|z) summed over all steps ``[B]``."""
    logp = F.log_softmax(logits, dim=-1)
    return logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1).sum(1)


@torch.no_grad()
def elbo(
    space: LatentSpace, strings: Sequence[str], seed: int = 0, batch_size: int = 512
) -> dict[str, float]:
    """Mean ``recon`` (−E_q log p(x|z)), ``kl``, ``nelbo`` = recon + kl and ``elbo`` (nats)."""
    gen = torch.Generator(device=next(space.model.parameters()).device)
    gen.manual_seed(int(seed))
    recon, kl, n = 0.0, 0.0, 0
    for idx, x in _batches(space, strings, batch_size):
        out = space.model(x, gen)
        recon -= float(_log_px_z(out["logits"], idx).sum())
        kl += float(kl_per_dimension(out["mu"], out["logvar"]).sum())
        n += len(idx)
    n = max(n, 1)
    return {"recon": recon / n, "kl": kl / n, "nelbo": (recon + kl) / n, "elbo": -(recon + kl) / n}


@torch.no_grad()
def importance_weighted_bound(
    space: LatentSpace, strings: Sequence[str], k: int = 1000, seed: int = 0, chunk: int = 256
) -> float:
    """Mean importance-weighted lower bound on log p(x) (nats per string), K = ``k`` samples."""
    model = space.model
    gen = torch.Generator(device=next(model.parameters()).device)
    gen.manual_seed(int(seed))
    half_log_2pi = 0.5 * math.log(2 * math.pi)
    total, n = 0.0, 0
    for idx, x in _batches(space, strings, 1):
        mu, logvar = model.encode(x)
        logw = []
        for s in range(0, k, chunk):
            m = min(chunk, k - s)
            eps = torch.randn((m, mu.shape[1]), generator=gen, dtype=mu.dtype, device=mu.device)
            z = mu + torch.exp(0.5 * logvar) * eps
            logits = model.decoder_logits(z, x.expand(m, -1, -1))
            log_pz = (-0.5 * z.pow(2) - half_log_2pi).sum(1)
            log_qz = (-0.5 * eps.pow(2) - half_log_2pi - 0.5 * logvar).sum(1)
            logw.append(_log_px_z(logits, idx.expand(m, -1)) + log_pz - log_qz)
        total += float(torch.logsumexp(torch.cat(logw), 0)) - math.log(k)
        n += 1
    return total / max(n, 1)


@torch.no_grad()
def active_dimensions(
    space: LatentSpace, strings: Sequence[str], threshold: float = 0.01, batch_size: int = 1024
) -> dict[str, Any]:
    """Mean KL per latent dimension (nats) and the number above ``threshold`` (Paper C)."""
    mu, logvar = space.posterior(strings, batch_size)
    kl = kl_per_dimension(torch.from_numpy(mu), torch.from_numpy(logvar)).mean(0).numpy()
    return {
        "threshold": threshold,
        "n_active": int((kl > threshold).sum()),
        "latent_dim": space.latent_dim,
        "kl_per_dim": [float(v) for v in kl],
    }


def evaluate_vae(
    space: LatentSpace, strings: Sequence[str], training: Iterable[str] = (), n_prior: int = 1000,
    seed: int = 0, iw_samples: int = 0, progress: Progress | None = None,
) -> dict[str, Any]:  # fmt: skip
    """All §4 metrics on ``strings`` (e.g. the test split); novelty against ``training``.

    ``progress(done, total)`` follows the decoding of the reconstructions, then of the prior
    samples.
    """
    strings = list(strings)
    out: dict[str, Any] = {
        "n_strings": len(strings),
        "reconstruction": reconstruction_accuracy(space, strings, progress=progress),
        "elbo": elbo(space, strings, seed),
        "active_dimensions": active_dimensions(space, strings),
    }
    if n_prior > 0:
        out["prior"] = prior_metrics(space, n_prior, seed, training, progress=progress)
    if iw_samples > 0:
        out["iw_bound"] = {"k": iw_samples, "log_px": importance_weighted_bound(
            space, strings, iw_samples, seed)}  # fmt: skip
    return out
