"""Masked stack decoding: grammatical outputs, lhs of every choice, permanent masks, errors."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deepatoms.grammar import GrammarError, load_grammar
from deepatoms.grammar.decode import (
    START_RULE,
    StackDecoder,
    masked_decode,
    masked_log_softmax,
    rule_masks,
)


def replay_lhs_check(g, rules: list[int]) -> bool:
    """Independent leftmost replay: every rule's lhs is the popped nonterminal; True if finished."""
    stack = [g.start]
    for r in rules:
        if r == g.null_index:
            assert not stack, "NULL chosen while nonterminals are open"
            continue
        prod = g.productions[r]
        assert stack, f"rule {r} chosen on an empty stack"
        assert prod.lhs == stack.pop()
        stack.extend(s.name for s in reversed(prod.rhs) if not s.terminal)
    return not stack


def random_decode(g, seed: int, batch: int, max_len: int, greedy: bool, scale: float = 3.0):
    gen = torch.Generator().manual_seed(seed)
    prevs = []

    def logits_fn(t, prev):
        prevs.append(prev.clone())
        return scale * torch.randn(batch, g.n_rules, generator=gen)

    res = masked_decode(logits_fn, g, batch, max_len, greedy=greedy, generator=gen)
    return res, prevs


@pytest.mark.parametrize("name", ["smiles", "polymer", "polymer-typed"])
@pytest.mark.parametrize("greedy", [True, False])
def test_grammar_random_logits_always_grammatical(name, greedy):
    g = load_grammar(name)
    max_len = 80 if name == "smiles" else 55
    n_finished = 0
    for seed in range(4):
        res, prevs = random_decode(g, seed, 64, max_len, greedy)
        assert res.rules.shape == (64, max_len) and res.rules.dtype == torch.long
        assert (prevs[0] == START_RULE).all()
        for t in range(1, len(prevs)):
            assert torch.equal(prevs[t], res.rules[:, t - 1])
        for b in range(64):
            rules = res.rules[b].tolist()
            finished = replay_lhs_check(g, rules)
            assert finished == bool(res.finished[b]) == (res.strings[b] is not None)
            assert 29 not in rules and 31 not in rules if name == "smiles" else True
            if finished:
                n_finished += 1
                derivation = [r for r in rules if r != g.null_index]
                assert g.parse(res.strings[b]) == derivation  # grammatical, same derivation
    assert n_finished > 0


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), scale=st.floats(0.1, 20.0), greedy=st.booleans())
def test_grammar_decode_property(seed, scale, greedy):
    g = load_grammar("smiles")
    res, _ = random_decode(g, seed, 16, 40, greedy, scale)
    for b in range(16):
        rules = res.rules[b].tolist()
        assert 29 not in rules and 31 not in rules
        if replay_lhs_check(g, rules):
            assert g.derivation_to_string(rules) == res.strings[b]
        else:
            assert res.strings[b] is None and not res.finished[b]


def test_grammar_masked_rules_never_chosen_even_when_favoured():
    g = load_grammar("smiles")
    gen = torch.Generator().manual_seed(1)

    def logits_fn(t, prev):
        logits = torch.randn(32, g.n_rules, generator=gen)
        logits[:, [29, 31]] = 1e6  # the permanently masked BACH rules
        return logits

    for greedy in (True, False):
        res = masked_decode(logits_fn, g, 32, 80, greedy=greedy, generator=gen)
        assert not torch.isin(res.rules, torch.tensor([29, 31])).any()


def test_grammar_teacher_logits_reproduce_strings():
    g = load_grammar("smiles")
    texts = ["CC(=O)C#N", "C1CC1", "[NH3+]CCC([O-])=O", "N#N"]
    target = torch.as_tensor(g.encode(texts, 60))
    res = masked_decode(lambda t, prev: 10.0 * g.one_hot(target)[:, t], g, 4, 60)
    assert res.strings == texts and res.finished.all() and torch.equal(res.rules, target)


def test_grammar_stack_decoder_masks_and_errors():
    g = load_grammar("smiles")
    dec = StackDecoder(g, 2)
    assert dec.mask()[0].nonzero().flatten().tolist() == [0]
    with pytest.raises(GrammarError, match=r"row 1: production 72 .* top nonterminal is 'smiles'"):
        dec.step(torch.tensor([0, 72]))
    with pytest.raises(GrammarError, match="row 0: production 75"):
        dec.step(torch.tensor([75, 0]))
    with pytest.raises(GrammarError, match="expects 2 choices"):
        dec.step(torch.tensor([0]))
    dec.step(torch.tensor([0, 0]))
    assert dec.mask()[0].nonzero().flatten().tolist() == [72, 73, 74]
    for rule in [72, 62, 2, 5]:  # chain -> branched_atom -> atom -> aliphatic -> 'C'
        dec.step(torch.tensor([rule, rule]))
    assert dec.finished.tolist() == [True, True]
    assert dec.mask().nonzero()[:, 1].tolist() == [75, 75]
    with pytest.raises(GrammarError, match="top nonterminal is '<NULL>'"):
        dec.step(torch.tensor([75, 0]))
    dec.step(torch.tensor([75, 75]))
    assert dec.rules == [[0, 72, 62, 2, 5], [0, 72, 62, 2, 5]]


def test_grammar_rule_masks_match_decoder():
    g = load_grammar("polymer")
    target = torch.as_tensor(g.encode(["A1-H OCH3-S+D4-H F-O S S", "A2-*-*+D1-*-*"], 30))
    masks = rule_masks(g, target)
    assert masks.shape == (2, 30, 41) and masks.dtype == torch.bool
    dec = StackDecoder(g, 2)
    for t in range(30):
        assert torch.equal(masks[:, t], dec.mask())
        dec.step(target[:, t])
    assert masks[1, 7:].nonzero()[:, 1].unique().tolist() == [40]


def test_grammar_masked_log_softmax():
    logits = torch.tensor([[1.0, 2.0, 3.0], [0.5, 0.5, 0.5]], requires_grad=True)
    mask = torch.tensor([[True, False, True], [False, True, False]])
    out = masked_log_softmax(logits, mask)
    assert out[0, 1] == float("-inf") and out[1, 1] == 0.0
    assert torch.allclose(out[0, [0, 2]].exp().sum(), torch.tensor(1.0))
    assert torch.allclose(
        out[0, 2], torch.tensor(3.0) - torch.logaddexp(torch.tensor(1.0), torch.tensor(3.0))
    )
    loss = -(out[0, 2] + out[1, 1])
    loss.backward()
    assert torch.isfinite(logits.grad).all() and logits.grad[0, 1] == 0
    with pytest.raises(GrammarError, match="allows no production"):
        masked_log_softmax(logits, torch.zeros(2, 3, dtype=torch.bool))


def test_grammar_stack_decoder_deep_stack():
    g = load_grammar("smiles")
    rules = [0, 72, 63, 2, 5, *[66] * 30, 67, *[60, 37] * 31]  # C followed by 31 ring bonds
    dec = StackDecoder(g, 3)
    for r in rules:
        assert dec.mask()[:, r].all()
        dec.step(torch.full((3,), r))
    assert dec.finished.all() and dec.rules[2] == rules
    assert g.derivation_to_string(rules) == "C" + "1" * 31
