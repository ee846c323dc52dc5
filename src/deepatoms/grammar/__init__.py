"""Context-free grammars for grammar VAEs: grammar files, Earley parsing, masked stack decoding,
polymer strings and validity checks (Kusner et al. 2017; Paper D; docs/grammars.md)."""

from deepatoms.grammar.cfg import (
    Grammar,
    GrammarError,
    GrammarParseError,
    Production,
    Symbol,
    load_grammar,
)
from deepatoms.grammar.decode import DecodeResult, StackDecoder, masked_decode
from deepatoms.grammar.validity import canonical, validity_checker

__all__ = [
    "DecodeResult",
    "Grammar",
    "GrammarError",
    "GrammarParseError",
    "Production",
    "StackDecoder",
    "Symbol",
    "canonical",
    "load_grammar",
    "masked_decode",
    "validity_checker",
]
