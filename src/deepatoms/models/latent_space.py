"""The latent space of a trained grammar VAE: strings ↔ latent points (Kusner et al. 2017; Paper D).

- Encoding (§4, §5): parse each string into its leftmost derivation (``Grammar.parse``), one-hot
  it (T = ``max_len`` steps, NULL-padded) and run the encoder: the mean μ(x) (``encode_mean``,
  used for reconstruction, regressor predictions and ICM) or one reparameterised sample
  z = μ + σ ⊙ ε (``encode_sample``, used to train the regressors).
- Decoding (§1): greedy stack-masked decoding (``GrammarVAE.decode``); ``None`` marks an
  unfinished derivation (stack not empty after ``max_len`` steps).
- Prior samples (§4, §6): z ~ N(0, I) from a seeded NumPy generator.

Everything runs in batches of ``batch_size`` strings or points in eval mode without gradients.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from deepatoms.grammar.cfg import Grammar
from deepatoms.grammar.errors import GrammarError, GrammarParseError
from deepatoms.models.grammar_vae import GrammarVAE

__all__ = ["TRAINING_STRINGS", "LatentSpace", "parse_strings"]

#: The training strings of a run, one per line, next to its model file.
TRAINING_STRINGS = "training_strings.txt"

Progress = Callable[[int, int], None]


def parse_strings(
    grammar: Grammar,
    strings: Sequence[str],
    max_len: int,
    where: Callable[[int], str] | None = None,
    progress: Progress | None = None,
) -> np.ndarray:
    """Production indices ``[N, max_len]`` (int64, NULL-padded) of the leftmost derivations.

    Raises ``GrammarParseError`` naming the string's index for an unparseable string (or a
    ``GrammarError`` naming ``where(i)``, e.g. a file line, when given) and ``GrammarError`` for
    a derivation longer than ``max_len``.
    """
    strings = list(strings)
    try:
        derivs, _ = grammar.parse_many(strings, progress=progress, on_error="raise")
    except GrammarParseError as exc:
        if where is None:
            raise
        plain = GrammarParseError(
            exc.text, exc.position, exc.token, exc.expected, grammar=exc.grammar, end_ok=exc.end_ok
        )
        raise GrammarError(f"{where(exc.index)}: {plain}") from None
    out = np.full((len(strings), max_len), grammar.null_index, dtype=np.int64)
    for i, rules in enumerate(derivs):
        if len(rules) > max_len:
            place = where(i) if where is not None else f"string {i}"
            raise GrammarError(
                f"{place}: {strings[i]!r} has a derivation of {len(rules)} productions, more "
                f"than max_len = {max_len}; raise the model's max_len (data.max_len) or drop "
                "the string"
            )
        out[i, : len(rules)] = rules
    return out


class LatentSpace:
    """A trained :class:`GrammarVAE` with its grammar: encode strings, decode latent points."""

    def __init__(self, model: GrammarVAE, grammar: Grammar, meta: dict | None = None) -> None:
        if grammar.n_rules != model.n_rules:
            raise ValueError(
                f"grammar {grammar.name!r} has {grammar.n_rules} productions but the model "
                f"expects {model.n_rules}"
            )
        self.model = model.eval()
        self.grammar = grammar
        self.meta = dict(meta or {})

    @property
    def latent_dim(self) -> int:
        """Dimension d of the latent space."""
        return self.model.latent_dim

    @property
    def max_len(self) -> int:
        """Derivation steps T the model reads and writes."""
        return self.model.max_len

    def _device_dtype(self) -> tuple[torch.device, torch.dtype]:
        p = next(self.model.parameters())
        return p.device, p.dtype

    def indices(self, strings: Sequence[str]) -> np.ndarray:
        """Production indices ``[N, max_len]`` of ``strings`` (see :func:`parse_strings`)."""
        return parse_strings(self.grammar, list(strings), self.max_len)

    @torch.no_grad()
    def posterior_from_indices(
        self, indices: np.ndarray, batch_size: int = 1024
    ) -> tuple[np.ndarray, np.ndarray]:
        """(μ, log σ²) ``[N, d]`` (float64) of production-index rows ``[N, max_len]``."""
        device, dtype = self._device_dtype()
        mus, logvars = [], []
        for s in range(0, len(indices), batch_size):
            idx = torch.as_tensor(indices[s : s + batch_size], device=device)
            mu, logvar = self.model.encode(F.one_hot(idx, self.model.n_rules).to(dtype))
            mus.append(mu.double().cpu().numpy())
            logvars.append(logvar.double().cpu().numpy())
        d = self.latent_dim
        if not mus:
            return np.zeros((0, d)), np.zeros((0, d))
        return np.concatenate(mus), np.concatenate(logvars)

    def posterior(
        self, strings: Sequence[str], batch_size: int = 1024
    ) -> tuple[np.ndarray, np.ndarray]:
        """(μ, log σ²) ``[N, d]`` of q(z|x) for ``strings``."""
        return self.posterior_from_indices(self.indices(strings), batch_size)

    def encode_mean(self, strings: Sequence[str], batch_size: int = 1024) -> np.ndarray:
        """Encoder means μ(x) ``[N, d]``; GrammarParseError names the index of a bad string."""
        return self.posterior(strings, batch_size)[0]

    def encode_sample(
        self, strings: Sequence[str], rng: np.random.Generator, batch_size: int = 1024
    ) -> np.ndarray:
        """One sample z = μ + σ ⊙ ε per string ``[N, d]``, ε drawn from ``rng``."""
        mu, logvar = self.posterior(strings, batch_size)
        return mu + np.exp(0.5 * logvar) * rng.standard_normal(mu.shape)

    @torch.no_grad()
    def decode(
        self,
        z: np.ndarray,
        greedy: bool = True,
        seed: int | None = None,
        batch_size: int = 1024,
        progress: Progress | None = None,
    ) -> list[str | None]:
        """Strings of latent points ``z [N, d]``; ``None`` for an unfinished derivation.

        ``greedy=False`` samples each production from the masked softmax (seeded by ``seed``).
        """
        z = np.asarray(z, dtype=np.float64)
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(
                f"latent points must have shape [N, {self.latent_dim}], got {list(z.shape)}"
            )
        device, dtype = self._device_dtype()
        gen = None
        if not greedy:
            gen = torch.Generator(device=device)
            gen.manual_seed(0 if seed is None else int(seed))
        out: list[str | None] = []
        for s in range(0, len(z), batch_size):
            zb = torch.as_tensor(z[s : s + batch_size], dtype=dtype, device=device)
            res = self.model.decode(zb, self.grammar, greedy=greedy, generator=gen)
            out.extend(res.strings)
            if progress is not None:
                progress(min(s + batch_size, len(z)), len(z))
        return out

    def decode_greedy(self, z: np.ndarray, batch_size: int = 1024) -> list[str | None]:
        """Greedy masked decodes of ``z [N, d]`` (None = unfinished)."""
        return self.decode(z, greedy=True, batch_size=batch_size)

    def training_strings(self) -> list[str]:
        """The strings the VAE was trained on (``training_strings.txt`` next to its model file,
        or the file its metadata names); [] when neither exists."""
        candidates = []
        if self.meta.get("model_file"):
            candidates.append(Path(self.meta["model_file"]).parent / TRAINING_STRINGS)
        if self.meta.get("training_strings"):
            candidates.append(Path(self.meta["training_strings"]))
        for path in candidates:
            if path.is_file():
                return [s for s in path.read_text(encoding="utf-8").splitlines() if s]
        return []

    def sample_prior(self, n: int, seed: int) -> np.ndarray:
        """``n`` points z ~ N(0, I) ``[n, d]`` from ``np.random.default_rng(seed)``."""
        return np.random.default_rng(seed).standard_normal((int(n), self.latent_dim))
