"""Grammar machinery: shipped grammars, exact derivations, parse errors, user grammar files."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from deepatoms.grammar import Grammar, GrammarError, GrammarParseError, load_grammar
from deepatoms.grammar.errors import GrammarWarning

CC_O_CN = [0, 74, 73, 73, 72, 62, 2, 5, 64, 2, 5, 69, 71, 56, 72, 62, 2, 7, 62, 2, 5, 57, 62, 2, 6]
C1CC1 = [0, 73, 73, 72, 63, 2, 5, 67, 60, 37, 62, 2, 5, 63, 2, 5, 67, 60, 37]
POLY = "A1-H OCH3-S+D4-H F-O S S"
POLY_PAPER41 = [0, 1, 24, 32, 24, 28, 25, 26, 34, 27, 17, 24, 32, 24, 31, 25, 26, 33, 26, 34, 26]
POLY_PAPER41 += [34, 27]
POLY_TYPED = [0, 1, 24, 36, 24, 32, 25, 26, 37, 27, 17, 28, 43, 28, 42, 29, 30, 50, 30, 49, 30]
POLY_TYPED += [49, 31]


def qm9_smiles() -> list[str]:
    """All qm9pack SMILES, read with the QM9 source helpers (csv module, no pandas)."""
    from deepatoms.data.sources.qm9 import QM9_FILES, qm9_data_dir

    csv.field_size_limit(1 << 30)
    out: list[str] = []
    for name in QM9_FILES:
        with open(qm9_data_dir() / name, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            col = next(reader).index("SMILES")
            out.extend(row[col] for row in reader)
    return out


@pytest.fixture(scope="module")
def smiles():
    return load_grammar("smiles")


def test_grammar_sizes_and_null():
    for name, n in [("smiles", 76), ("polymer", 41), ("paper41", 41), ("polymer-typed", 57)]:
        g = load_grammar(name)
        assert g.n_rules == len(g.productions) == n
        assert g.null_index == n - 1 and str(g.productions[-1]) == "NULL"
        assert g.allowed.shape == (len(g.nonterminals), n)
        # the <NULL> state allows only NULL; every other row excludes NULL
        assert g.allowed[g.lhs_index[g.null_index]].tolist() == [False] * (n - 1) + [True]
        assert not g.allowed[: g.null_nonterminal, g.null_index].any()
    assert load_grammar("polymer").name == "paper41"


def test_grammar_smiles_layout(smiles):
    assert str(smiles.productions[0]) == "smiles -> chain"
    assert str(smiles.productions[18]) == "bracket_atom -> '[' BAI ']'"
    assert str(smiles.productions[59]) == "bond -> '\\\\'"
    assert str(smiles.productions[74]) == "chain -> chain bond branched_atom"
    assert smiles.masked_rules == [29, 31]
    bach = smiles.nonterminals.index("BACH")
    assert smiles.allowed[bach].nonzero()[0].tolist() == [30]
    assert smiles.lhs_index[29] == bach and "class" in smiles.nonterminals
    toks = ["Cl", "C", "(", "Br", ")", "[", "C", "@@", "H", "]"]
    assert smiles.tokenize("ClC(Br)[C@@H]") == toks


def test_grammar_spec_derivations(smiles):
    assert smiles.parse("CC(=O)C#N") == CC_O_CN
    assert smiles.parse("C1CC1") == C1CC1
    assert load_grammar("polymer").parse(POLY) == POLY_PAPER41
    assert load_grammar("polymer-typed").parse(POLY) == POLY_TYPED
    assert smiles.derivation_to_string(CC_O_CN) == "CC(=O)C#N"
    assert load_grammar("polymer-typed").derivation_to_string(POLY_TYPED) == POLY


def test_grammar_encode_one_hot_replay(smiles):
    texts = ["CC(=O)C#N", "C1CC1", "[NH3+]CCC([O-])=O"]
    idx = smiles.encode(texts, max_len=50)
    assert idx.dtype == np.int64 and idx.shape == (3, 50)
    assert idx[0, :25].tolist() == CC_O_CN and (idx[0, 25:] == 75).all()
    oh = smiles.one_hot(idx)
    assert oh.dtype == torch.float32 and oh.shape == (3, 50, 76)
    assert torch.equal(oh.sum(-1), torch.ones(3, 50))
    back = oh.argmax(-1)
    assert [smiles.derivation_to_string(row) for row in back] == texts
    with pytest.raises(GrammarError, match=r"string 2 .*44 productions, more than max_len=43"):
        smiles.encode(texts, max_len=43)
    with pytest.raises(GrammarParseError, match=r"^string 1: cannot parse 'CX'") as info:
        smiles.encode(["C", "CX"], max_len=30)
    assert info.value.index == 1 and info.value.position == 1
    with pytest.raises(GrammarError, match=r"0\.\.75"):
        smiles.one_hot(np.array([[76]]))


def test_grammar_parse_errors(smiles):
    with pytest.raises(GrammarParseError) as info:
        smiles.parse("CC(X")
    err = info.value
    assert (err.text, err.position, err.token) == ("CC(X", 3, "X")
    assert str(err).startswith("cannot parse 'CC(X' at position 3 (token 'X'): expected one of ")
    assert "C" in err.expected and "=" in err.expected and ")" not in err.expected
    with pytest.raises(GrammarParseError) as info:
        smiles.parse("CC(")
    assert (info.value.position, info.value.token) == (3, "")
    assert "(end of input)" in str(info.value)
    with pytest.raises(GrammarParseError, match=r"position 2 \(token '\)'\).*the end of input"):
        smiles.parse("CC)")
    poly = load_grammar("polymer")
    with pytest.raises(GrammarParseError) as info:
        poly.parse("A1-H OCH3-Q+D4-*-*")
    assert (info.value.position, info.value.token) == (10, "Q")
    assert info.value.expected[:2] == ["+", "OCH3"]


def test_grammar_derivation_replay_errors(smiles):
    with pytest.raises(GrammarError, match=r"step 1: production 5 .* expands 'aliphatic_organic'"):
        smiles.derivation_to_string([0, 5])
    with pytest.raises(GrammarError, match="unfinished derivation of 3 steps: nonterminal 'atom'"):
        smiles.derivation_to_string([0, 72, 62])
    with pytest.raises(GrammarError, match="production 5 after NULL"):
        smiles.derivation_to_string([*C1CC1, 75, 5])
    with pytest.raises(GrammarError, match="out of range"):
        smiles.derivation_to_string([0, 99])
    with pytest.raises(GrammarError, match="already complete"):
        smiles.derivation_to_string([*C1CC1, 0])
    assert smiles.derivation_to_string(torch.tensor([*C1CC1, 75, 75])) == "C1CC1"


def test_grammar_parse_many_skip_and_raise(smiles):
    texts = ["CCO", "C(", "c1ccccc1", "CC9", "N#N"]
    seen = []
    out, errors = smiles.parse_many(
        texts, progress=lambda d, t: seen.append((d, t)), on_error="skip"
    )
    assert out[1] is None and out[3] is None
    assert [smiles.derivation_to_string(out[k]) for k in (0, 2, 4)] == ["CCO", "c1ccccc1", "N#N"]
    assert [e.index for e in errors] == [1, 3] and errors[1].token == "9"
    assert seen[-1] == (5, 5)
    with pytest.raises(GrammarParseError, match=r"^string 1: "):
        smiles.parse_many(texts)


def test_grammar_qm9_sample_round_trip(smiles):
    rng = np.random.default_rng(7)
    all_smiles = qm9_smiles()
    sample = [all_smiles[i] for i in rng.choice(len(all_smiles), 2000, replace=False)]
    idx = smiles.encode(sample, max_len=80)
    back = smiles.one_hot(idx).argmax(-1)
    assert [smiles.derivation_to_string(row) for row in back] == sample
    lengths = (idx != smiles.null_index).sum(1)
    assert lengths.max() <= 74 and 40 < lengths.mean() < 58


@pytest.mark.slow
def test_grammar_all_qm9_parse():
    g = load_grammar("smiles")
    all_smiles = qm9_smiles()
    assert len(all_smiles) == 130_831
    derivs, errors = g.parse_many(all_smiles, on_error="skip")
    assert errors == []
    lengths = np.array([len(d) for d in derivs])
    assert lengths.max() == 74 and round(float(lengths.mean()), 1) == 49.0
    idx = g.encode(all_smiles[:5000], max_len=80)
    for k, row in enumerate(g.one_hot(idx).argmax(-1)):
        assert g.derivation_to_string(row) == all_smiles[k]
    assert all(g.derivation_to_string(d) == s for d, s in zip(derivs, all_smiles, strict=True))


def test_grammar_tokenizers():
    poly = load_grammar("polymer")
    assert poly.tokenize("A1-*-S Se+D2-H-*") == [
        "A1",
        "-",
        "-",
        "S",
        "Se",
        "+",
        "D2",
        "-",
        "H",
        "-",
    ]
    for s in ["A1-*-S Se+D2-H-*", "A13-*-*+D10-*-*", POLY]:
        assert poly.detokenize(poly.tokenize(s)) == s
        assert poly.derivation_to_string(poly.parse(s)) == s
    assert len(poly.parse("A13-*-*+D10-*-*")) == 7


def test_grammar_user_text_format(tmp_path):
    text = """
    # a toy list language
    %name toy
    %tokenizer whitespace
    S -> 'go' L 'stop'       # comment after a rule
    L -> I L |
      | ε
    I -> 'a' | "b" | 'c\\'s'
    """
    g = Grammar.from_text(text)
    assert g.name == "toy" and g.start == "S" and g.n_rules == 8
    assert [str(p) for p in g.productions[:4]] == [
        "S -> 'go' L 'stop'",
        "L -> I L",
        "L -> ε",
        "L -> ε",
    ]
    assert g.terminals == ["go", "stop", "a", "b", "c's"]
    d = g.parse("go a c's b stop")
    assert d == [0, 1, 4, 1, 6, 1, 5, 2]  # tie between equal ε rules: lowest index
    assert g.derivation_to_string(d) == "go a c's b stop"
    assert Grammar.from_text(g.text).productions == g.productions
    path = tmp_path / "mylang.cfg"
    path.write_text(text.replace("%name toy\n", ""), encoding="utf-8")
    assert load_grammar(path).name == "mylang" and load_grammar(str(path)).n_rules == 8


def test_grammar_nullable_and_tie_rule():
    g = Grammar.from_text("S -> A B 'c'\nA -> 'a' | ε\nB -> 'b' | ε", name="n")
    assert g.parse("c") == [0, 2, 4] and g.parse("ac") == [0, 1, 4] and g.parse("bc") == [0, 2, 3]
    assert g.parse("abc") == [0, 1, 3]
    # ambiguous: the rightmost child takes the shortest span -> left-associative
    e = Grammar.from_text("E -> E '+' E | 'a'", name="e")
    assert e.parse("a+a+a") == [0, 0, 1, 1, 1]
    tie = Grammar.from_text("S -> A | B\nA -> 'x'\nB -> 'x'", name="t")
    assert tie.parse("x") == [0, 2]
    empty = Grammar.from_text("S -> 'x' S | ε", name="s", source="s")
    assert empty.parse("") == [1] and empty.derivation_to_string([1]) == ""


def test_grammar_file_errors_name_line(tmp_path):
    bad_start = tmp_path / "bad_start.cfg"
    bad_start.write_text("%start expr\nS -> 'a'\n", encoding="utf-8")
    with pytest.raises(GrammarError, match=r"bad_start.cfg, line 1: start symbol 'expr' has no"):
        load_grammar(bad_start)
    malformed = tmp_path / "malformed.cfg"
    malformed.write_text("S -> A\nA 'a'\n", encoding="utf-8")
    with pytest.raises(GrammarError, match=r"malformed.cfg, line 2: malformed rule \"A 'a'\""):
        load_grammar(malformed)
    cases = {
        "S -> 'a\n": 'line 1: unexpected character "\'" at column 6 \\(unterminated quote\\?\\)',
        "S -> 'a'\n%frobnicate\n": "line 2: unknown directive '%frobnicate'",
        "S -> 'a'\n%tokenizer bpe\n": "line 2: expected '%tokenizer KIND'",
        "| 'a'\n": "line 1: a line starting with '\\|' must continue a rule",
        "S -> ''\n": "line 1: empty terminal ''",
        "S -> 'a' ε\n": "line 1: ε must stand alone",
        "%tokenizer chars\nS -> 'ab'\n": "line 2: terminal 'ab' is never produced by tokenizer",
        "S -> A\nA -> S | 'a'\n": "cyclic \\(S => A => S\\)",
        "S -> X\n%undefined X\n": "start symbol 'S' cannot derive any string",
        "S -> 'a'\n%undefined S\n": "line 2: 'S' is declared %undefined but has productions",
        "# nothing\n": "no productions found",
    }
    for k, (text, msg) in enumerate(cases.items()):
        path = tmp_path / f"g{k}.cfg"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(GrammarError, match=msg):
            Grammar.from_file(path)
    with pytest.warns(GrammarWarning, match=r"'clas' \(line 2\) have no productions"):
        g = Grammar.from_text("S -> 'a' | T\nT -> clas 'b' | 'c'", name="w")
    assert g.masked_rules == [2] and not g.allowed[:, 2].any()
    with pytest.raises(GrammarError, match=r"unknown grammar 'nope'.*smiles"):
        load_grammar("nope")
    with pytest.raises(GrammarError, match="does not exist"):
        Grammar.from_file(tmp_path / "missing.cfg")


def test_grammar_docs_peptide_example():
    text = """
    # comments start with '#' (outside quotes)
    %name peptide            # grammar name
    %start peptide
    %tokenizer whitespace

    peptide -> residue | residue peptide
    residue -> 'Gly' | 'Ala' | 'Ser'
             | mod 'Cys'     # a line starting with '|' continues the rule above
    mod -> 'ox' | ε
    """
    g = Grammar.from_text(text)
    assert (g.name, g.n_rules, g.start) == ("peptide", 9, "peptide")
    assert g.parse("Gly ox Cys Ala") == [1, 2, 1, 5, 6, 0, 3]
    assert g.derivation_to_string([1, 2, 1, 5, 6, 0, 3, 8, 8]) == "Gly ox Cys Ala"
    assert g.parse("Gly Cys") == [1, 2, 0, 5, 7]  # mod -> ε
    with pytest.raises(GrammarParseError, match=r"position 7 \(token 'Ala'\)") as info:
        g.parse("Gly ox Ala")
    assert info.value.expected == ["Cys"]
