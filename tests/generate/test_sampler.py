"""Batched G-SchNet generation (docs/gschnet.md §8) with a hand-written stand-in model and with
the real model at tiny widths."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from deepatoms.generate.gschnet_sampler import generate_molecules
from deepatoms.models.gschnet import TYPE_CLASSES, distance_bins
from deepatoms.models.registry import build_model


class StandIn(nn.Module):
    """Honours the model contract: places ``n_make`` atoms of type ``z`` (stop otherwise; stop is
    the favourite at the first step, which the sampler must mask) and predicts every node's
    distance to the next atom at 1.5 Å (σ = 0.01 Å unless given). ``nan_after``: NaN distances once
    that many atoms are placed."""

    def __init__(
        self, n_make: int = 3, z: int = 6, nan_after: int | None = None, sigma: float = 0.01
    ) -> None:
        super().__init__()
        self.register_buffer("bins", distance_bins(dtype=torch.float32))
        self.dummy = nn.Parameter(torch.zeros(()))
        self.n_make, self.z, self.nan_after, self.sigma = n_make, z, nan_after, sigma
        self.calls: list[tuple[int, int]] = []  # (steps, nodes) per call
        self.edges: list[int] = []  # edges per call

    def forward(self, batch, next_type):
        placed = batch.n_atoms - 2
        self.calls.append((batch.num_systems, batch.num_atoms))
        self.edges.append(int(batch.edge_index.shape[1]))
        logits = torch.full((batch.num_systems, 6), -20.0)
        make = placed < self.n_make
        logits[make, TYPE_CLASSES.index(self.z)] = 0.0
        logits[:, 5] = torch.where(placed == 0, 5.0, torch.where(make, -20.0, 0.0))
        dist = torch.log_softmax(-((self.bins - 1.5) ** 2) / (2 * self.sigma**2), dim=0)
        dist_logp = dist.expand(batch.num_atoms, -1).clone()
        if self.nan_after is not None:
            bad = (placed >= self.nan_after).index_select(0, batch.batch)
            dist_logp[bad] = float("nan")
        return {"type_logp": torch.log_softmax(logits, dim=1), "dist_logp": dist_logp + self.dummy}


def test_stand_in_molecules_have_the_planned_atoms_and_distances():
    mols, stats = generate_molecules(StandIn(n_make=3), 6, temperature=0.01, seed=0, chunk=4)
    assert stats["requested"] == 6 and stats["finished"] == 6
    assert stats["discarded_cap"] == 0 and stats["discarded_nan"] == 0
    # per molecule: 3 placements + 3 stops; chunks of 4 and 2 molecules
    assert stats["steps"] == 6 * 6
    bin30 = 30 * 15 / 299  # the first atom: grid point on x nearest to 1.5 Å
    for i, m in enumerate(mols):
        assert m.get_chemical_symbols() == ["C", "C", "C"]
        assert m.info == {"index": i, "seed": 0, "temperature": 0.01}
        np.testing.assert_allclose(m.positions[0], [bin30, 0.0, 0.0], atol=1e-6)
        # every atom ≈ 1.5 Å from the origin token and from every other atom (grid 0.05 Å)
        d = np.linalg.norm(m.positions[:, None] - m.positions[None], axis=-1)
        np.testing.assert_allclose(d[np.triu_indices(3, 1)], 1.5, atol=0.06)
        np.testing.assert_allclose(np.linalg.norm(m.positions, axis=1), 1.5, atol=0.06)


def test_no_temperature_at_the_first_step():
    """Broad distance distributions (σ = 0.5 Å) and T = 0.001: the first atom still spreads over
    the x axis (plain product; a tempered one would put every first atom on bin 30)."""
    mols, _ = generate_molecules(StandIn(n_make=2, sigma=0.5), 12, temperature=0.001, seed=1)
    first_x = {round(float(m.positions[0, 0]), 4) for m in mols}
    assert len(first_x) > 3 and all(np.allclose(m.positions[0, 1:], 0.0) for m in mols)


def test_seed_reproducible_and_seeds_differ():
    a, _ = generate_molecules(StandIn(), 5, seed=3, chunk=2)
    b, _ = generate_molecules(StandIn(), 5, seed=3, chunk=2)
    c, _ = generate_molecules(StandIn(), 5, seed=4, chunk=2)
    assert all(np.array_equal(x.positions, y.positions) for x, y in zip(a, b, strict=True))
    assert not all(np.allclose(x.positions, y.positions) for x, y in zip(a, c, strict=True))


def test_atom_cap_discards_and_counts():
    # 3 atoms, then stop: a cap of 4 lets all finish, a cap of 3 discards all at the third atom
    _, ok = generate_molecules(StandIn(n_make=3), 4, max_atoms=4)
    assert (ok["finished"], ok["discarded_cap"]) == (4, 0)
    mols, capped = generate_molecules(StandIn(n_make=3), 4, max_atoms=3)
    assert mols == [] and (capped["finished"], capped["discarded_cap"]) == (0, 4)
    # a model that never stops: every molecule reaches 35 atoms and is discarded
    mols, never = generate_molecules(StandIn(n_make=10**6, z=1), 1, temperature=0.1)
    assert mols == [] and never["discarded_cap"] == 1 and never["steps"] == 35


def test_nan_densities_are_discarded_and_counted():
    mols, stats = generate_molecules(StandIn(n_make=4, nan_after=2), 3)
    assert mols == [] and stats["discarded_nan"] == 3 and stats["finished"] == 0


def test_stop_masked_at_the_first_step_and_calls_batched():
    model = StandIn(n_make=1)  # prefers stop at the first step (logit 5): masked
    mols, _ = generate_molecules(model, 5, chunk=5)
    assert [len(m) for m in mols] == [1] * 5
    # step 1: type call + distance call with 5 steps of 2 tokens; step 2: type call, all stop
    assert model.calls == [(5, 10), (5, 10), (5, 15)]


def test_progress_reports_every_molecule():
    seen = []
    generate_molecules(
        StandIn(), 5, chunk=2, progress=lambda done, total: seen.append((done, total))
    )
    assert seen[-1] == (5, 5) and all(t == 5 for _, t in seen)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n": 0}, "number of molecules"),
        ({"temperature": 0.0}, "temperature"),
        ({"temperature": math.nan}, "temperature"),
        ({"max_atoms": 1}, "max_atoms"),
        ({"chunk": 0}, "chunk"),
    ],
)
def test_bad_arguments(kwargs, message):
    args = {"n": 2, **kwargs}
    with pytest.raises(ValueError, match=message):
        generate_molecules(StandIn(), **args)


def test_real_model_end_to_end():
    torch.manual_seed(0)
    model = build_model({"name": "gschnet", "n_atom_basis": 8, "n_interactions": 1,
                         "type_head": [8], "distance_head": [16]})  # fmt: skip
    mols, stats = generate_molecules(model, 8, temperature=0.1, seed=5, max_atoms=6, chunk=3)
    again, stats2 = generate_molecules(model, 8, temperature=0.1, seed=5, max_atoms=6, chunk=3)
    assert stats["finished"] + stats["discarded_cap"] + stats["discarded_nan"] == 8
    assert stats["finished"] == len(mols) and stats["discarded_cap"] > 0  # untrained: long chains
    assert {k: v for k, v in stats.items() if k not in ("wall_s", "molecules_per_minute")} == {
        k: v for k, v in stats2.items() if k not in ("wall_s", "molecules_per_minute")
    }
    for m, m2 in zip(mols, again, strict=True):
        assert 1 <= len(m) <= 5 and set(m.numbers) <= {1, 6, 7, 8, 9}
        assert np.array_equal(m.positions, m2.positions) and np.array_equal(m.numbers, m2.numbers)
    assert model.training  # the sampler restores the mode it found


def test_model_calls_are_split_by_edges_without_changing_the_result(monkeypatch):
    import deepatoms.generate.gschnet_sampler as sampler

    whole_model = StandIn(n_make=3, sigma=0.3)
    whole, _ = generate_molecules(whole_model, 6, seed=7, chunk=6)
    monkeypatch.setattr(sampler, "MODEL_EDGES", 8)
    split_model = StandIn(n_make=3, sigma=0.3)
    split, _ = generate_molecules(split_model, 6, seed=7, chunk=6)
    assert len(split_model.calls) > len(whole_model.calls)
    # a call holds the steps whose cumulative edge count ends in one window of 8 edges: at most
    # 8 edges plus those of its first step (≤ 5 nodes, 20 edges)
    assert max(split_model.edges) <= 8 + 20 and max(whole_model.edges) > 28
    for a, b in zip(whole, split, strict=True):
        assert np.array_equal(a.positions, b.positions) and np.array_equal(a.numbers, b.numbers)
