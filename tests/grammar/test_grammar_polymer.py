"""Polymer strings (Paper D): generator, 7 + 2N law, 599 features, labels, CSV, validity."""

from __future__ import annotations

import numpy as np
import pytest

from deepatoms.grammar import GrammarError, load_grammar
from deepatoms.grammar.polymer import (
    ACCEPTORS,
    DONORS,
    SLOTS,
    generate_polymer_strings,
    parse_monomer,
    polymer_features,
    polymer_validity,
    read_polymer_csv,
    synthetic_polymer_labels,
)
from deepatoms.grammar.validity import canonical, validity_checker

EXAMPLE = "A1-H OCH3-S+D4-H F-O S S"


def test_grammar_polymer_generator_round_trip_and_length_law():
    strings = generate_polymer_strings(300, seed=5)
    assert strings == generate_polymer_strings(300, seed=5)
    assert strings != generate_polymer_strings(300, seed=6)
    paper41, typed = load_grammar("polymer"), load_grammar("polymer-typed")
    idx = paper41.encode(strings, max_len=55)
    counts = []
    for k, s in enumerate(strings):
        m = parse_monomer(s, strict=True)
        n = sum(len(m.slot(slot)) for slot in SLOTS)
        counts.append([len(m.slot(slot)) for slot in SLOTS])
        assert (idx[k] != paper41.null_index).sum() == 7 + 2 * n
        assert len(typed.parse(s)) == 7 + 2 * n
        assert paper41.derivation_to_string(paper41.one_hot(idx[k : k + 1])[0].argmax(-1)) == s
    counts = np.array(counts)
    assert counts.min() == 0 and counts.max() == 3
    assert set(parse_monomer(s).acceptor for s in strings) == set(ACCEPTORS)
    assert set(parse_monomer(s).donor for s in strings) == set(DONORS)
    big = [parse_monomer(s, strict=True) for s in generate_polymer_strings(200, 1, max_groups=6)]
    sizes = [len(m.slot(slot)) for m in big for slot in SLOTS]
    assert min(sizes) == 0 and max(sizes) == 6


def test_grammar_polymer_features_example():
    x, names = polymer_features([EXAMPLE, "A13-*-*+D10-*-*"])
    assert x.shape == (2, 599) and len(names) == 599 == 13 + 10 + 24 + 552
    row = dict(zip(names, x[0], strict=True))
    nonzero_base = {n: v for n, v in list(row.items())[:47] if v}
    assert nonzero_base == {
        "acc=A1": 1, "don=D4": 1, "accX:OCH3": 1, "accX:H": 1, "accY:S": 1,
        "donX:F": 1, "donX:H": 1, "donY:S": 2, "donY:O": 1,
    }  # fmt: skip
    assert row["acc=A1*donY:S"] == 2 and row["don=D4*accX:H"] == 1 and row["acc=A2*donY:S"] == 0
    assert x[0, 47:].sum() == 2 * x[0, 23:47].sum()  # products with the two one-hot entries
    assert x[1].sum() == 2 and x[1, 12] == 1 and x[1, 22] == 1
    with pytest.raises(GrammarError, match=r"string 1: .*'Se'.* acceptor x list"):
        polymer_features([EXAMPLE, "A1-Se-*+D1-*-*"])


def test_grammar_polymer_synthetic_labels():
    strings = generate_polymer_strings(200, seed=0)
    lab = synthetic_polymer_labels(strings, seed=3)
    assert set(lab) == {"homo", "lumo", "gap", "opt"}
    assert np.allclose(lab["lumo"], lab["homo"] + lab["gap"])
    assert (lab["gap"] >= 0.5).all() and -7 < lab["homo"].mean() < -4
    again = synthetic_polymer_labels(strings, seed=3)
    assert all(np.array_equal(lab[k], again[k]) for k in lab)
    assert not np.allclose(lab["homo"], synthetic_polymer_labels(strings, seed=4)["homo"])


def test_grammar_polymer_csv(tmp_path):
    good = tmp_path / "poly.csv"
    good.write_text(f"string,lumo,opt,note\n{EXAMPLE},-3.1,1.5,x\nA2-*-*+D1-*-*,,1.6,y\n")
    strings, props = read_polymer_csv(good)
    assert strings == [EXAMPLE, "A2-*-*+D1-*-*"] and set(props) == {"lumo", "opt"}
    assert props["opt"].tolist() == [1.5, 1.6] and np.isnan(props["lumo"][1])
    bad = tmp_path / "bad.csv"
    bad.write_text(f"string,homo\n{EXAMPLE},-5\n{EXAMPLE},abc\n")
    with pytest.raises(GrammarError, match=r"bad.csv', line 3: column 'homo' value 'abc'"):
        read_polymer_csv(bad)
    bad.write_text("string,homo\nA1-H+D2-*-*,-5\n")
    with pytest.raises(GrammarError, match=r"line 2: polymer string 'A1-H\+D2-\*-\*'.*two '-'"):
        read_polymer_csv(bad)
    bad.write_text("smiles,homo\nCCO,-5\n")
    with pytest.raises(GrammarError, match="no 'string' column"):
        read_polymer_csv(bad)


def test_grammar_polymer_validity():
    valid = polymer_validity()
    assert valid(EXAMPLE) and valid("A1-*-*+D1-*-*")
    assert not valid("A1-H H H H H H H-*+D1-*-*")  # 7 groups > 6
    assert not valid("A14-*-*+D1-*-*") and not valid("A1-*-*") and not valid(None)
    sited = polymer_validity(site_table={"A1": (2, 1), "D4": (2, 3)})
    assert sited(EXAMPLE) and sited("A2-*-*+D1-*-*")  # A2, D1 not in the table
    assert not sited("A1-H-S+D4-H F-O S S")
    with pytest.raises(GrammarError, match="site table entry 'A1'"):
        polymer_validity(site_table={"A1": (1,)})
    typed = validity_checker(load_grammar("polymer-typed"))
    assert typed(EXAMPLE) and not typed("A1-Se-*+D1-*-*")  # Se is no acceptor X group
    assert validity_checker(load_grammar("polymer"))("A1-Se-*+D1-*-*")
    assert canonical(load_grammar("polymer"), EXAMPLE) == EXAMPLE


def test_grammar_smiles_validity_and_canonical():
    g = load_grammar("smiles")
    valid = validity_checker(g)
    assert valid("C1CC1") and valid("[NH3+]CCC([O-])=O")
    assert not valid("C1CC") and not valid("") and not valid("C(C)(C)(C)(C)C")
    assert canonical(g, "OCC") == canonical(g, "C(O)C") == "CCO"
    assert canonical(g, "C1CC") == "C1CC"
