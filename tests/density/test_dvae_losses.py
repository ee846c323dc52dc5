"""gradscale and the joint loss (docs/density_vae.md §5, Eq. 2): exact values."""

from __future__ import annotations

import math

import pytest
import torch

from deepatoms.models.density_model import (
    DensityVAEModel,
    joint_loss,
    kl_divergence,
    voxel_accuracy,
)
from deepatoms.nn.gradscale import grad_scale

TINY = {
    "latent": 4,
    "encoder": {"widths": [2, 2, 2, 2], "padding": "same"},
    "decoder": {"start": 3, "widths": [4, 2, 2, 2], "paddings": [2, 2, 0, 1]},
    "unet": {"widths": [2], "bottleneck": 2},
}


def test_grad_scale_forward_identity_backward_times_gamma():
    x = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
    y = grad_scale(x, 0.25)
    assert torch.equal(y, x)
    (y * torch.tensor([1.0, 2.0, 4.0])).sum().backward()
    assert x.grad.tolist() == [0.25, 0.5, 1.0]
    x.grad = None
    grad_scale(x, 0.0).sum().backward()
    assert x.grad.tolist() == [0.0, 0.0, 0.0]
    assert grad_scale(x, 1.0) is x


def test_kl_is_zero_at_the_prior_and_exact_elsewhere():
    mu, logvar = torch.zeros(3, 300), torch.zeros(3, 300)
    assert kl_divergence(mu, logvar).item() == 0.0
    mu = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    logvar = torch.tensor([[0.0, math.log(2.0)], [0.0, 0.0]])
    # sample 0: ½·1² + ½(2 − 1 − ln 2); sample 1: 0; batch mean
    expected = 0.5 * (0.5 + 0.5 * (1.0 - math.log(2.0)))
    assert kl_divergence(mu, logvar).item() == pytest.approx(expected, rel=1e-6)


def test_joint_loss_terms_on_hand_made_tensors():
    recon = torch.zeros(1, 1, 2, 2, 2)
    density = torch.zeros(1, 1, 2, 2, 2)
    density[0, 0, 0, 0, 0] = 2.0  # squared error 4 in one voxel of 8
    logits = torch.zeros(1, 3, 2, 2, 2)  # uniform over 3 classes
    classes = torch.zeros(1, 2, 2, 2, dtype=torch.long)
    out = {
        "recon": recon,
        "mu": torch.ones(1, 2),
        "logvar": torch.zeros(1, 2),
        "seg_logits": logits,
    }
    loss = joint_loss(out, density, classes, beta=0.5)
    assert loss["recon_mse"].item() == 0.5
    assert loss["kl"].item() == 1.0  # ½(1² + 1²)
    assert loss["seg_ce"].item() == pytest.approx(math.log(3.0))
    assert loss["total"].item() == pytest.approx(0.5 + 0.5 * 1.0 + math.log(3.0))
    summed = joint_loss(out, density, classes, beta=0.0, recon_reduction="sum")
    assert summed["total"].item() == pytest.approx(4.0 + math.log(3.0))
    bce = joint_loss(out, density, classes, beta=0.0, seg_loss="bce")
    assert bce["seg_ce"].item() == pytest.approx(3 * math.log(2.0))  # 3 channels at p = ½
    with pytest.raises(ValueError, match="'ce' or 'bce'"):
        joint_loss(out, density, classes, beta=0.0, seg_loss="dice")


def test_gamma_zero_leaves_vae_gradients_untouched_by_segmentation():
    torch.manual_seed(0)
    model = DensityVAEModel(TINY, grid_n=20, n_classes=3).double()
    x = torch.rand(2, 1, 20, 20, 20, dtype=torch.float64)
    classes = torch.randint(0, 3, (2, 20, 20, 20))

    def vae_grads(gamma: float, seg: bool) -> list[torch.Tensor]:
        model.zero_grad()
        torch.manual_seed(1)  # same ε in the reparameterisation
        out = model(x, gamma=gamma)
        loss = joint_loss(out, x, classes, beta=1.0)
        (loss["total"] if seg else loss["recon_mse"] + loss["kl"]).backward()
        return [p.grad.clone() for p in model.vae.parameters()]

    for a, b in zip(vae_grads(0.0, True), vae_grads(1.0, False), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    full, scaled, plain = vae_grads(1.0, True), vae_grads(0.1, True), vae_grads(1.0, False)
    for f, s, p in zip(full, scaled, plain, strict=True):  # VAE gets plain + γ·seg part
        torch.testing.assert_close(s - p, 0.1 * (f - p), rtol=1e-9, atol=1e-12)


def test_model_outputs_and_conditioning():
    model = DensityVAEModel({**TINY, "condition": "max_density"}, grid_n=20, n_classes=3).eval()
    x = torch.rand(2, 1, 20, 20, 20)
    out = model(x)
    assert set(out) == {"mu", "logvar", "z", "recon", "seg_logits"}
    assert out["seg_logits"].shape == (2, 3, 20, 20, 20)
    m = x.flatten(1).amax(1)
    torch.testing.assert_close(out["recon"], model.decode(out["z"], scale=m))
    with pytest.raises(ValueError, match="needs m"):
        model.decode(out["z"])
    zmodel = DensityVAEModel({**TINY, "condition": "max_z"}, grid_n=20, n_classes=3)
    with pytest.raises(ValueError, match="max_z"):
        zmodel(x)


def test_voxel_accuracy_all_and_atom_voxels():
    classes = torch.tensor([[[[0, 0], [3, 3]]]])  # [1, 1, 2, 2]
    logits = torch.zeros(1, 4, 1, 2, 2)
    logits[0, 0] = 1.0  # predicts 0 everywhere ...
    logits[0, 3, 0, 1, 0] = 2.0  # ... except one atom voxel, correctly
    acc_all, acc_atom = voxel_accuracy(logits, classes)
    assert (acc_all, acc_atom) == (0.75, 0.5)
    assert math.isnan(voxel_accuracy(logits, torch.zeros_like(classes))[1])
