"""Committee members on several GPUs: each member is given one GPU, and members that run at once
on one machine's Dask workers take different ones (no GPU here: the choice is checked, and the
worker numbers it uses are read from a real 2-worker LocalCluster)."""

from __future__ import annotations

import pytest

from deepatoms.train import committee
from deepatoms.train.committee import member_gpu


@pytest.mark.parametrize(
    ("train", "k", "slot", "n_gpus", "expected"),
    [
        ({"accelerator": "gpu", "devices": 1}, 0, 0, 4, 0),
        ({"accelerator": "gpu", "devices": 1}, 5, 3, 4, 3),  # the worker's GPU, not the member's
        ({"accelerator": "cuda", "devices": "1"}, 5, 6, 4, 2),  # slot mod n
        ({"accelerator": "gpu", "devices": 1}, 5, None, 4, 1),  # in this process: k mod n
        ({"accelerator": "auto", "devices": "auto"}, 1, 1, 2, 1),  # auto: one GPU, not DDP
        ({"accelerator": "auto", "devices": 1}, 1, 1, 0, None),  # auto on a CPU machine
        ({"accelerator": "cpu", "devices": 1}, 1, 1, 4, None),
        ({"accelerator": "gpu", "devices": 1}, 1, 1, 1, None),  # one GPU: nothing to choose
        ({"accelerator": "gpu", "devices": 1, "strategy": "ddp"}, 1, 1, 4, None),
        ({"accelerator": "gpu", "devices": [2]}, 1, 1, 4, None),  # the user's own choice
        ({"accelerator": "gpu", "devices": 2}, 1, 1, 4, None),
    ],
)
def test_member_gpu(train, k, slot, n_gpus, expected):
    assert member_gpu(train, k, slot, n_gpus) == expected


def test_members_get_their_gpus_in_the_training_config(monkeypatch, tmp_path):
    """The chosen GPU reaches the member's config as ``train.devices=[i]`` and its summary."""
    import torch

    import deepatoms.distribute.cluster as cluster
    import deepatoms.train.protocol as protocol

    seen = []

    def fake_fit(cfg, data, out, **kwargs):
        seen.append((cfg["train"]["seed"], cfg["train"]["devices"]))
        return {"model_file": str(out)}

    monkeypatch.setattr(protocol, "fit", fake_fit)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(cluster, "worker_slot", lambda: None)
    config = {"train": {"seed": 10, "accelerator": "gpu", "devices": 1, "strategy": "auto"}}
    split = {"train": [0, 1], "val": [2]}
    res = committee._train_members(range(0, 3), config, "d.h5", str(tmp_path), split,
                                   False, None, False)  # fmt: skip
    assert seen == [(10, [0]), (11, [1]), (12, [0])]
    assert [r["gpu"] for r in res] == [0, 1, 0]
    monkeypatch.setattr(cluster, "worker_slot", lambda: 1)  # on Dask worker 1: always its GPU
    seen.clear()
    committee._train_members(range(0, 2), config, "d.h5", str(tmp_path), split, False, None,
                             False)  # fmt: skip
    assert seen == [(10, [1]), (11, [1])]
    cpu = {"train": {**config["train"], "accelerator": "cpu"}}
    seen.clear()
    res = committee._train_members(range(0, 1), cpu, "d.h5", str(tmp_path), split, False, None,
                                   False)  # fmt: skip
    assert seen == [(10, 1)] and "gpu" not in res[0]


def test_worker_slot_numbers_the_local_workers():
    from deepatoms.distribute.cluster import open_cluster, worker_slot

    assert worker_slot() is None  # not inside a Dask task
    with open_cluster(2) as cluster:
        client = cluster.client
        futures = [client.submit(worker_slot, workers=[address], pure=False)
                   for address in client.scheduler_info()["workers"]]  # fmt: skip
        slots = client.gather(futures)
    assert sorted(slots) == [0, 1]
