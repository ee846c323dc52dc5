"""Errors and warnings of the grammar package (docs/grammars.md).

``GrammarError`` is raised for bad grammar files, invalid derivations and over-long encodings;
``GrammarParseError`` for a string that the grammar cannot parse, carrying the character position,
the offending token and the terminals that would have been accepted there.
"""

from __future__ import annotations

__all__ = ["GrammarError", "GrammarParseError", "GrammarWarning"]


class GrammarError(ValueError):
    """A grammar, a derivation or an encoding request is invalid; the message says where."""


class GrammarWarning(UserWarning):
    """A grammar loads but has a suspicious feature (e.g. a nonterminal without productions)."""


class GrammarParseError(GrammarError):
    """A string cannot be parsed by a grammar.

    Attributes:
        text: the string that failed.
        position: character offset of the offending token (``len(text)`` at the end of input).
        token: the offending token (``""`` at the end of input).
        expected: the terminals that would have been accepted at that position.
        index: position of the string in a batch (``None`` for a single string).
        grammar: name of the grammar.
    """

    def __init__(
        self, text: str, position: int, token: str, expected: list[str], *,
        index: int | None = None, grammar: str = "", end_ok: bool = False,
    ) -> None:  # fmt: skip
        self.text, self.position, self.token = text, position, token
        self.expected, self.index, self.grammar, self.end_ok = (
            list(expected),
            index,
            grammar,
            end_ok,
        )
        super().__init__(self._message())

    def _message(self) -> str:
        where = "end of input" if self.token == "" else f"token {self.token!r}"
        options = [repr(t) for t in self.expected] + (["the end of input"] if self.end_ok else [])
        if options:
            want = "expected one of " + ", ".join(options)
        else:
            want = "no continuation is possible"
        prefix = f"string {self.index}: " if self.index is not None else ""
        gname = f" (grammar {self.grammar!r})" if self.grammar else ""
        return f"{prefix}cannot parse {self.text!r} at position {self.position} ({where}): {want}{gname}"

    def with_index(self, index: int) -> GrammarParseError:
        """A copy of this error that names the string's position ``index`` in a batch."""
        return GrammarParseError(
            self.text,
            self.position,
            self.token,
            self.expected,
            index=index,
            grammar=self.grammar,
            end_ok=self.end_ok,
        )

    def __reduce__(self):  # keep picklable (multiprocessing) despite keyword-only args
        return (
            _rebuild_parse_error,
            (
                self.text,
                self.position,
                self.token,
                self.expected,
                self.index,
                self.grammar,
                self.end_ok,
            ),
        )


def _rebuild_parse_error(
    text, position, token, expected, index, grammar, end_ok,
):  # fmt: skip
    return GrammarParseError(
        text, position, token, expected, index=index, grammar=grammar, end_ok=end_ok
    )
