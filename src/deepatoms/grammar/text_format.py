"""Reader of the grammar text format (docs/grammars.md; nltk-like CFG lines).

Format, one item per line (``#`` starts a comment outside quotes; blank lines are ignored)::

    %name smiles                 # optional: grammar name (default: the file's stem)
    %start smiles                # optional: start symbol (default: lhs of the first rule)
    %tokenizer smiles            # optional: smiles | polymer | chars | whitespace | longest
    %undefined class             # optional: nonterminals that deliberately have no productions
    smiles -> chain
    chain -> branched_atom | chain branched_atom
           | chain bond branched_atom     # a line starting with '|' continues the rule above
    bond -> '-' | '=' | '#' | '\\\\'        # terminals are quoted ('x' or "x"), \\\\ is a backslash
    XL -> G XL | ε                          # ε (or an empty alternative) is the empty string

Productions are numbered in the order written (alternatives left to right); the padding
production NULL is appended by :class:`deepatoms.grammar.cfg.Grammar`. Nonterminal names match
``[A-Za-z_]\\w*``. Every error names the source and the line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from deepatoms.grammar.errors import GrammarError
from deepatoms.grammar.tokenizers import TOKENIZER_KINDS

__all__ = ["EPSILON", "GrammarSpec", "read_grammar_text"]

EPSILON = "ε"
_LEX = re.compile(
    r"""(?P<ws>\s+)
      |(?P<comment>\#.*)
      |(?P<term>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
      |(?P<arrow>->)
      |(?P<bar>\|)
      |(?P<eps>ε)
      |(?P<name>[^\W\d]\w*)
      |(?P<bad>.)""",
    re.X,
)
_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "t": "\t"}
_FORMAT_HINT = "write rules as: lhs -> 'terminal' Nonterminal | ε"


@dataclass
class GrammarSpec:
    """The content of a grammar text: rules in order plus directives, with line numbers."""

    source: str
    name: str | None = None
    start: str | None = None
    start_line: int = 0
    tokenizer: str | None = None
    undefined: dict[str, int] = field(default_factory=dict)
    #: (lhs, rhs as ((symbol, is_terminal), ...), line number)
    rules: list[tuple[str, tuple[tuple[str, bool], ...], int]] = field(default_factory=list)


def _unquote(quoted: str, where: str) -> str:
    body = quoted[1:-1]
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            nxt = body[i + 1] if i + 1 < len(body) else ""
            if nxt not in _ESCAPES:
                raise GrammarError(
                    f"{where}: unknown escape '\\{nxt}' in terminal {quoted}; "
                    "use \\\\ for a backslash, \\' or \\\" for quotes"
                )
            out.append(_ESCAPES[nxt])
            i += 2
        else:
            out.append(ch)
            i += 1
    if not out:
        raise GrammarError(
            f"{where}: empty terminal {quoted}; write ε or an empty alternative for the "
            "empty string"
        )
    return "".join(out)


def _lex(line: str, where: str) -> list[tuple[str, str]]:
    """(kind, text) tokens of one rule line, comments and spaces removed."""
    out: list[tuple[str, str]] = []
    for m in _LEX.finditer(line):
        kind = m.lastgroup
        assert kind is not None
        if kind in ("ws", "comment"):
            continue
        if kind == "bad":
            text = m.group()
            hint = " (unterminated quote?)" if text in "'\"" else ""
            raise GrammarError(
                f"{where}: unexpected character {text!r} at column {m.start() + 1}{hint} in "
                f"{line.strip()!r}; {_FORMAT_HINT}"
            )
        out.append((kind, m.group()))
    return out


def _alternatives(
    toks: list[tuple[str, str]], where: str, line: str
) -> list[tuple[tuple[str, bool], ...]]:
    alts: list[list[tuple[str, str]]] = [[]]
    for kind, text in toks:
        if kind == "bar":
            alts.append([])
        elif kind == "arrow":
            raise GrammarError(
                f"{where}: a second '->' in {line.strip()!r}; put each rule on its own line"
            )
        else:
            alts[-1].append((kind, text))
    result: list[tuple[tuple[str, bool], ...]] = []
    for alt in alts:
        if any(k == "eps" for k, _ in alt):
            if len(alt) > 1:
                raise GrammarError(
                    f"{where}: ε must stand alone in an alternative, got {line.strip()!r}; "
                    "drop ε from the alternative with other symbols"
                )
            result.append(())
            continue
        syms = tuple(
            (_unquote(text, where), True) if kind == "term" else (text, False) for kind, text in alt
        )
        result.append(syms)
    return result


def _directive(spec: GrammarSpec, line: str, lineno: int, where: str) -> None:
    body = re.sub(r"\s#.*$", "", line.strip())
    parts = body.split()
    key, args = parts[0], parts[1:]
    if key == "%start":
        if len(args) != 1 or not re.fullmatch(r"[^\W\d]\w*", args[0]):
            raise GrammarError(f"{where}: expected '%start NAME' (one nonterminal), got {body!r}")
        spec.start, spec.start_line = args[0], lineno
    elif key == "%name":
        if len(args) != 1:
            raise GrammarError(f"{where}: expected '%name NAME' (no spaces), got {body!r}")
        spec.name = args[0]
    elif key == "%tokenizer":
        if len(args) != 1 or args[0] not in TOKENIZER_KINDS:
            raise GrammarError(
                f"{where}: expected '%tokenizer KIND' with KIND one of "
                f"{', '.join(TOKENIZER_KINDS)}, got {body!r}"
            )
        spec.tokenizer = args[0]
    elif key == "%undefined":
        if not args:
            raise GrammarError(f"{where}: expected '%undefined NAME [NAME ...]', got {body!r}")
        for a in args:
            spec.undefined.setdefault(a, lineno)
    else:
        raise GrammarError(
            f"{where}: unknown directive {key!r}; known: %name, %start, %tokenizer, %undefined"
        )


def read_grammar_text(text: str, source: str = "<text>") -> GrammarSpec:
    """Parse grammar text into a :class:`GrammarSpec`; errors name ``source`` and the line."""
    spec = GrammarSpec(source=source)
    current: str | None = None
    for lineno, line in enumerate(text.splitlines(), start=1):
        where = f"{source}, line {lineno}"
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("%"):
            _directive(spec, line, lineno, where)
            current = None
            continue
        toks = _lex(line, where)
        if not toks:
            continue
        if toks[0][0] == "bar":
            if current is None:
                raise GrammarError(
                    f"{where}: a line starting with '|' must continue a rule, but no rule "
                    f"precedes it: {stripped!r}"
                )
            lhs, rest = current, toks[1:]
        elif len(toks) >= 2 and toks[0][0] == "name" and toks[1][0] == "arrow":
            lhs, rest = toks[0][1], toks[2:]
        else:
            raise GrammarError(f"{where}: malformed rule {stripped!r}; {_FORMAT_HINT}")
        for rhs in _alternatives(rest, where, line):
            spec.rules.append((lhs, rhs, lineno))
        current = lhs
    if not spec.rules:
        raise GrammarError(f"{source}: no productions found; {_FORMAT_HINT}")
    return spec
