"""Inverse design by iterated conditional modes in a learnt latent space (Paper D,
Algorithm 1).

Given property regressors f_k on the latent space and targets t_k (window midpoints):

1. draw ẑ ~ N(0, I) (Paper D: 10⁶ points; a CPU run uses 10⁴);
2. repeat ``n_iter`` times (Paper D: 20):
   x̂ ← greedy masked decode of ẑ;
   drop unfinished decodes (``None``), invalid strings, duplicates (two strings with the same key;
   the first latent point in population order is kept) and strings of the training set (key in
   ``exclude``);
   ẑ ← encoder mean of x̂;
3. return the ``top_k`` (100) strings x̂ with the smallest objective

       J(x̂) = Σ_k (t_k − f_k(ẑ))²,   ẑ = encoder mean of x̂ (eV², for properties in eV),

   sorted by J (ties keep population order), each with ẑ and its predictions f_k(ẑ).

Deviation (not in Paper D): if an iteration keeps no string at all (a poorly trained model whose
encoder means decode to invalid strings), the loop stops and the last non-empty population is
returned instead of nothing.

A string's prediction uses the encoder mean (§5), so J belongs to the string x̂ that is returned.
The population only shrinks: each iteration keeps at most one latent point per distinct string.
Decoding, validity checks and encoding run in chunks of ``chunk`` latent points, so 10⁶ samples
need memory for one chunk of decodes plus the population (float32, 10⁶ × 32 ≈ 128 MB).

Everything model-specific is a callable (``decode``, ``encode``, ``predict``, ``is_valid``,
``key``), so the loop is tested with hand-made latent models; :func:`run_design` wires a trained
``LatentSpace`` and ``RegressorSet`` (``deepatoms.design``) into it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

__all__ = ["ICMIteration", "ICMResult", "iterated_conditional_modes", "objective", "run_design"]

#: Paper D Algorithm 1 settings.
PAPER_SAMPLES = 1_000_000
PAPER_ITERATIONS = 20
PAPER_TOP_K = 100
#: Latent points decoded/encoded together (memory bound of one chunk).
DEFAULT_CHUNK = 10_000


@dataclass
class ICMIteration:
    """Counts of one ICM iteration (population = latent points decoded in this iteration)."""

    iteration: int
    population: int
    unfinished: int = 0
    invalid: int = 0
    duplicate: int = 0
    training: int = 0
    unencodable: int = 0
    kept: int = 0
    best: float = float("nan")  # smallest objective of the kept strings (eV²)
    median: float = float("nan")

    def as_dict(self) -> dict[str, Any]:
        """Plain dict (for JSON)."""
        return asdict(self)


@dataclass
class ICMResult:
    """The ``top_k`` proposals (sorted by objective) and the run's history.

    ``strings``/``keys`` [K], ``z`` [K, d] (encoder means), ``predictions`` {name: [K]} (eV),
    ``objective`` [K] (eV²); ``population_strings``/``population_z`` hold the whole final
    population in population order; ``history`` one :class:`ICMIteration` per iteration run.
    """

    strings: list[str]
    keys: list[str]
    z: np.ndarray
    predictions: dict[str, np.ndarray]
    objective: np.ndarray
    targets: dict[str, float]
    history: list[ICMIteration] = field(default_factory=list)
    population_strings: list[str] = field(default_factory=list)
    population_z: np.ndarray | None = None


def objective(predictions: Mapping[str, np.ndarray], targets: Mapping[str, float]) -> np.ndarray:
    """J = Σ_k (t_k − f_k)² [N] over the target properties (eV² for eV properties).

    Raises ValueError naming the targets that ``predictions`` lacks.
    """
    missing = [k for k in targets if k not in predictions]
    if missing:
        raise ValueError(
            f"no regressor for target(s) {missing}; the regressors predict "
            f"{sorted(predictions)}: give --target only for these"
        )
    terms = [(float(t) - np.asarray(predictions[k], float)) ** 2 for k, t in targets.items()]
    return np.sum(terms, axis=0)


def _filter_decodes(
    strings: Sequence[str | None],
    is_valid: Callable[[str], bool],
    key: Callable[[str], str],
    exclude: set[str] | frozenset[str],
    seen: set[str],
    stats: ICMIteration,
) -> list[tuple[str, str]]:
    """(string, key) of the decodes of one chunk that survive the filters, in order."""
    kept = []
    for s in strings:
        if s is None:
            stats.unfinished += 1
            continue
        if not is_valid(s):
            stats.invalid += 1
            continue
        k = key(s)
        if k in seen:
            stats.duplicate += 1
            continue
        seen.add(k)
        if k in exclude:
            stats.training += 1
            continue
        kept.append((s, k))
    return kept


def _encode_robust(
    encode: Callable[[Sequence[str]], np.ndarray], strings: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Encoder means of ``strings`` and a mask of those that could be encoded.

    A failing chunk (e.g. a decode whose re-parse exceeds ``max_len``) is retried string by
    string and the failures are dropped.
    """
    try:
        z = np.asarray(encode(strings))
        return z, np.ones(len(strings), bool)
    except ValueError:
        rows, ok = [], np.zeros(len(strings), bool)
        for i, s in enumerate(strings):
            try:
                rows.append(np.asarray(encode([s]))[0])
                ok[i] = True
            except ValueError:
                continue
        if not rows:
            return np.zeros((0, 0)), ok
        return np.stack(rows), ok


