"""Generation grids and their log-densities (docs/gschnet.md §8; Gebauer et al. 2019 Eqs. 3, 5)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from deepatoms.generate.grid import (
    apply_temperature,
    first_step_grid,
    grid_log_density,
    nearest_bin,
    sample_grid,
    shell_grid,
)
from deepatoms.models.gschnet import distance_bins

BINS = distance_bins(dtype=torch.float64)  # 300 centres, 0–15 Å


def brute_density(offsets, centres, nodes, steps, dist_logp, bins) -> np.ndarray:
    """Independent reference: loop over nodes, nearest bin from the midpoints between centres."""
    offsets, centres, nodes = (np.asarray(x, dtype=np.float64) for x in (offsets, centres, nodes))
    bins = np.asarray(bins, dtype=np.float64)
    midpoints = (bins[1:] + bins[:-1]) / 2
    out = np.zeros((len(centres), len(offsets)))
    for j, s in enumerate(np.asarray(steps)):
        d = np.linalg.norm(centres[s] + offsets - nodes[j], axis=1)
        k = np.searchsorted(midpoints, d)
        out[s] += np.asarray(dist_logp[j])[k]
    return out


def gaussian_logp(centre: float, sigma: float) -> torch.Tensor:
    """A normalised log-distribution over BINS peaked at ``centre`` Å."""
    return torch.log_softmax(-((BINS - centre) ** 2) / (2 * sigma**2), dim=0)


def test_shell_grid_has_140214_points_by_the_integer_rule():
    grid = shell_grid(dtype=torch.float64)
    assert grid.shape == (140214, 3)
    ijk = torch.round(grid / 0.05).long()
    assert torch.allclose(ijk.double() * 0.05, grid, atol=1e-12)  # lattice points 0.05·(i,j,k)
    sq = (ijk * ijk).sum(dim=1)
    assert int(sq.min()) == 324 and int(sq.max()) == 1156 and int(ijk.abs().max()) == 34
    assert len({tuple(p) for p in ijk.tolist()}) == 140214  # no duplicates
    r = np.arange(-34, 35)
    i, j, k = np.meshgrid(r, r, r, indexing="ij")
    s = i * i + j * j + k * k
    assert int(((s >= 324) & (s <= 1156)).sum()) == 140214  # every admissible point is there


def test_shell_grid_rejects_radii_off_the_lattice():
    with pytest.raises(ValueError, match="not a whole number of spacings"):
        shell_grid(spacing=0.05, inner=0.93, outer=1.7)
    assert shell_grid(spacing=0.5, inner=0.5, outer=0.5).shape == (6, 3)  # the 6 axis points


def test_first_step_grid_is_300_points_on_the_x_axis():
    grid = first_step_grid(dtype=torch.float64)
    assert grid.shape == (300, 3)
    assert torch.equal(grid[:, 1:], torch.zeros(300, 2))
    assert float(grid[0, 0]) == 0.0 and float(grid[-1, 0]) == 15.0
    assert math.isclose(float(grid[1, 0]), 15 / 299, rel_tol=1e-12)
    assert torch.equal(grid[:, 0], BINS)  # the points sit on the bin centres


def test_nearest_bin_hand_values():
    d = torch.tensor([0.0, 0.0250, 0.0252, 15 / 299 * 30, 15.0, 20.0], dtype=torch.float64)
    assert nearest_bin(d, BINS).tolist() == [0, 0, 1, 30, 299, 299]


def test_density_matches_a_brute_force_sum_and_does_not_depend_on_chunks():
    g = torch.Generator().manual_seed(0)
    offsets = shell_grid(spacing=0.1, inner=0.9, outer=1.7, dtype=torch.float64)
    centres = torch.randn(3, 3, dtype=torch.float64, generator=g)
    nodes = torch.randn(11, 3, dtype=torch.float64, generator=g) * 3
    steps = torch.tensor([0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2])
    logp = torch.log_softmax(torch.randn(11, 300, dtype=torch.float64, generator=g), dim=1)
    ref = brute_density(offsets, centres, nodes, steps, logp, BINS)
    whole = grid_log_density(offsets, centres, nodes, steps, logp, BINS)
    one_node = grid_log_density(offsets, centres, nodes, steps, logp, BINS, max_elements=1)
    np.testing.assert_allclose(whole.numpy(), ref, rtol=0, atol=1e-12)
    assert torch.equal(whole, one_node)


def _hand_made_product():
    """Focus and origin tokens with flat distance distributions and three atoms with sharp ones
    (σ = 0.05 Å) centred on their exact distances to the grid point focus + 0.05·(20, 5, −3) Å;
    the atoms sit along the three axes from that point, at bin centres 28, 30 and 26."""
    focus = torch.tensor([0.30, -0.20, 0.10], dtype=torch.float64)
    target = focus + 0.05 * torch.tensor([20.0, 5.0, -3.0], dtype=torch.float64)
    axes = torch.eye(3, dtype=torch.float64) * torch.tensor([1.0, 1.0, -1.0])[:, None]
    atoms = target + BINS[[28, 30, 26]][:, None] * axes
    nodes = torch.cat([focus[None], torch.zeros(1, 3, dtype=torch.float64), atoms])
    flat = torch.full((300,), -math.log(300), dtype=torch.float64)
    logp = torch.stack([flat, flat] + [gaussian_logp(float(BINS[k]), 0.05) for k in (28, 30, 26)])
    return focus, target, nodes, logp


def test_grid_sampling_returns_the_exact_argmax_of_a_hand_made_product():
    focus, target, nodes, logp = _hand_made_product()
    offsets = shell_grid(dtype=torch.float64)
    steps = torch.zeros(5, dtype=torch.long)
    want = int(torch.nonzero((offsets - (target - focus)).abs().max(dim=1).values < 1e-9))
    ref = brute_density(offsets, focus[None], nodes, steps, logp, BINS)[0]
    top2 = np.sort(ref)[-2:]
    assert int(ref.argmax()) == want and top2[1] - top2[0] > 0.1  # unique, clear maximum
    density = grid_log_density(offsets, focus[None], nodes, steps, logp, BINS)
    assert int(density.argmax()) == want
    log_p = apply_temperature(density, 1e-3)
    assert float(log_p[0, want].exp()) > 0.999999
    for seed in range(5):
        idx, ok = sample_grid(log_p.expand(3, -1), torch.Generator().manual_seed(seed))
        assert ok.all() and idx.tolist() == [want] * 3
    assert torch.allclose(focus + offsets[want], target, atol=1e-12)


def test_temperature_one_is_the_plain_normalised_product_and_larger_t_flattens():
    x = torch.randn(2, 500, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 4
    assert torch.allclose(apply_temperature(x, 1.0), torch.log_softmax(x, dim=1), atol=1e-12)
    # normalising before dividing by T changes nothing: p_T ∝ p̃^(1/T)
    assert torch.allclose(apply_temperature(x, 0.1), torch.log_softmax(x / 0.1, dim=1), atol=1e-9)
    entropies = []
    for t in (0.01, 0.1, 0.5, 1.0, 2.0, 10.0, 1000.0):
        lp = apply_temperature(x, t)
        assert torch.allclose(lp.exp().sum(dim=1), torch.ones(2, dtype=torch.float64))
        entropies.append(-(lp.exp() * lp).sum(dim=1))
    h = torch.stack(entropies)
    assert bool((h[1:] > h[:-1]).all())  # strictly increasing with T
    assert float(h[-1].min()) > math.log(500) - 1e-3  # T → ∞: uniform
    with pytest.raises(ValueError, match="temperature must be > 0"):
        apply_temperature(x, 0.0)


def test_sampling_flags_nan_and_nowhere_finite_rows():
    lp = torch.log_softmax(torch.zeros(3, 4), dim=1)
    lp[1, 2] = float("nan")
    lp[2] = -math.inf
    idx, ok = sample_grid(lp, torch.Generator().manual_seed(0))
    assert ok.tolist() == [True, False, False] and idx[1:].tolist() == [0, 0]


def _rot_z90(v: torch.Tensor) -> torch.Tensor:
    return torch.stack([-v[..., 1], v[..., 0], v[..., 2]], dim=-1)


def test_density_rotates_with_the_partial_molecule():
    """Rotating (90° about z, a symmetry of the grid) and translating all nodes moves the density
    value of grid point p to grid point R·p; an arbitrary rotation does the same on the rotated
    grid."""
    g = torch.Generator().manual_seed(2)
    offsets = shell_grid(dtype=torch.float64)
    nodes = torch.randn(6, 3, dtype=torch.float64, generator=g) * 1.5
    focus = nodes[2:3]
    steps = torch.zeros(6, dtype=torch.long)
    logp = torch.log_softmax(torch.randn(6, 300, dtype=torch.float64, generator=g), dim=1)
    base = grid_log_density(offsets, focus, nodes, steps, logp, BINS)[0]
    shift = torch.tensor([0.7, -1.1, 2.3], dtype=torch.float64)
    moved = grid_log_density(offsets, _rot_z90(focus) + shift, _rot_z90(nodes) + shift, steps,
                             logp, BINS)[0]  # fmt: skip
    index = {tuple(p): i for i, p in enumerate(torch.round(offsets / 0.05).long().tolist())}
    perm = [index[tuple(p)] for p in torch.round(_rot_z90(offsets) / 0.05).long().tolist()]
    assert torch.allclose(moved[perm], base, atol=1e-9)
    assert not torch.allclose(moved, base)  # the density is not trivially symmetric
    q, _ = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64, generator=g))
    turned = grid_log_density(offsets @ q.T, focus @ q.T + shift, nodes @ q.T + shift, steps,
                              logp, BINS)[0]  # fmt: skip
    assert torch.allclose(turned, base, atol=1e-9)


def test_model_density_rotates_with_the_partial_molecule():
    """The same with the real G-SchNet: its distance distributions are invariant, so the grid
    density of a rotated, translated partial molecule is the rotated density."""
    from deepatoms.generate.steps import partial_batch
    from deepatoms.models.registry import build_model

    torch.manual_seed(0)
    model = build_model({"name": "gschnet", "n_atom_basis": 8, "n_interactions": 1,
                         "type_head": [8], "distance_head": [16]}).double().eval()  # fmt: skip
    atoms = torch.tensor([[0.0, 0.0, 0.0], [1.2, 0.3, -0.1], [-0.4, 1.1, 0.5]], dtype=torch.float64)
    numbers = torch.tensor([6, 8, 1])
    shift = torch.tensor([0.4, 0.2, -0.9], dtype=torch.float64)
    offsets = shell_grid(dtype=torch.float64)
    dens = []
    for pos in (atoms, _rot_z90(atoms) + shift):
        origin = torch.zeros(1, 3, dtype=torch.float64) if pos is atoms else shift[None]
        batch = partial_batch([pos], [numbers], pos[1:2], origin, dtype=torch.float64)
        with torch.no_grad():
            out = model(batch, torch.tensor([6]))
        dens.append(grid_log_density(offsets, pos[1:2], batch.positions, batch.batch,
                                     out["dist_logp"], model.bins.double())[0])  # fmt: skip
    index = {tuple(p): i for i, p in enumerate(torch.round(offsets / 0.05).long().tolist())}
    perm = [index[tuple(p)] for p in torch.round(_rot_z90(offsets) / 0.05).long().tolist()]
    assert torch.allclose(dens[1][perm], dens[0], atol=1e-8)
