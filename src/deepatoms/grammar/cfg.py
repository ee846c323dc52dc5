"""Context-free grammars for grammar VAEs (Kusner et al. 2017; docs/grammars.md).

A :class:`Grammar` is an ordered list of productions — the index is the one-hot position — with a
start symbol, a tokenizer and a final **NULL** production used for padding. A string is encoded as
its leftmost derivation (productions in depth-first, left-to-right order), padded with NULL to
``max_len``; replaying a derivation rebuilds the string.

**Text format** (``.cfg`` files; full description in ``docs/grammars.md`` and
:mod:`deepatoms.grammar.text_format`): nltk-like lines ``lhs -> alt1 | alt2``, terminals quoted
(``'C'``), ``ε`` or an empty alternative for the empty string, directives ``%name``, ``%start``,
``%tokenizer smiles|polymer|chars|whitespace|longest`` and ``%undefined``. NULL is appended
automatically.

**Mask** (Kusner et al. 2017; docs/grammar_vae.md §1): for each nonterminal A the productions with left-hand side A. A production whose
right-hand side contains a nonterminal that cannot derive any string (e.g. ``class`` of the SMILES
grammar, which has no productions) can never complete and is permanently masked (SMILES: 29, 31).
The allowed matrix has one extra last row, the *empty-stack state* ``<NULL>`` (lhs of NULL), that
allows only NULL; hence ``allowed[lhs_index[r]]`` is the allowed set at the step that chose ``r``.

**Parser**: the Earley parser of :mod:`deepatoms.grammar.earley` (tie rule for ambiguous grammars
documented there); ``parse_many`` sorts its inputs so that consecutive strings share chart
prefixes.

Shipped grammars (``load_grammar``): ``smiles`` (Kusner et al. 2017, 76 productions),
``polymer`` = ``paper41`` (reconstructed Paper D grammar, 41 productions; docs/grammars.md) and
``polymer-typed`` (57 productions).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepatoms.grammar.earley import Chart, EarleyParser
from deepatoms.grammar.errors import GrammarError, GrammarParseError, GrammarWarning
from deepatoms.grammar.text_format import GrammarSpec, read_grammar_text
from deepatoms.grammar.tokenizers import make_tokenizer

__all__ = [
    "NULL_LHS",
    "SHIPPED_GRAMMARS",
    "Grammar",
    "GrammarError",
    "GrammarParseError",
    "GrammarWarning",
    "Production",
    "Symbol",
    "load_grammar",
]

#: Left-hand side of the NULL production: the state of an empty decoding stack.
NULL_LHS = "<NULL>"

#: Shipped grammar names -> file in ``deepatoms/grammar/grammars``.
SHIPPED_GRAMMARS: dict[str, str] = {
    "smiles": "smiles.cfg",
    "polymer": "paper41.cfg",
    "paper41": "paper41.cfg",
    "polymer-typed": "polymer-typed.cfg",
}


@dataclass(frozen=True)
class Symbol:
    """A grammar symbol: a terminal (a token) or a nonterminal (a name)."""

    name: str
    terminal: bool

    def __str__(self) -> str:
        return repr(self.name) if self.terminal else self.name


@dataclass(frozen=True)
class Production:
    """A production ``lhs -> rhs``; ``rhs`` is empty for ε and for NULL."""

    lhs: str
    rhs: tuple[Symbol, ...]

    def __str__(self) -> str:
        if self.lhs == NULL_LHS:
            return "NULL"
        return f"{self.lhs} -> {' '.join(map(str, self.rhs)) if self.rhs else 'ε'}"


def _readonly(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


class Grammar:
    """A context-free grammar with a fixed production order, tokenizer, mask and parser.

    Attributes:
        name: grammar name.
        productions: productions in one-hot order; the last is NULL.
        start: start nonterminal.
        nonterminals: nonterminal names (order of first definition, then nonterminals used but
            never defined, then ``<NULL>``, the empty-stack state).
        terminals: terminal tokens in order of first use.
        n_rules: number of productions including NULL; ``null_index = n_rules - 1``.
        text: the grammar source text (``Grammar.from_text(g.text)`` rebuilds the grammar).
        tokenizer: tokenizer kind.
        lhs_index: int64 [n_rules], nonterminal id of each production's lhs.
        allowed: bool [n_nonterminals, n_rules], productions of each nonterminal (permanently
            masked productions excluded; the ``<NULL>`` row allows only NULL).
        masked_rules: indices of permanently masked productions.
    """

    def __init__(self, spec: GrammarSpec, text: str, name: str | None = None) -> None:
        self.text = text
        self.name = name or spec.name or Path(spec.source).stem or "grammar"
        src = spec.source
        lhs_order: list[str] = []
        first_line: dict[str, int] = {}
        for lhs, _, line in spec.rules:
            if lhs == NULL_LHS:  # pragma: no cover - the lexer cannot produce it
                raise GrammarError(f"{src}, line {line}: {NULL_LHS} is reserved")
            if lhs not in first_line:
                first_line[lhs] = line
                lhs_order.append(lhs)
        used_undefined: list[str] = []
        used_line: dict[str, int] = {}
        terminals: list[str] = []
        term_line: dict[str, int] = {}
        for _, rhs, line in spec.rules:
            for sym, is_term in rhs:
                if is_term:
                    if sym not in term_line:
                        term_line[sym] = line
                        terminals.append(sym)
                elif sym not in first_line and sym not in used_line:
                    used_line[sym] = line
                    used_undefined.append(sym)
        for nt, line in spec.undefined.items():
            if nt in first_line:
                raise GrammarError(
                    f"{src}, line {line}: {nt!r} is declared %undefined but has productions "
                    f"(line {first_line[nt]}); remove it from %undefined"
                )
        silent = [nt for nt in used_undefined if nt not in spec.undefined]
        if silent:
            where = ", ".join(f"{nt!r} (line {used_line[nt]})" for nt in silent)
            warnings.warn(
                f"grammar {self.name!r} ({src}): nonterminal(s) {where} have no productions; the "
                "productions using them are permanently masked. Define them, or declare them "
                "with '%undefined NAME' if this is intended",
                GrammarWarning,
                stacklevel=3,
            )
        self.nonterminals: list[str] = [*lhs_order, *used_undefined, NULL_LHS]
        nt_id = {nt: k for k, nt in enumerate(self.nonterminals)}
        self.start = spec.start or spec.rules[0][0]
        if self.start not in first_line:
            line = f", line {spec.start_line}" if spec.start_line else ""
            raise GrammarError(
                f"{src}{line}: start symbol {self.start!r} has no productions; define rules "
                f"'{self.start} -> ...' or choose one of {', '.join(lhs_order)} in %start"
            )
        self.terminals = terminals
        self.tokenizer = spec.tokenizer or "longest"
        self._tok = make_tokenizer(self.tokenizer, terminals)
        for t in terminals:
            if self._tok.tokenize(t) != [t]:
                raise GrammarError(
                    f"{src}, line {term_line[t]}: terminal {t!r} is never produced by tokenizer "
                    f"{self.tokenizer!r} (it splits it into {self._tok.tokenize(t)}); choose "
                    "another %tokenizer or split the terminal"
                )

        self.productions: list[Production] = [
            Production(lhs, tuple(Symbol(s, t) for s, t in rhs)) for lhs, rhs, _ in spec.rules
        ]
        self.productions.append(Production(NULL_LHS, ()))
        self.n_rules = len(self.productions)
        self.null_index = self.n_rules - 1
        self._rule_lines = [line for _, _, line in spec.rules]

        n_nt = len(self.nonterminals)
        self._term_code = {t: n_nt + k for k, t in enumerate(terminals)}
        codes: list[tuple[int, tuple[int, ...]]] = [
            (
                nt_id[p.lhs],
                tuple(self._term_code[s.name] if s.terminal else nt_id[s.name] for s in p.rhs),
            )
            for p in self.productions
        ]
        # productive nonterminals (derive some terminal string), fixpoint
        productive = [False] * n_nt
        changed = True
        while changed:
            changed = False
            for lhs, rhs in codes[:-1]:
                if not productive[lhs] and all(s >= n_nt or productive[s] for s in rhs):
                    productive[lhs] = changed = True
        usable = [all(s >= n_nt or productive[s] for s in rhs) for _, rhs in codes]
        usable[-1] = False  # NULL never appears in a parse
        if not productive[nt_id[self.start]]:
            raise GrammarError(
                f"{src}: start symbol {self.start!r} cannot derive any string (every production "
                "leads to a nonterminal without productions); fix the rules"
            )
        self.masked_rules: list[int] = [r for r in range(self.null_index) if not usable[r]]
        self._check_cycles(codes, usable, self.nonterminals, src)

        lhs_index = np.array([lhs for lhs, _ in codes], dtype=np.int64)
        allowed = np.zeros((n_nt, self.n_rules), dtype=bool)
        for r in range(self.null_index):
            if usable[r]:
                allowed[lhs_index[r], r] = True
        allowed[nt_id[NULL_LHS], self.null_index] = True
        self.lhs_index = _readonly(lhs_index)
        self.allowed = _readonly(allowed)
        self.null_nonterminal = nt_id[NULL_LHS]
        self.start_index = nt_id[self.start]
        #: per production, the nonterminal ids of its rhs (left to right)
        self.rhs_nonterminals: list[tuple[int, ...]] = [
            tuple(s for s in rhs if s < n_nt) for _, rhs in codes
        ]
        self._codes = codes
        self._term_names = {c: t for t, c in self._term_code.items()}
        self._parser = EarleyParser(n_nt, codes, usable, nt_id[self.start])

    # ------------------------------------------------------------------ construction
    @staticmethod
    def _check_cycles(codes, usable, names: list[str], src: str) -> None:
        """Reject A ⇒+ A (unit cycles through nullable symbols): derivations would not be unique."""
        n_nt = len(names)
        nullable = [False] * n_nt
        changed = True
        while changed:
            changed = False
            for r, (lhs, rhs) in enumerate(codes):
                if usable[r] and not nullable[lhs] and all(s < n_nt and nullable[s] for s in rhs):
                    nullable[lhs] = changed = True
        edges: dict[int, set[int]] = {}
        for r, (lhs, rhs) in enumerate(codes):
            if not usable[r]:
                continue
            for k, s in enumerate(rhs):
                if s < n_nt and all(t < n_nt and nullable[t] for t in rhs[:k] + rhs[k + 1 :]):
                    edges.setdefault(lhs, set()).add(s)
        color = [0] * n_nt
        for root in range(n_nt):
            if color[root]:
                continue
            stack = [(root, iter(sorted(edges.get(root, ()))))]
            color[root] = 1
            path = [root]
            while stack:
                node, it = stack[-1]
                nxt = next(it, None)
                if nxt is None:
                    color[node] = 2
                    stack.pop()
                    path.pop()
                elif color[nxt] == 1:
                    cyc = [*path[path.index(nxt) :], nxt]
                    raise GrammarError(
                        f"{src}: the grammar is cyclic ({' => '.join(names[c] for c in cyc)}); "
                        "a nonterminal derives itself, so derivations are not unique. Remove "
                        "the unit/ε cycle"
                    )
                elif color[nxt] == 0:
                    color[nxt] = 1
                    path.append(nxt)
                    stack.append((nxt, iter(sorted(edges.get(nxt, ())))))

    @classmethod
    def from_text(cls, text: str, name: str | None = None, source: str | None = None) -> Grammar:
        """Build a grammar from text in the ``.cfg`` format (``name`` overrides ``%name``)."""
        spec = read_grammar_text(text, source or (f"grammar {name!r}" if name else "<text>"))
        return cls(spec, text, name)

    @classmethod
    def from_file(cls, path: str | Path) -> Grammar:
        """Read a ``.cfg`` grammar file (name: ``%name`` or the file stem)."""
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise GrammarError(
                f"grammar file '{p}' does not exist; give a path to a .cfg file or one of the "
                f"shipped names {', '.join(SHIPPED_GRAMMARS)}"
            ) from None
        except (OSError, UnicodeDecodeError) as err:
            raise GrammarError(f"cannot read grammar file '{p}': {err}") from None
        spec = read_grammar_text(text, str(p))
        return cls(spec, text, spec.name or p.stem)

    def __repr__(self) -> str:
        return (
            f"Grammar(name={self.name!r}, n_rules={self.n_rules}, start={self.start!r}, "
            f"tokenizer={self.tokenizer!r})"
        )

    # ------------------------------------------------------------------ tokens
    def tokenize(self, text: str) -> list[str]:
        """Tokens of ``text`` under the grammar's tokenizer."""
        return self._tok.tokenize(text)

    def detokenize(self, tokens: Sequence[str]) -> str:
        """The string written by ``tokens`` (canonical form of the tokenizer)."""
        return self._tok.detokenize(tokens)

    # ------------------------------------------------------------------ parsing
    def _split(self, text: str) -> tuple[list[str], list[int]]:
        if not isinstance(text, str):
            raise GrammarError(f"expected a string to parse, got {type(text).__name__}: {text!r}")
        return self._tok.split(text)

    def _parse_one(
        self, text: str, chart: Chart | None, split: tuple[list[str], list[int]] | None = None
    ) -> tuple[list[int], Chart]:
        toks, offs = split if split is not None else self._split(text)
        get = self._term_code.get
        codes = [get(t, -1) for t in toks]
        chart, fail = self._parser.parse(codes, chart)
        if fail is not None:
            i = fail.index
            raise GrammarParseError(
                text,
                offs[i] if i < len(toks) else len(text),
                toks[i] if i < len(toks) else "",
                [self._term_names[c] for c in sorted(fail.expected)],
                grammar=self.name,
                end_ok=fail.end_ok,
            )
        return self._parser.derivation(chart, len(codes)), chart

    def parse(self, text: str) -> list[int]:
        """Leftmost derivation of ``text`` (production indices, no NULL padding).

        Raises:
            GrammarParseError: naming the character position, the token and the expected tokens.
        """
        return self._parse_one(text, None)[0]

    def parse_many(
        self,
        texts: Sequence[str],
        progress: Callable[[int, int], None] | None = None,
        on_error: str = "raise",
    ) -> tuple[list[list[int] | None], list[GrammarParseError]]:
        """Parse many strings (sorted internally so that charts are shared between prefixes).

        Args:
            texts: strings to parse.
            progress: optional ``progress(done, total)`` callback (e.g. a ``ProgressBar``).
            on_error: ``"raise"`` raises the error of the first bad string (lowest index, the
                message names it); ``"skip"`` returns ``None`` for it and collects the error.

        Returns:
            ``(derivations, errors)``: one derivation (or ``None``) per string in input order and
            the :class:`GrammarParseError` of each failed string (``.index`` set), by index.
        """
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        n = len(texts)
        splits: list[tuple[list[str], list[int]]] = []
        for k, t in enumerate(texts):
            try:
                splits.append(self._split(t))
            except GrammarError as err:
                raise GrammarError(f"string {k}: {err}") from None
        order = sorted(range(n), key=lambda k: splits[k][0])
        out: list[list[int] | None] = [None] * n
        errors: list[GrammarParseError] = []
        chart: Chart | None = None
        step = max(1, n // 200)
        for done, k in enumerate(order, start=1):
            try:
                out[k], chart = self._parse_one(texts[k], chart, splits[k])
            except GrammarParseError as err:
                errors.append(err.with_index(k))
                chart = None
            if progress is not None and (done % step == 0 or done == n):
                progress(done, n)
        errors.sort(key=lambda e: e.index)
        if errors and on_error == "raise":
            raise errors[0]
        return out, errors

    # ------------------------------------------------------------------ derivations
    def _as_rule_list(self, rules: Any) -> list[int]:
        if isinstance(rules, torch.Tensor):
            rules = rules.detach().cpu().tolist()
        elif isinstance(rules, np.ndarray):
            rules = rules.tolist()
        return [int(r) for r in rules]

    def derivation_to_string(self, rules: Any) -> str:
        """Replay a (NULL-padded) leftmost derivation and return the string it writes.

        Raises:
            GrammarError: an index out of range, a production whose lhs is not the leftmost open
                nonterminal, a non-NULL production after NULL, or an unfinished derivation.
        """
        seq = self._as_rule_list(rules)
        n_nt = len(self.nonterminals)
        codes, null = self._codes, self.null_index
        stack: list[int] = [self.start_index]
        out: list[str] = []
        names = self._term_names
        for t, r in enumerate(seq):
            if r == null:
                bad = [x for x in seq[t + 1 :] if x != null]
                if bad:
                    raise GrammarError(
                        f"derivation step {t + 1 + seq[t + 1 :].index(bad[0])}: production "
                        f"{bad[0]} after NULL; a padded derivation has only NULL after the end"
                    )
                break
            if not 0 <= r < null:
                raise GrammarError(
                    f"derivation step {t}: production index {r} out of range 0..{null} for "
                    f"grammar {self.name!r}"
                )
            while stack and stack[-1] >= n_nt:
                out.append(names[stack.pop()])
            lhs, rhs = codes[r]
            if not stack:
                raise GrammarError(
                    f"derivation step {t}: production {r} ({self.productions[r]}) but the "
                    "derivation is already complete; pad with NULL instead"
                )
            if stack[-1] != lhs:
                raise GrammarError(
                    f"derivation step {t}: production {r} ({self.productions[r]}) expands "
                    f"{self.nonterminals[lhs]!r}, but the leftmost open nonterminal is "
                    f"{self.nonterminals[stack[-1]]!r}"
                )
            stack.pop()
            stack.extend(reversed(rhs))
        while stack and stack[-1] >= n_nt:
            out.append(names[stack.pop()])
        if stack:
            raise GrammarError(
                f"unfinished derivation of {len(seq)} steps: nonterminal "
                f"{self.nonterminals[stack[-1]]!r} (and {len(stack) - 1} more symbols) still open"
            )
        return self._tok.detokenize(out)

    def encode(
        self,
        texts: Sequence[str],
        max_len: int,
        progress: Callable[[int, int], None] | None = None,
    ) -> np.ndarray:
        """Derivations of ``texts`` as int64 [B, max_len], padded with ``null_index``.

        Raises:
            GrammarParseError: for an unparseable string (naming its index).
            GrammarError: when a derivation is longer than ``max_len`` (naming the string).
        """
        if int(max_len) < 1:
            raise GrammarError(f"max_len must be a positive int, got {max_len!r}")
        derivs, _ = self.parse_many(texts, progress=progress, on_error="raise")
        out = np.full((len(texts), int(max_len)), self.null_index, dtype=np.int64)
        for k, d in enumerate(derivs):
            assert d is not None
            if len(d) > max_len:
                raise GrammarError(
                    f"string {k} ({texts[k]!r}): derivation has {len(d)} productions, more than "
                    f"max_len={max_len}; raise max_len or drop the string"
                )
            out[k, : len(d)] = d
        return out

    def one_hot(self, indices: Any) -> torch.Tensor:
        """One-hot float32 tensor [B, T, n_rules] of production indices [B, T]."""
        idx = torch.as_tensor(
            np.asarray(indices) if not isinstance(indices, torch.Tensor) else indices
        )
        idx = idx.long()
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= self.n_rules):
            raise GrammarError(
                f"production indices must lie in 0..{self.n_rules - 1} for grammar "
                f"{self.name!r}, got range {int(idx.min())}..{int(idx.max())}"
            )
        return torch.nn.functional.one_hot(idx, self.n_rules).to(torch.float32)


@cache
def _shipped(name: str) -> Grammar:
    fname = SHIPPED_GRAMMARS[name]
    text = (resources.files("deepatoms.grammar") / "grammars" / fname).read_text(encoding="utf-8")
    return Grammar.from_text(text, source=f"shipped grammar '{fname}'")


def load_grammar(name_or_path: str | Path) -> Grammar:
    """A shipped grammar by name (``smiles``, ``polymer``/``paper41``, ``polymer-typed``) or a
    user ``.cfg`` file by path. Shipped grammars are cached: treat them as read-only."""
    if isinstance(name_or_path, str) and name_or_path in SHIPPED_GRAMMARS:
        return _shipped(name_or_path)
    p = Path(name_or_path)
    if not p.is_file():
        raise GrammarError(
            f"unknown grammar {str(name_or_path)!r}: not a shipped grammar "
            f"({', '.join(SHIPPED_GRAMMARS)}) and no such file"
        )
    return Grammar.from_file(p)
