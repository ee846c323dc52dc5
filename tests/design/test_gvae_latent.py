"""LatentSpace, the grammar-VAE model file and string CSVs (models.latent_space, data.strings)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gvae_helpers import QM9_SMILES, write_csv

from deepatoms.data.strings import read_string_csv
from deepatoms.grammar.cfg import Grammar, load_grammar
from deepatoms.grammar.errors import GrammarError, GrammarParseError
from deepatoms.models.grammar_vae import GrammarVAE
from deepatoms.models.latent_space import LatentSpace, parse_strings
from deepatoms.models.loading import load_model as load_latent_space
from model_helpers import save_grammar_vae

TOY = """%name toy
%start S
S -> 'a' S | 'b'
"""


@pytest.fixture
def space() -> LatentSpace:
    g = load_grammar("smiles")
    torch.manual_seed(0)
    model = GrammarVAE(
        {"n_rules": g.n_rules, "max_len": 80, "latent_dim": 4, "hidden": 16, "dense": 8}
    )
    return LatentSpace(model, g, {"note": "test"})


def test_gvae_parse_strings_pads_with_null():
    g = Grammar.from_text(TOY)
    idx = parse_strings(g, ["b", "aab"], 4)
    # productions: 0 S -> 'a' S, 1 S -> 'b', 2 NULL
    assert idx.tolist() == [[1, 2, 2, 2], [0, 0, 1, 2]]


def test_gvae_parse_strings_errors_name_the_string():
    g = Grammar.from_text(TOY)
    with pytest.raises(GrammarParseError, match="string 1") as err:
        parse_strings(g, ["ab", "ac"], 4)
    assert err.value.index == 1 and err.value.position == 1
    with pytest.raises(GrammarError, match=r"data\.csv line 7: cannot parse 'ac'"):
        parse_strings(g, ["ab", "ac"], 4, where=lambda i: f"data.csv line {i + 6}")
    with pytest.raises(
        GrammarError, match=r"string 0: 'aaab' has a derivation of 4 .* max_len = 3"
    ):
        parse_strings(g, ["aaab"], 3)


def test_gvae_latent_space_shapes_and_prior(space):
    mu = space.encode_mean(QM9_SMILES[:5])
    assert mu.shape == (5, 4) and mu.dtype == np.float64
    z = space.encode_sample(QM9_SMILES[:5], np.random.default_rng(0))
    assert z.shape == (5, 4) and not np.allclose(z, mu)
    prior = space.sample_prior(3, seed=7)
    assert np.array_equal(prior, np.random.default_rng(7).standard_normal((3, 4)))
    dec = space.decode_greedy(prior)
    assert len(dec) == 3
    assert all(s is None or isinstance(s, str) for s in dec)
    with pytest.raises(ValueError, match=r"shape \[N, 4\]"):
        space.decode_greedy(np.zeros((2, 3)))


def test_gvae_latent_encode_names_bad_string(space):
    with pytest.raises(GrammarParseError, match=r"string 2: cannot parse 'C\(X'"):
        space.encode_mean(["C", "CC", "C(X", "CCC"])


def test_gvae_sampled_decoding_is_seeded(space):
    z = space.sample_prior(6, seed=1)
    a = space.decode(z, greedy=False, seed=3)
    b = space.decode(z, greedy=False, seed=3)
    assert a == b


def test_gvae_model_file_round_trip(space, tmp_path):
    path = tmp_path / "model.pt"
    save_grammar_vae(path, space.model, space.grammar, {"note": "test"})
    payload = torch.load(path, weights_only=True)
    assert payload["extras"]["grammar"]["text"] == space.grammar.text
    loaded = load_latent_space(path)
    assert loaded.meta["note"] == "test" and loaded.meta["model_file"] == str(path)
    assert loaded.grammar.n_rules == 76 and loaded.grammar.name == "smiles"
    assert np.array_equal(loaded.encode_mean(QM9_SMILES), space.encode_mean(QM9_SMILES))
    z = space.sample_prior(20, seed=0)
    assert loaded.decode_greedy(z) == space.decode_greedy(z)
    # a run folder resolves to its model.pt
    loaded = load_latent_space(tmp_path)
    assert not loaded.model.training and loaded.grammar.text == space.grammar.text


def test_gvae_model_file_errors(space, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"without a model\.pt"):
        load_latent_space(tmp_path)
    other = tmp_path / "other.pt"
    torch.save({"format": "something-else"}, other)
    with pytest.raises(ValueError, match="not a deepatoms model file"):
        load_latent_space(other)
    junk = tmp_path / "junk.pt"
    junk.write_text("not a torch file")
    with pytest.raises(ValueError, match="not a readable model file"):
        load_latent_space(junk)


def test_gvae_read_string_csv(tmp_path):
    path = write_csv(
        tmp_path / "d.csv",
        ["C", "CC", "CCC"],
        split=["train", "Val", "test"],
        props={"lumo": [0.5, 1.0, -2.0]},
    )
    t = read_string_csv(path, properties=["lumo"])
    assert t.strings == ["C", "CC", "CCC"] and t.column == "string"
    assert t.split.tolist() == ["train", "val", "test"]
    assert t.properties["lumo"].tolist() == [0.5, 1.0, -2.0]
    assert t.rows("val").tolist() == [1] and t.where(2) == f"{path} line 4"
    smiles = tmp_path / "s.csv"
    smiles.write_text("SMILES,x\nC,1\nN,2\n")
    t2 = read_string_csv(smiles)
    assert t2.strings == ["C", "N"] and t2.split is None and t2.rows("test").tolist() == [0, 1]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name,lumo\nC,1\n", "has no 'string' \\(or 'smiles'\\) column; columns: name, lumo"),
        ("string,lumo\nC,1\nCC,abc\n", "line 3: column 'lumo' holds 'abc', not a number"),
        ("string,lumo\nC,1\n,2\n", "line 3: the 'string' cell is empty"),
        ("string,split\nC,train\nCC,holdout\n", "line 3: split label 'holdout'"),
        ("string,lumo\nC,1,4\n", "line 2: 3 fields, but the header has 2"),
        ("string,lumo\n", "has a header but no data rows"),
        ("string,gap\nC,1\n", "lacks property column\\(s\\) \\['lumo'\\]"),
    ],
)
def test_gvae_read_string_csv_errors(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_string_csv(path, properties=["lumo"] if "lumo" in message else ())
