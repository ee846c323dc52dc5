"""GrammarVAE and LatentRegressor: shapes, KL, loss weighting, teacher forcing, architecture."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deepatoms.models.grammar_vae import (
    GrammarVAE,
    kl_divergence,
    resolve_vae_config,
    shift_right,
    token_accuracy,
    vae_loss,
)
from deepatoms.models.latent_regressor import LatentRegressor

R, T = 11, 12


def _model(**kw) -> GrammarVAE:
    torch.manual_seed(0)
    return GrammarVAE({"n_rules": R, "max_len": T, "latent_dim": 4, "hidden": 16, "dense": 8, **kw})


def _batch(b: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    idx = torch.randint(0, R, (b, T), generator=g)
    return idx, F.one_hot(idx, R).float()


@pytest.mark.parametrize("z_input", ["both", "state", "input"])
def test_gvae_shapes(z_input):
    m = _model(z_input=z_input)
    _, x = _batch()
    mu, logvar = m.encode(x)
    assert mu.shape == logvar.shape == (5, 4)
    out = m(x)
    assert out["logits"].shape == (5, T, R)
    assert out["z"].shape == (5, 4)


def test_gvae_kusner2017_shapes_and_defaults():
    cfg = resolve_vae_config({"n_rules": 76, "max_len": 80, "architecture": "kusner2017"})
    assert (cfg["latent_dim"], cfg["hidden"], cfg["dense"]) == (56, 501, 435)
    assert cfg["conv_filters"] == [9, 9, 10] and cfg["conv_kernels"] == [9, 9, 11]
    m = GrammarVAE({**cfg, "hidden": 8, "dense": 6, "latent_dim": 3})
    x = F.one_hot(torch.zeros(2, 80, dtype=torch.long), 76).float()
    assert m.encode(x)[0].shape == (2, 3)
    # flatten width: 10 filters x (80 - 8 - 8 - 10) positions
    assert m.enc_dense.in_features == 10 * 54
    assert m.decoder_logits(torch.zeros(2, 3)).shape == (2, 80, 76)
    assert m.dec_rnn.num_layers == 3


def test_gvae_config_errors():
    with pytest.raises(ValueError, match="unknown grammar-VAE model keys"):
        resolve_vae_config({"n_rules": 5, "max_len": 5, "hiden": 3})
    with pytest.raises(ValueError, match="needs 'n_rules'"):
        resolve_vae_config({"max_len": 5})
    with pytest.raises(ValueError, match="z_input"):
        resolve_vae_config({"n_rules": 5, "max_len": 5, "z_input": "neither"})
    with pytest.raises(ValueError, match="too short"):
        resolve_vae_config({"n_rules": 5, "max_len": 20, "architecture": "kusner2017"})


def test_gvae_kl_zero_at_standard_normal():
    mu = torch.zeros(3, 7)
    assert torch.equal(kl_divergence(mu, torch.zeros(3, 7)), torch.zeros(3))
    # KL(N(1, e) || N(0, 1)) per dim = ½(1 + e − 1 − 1) = (e − 1)/2
    kl = kl_divergence(torch.ones(1, 2), torch.ones(1, 2))
    assert kl.item() == pytest.approx(2 * (math.e - 1) / 2)


def test_gvae_alpha_scales_only_kl():
    torch.manual_seed(0)
    logits = torch.randn(4, T, R)
    targets = torch.randint(0, R, (4, T))
    mu, logvar = torch.randn(4, 3), torch.randn(4, 3)
    l0 = vae_loss(logits, targets, mu, logvar, alpha=0.0)
    l1 = vae_loss(logits, targets, mu, logvar, alpha=0.08)
    assert torch.equal(l0["recon"], l1["recon"])
    assert torch.equal(l0["kl"], l1["kl"])
    assert (l1["loss"] - l0["loss"]).item() == pytest.approx(0.08 * l0["kl"].item(), rel=1e-5)
    assert l0["loss"].item() == pytest.approx(l0["recon"].item(), rel=1e-6)


def test_gvae_recon_sums_over_all_steps_and_exclude_padding():
    # uniform logits: −log p = log R per step
    logits = torch.zeros(2, T, R)
    targets = torch.full((2, T), R - 1)
    targets[0, :3] = 0
    zeros = torch.zeros(2, 3)
    full = vae_loss(logits, targets, zeros, zeros)
    assert full["recon"].item() == pytest.approx(T * math.log(R))
    part = vae_loss(logits, targets, zeros, zeros, null_index=R - 1, exclude_padding=True)
    assert part["recon_per_string"].tolist() == pytest.approx([3 * math.log(R), 0.0])
    with pytest.raises(ValueError, match="null_index"):
        vae_loss(logits, targets, zeros, zeros, exclude_padding=True)


def test_gvae_free_bits_floor_per_dimension():
    logits, targets = torch.zeros(2, T, R), torch.zeros(2, T, dtype=torch.long)
    mu = torch.tensor([[1.0, 0.0], [1.0, 0.0]])  # KL per dim: 0.5 and 0
    out = vae_loss(logits, targets, mu, torch.zeros(2, 2), alpha=1.0, free_bits=0.25)
    assert (out["loss"] - out["recon"]).item() == pytest.approx(0.5 + 0.25)


def test_gvae_teacher_forcing_shift():
    _, x = _batch(3)
    assert torch.equal(shift_right(x)[:, 1:], x[:, :-1])
    assert torch.equal(shift_right(x)[:, 0], torch.zeros(3, R))
    m = _model()
    z = torch.randn(3, 4)
    base = m.decoder_logits(z, x)
    t = 5
    x2 = x.clone()
    x2[:, t] = F.one_hot(torch.full((3,), (int(x[0, t].argmax()) + 1) % R), R).float()
    changed = m.decoder_logits(z, x2)
    assert torch.equal(changed[:, : t + 1], base[:, : t + 1])  # steps ≤ t never see x⁽ᵗ⁾
    assert not torch.allclose(changed[:, t + 1], base[:, t + 1])


@pytest.mark.parametrize("z_input", ["both", "state", "input"])
def test_gvae_step_decoder_equals_teacher_forcing(z_input):
    m = _model(z_input=z_input).eval()
    idx, x = _batch(3)
    z = torch.randn(3, 4)
    full = m.decoder_logits(z, x)
    fn = m.step_logits_fn(z)
    prev = torch.full((3,), -1)
    for t in range(T):
        torch.testing.assert_close(fn(t, prev), full[:, t], atol=1e-5, rtol=1e-5)
        prev = idx[:, t]


def test_gvae_token_accuracy_skips_null():
    logits = F.one_hot(torch.tensor([[0, 1, 2]]), 4).float()
    targets = torch.tensor([[0, 2, 3]])
    assert token_accuracy(logits, targets) == (1, 3)
    assert token_accuracy(logits, targets, null_index=3) == (1, 2)


def test_gvae_regressor_architecture():
    reg = LatentRegressor(32, dropout=0.2)
    kinds = [type(m) for m in reg.net]
    assert kinds == [
        nn.Linear, nn.Tanh, nn.Linear, nn.Tanh, nn.Dropout, nn.Linear, nn.Tanh, nn.Dropout,
        nn.Linear,
    ]  # fmt: skip
    widths = [(m.in_features, m.out_features) for m in reg.net if isinstance(m, nn.Linear)]
    assert widths == [(32, 512), (512, 512), (512, 256), (256, 1)]
    assert all(m.p == 0.2 for m in reg.net if isinstance(m, nn.Dropout))
    assert reg(torch.zeros(7, 32)).shape == (7,)
    n_weights = sum(m.weight.numel() for m in reg.net if isinstance(m, nn.Linear))
    assert n_weights == 32 * 512 + 512 * 512 + 512 * 256 + 256


def test_gvae_regressor_l2_counts_weights_only():
    reg = LatentRegressor(2, hidden=[3], dropout=0.0)
    with torch.no_grad():
        for m in reg.net:
            if isinstance(m, nn.Linear):
                m.weight.fill_(0.5)
                m.bias.fill_(7.0)
    assert reg.l2_penalty().item() == pytest.approx((2 * 3 + 3 * 1) * 0.25)
    assert not any(isinstance(m, nn.Dropout) for m in reg.net)
    with pytest.raises(ValueError, match="dropout"):
        LatentRegressor(4, dropout=1.0)


def test_gvae_mask_in_loss_renormalises_over_the_popped_nonterminal():
    from deepatoms.grammar.cfg import Grammar
    from deepatoms.grammar.decode import rule_masks

    g = Grammar.from_text("%start S\nS -> 'a' S | 'b'\n")  # 0: S -> a S, 1: S -> b, 2: NULL
    targets = torch.as_tensor(g.encode(["ab"], 4))
    assert targets.tolist() == [[0, 1, 2, 2]]
    logits, zeros = torch.zeros(1, 4, 3), torch.zeros(1, 2)
    masked = vae_loss(logits, targets, zeros, zeros, allowed=rule_masks(g, targets))
    plain = vae_loss(logits, targets, zeros, zeros)
    # uniform logits: −log p = log 2 at the two S steps, log 1 at NULL steps (only NULL allowed)
    assert masked["recon"].item() == pytest.approx(2 * math.log(2))
    assert plain["recon"].item() == pytest.approx(4 * math.log(3))


def test_gvae_kusner2017_decodes_through_the_grammar():
    from deepatoms.grammar.cfg import load_grammar

    g = load_grammar("smiles")
    torch.manual_seed(0)
    m = GrammarVAE(
        {"n_rules": g.n_rules, "max_len": 40, "architecture": "kusner2017", "latent_dim": 3,
         "hidden": 8, "dense": 8, "decoder_layers": 1}
    ).eval()  # fmt: skip
    z = torch.randn(5, 3)
    res = m.decode(z, g)
    full = m.decoder_logits(z)
    first = full[:, 0].masked_fill(~torch.tensor(g.allowed[g.start_index]), float("-inf"))
    assert torch.equal(res.rules[:, 0], first.argmax(-1))  # step 0 uses the precomputed logits
    for s, ok in zip(res.strings, res.finished.tolist(), strict=True):
        assert (s is not None) == ok