def iterated_conditional_modes(
    z0: np.ndarray, decode: Callable[[np.ndarray], list[str | None]],
    encode: Callable[[Sequence[str]], np.ndarray],
    predict: Callable[[np.ndarray], dict[str, np.ndarray]], targets: Mapping[str, float],
    is_valid: Callable[[str], bool], exclude: set[str] | frozenset[str] = frozenset(),
    key: Callable[[str], str] = str, n_iter: int = PAPER_ITERATIONS, top_k: int = PAPER_TOP_K,
    chunk: int = DEFAULT_CHUNK, progress: Callable[[int, int, int], None] | None = None,
    on_iteration: Callable[[ICMIteration], None] | None = None,
) -> ICMResult:  # fmt: skip
    """Paper D Algorithm 1 from the latent points ``z0`` [N, d] (see the module docstring).

    ``decode(z [c, d]) -> [str | None]`` (greedy masked decode, None = unfinished);
    ``encode(strings) -> [c, d]`` (encoder mean); ``predict(z) -> {name: [c]}`` (eV);
    ``targets`` {name: t_k} (eV); ``exclude`` holds the *keys* of training strings;
    ``key(s)`` identifies a string (e.g. canonical SMILES), applied to valid strings only.
    ``progress(iteration, done, total)`` after each chunk (latent points of this iteration);
    ``on_iteration(stats)`` after each iteration. When an iteration keeps no string the loop
    stops and the previous population is returned (empty if it was the first iteration).
    """
    z = np.asarray(z0)
    if z.ndim != 2 or len(z) == 0:
        raise ValueError(f"z0 must be a non-empty [N, d] array of latent points, got {z.shape}")
    if not targets:
        raise ValueError("give at least one target property (name → value in eV)")
    for name, value in (("n_iter", n_iter), ("top_k", top_k), ("chunk", chunk)):
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    objective(predict(z[:1]), targets)  # fail on unknown targets before the expensive loop
    history: list[ICMIteration] = []
    # the population returned: (z, strings, keys, predictions, objective) of the last non-empty
    # iteration; empty while no iteration has kept a string
    pop: tuple = (z[:0], [], [], {}, np.zeros(0))
    for it in range(1, n_iter + 1):
        new_z, strings, keys, stats = _one_iteration(
            z, it, decode, encode, is_valid, key, exclude, chunk, progress
        )
        if len(new_z):
            preds = _predict_chunked(predict, new_z, chunk)
            score = objective(preds, targets)
            stats.best, stats.median = float(score.min()), float(np.median(score))
            pop = (new_z, strings, keys, preds, score)
        history.append(stats)
        if on_iteration is not None:
            on_iteration(stats)
        if len(new_z) == 0:
            break  # nothing left to decode: keep the previous population
        z = new_z
    z, strings, keys, preds, score = pop
    order = np.argsort(score, kind="stable")[:top_k]
    return ICMResult(
        strings=[strings[i] for i in order],
        keys=[keys[i] for i in order],
        z=z[order],
        predictions={k: np.asarray(v, float)[order] for k, v in preds.items()},
        objective=score[order],
        targets={k: float(v) for k, v in targets.items()},
        history=history,
        population_strings=strings,
        population_z=z,
    )


