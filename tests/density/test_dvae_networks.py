"""Density VAE networks (docs/density_vae.md §3–4): shapes, parameter counts, options."""

from __future__ import annotations

import pytest
import torch

from deepatoms.models.attention_unet import AttentionGate, AttentionUNet3d
from deepatoms.models.density_vae import (
    DensityDecoder,
    DensityEncoder,
    DensityVAE,
    decoder_sizes,
    encoder_sizes,
)


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_paper_parameter_counts_and_size_chains():
    vae = DensityVAE(30)
    assert _count(vae.encoder) == 5_208_824
    assert _count(vae.decoder) == 6_129_905
    assert vae.encoder.sizes == [30, 13, 11, 9, 4]
    assert vae.encoder.n_features == 8_192
    assert vae.decoder.sizes == [5, 10, 10, 20, 18, 36, 33, 30]


def test_layer_shapes_follow_the_tables():
    enc = DensityEncoder(30)
    x = torch.zeros(1, 1, 30, 30, 30)
    sides = []
    for layer in enc.convs:
        x = layer(x)
        if isinstance(layer, torch.nn.Conv3d):
            sides.append((x.shape[1], x.shape[-1]))
    assert sides == [(16, 13), (32, 11), (64, 9), (128, 4)]
    dec = DensityDecoder(30)
    z = torch.zeros(1, 300)
    y = dec.linear(z).reshape(1, 128, 5, 5, 5)
    shapes = []
    for i, conv in enumerate(dec.convs):
        if i < 3:
            y = torch.nn.functional.interpolate(y, scale_factor=2, mode="trilinear")
            shapes.append(tuple(y.shape[1:]))
        y = conv(y)
        shapes.append(tuple(y.shape[1:]))
    assert [s[0] for s in shapes] == [128, 64, 64, 32, 32, 16, 1]
    assert [s[-1] for s in shapes] == [10, 10, 20, 18, 36, 33, 30]


def test_options_same_padding_other_paddings_and_resize():
    assert encoder_sizes(30, [5, 3, 3, 3], [2, 1, 1, 2], "same") == [30, 15, 15, 15, 8]
    same = DensityVAE(30, {"encoder": {"padding": "same"}})
    assert same.encoder.n_features == 65_536
    assert decoder_sizes(5, [5, 5, 4, 4], [1, 1, 2, 2])[-1] == 30
    with pytest.raises(ValueError, match="resize=true"):
        DensityVAE(20)  # decoder ends at 30³
    with pytest.raises(ValueError, match="padding=same"):
        DensityVAE(15, {"decoder": {"resize": True}})  # 15 → 6 → 4 → 2 → nothing
    small = DensityVAE(
        15,
        {
            "latent": 8,
            "encoder": {"widths": [2, 2, 2, 2], "padding": "same"},
            "decoder": {"widths": [4, 2, 2, 2], "resize": True},
        },
    ).eval()
    out = small(torch.rand(3, 1, 15, 15, 15))
    assert out["recon"].shape == (3, 1, 15, 15, 15)
    assert out["recon"].min() >= 0.0  # final ReLU
    assert torch.equal(out["z"], out["mu"])  # eval mode: z = μ
    with pytest.raises(ValueError, match="unknown key 'widht'"):
        DensityVAE(30, {"encoder": {"widht": [1]}})


def test_decoder_batchnorm_and_leaky_slope_options():
    dec = DensityDecoder(30, batchnorm=True, leaky_slope=0.2)
    kinds = [type(m).__name__ for m in dec.convs[0]]
    assert kinds == ["Conv3d", "BatchNorm3d", "LeakyReLU"]
    assert dec.convs[0][2].negative_slope == 0.2
    assert [type(m).__name__ for m in dec.convs[3]] == ["Conv3d", "ReLU"]


def test_conditioning_divides_features_and_multiplies_z():
    torch.manual_seed(0)
    enc = DensityEncoder(15, latent=4, widths=[2, 2, 2, 2], padding="same").eval()
    x = torch.rand(2, 1, 15, 15, 15)
    m = torch.tensor([2.0, 4.0])
    h = enc.convs(x).flatten(1)
    mu, _ = enc(x, m)
    torch.testing.assert_close(mu, enc.mu(h / m[:, None]))
    dec = DensityDecoder(30, latent=4, widths=[2, 2, 2, 2])
    z = torch.randn(2, 4)
    torch.testing.assert_close(dec(z, m), dec(z * m[:, None]))


def test_unet_pads_crops_and_counts_classes():
    torch.manual_seed(0)
    net = AttentionUNet3d(n_classes=5, widths=(2, 4), bottleneck=4)
    for n in (15, 20):
        assert net(torch.rand(2, 1, n, n, n)).shape == (2, 5, n, n, n)
    paper = AttentionUNet3d()
    assert paper.factor == 8  # 30 → pad 32 → 16 → 8 → 4
    assert paper(torch.zeros(1, 1, 30, 30, 30)).shape == (1, 95, 30, 30, 30)
    with pytest.raises(ValueError, match="widths"):
        AttentionUNet3d(widths=())


def test_unet_group_norm_has_no_running_statistics():
    torch.manual_seed(0)
    batch = AttentionUNet3d(n_classes=5, widths=(4, 8), bottleneck=8)
    group = AttentionUNet3d(n_classes=5, widths=(4, 8), bottleneck=8, norm="group")
    count = lambda net: sum(p.numel() for p in net.parameters())  # noqa: E731
    assert count(group) == count(batch)  # same affine parameters per channel
    assert not any(isinstance(m, torch.nn.BatchNorm3d) for m in group.modules())
    x = torch.rand(2, 1, 8, 8, 8)
    group.train()
    first = group(x)
    group(torch.rand(2, 1, 8, 8, 8) * 10.0)  # a batch of another kind of input
    group.eval()
    torch.testing.assert_close(group(x), first)  # train and eval agree: nothing was tracked
    # each sample is normalised on its own, so a batch-mate does not change it
    torch.testing.assert_close(group(x[:1]), first[:1])
    with pytest.raises(ValueError, match=r"model\.unet\.norm='layer' is unknown"):
        AttentionUNet3d(norm="layer")


def test_attention_gate_is_sigmoid_of_additive_score():
    gate = AttentionGate(3, 3, 2)
    with torch.no_grad():
        for conv in (gate.w_x, gate.w_g, gate.psi):
            conv.weight.zero_()
        gate.psi.bias.fill_(0.0)
    x = torch.rand(1, 3, 2, 2, 2)
    torch.testing.assert_close(gate(x, torch.rand(1, 3, 2, 2, 2)), 0.5 * x)  # α = sigmoid(0)
    with torch.no_grad():
        gate.psi.bias.fill_(50.0)
    torch.testing.assert_close(gate(x, x), x)  # α → 1


def test_unet_head_starts_at_the_background_prior_and_decoder_output_alive():
    net = AttentionUNet3d(n_classes=5, widths=(2,), bottleneck=2, background_prior=0.99)
    p = torch.softmax(net.head.bias.detach(), dim=0)
    assert p[0].item() == pytest.approx(0.99, abs=1e-6)
    torch.testing.assert_close(p[1:], torch.full((4,), 0.0025))
    with pytest.raises(ValueError, match="background_prior"):
        AttentionUNet3d(n_classes=5, background_prior=1.0)
    dec = DensityDecoder(30, out_bias=0.25)
    assert dec.convs[-1][0].bias.item() == 0.25
