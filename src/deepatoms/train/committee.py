"""Train a committee: N members of one model through the one training protocol, then one model
file holding them all (docs/uncertainty.md; :mod:`deepatoms.models.committee`).

Layout of the run folder ``OUT``:

- ``split.json``: the split shared by every member (from the config, as a single run makes it);
- ``members/k/``: member k's own run folder (config, checkpoints, logs, model file); member k
  trains with ``train.seed + k`` and, with ``bootstrap``, on a resample with replacement of the
  training systems drawn from ``(train.seed, k)``;
- ``model.pt``: the committee (format ``deepatoms-model``, ``extras["committee"]``), with the
  variance scale s fitted on the validation split (σ² = s · member variance), or s = 1 (the
  members' own spread) with ``variance_scale=False``;
- ``summary.json``: the members' results, the committee's validation errors and calibration.

Members run one after another in this process, or at once on Dask workers (``workers`` /
``scheduler``; each member is one task). On GPUs (``train.accelerator`` gpu, cuda, or auto on
a machine with a GPU) each member trains on one GPU: with several GPUs visible, Dask worker i
takes GPU i mod n (members in this process take GPU k mod n), so ``--workers N`` on a machine
with N GPUs trains N members at once, one a GPU (:func:`member_gpu`). Killed or interrupted, the
same call continues: finished members are returned as they are and unfinished ones resume from
their checkpoints.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from deepatoms.config.overrides import apply_overrides
from deepatoms.core.errors import ConfigError
from deepatoms.core.files import write_json
from deepatoms.core.progress import ProgressBar
from deepatoms.core.results import Result
from deepatoms.data.splits import load_split, save_split
from deepatoms.distribute.chunks import MemoryStore
from deepatoms.distribute.cluster import on_cluster
from deepatoms.distribute.engine import run_chunks
from deepatoms.models.registry import family_of, resolve_config

__all__ = ["CommitteeResult", "fit_committee", "member_gpu", "member_split"]

#: Families whose models can form a committee (property models and potentials).
COMMITTEE_FAMILIES = ("schnet", "dtnn", "nmp_edge", "mpnn")


class CommitteeResult(Result):
    """A committee run: ``run``, ``model_file``, ``n_members``, ``bootstrap``, ``members``
    (each member's summary), ``val`` (the committee's validation MAE/RMSE and calibration),
    ``variance_scale``, ``workers`` and ``wall_time_s``."""


def member_split(split: Mapping[str, np.ndarray], seed: int, k: int,
                 bootstrap: bool) -> dict[str, Any]:  # fmt: skip
    """Member ``k``'s split: the shared one, with the training systems resampled with
    replacement from the seed ``(seed, k)`` when ``bootstrap``."""
    out: dict[str, Any] = {name: np.asarray(v, dtype=np.int64) for name, v in split.items()}
    if bootstrap:
        rng = np.random.default_rng([int(seed), int(k)])
        train = out["train"]
        out["train"] = np.sort(train[rng.integers(0, len(train), len(train))])
        out["bootstrap"] = True
    return out


def member_gpu(train: Mapping[str, Any], k: int, slot: int | None, n_gpus: int) -> int | None:
    """The GPU index member ``k`` trains on, or None to leave ``train.devices`` as it is.

    A member is given one GPU when it trains on GPUs (``accelerator`` gpu/cuda, or auto with
    ``n_gpus`` > 0), several are visible (``n_gpus`` ≥ 2), it is not a DDP run and ``devices`` is
    1 or auto (auto would start DDP over every GPU inside each member). The GPU is ``slot`` mod
    ``n_gpus`` (``slot``: the Dask worker's number, so that members running at once on one
    machine never share a GPU), or ``k`` mod ``n_gpus`` in a plain process. An explicit list or
    count of devices is the user's choice and kept.
    """
    acc = str(train.get("accelerator", "cpu")).lower()
    on_gpu = acc in ("gpu", "cuda") or (acc == "auto" and n_gpus > 0)
    ddp = str(train.get("strategy", "auto")).lower().startswith("ddp")
    devices = train.get("devices", 1)
    one = isinstance(devices, str | int) and str(devices).strip().lower() in ("1", "auto")
    if not on_gpu or n_gpus < 2 or ddp or not one:
        return None
    return (k if slot is None else slot) % n_gpus


def member_init(init: str | os.PathLike | None, k: int) -> str | None:
    """Where member ``k`` starts from: member k of the committee ``init`` (its run folder or
    model file), or the single model ``init``; None for fresh weights."""
    if init is None:
        return None
    from deepatoms.models.loading import resolve_model_path
    from deepatoms.models.model_file import read_model_file

    path = resolve_model_path(init)
    spec = read_model_file(path).extras.get("committee")
    if not spec:
        return str(path)
    files = spec.get("members") or []
    return str(path.parent / files[k % len(files)]) if files else str(path)


def _train_members(
    members: range, config: dict, data: str, out: str, split: dict, bootstrap: bool,
    init: str | None, progress: bool, on_item: Any = None,
) -> list[dict]:  # fmt: skip
    """A chunk task: train the members ``members`` (their run folders under ``out/members``)."""
    import torch

    from deepatoms.distribute.cluster import worker_slot
    from deepatoms.train.protocol import fit

    results = []
    seed = int(config["train"]["seed"])
    slot, n_gpus = worker_slot(), torch.cuda.device_count()
    for k in members:
        sets = [f"train.seed={seed + k}"]
        gpu = member_gpu(config["train"], k, slot, n_gpus)
        if gpu is not None:
            sets.append(f"train.devices=[{gpu}]")
        res = fit(apply_overrides(config, sets), data, Path(out) / "members" / str(k),
                  split=member_split(split, seed, k, bootstrap), init=member_init(init, k),
                  progress=progress)  # fmt: skip
        results.append({**res, "gpu": gpu} if gpu is not None else dict(res))
        if on_item is not None:
            on_item(k - members.start + 1)
    return results


def _shared_split(config: dict, data: str, out: Path) -> dict[str, np.ndarray]:
    """The split of every member: ``out/split.json``, made once from the config."""
    from deepatoms.data.dataset import read_dataset
    from deepatoms.data.fingerprint import file_fingerprint
    from deepatoms.train.data_split import config_split

    path = out / "split.json"
    if path.is_file():
        return load_split(path)
    packed, _ = read_dataset(data)
    d = config["data"]
    seed = int(config["train"]["seed"]) if d["split_seed"] is None else int(d["split_seed"])
    split = config_split(packed, d, seed, Path(data))
    save_split(path, split, {"dataset": str(Path(data).resolve()), "n_systems": len(packed),
                             "dataset_fingerprint": file_fingerprint(data), "seed": seed})  # fmt: skip
    return split


def fit_committee(
    config: Mapping[str, Any], data: str | os.PathLike, out_dir: str | os.PathLike, *,
    n_members: int, bootstrap: bool = False, workers: int = 1, scheduler: str | None = None,
    init: str | os.PathLike | None = None, variance_scale: bool = True, progress: bool = True,
) -> CommitteeResult:  # fmt: skip
    """Train a committee of ``n_members`` models of ``config`` on the dataset ``data`` in the
    run folder ``out_dir`` (module docstring) and write its model file. ``init``: a committee
    (member k starts from its member k) or a single model (every member starts from it).
    ``variance_scale``: scale σ² by s fitted on the validation split (False: s = 1; the fitted
    value is still reported as ``variance_scale_fit``)."""
    t0 = time.time()
    if isinstance(n_members, bool) or not isinstance(n_members, int) or n_members < 2:
        raise ConfigError(f"--ensemble takes a number of members ≥ 2, got {n_members!r}")
    config = resolve_config(config)
    family = family_of(config)
    if family.name not in COMMITTEE_FAMILIES:
        raise ConfigError(
            f"committees are built of property models and potentials "
            f"({', '.join(COMMITTEE_FAMILIES)}); {config['model']['name']!r} is a "
            f"{family.title} model"
        )
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a folder for the committee run")
    out.mkdir(parents=True, exist_ok=True)
    data = str(data)
    split = _shared_split(config, data, out)
    store = MemoryStore(n_members)
    per_task = 1
    with on_cluster(workers, scheduler, progress) as cluster:
        member_bars = progress and not cluster.distributed
        with ProgressBar("committee members", quiet=not progress) as bar:
            run_chunks(_train_members, range(n_members),
                       [(k, k + per_task) for k in range(n_members)], store, cluster,
                       args=(config, data, str(out), split, bootstrap,
                             str(init) if init is not None else None, member_bars),
                       progress=bar, name="member")  # fmt: skip
        n_workers = cluster.n_workers
    members = [r for _, _, chunk in store.results() for r in chunk]
    summary = _assemble(config, data, out, members, split, bootstrap, variance_scale)
    result = CommitteeResult(run=str(out), n_members=n_members, bootstrap=bootstrap,
                             workers=n_workers, **summary,
                             wall_time_s=round(time.time() - t0, 3))  # fmt: skip
    write_json(out / "summary.json", dict(result))
    return result


def _assemble(config: dict, data: str, out: Path, members: list[dict], split: dict,
              bootstrap: bool, fit_scale: bool = True) -> dict[str, Any]:  # fmt: skip
    """Write ``out/model.pt`` from the members' model files, with the variance scale fitted on
    the validation split (or 1 when not ``fit_scale``); returns the summary entries."""
    from deepatoms.analysis.calibration import calibration_report
    from deepatoms.data.dataset import read_dataset
    from deepatoms.models.committee import Committee, fit_variance_scale, member_std
    from deepatoms.models.inference import predict_members
    from deepatoms.models.loading import load_model
    from deepatoms.models.model_file import read_model_file, write_model_file

    files = [Path(m["model_file"]) for m in members]
    loaded = [load_model(f) for f in files]
    committee = Committee([m.model for m in loaded])
    first = loaded[0]
    packed, _ = read_dataset(data)
    prop = first.property
    if prop not in packed.system_props:
        raise ConfigError(f"{data} has no column {prop!r} to calibrate the committee on")
    val = np.asarray(split["val"], dtype=np.int64)
    ref = np.asarray(packed.system_props[prop], dtype=np.float64)[val]
    preds = predict_members(first.graph, committee, packed, val)
    mean = preds.mean(0)
    fitted = fit_variance_scale(mean - ref, member_std(preds))
    scale = fitted if fit_scale else 1.0
    committee.variance_scale = scale
    mf = read_model_file(files[0])
    seeds = [int(config["train"]["seed"]) + k for k in range(len(members))]
    spec = {"n_members": len(members), "seeds": seeds, "bootstrap": bootstrap,
            "variance_scale": scale, "variance_scale_fitted_on": "val" if fit_scale else None,
            "members": [str(f.relative_to(out)) for f in files]}  # fmt: skip
    write_model_file(
        out / "model.pt", committee, mf.family, extras={**mf.extras, "committee": spec},
        units=mf.units, target=mf.target, normalisation=mf.normalisation,
        training_data=mf.training_data, meta={**mf.meta, "committee": spec},
        run_config=mf.run_config,
    )  # fmt: skip
    std = member_std(preds, scale)
    return {
        "model_file": str(out / "model.pt"),
        "property": prop,
        "unit": first.unit,
        "variance_scale": scale,
        "variance_scale_fit": fitted,
        "members": members,
        "val": {
            "n": len(val),
            "mae": float(np.abs(mean - ref).mean()),
            "rmse": float(np.sqrt(((mean - ref) ** 2).mean())),
            "member_mae": [float(np.abs(p - ref).mean()) for p in preds],
            **calibration_report(mean - ref, std),
        },
    }
