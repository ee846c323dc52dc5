"""Latent-space tools of the density VAE (docs/density_vae.md §8): exact values."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import bulk
from dvae_helpers import tiny_model

from deepatoms.data.voxels.grid import GridSpec
from deepatoms.density.latent_tools import (
    alpha_inputs,
    alter,
    check_fits_box,
    conditioning_scale,
    decode_latents,
    difference_maps,
    encode_crystals,
    interpolate,
    make_samples,
    parse_values,
    sample_prior,
    sweep,
)


def test_parse_values_range_list_and_single():
    assert parse_values("-3:3:7").tolist() == [-3, -2, -1, 0, 1, 2, 3]
    assert parse_values("0.5,1,2").tolist() == [0.5, 1.0, 2.0]
    assert parse_values("1.5").tolist() == [1.5]
    assert parse_values("2:4:1").tolist() == [2.0]


@pytest.mark.parametrize(
    ("spec", "words"),
    [("-3:3:x", "-3:3:7"), ("-3:3:2.5", "whole number"), ("a,b", "'a'"), (" , ", "empty")],
)
def test_parse_values_errors_say_how_to_fix(spec, words):
    with pytest.raises(ValueError, match=words):
        parse_values(spec)


def test_interpolate_ends_and_three_equally_spaced_intermediates():
    za, zb = np.array([0.0, 4.0]), np.array([4.0, 0.0])
    z = interpolate(za, zb, k=3)
    assert z.tolist() == [[0, 4], [1, 3], [2, 2], [3, 1], [4, 0]]
    assert interpolate(za, zb, k=0).tolist() == [[0, 4], [4, 0]]
    with pytest.raises(ValueError, match="differ in size"):
        interpolate(za, np.zeros(3))
    with pytest.raises(ValueError, match="k must be"):
        interpolate(za, zb, k=-1)


def test_sweep_sets_one_dimension_only():
    z = np.array([0.5, -1.0, 2.0])
    s = sweep(z, 1, [-3, 0, 3])
    assert s.tolist() == [[0.5, -3, 2], [0.5, 0, 2], [0.5, 3, 2]]
    assert z.tolist() == [0.5, -1.0, 2.0]  # input untouched
    with pytest.raises(ValueError, match="out of range; the latent has 3"):
        sweep(z, 3, [0.0])


def test_sample_prior_is_seeded_and_scaled():
    a, b = sample_prior(4, seed=7, dim=5), sample_prior(4, seed=7, dim=5)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (4, 5)
    assert not np.array_equal(a, sample_prior(4, seed=8, dim=5))
    np.testing.assert_allclose(sample_prior(4, seed=7, dim=5, alpha=2.0), 2.0 * a)
    with pytest.raises(ValueError, match="at least 1"):
        sample_prior(0, seed=0)


def test_alter_scalar_and_per_row():
    z = np.array([[1.0, 2.0], [3.0, 4.0]])
    assert alter(z, 0.5).tolist() == [[0.5, 1.0], [1.5, 2.0]]
    assert alter(z, np.array([2.0, -1.0])).tolist() == [[2, 4], [-3, -4]]
    with pytest.raises(ValueError, match="does not match"):
        alter(z, np.array([1.0, 2.0, 3.0]))


def test_difference_maps_and_conditioning_scale():
    ref = np.zeros((2, 2, 2))
    d = np.stack([ref + 1.0, ref - 0.5])
    out = difference_maps(d, ref)
    assert out[0].max() == 1.0 and out[1].min() == -0.5
    with pytest.raises(ValueError, match="cannot be compared"):
        difference_maps(d, np.zeros((3, 3, 3)))
    m = np.zeros((3, 3, 3))
    m[1, 2, 0] = 4.25
    assert conditioning_scale(m) == 4.25
    assert conditioning_scale(numbers=np.array([8, 26, 1]), mode="max_z") == 26.0


# -- model-backed tools (tiny untrained model from the fast preset) ---------------------------
CRYSTALS = [bulk("NaCl", "rocksalt", a=5.64), bulk("Cu", "fcc", a=3.6)]


@pytest.fixture
def loaded(tmp_path):
    return tiny_model(tmp_path / "tiny.pt")


def test_encode_crystals_is_seeded_and_equals_the_encoder(loaded):
    enc = encode_crystals(loaded, CRYSTALS, rotations=2, seed=3)
    assert enc.mu.shape == (4, 8) and enc.crystal.tolist() == [0, 0, 1, 1]
    assert enc.scale.tolist() == [1.0] * 4  # no conditioning
    again = encode_crystals(loaded, CRYSTALS, rotations=2, seed=3)
    np.testing.assert_array_equal(enc.mu, again.mu)
    other = encode_crystals(loaded, CRYSTALS, rotations=2, seed=4)
    assert not np.allclose(enc.mu, other.mu)
    dens = torch.from_numpy(np.stack([s.density for s in enc.samples])).unsqueeze(1)
    with torch.no_grad():
        mu, logvar = loaded.model.encode(dens)
    np.testing.assert_allclose(enc.mu, mu.numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(enc.logvar, logvar.numpy(), rtol=1e-6, atol=1e-7)
    # the samples are those of make_samples with the same seed (the training dataset's rule)
    ref = make_samples(CRYSTALS, loaded.grid, "single", 2, 3)
    np.testing.assert_array_equal(ref[3].density, enc.samples[3].density)


def test_decode_latents_recovers_the_segmented_atoms(loaded):
    # make the U-Net's head say "Cl" everywhere: one component filling the box, centroid = centre
    head = loaded.model.unet.head
    with torch.no_grad():
        head.weight.zero_()
        head.bias.copy_(torch.tensor([0.0, 0.0, 5.0, 0.0]))  # classes [none, Na, Cl, Cu]
    z = sample_prior(3, seed=1, dim=8)
    dec = decode_latents(loaded, z, batch_size=2)
    assert dec.densities.shape == (3, 20, 20, 20) and dec.species.shape == (3, 20, 20, 20)
    assert (dec.species == 17).all()
    for atoms in dec.atoms:
        assert atoms.numbers.tolist() == [17]
        np.testing.assert_allclose(atoms.positions, [[5.0, 5.0, 5.0]], atol=1e-9)
        assert atoms.n_voxels.tolist() == [20**3]
    with torch.no_grad():
        ref = loaded.model.decode(torch.as_tensor(z, dtype=torch.float32))[:, 0].numpy()
    np.testing.assert_allclose(dec.densities, ref, rtol=1e-6)


def test_decode_latents_errors(loaded):
    with pytest.raises(ValueError, match=r"expects \[N, 8\]"):
        decode_latents(loaded, np.zeros((2, 5)))
    with pytest.raises(ValueError, match="has no conditioning"):
        decode_latents(loaded, np.zeros((2, 8)), scale=2.0)
    z, scale = alpha_inputs(loaded, np.ones((2, 8)), 0.5)
    assert scale is None and z.tolist() == [[0.5] * 8] * 2


def test_conditioned_model_needs_and_uses_the_scale(tmp_path):
    cond = tiny_model(tmp_path / "cond.pt", condition="max_density")
    enc = encode_crystals(cond, CRYSTALS, rotations=1, seed=0)
    np.testing.assert_allclose(
        enc.scale, [s.density.max() for s in enc.samples], rtol=1e-6
    )  # m = max(M) (§8)
    with pytest.raises(ValueError, match="conditioned"):
        decode_latents(cond, enc.mu)
    z, scale = alpha_inputs(cond, enc.mu, 1.5)
    assert scale.tolist() == [1.5, 1.5] and np.array_equal(z, enc.mu)
    with pytest.raises(ValueError, match="must be > 0"):
        alpha_inputs(cond, enc.mu, 0.0)
    a = decode_latents(cond, enc.mu, scale=enc.scale).densities
    with torch.no_grad():
        zt = torch.as_tensor(enc.mu, dtype=torch.float32)
        ref = cond.model.vae.decoder(zt * torch.as_tensor(enc.scale, dtype=torch.float32)[:, None])
    np.testing.assert_allclose(a, ref[:, 0].numpy(), rtol=1e-5, atol=1e-7)


def test_check_fits_box_names_the_crystal():
    grid = GridSpec(n=20, box=10.0)
    check_fits_box(CRYSTALS, grid)
    big = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(3)  # 10.8 Å sides
    with pytest.raises(ValueError, match=r"crystal big \(Cu108\) has a lattice vector of 10\.80"):
        check_fits_box([CRYSTALS[0], big], grid, ids=["nacl", "big"])
