"""Sampler, learning-rate schedule and metrics: exact behaviour on hand-made cases."""

from __future__ import annotations

import math

import numpy as np
import torch

from deepatoms.models import build_model
from deepatoms.models.registry import load_preset
from deepatoms.train.loader import EpochBatchSampler
from deepatoms.train.metrics import ErrorAccumulator
from deepatoms.train.tasks.property import PropertyTask


def test_sampler_covers_all_indices_and_repeats_per_epoch():
    s = EpochBatchSampler(np.arange(10, 20), batch_size=3, shuffle=True, seed=5)
    s.set_epoch(2)
    a = np.concatenate(list(s))
    assert sorted(a.tolist()) == list(range(10, 20))
    assert [len(b) for b in s] == [3, 3, 3, 1] and len(s) == 4
    s.set_epoch(3)
    b = np.concatenate(list(s))
    s.set_epoch(2)
    assert np.array_equal(np.concatenate(list(s)), a)  # same epoch, same order (resume)
    assert not np.array_equal(a, b)  # a new epoch reshuffles


def test_sampler_shards_batches_across_processes():
    full = EpochBatchSampler(np.arange(10), batch_size=2, shuffle=True, seed=1)
    full.set_epoch(4)
    all_batches = [b.tolist() for b in full]  # 5 batches
    shards = []
    for rank in range(2):
        s = EpochBatchSampler(np.arange(10), 2, True, seed=1, num_replicas=2, rank=rank)
        s.set_epoch(4)
        shards.append([b.tolist() for b in s])
        assert len(s) == 3
    assert shards[0] == all_batches[0::2]
    assert shards[1] == [*all_batches[1::2], all_batches[0]]  # wrapped to equal length
    seen = {tuple(b) for shard in shards for b in shard}
    assert seen == {tuple(b) for b in all_batches}


def test_sampler_without_shuffle_keeps_order():
    s = EpochBatchSampler([4, 2, 9], batch_size=2, shuffle=False)
    assert [b.tolist() for b in s] == [[4, 2], [9]]


def test_error_accumulator_exact():
    acc = ErrorAccumulator()
    acc.update(torch.tensor([1.0, 2.0]), torch.tensor([0.0, 0.0]))
    acc.update(torch.tensor([-2.0]), torch.tensor([0.0]))
    assert acc.mae == 5.0 / 3.0
    assert math.isclose(acc.rmse, math.sqrt(9.0 / 3.0))


def _lr_after(cfg_train, steps):
    model = build_model({"name": "schnet", "n_atom_basis": 8, "n_interactions": 1})
    task = PropertyTask(model, "energy", cfg_train)
    conf = task.configure_optimizers()
    opt, sched = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    for _ in range(steps):
        opt.step()
        sched.step()
    return opt.param_groups[0]["lr"]


def test_exponential_decay_continuous_and_staircase():
    t = load_preset("schnet-qm9")["train"] | {"lr": 1e-3, "lr_decay": 0.96, "lr_decay_steps": 10}
    assert math.isclose(_lr_after(t, 15), 1e-3 * 0.96**1.5, rel_tol=1e-12)
    t["lr_staircase"] = True
    assert math.isclose(_lr_after(t, 15), 1e-3 * 0.96, rel_tol=1e-12)
