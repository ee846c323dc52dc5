"""Tokenizers of the grammar text format (docs/grammars.md).

A tokenizer turns a string into terminal tokens with their character offsets (used in parse-error
messages) and back. Kinds (``%tokenizer`` directive):

- ``smiles``: the two-character tokens ``Cl``, ``Br``, ``@@``; every other character is one token
  (Kusner et al. 2017).
- ``polymer``: donor–acceptor strings of Paper D Fig. 2: the separators ``-`` and ``+``
  are tokens, group names are separated by spaces, and ``*`` marks an empty group list (it yields
  no token). ``detokenize`` writes groups space-separated and ``*`` for every empty list, so
  ``A1-H OCH3-S+D4-H F-O S S`` and ``A1-*-S+D2-*-*`` round-trip exactly.
- ``chars``: every character is one token.
- ``whitespace``: tokens are separated by whitespace; ``detokenize`` joins them with one space.
- ``longest`` (default for user grammars): greedy longest match over the grammar's terminals;
  a character that starts no terminal becomes a one-character token (and fails to parse).

``detokenize(tokenize(s)) == s`` holds for strings written in the canonical form of each kind.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

__all__ = ["TOKENIZER_KINDS", "Tokenizer", "make_tokenizer"]

TOKENIZER_KINDS = ("smiles", "polymer", "chars", "whitespace", "longest")

_SMILES_RE = re.compile(r"Cl|Br|@@|.", re.S)
_CHARS_RE = re.compile(r".", re.S)
_WS_RE = re.compile(r"\S+")
_POLYMER_RE = re.compile(r"[-+]|[^\s+\-]+")
_POLYMER_SEPARATORS = frozenset("-+")


def _join_empty(tokens: Sequence[str]) -> str:
    return "".join(tokens)


def _join_space(tokens: Sequence[str]) -> str:
    return " ".join(tokens)


def _polymer_detokenize(tokens: Sequence[str]) -> str:
    """Group names space-separated, ``*`` for an empty list between/after separators."""
    out: list[str] = []
    prev_sep = True  # a list may not start the string, but handle it like after a separator
    for tok in tokens:
        sep = tok in _POLYMER_SEPARATORS
        if sep:
            if prev_sep and out:
                out.append("*")
            out.append(tok)
        else:
            if not prev_sep:
                out.append(" ")
            out.append(tok)
        prev_sep = sep
    if out and prev_sep:
        out.append("*")
    return "".join(out)


class Tokenizer:
    """A tokenizer of one kind; ``split(text)`` gives ``(tokens, offsets)``."""

    def __init__(self, kind: str, terminals: Iterable[str] = ()) -> None:
        if kind not in TOKENIZER_KINDS:
            raise ValueError(
                f"unknown tokenizer {kind!r}; choose one of {', '.join(TOKENIZER_KINDS)}"
            )
        self.kind = kind
        self._drop: frozenset[str] = frozenset()
        if kind == "smiles":
            self._re, self._join = _SMILES_RE, _join_empty
        elif kind == "chars":
            self._re, self._join = _CHARS_RE, _join_empty
        elif kind == "whitespace":
            self._re, self._join = _WS_RE, _join_space
        elif kind == "polymer":
            self._re, self._join = _POLYMER_RE, _polymer_detokenize
            self._drop = frozenset({"*"})
        else:
            terms = sorted({t for t in terminals if t}, key=lambda t: (-len(t), t))
            alts = [re.escape(t) for t in terms if len(t) > 1]
            self._re = re.compile("|".join([*alts, "."]), re.S)
            self._join = _join_empty

    def split(self, text: str) -> tuple[list[str], list[int]]:
        """Tokens of ``text`` and the character offset of each token."""
        tokens: list[str] = []
        offsets: list[int] = []
        drop = self._drop
        for m in self._re.finditer(text):
            tok = m.group()
            if tok in drop:
                continue
            tokens.append(tok)
            offsets.append(m.start())
        return tokens, offsets

    def tokenize(self, text: str) -> list[str]:
        """Tokens of ``text``."""
        if self._drop:
            return [t for t in self._re.findall(text) if t not in self._drop]
        return self._re.findall(text)

    def detokenize(self, tokens: Sequence[str]) -> str:
        """The string written by a token sequence (canonical form of the kind)."""
        return self._join(tokens)


def make_tokenizer(kind: str, terminals: Iterable[str] = ()) -> Tokenizer:
    """A :class:`Tokenizer` of ``kind`` (``terminals`` are used by ``longest``)."""
    return Tokenizer(kind, terminals)
