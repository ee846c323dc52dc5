"""Batched stack decoding with grammar masks (Kusner et al. 2017 Alg. 1).

Each row keeps a stack of nonterminals, initially the start symbol. At step t the top nonterminal A
is popped; the logits are restricted to A's productions (``Grammar.allowed``), renormalised, and a
production is chosen (argmax when greedy, a sample otherwise); its right-hand-side nonterminals are
pushed right to left so that the leftmost is on top. A row whose stack is empty may only choose
NULL (the ``<NULL>`` row of ``allowed``). A row still holding nonterminals after ``max_len`` steps is
*unfinished* (invalid). The string is the replay of the chosen derivation.

Masked softmax: p(r) = exp(l_r) · m_r / Σ_s exp(l_s) · m_s, with m the allowed set of the popped
nonterminal; implemented by setting disallowed logits to −∞ before ``log_softmax``.

The stacks are int64 tensors [B, depth] with a stack pointer per row, so a step is a handful of
vectorised tensor operations (no Python loop over rows).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from deepatoms.grammar.cfg import Grammar
from deepatoms.grammar.errors import GrammarError

__all__ = [
    "START_RULE",
    "DecodeResult",
    "StackDecoder",
    "masked_decode",
    "masked_log_softmax",
    "rule_masks",
]

#: ``prev_rule`` passed to ``logits_fn`` at step 0 (there is no previous production; a decoder
#: that feeds one-hot previous productions should feed a zero vector).
START_RULE = -1


class StackDecoder:
    """Grammar stacks of ``batch_size`` rows, stepped together.

    Attributes:
        finished: bool [B], rows whose stack is empty.
        rules: per row, the productions chosen so far (NULL padding excluded).
    """

    def __init__(self, grammar: Grammar, batch_size: int, device: torch.device | str | None = None):
        if int(batch_size) < 1:
            raise GrammarError(f"batch_size must be a positive int, got {batch_size!r}")
        self.grammar = grammar
        self.batch_size = b = int(batch_size)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        dev = self.device
        self._allowed = torch.tensor(grammar.allowed, device=dev)
        width = max(1, max(len(r) for r in grammar.rhs_nonterminals))
        push = torch.zeros((grammar.n_rules, width), dtype=torch.long)
        for r, rhs in enumerate(grammar.rhs_nonterminals):
            if rhs:
                push[r, : len(rhs)] = torch.tensor(rhs[::-1], dtype=torch.long)
        self._push = push.to(dev)  # rhs nonterminals right-to-left (top of stack last)
        self._push_len = torch.tensor(
            [len(r) for r in grammar.rhs_nonterminals], dtype=torch.long, device=dev
        )
        self._width = width
        self._stack = torch.full((b, 16), grammar.null_nonterminal, dtype=torch.long, device=dev)
        self._stack[:, 0] = grammar.start_index
        self._sp = torch.ones(b, dtype=torch.long, device=dev)  # number of symbols on each stack
        self._history: list[torch.Tensor] = []
        self._rows = torch.arange(b, device=dev)

    @property
    def finished(self) -> torch.Tensor:
        """bool [B]: rows whose stack is empty (only NULL allowed)."""
        return self._sp == 0

    def top(self) -> torch.Tensor:
        """int64 [B]: nonterminal id on top of each stack (``<NULL>`` state when empty)."""
        idx = (self._sp - 1).clamp(min=0)
        top = self._stack[self._rows, idx]
        return torch.where(self._sp > 0, top, torch.full_like(top, self.grammar.null_nonterminal))

    def mask(self) -> torch.Tensor:
        """bool [B, n_rules]: the productions allowed at this step for each row."""
        return self._allowed[self.top()]

    def step(self, choice: torch.Tensor) -> None:
        """Apply one production per row: pop, check it is allowed, push its rhs nonterminals.

        Raises:
            GrammarError: naming the rows whose choice is not a production of their top
                nonterminal (or not NULL on an empty stack).
        """
        choice = torch.as_tensor(choice, device=self.device).long().reshape(-1)
        if choice.shape[0] != self.batch_size:
            raise GrammarError(
                f"step() expects {self.batch_size} choices (one per row), got {choice.shape[0]}"
            )
        g = self.grammar
        if bool(((choice < 0) | (choice >= g.n_rules)).any()):
            raise GrammarError(f"production indices must lie in 0..{g.n_rules - 1}, got {choice}")
        top = self.top()
        ok = self._allowed[top, choice]
        if not bool(ok.all()):
            bad = torch.nonzero(~ok).flatten()[:5].tolist()
            what = "; ".join(
                f"row {b}: production {int(choice[b])} ({g.productions[int(choice[b])]}) but the "
                f"top nonterminal is {g.nonterminals[int(top[b])]!r}"
                for b in bad
            )
            raise GrammarError(f"disallowed production at step {len(self._history)}: {what}")
        sp = (self._sp - 1).clamp(min=0)
        n_push = self._push_len[choice]
        need = int(sp.max()) + self._width  # room for a full-width write without clamping
        if need > self._stack.shape[1]:
            extra = max(need, 2 * self._stack.shape[1]) - self._stack.shape[1]
            pad = torch.full(
                (self.batch_size, extra), g.null_nonterminal, dtype=torch.long, device=self.device
            )
            self._stack = torch.cat([self._stack, pad], dim=1)
        ar = torch.arange(self._width, device=self.device)
        cols = sp[:, None] + ar[None, :]
        write = ar[None, :] < n_push[:, None]
        current = self._stack.gather(1, cols)
        self._stack.scatter_(1, cols, torch.where(write, self._push[choice], current))
        self._sp = sp + n_push
        self._history.append(choice.clone())

    @property
    def rules(self) -> list[list[int]]:
        """Per row, the productions chosen so far (NULL excluded)."""
        if not self._history:
            return [[] for _ in range(self.batch_size)]
        hist = torch.stack(self._history, dim=1).cpu().tolist()
        null = self.grammar.null_index
        return [[r for r in row if r != null] for row in hist]


@dataclass
class DecodeResult:
    """Output of :func:`masked_decode`.

    Attributes:
        rules: int64 [B, max_len], chosen productions, NULL-padded.
        finished: bool [B], the stack emptied within ``max_len`` steps.
        strings: the replayed strings (``None`` for unfinished rows).
    """

    rules: torch.Tensor
    finished: torch.Tensor
    strings: list[str | None]


def masked_log_softmax(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """log-softmax over the allowed productions only (disallowed entries are −∞).

    ``logits`` [..., R], ``mask`` bool broadcastable to it; every row must allow at least one
    production.
    """
    mask = mask.to(device=logits.device, dtype=torch.bool)
    if not bool(mask.any(dim=-1).all()):
        raise GrammarError("masked_log_softmax: a row of the mask allows no production")
    return torch.where(mask, logits, torch.full_like(logits, float("-inf"))).log_softmax(dim=-1)


def rule_masks(grammar: Grammar, targets: torch.Tensor) -> torch.Tensor:
    """bool [B, T, n_rules]: the allowed set at every step of the given derivations.

    At step t the allowed set is the productions of the lhs of ``targets[:, t]`` (only NULL for
    NULL padding), which is the mask the stack decoder applies when it replays ``targets``.
    """
    targets = torch.as_tensor(targets).long()
    allowed = torch.tensor(grammar.allowed, device=targets.device)
    lhs = torch.tensor(grammar.lhs_index, device=targets.device)
    return allowed[lhs[targets]]


def masked_decode(
    logits_fn: Callable[[int, torch.Tensor], torch.Tensor], grammar: Grammar, batch_size: int,
    max_len: int, greedy: bool = True, generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> DecodeResult:  # fmt: skip
    """Decode ``batch_size`` derivations with grammar masks.

    Args:
        logits_fn: ``logits_fn(t, prev_rule)`` → logits [B, n_rules] for step ``t``; ``prev_rule``
            is the int64 [B] production chosen at step t−1 (``START_RULE`` = −1 at t = 0). It is
            not called once every row has finished (the remaining steps are NULL).
        grammar: the grammar.
        batch_size: number of rows B.
        max_len: number of steps.
        greedy: argmax of the masked distribution; otherwise sample from it with ``generator``.
        generator: torch random generator for sampling (on the logits' device).
        device: device of ``prev_rule`` at t = 0 (default CPU); later steps pass the previous
            choice on the logits' device.

    Returns:
        :class:`DecodeResult` (tensors on the logits' device; strings replayed on CPU).
    """
    dec: StackDecoder | None = None
    prev = torch.full((batch_size,), START_RULE, dtype=torch.long, device=device)
    chosen: list[torch.Tensor] = []
    for t in range(int(max_len)):
        logits = logits_fn(t, prev)
        if dec is None:
            dec = StackDecoder(grammar, batch_size, device=logits.device)
        if logits.shape != (batch_size, grammar.n_rules):
            raise GrammarError(
                f"logits_fn returned shape {tuple(logits.shape)} at step {t}, expected "
                f"({batch_size}, {grammar.n_rules})"
            )
        if bool(torch.isnan(logits).any()):
            raise GrammarError(f"logits_fn returned NaN at step {t}")
        mask = dec.mask()
        masked = torch.where(mask, logits, torch.full_like(logits, float("-inf")))
        dead = ~torch.isfinite(masked.max(dim=-1).values)
        if bool(dead.any()):  # every allowed logit is -inf: choose uniformly among the allowed
            masked = torch.where(dead[:, None] & mask, torch.zeros_like(masked), masked)
        if greedy:
            choice = masked.argmax(dim=-1)
        else:
            probs = masked.softmax(dim=-1)
            choice = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
        dec.step(choice)
        chosen.append(choice)
        prev = choice
        if bool(dec.finished.all()):
            break
    device = chosen[0].device if chosen else torch.device("cpu")
    rules = torch.full(
        (batch_size, int(max_len)), grammar.null_index, dtype=torch.long, device=device
    )
    if chosen:
        rules[:, : len(chosen)] = torch.stack(chosen, dim=1)
    finished = (
        dec.finished.clone() if dec is not None else torch.zeros(batch_size, dtype=torch.bool)
    )
    rows = rules.cpu().tolist()
    fin = finished.cpu().tolist()
    strings = [
        grammar.derivation_to_string(row) if ok else None for row, ok in zip(rows, fin, strict=True)
    ]
    return DecodeResult(rules=rules, finished=finished, strings=strings)