def _one_iteration(
    z: np.ndarray, it: int, decode: Callable[[np.ndarray], list[str | None]],
    encode: Callable[[Sequence[str]], np.ndarray], is_valid: Callable[[str], bool],
    key: Callable[[str], str], exclude: set[str] | frozenset[str], chunk: int,
    progress: Callable[[int, int, int], None] | None,
) -> tuple[np.ndarray, list[str], list[str], ICMIteration]:  # fmt: skip
    """Decode → filter → encode of one ICM iteration, chunk by chunk: (ẑ, x̂, keys, counts)."""
    stats = ICMIteration(iteration=it, population=len(z))
    seen: set[str] = set()
    new_z, strings, keys = [], [], []
    for start in range(0, len(z), chunk):
        n = min(chunk, len(z) - start)
        decoded = decode(z[start : start + n])
        if len(decoded) != n:
            raise ValueError(
                f"decode returned {len(decoded)} strings for {n} latent points; it must return "
                "one per point"
            )
        kept = _filter_decodes(decoded, is_valid, key, exclude, seen, stats)
        if kept:
            zc, ok = _encode_robust(encode, [s for s, _ in kept])
            stats.unencodable += int((~ok).sum())
            if ok.any():
                new_z.append(zc.astype(z.dtype, copy=False))
                strings += [s for (s, _), good in zip(kept, ok, strict=True) if good]
                keys += [k for (_, k), good in zip(kept, ok, strict=True) if good]
        if progress is not None:
            progress(it, start + n, len(z))
    stats.kept = len(strings)
    out = np.concatenate(new_z) if new_z else np.zeros((0, z.shape[1]), z.dtype)
    return out, strings, keys, stats


def _predict_chunked(
    predict: Callable[[np.ndarray], dict[str, np.ndarray]], z: np.ndarray, chunk: int
) -> dict[str, np.ndarray]:
    """``predict`` over ``z`` in chunks, concatenated per property."""
    if len(z) == 0:
        return {}
    parts = [predict(z[s : s + chunk]) for s in range(0, len(z), chunk)]
    return {k: np.concatenate([np.asarray(p[k], float) for p in parts]) for k in parts[0]}


def run_design(
    latent_space: Any, regressors: Any, targets: Mapping[str, float],
    n_samples: int = PAPER_SAMPLES, seed: int = 0, n_iter: int = PAPER_ITERATIONS,
    top_k: int = PAPER_TOP_K, training_strings: Sequence[str] = (), chunk: int = DEFAULT_CHUNK,
    batch_size: int = 1024, progress: Callable[[int, int, int], None] | None = None,
    on_iteration: Callable[[ICMIteration], None] | None = None,
) -> ICMResult:  # fmt: skip
    """ICM with a trained latent space and regressors (``deepatoms.design.latent.LatentSpace``,
    ``deepatoms.models.latent_regressor.LatentRegressors``), from ``n_samples`` prior draws of ``seed``.

    Validity and string keys come from the latent space's grammar
    (``deepatoms.grammar.validity``: RDKit sanitisation and canonical SMILES for SMILES);
    ``training_strings`` are never proposed. ``batch_size`` is the network batch inside a chunk.
    """
    from deepatoms.grammar.validity import canonical, validity_checker

    if n_samples < 1:
        raise ValueError(f"the number of samples must be at least 1, got {n_samples}")
    grammar = latent_space.grammar
    is_valid = validity_checker(grammar)

    def key(s: str) -> str:
        return canonical(grammar, s)

    exclude = {key(s) for s in training_strings if is_valid(s)}
    z0 = np.asarray(latent_space.sample_prior(n_samples, seed), np.float32)
    return iterated_conditional_modes(
        z0,
        decode=lambda z: latent_space.decode_greedy(z, batch_size=batch_size),
        encode=lambda s: latent_space.encode_mean(s, batch_size=batch_size),
        predict=regressors.predict,
        targets=targets,
        is_valid=is_valid,
        exclude=exclude,
        key=key,
        n_iter=n_iter,
        top_k=top_k,
        chunk=chunk,
        progress=progress,
        on_iteration=on_iteration,
    )
