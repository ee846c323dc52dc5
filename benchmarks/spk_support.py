"""SchNetPack 2.1.1 side of the benchmarks: import, ASE db export, loader and model.

Everything here mirrors SchNetPack's QM9 default configuration (``configs/experiment/
qm9_atomwise.yaml`` in SchNetPack 2.1.1): SchNet with F = 128, T = 6, 20 Gaussians, cosine cutoff
at 5 Å, an ``Atomwise`` sum output, and the input transforms

    SubtractCenterOfMass → RemoveOffsets(mean, atomrefs) → neighbour list (5 Å) → CastTo32

with ``CastTo64`` → ``AddOffsets`` as post-processors. SchNetPack's QM9 experiment uses
``MatScipyNeighborList``; its QM9 tutorial uses ``ASENeighborList``. Both can be chosen.

SchNetPack is optional: :func:`import_schnetpack` returns ``(None, reason)`` when it cannot be
imported (make it available with ``benchmarks/setup_schnetpack_env.sh``).
"""

from __future__ import annotations

import os
import typing
from pathlib import Path
from typing import Any

import numpy as np
import torch

SPK_PROPERTY = "energy_U0"  # SchNetPack's name for QM9 U0 (schnetpack.datasets.QM9.U0)
ZMAX = 100  # size of SchNetPack's atomref tables


def import_schnetpack() -> tuple[Any, str]:
    """``(schnetpack module, version)`` or ``(None, reason it is unavailable)``.

    SchNetPack 2.1.1 imports ``T_co`` from ``torch.utils.data.dataloader``, which torch 2.13 no
    longer defines; the missing TypeVar is added first (the setup script installs the same shim).
    """
    try:
        import torch.utils.data.dataloader as dl

        if not hasattr(dl, "T_co"):
            dl.T_co = typing.TypeVar("T_co", covariant=True)
        import schnetpack
    except Exception as err:  # ImportError, or anything the import itself raises
        return None, f"{type(err).__name__}: {err}"
    from importlib.metadata import version

    try:
        ver = version("schnetpack")
    except Exception:  # pragma: no cover - metadata missing
        ver = getattr(schnetpack, "__version__", "unknown")
    return schnetpack, ver


def atomref_table(meta: dict, target: str = "U0") -> torch.Tensor:
    """Per-element references of ``target`` from deepatoms' QM9 metadata as a [ZMAX] float64 tensor."""
    table = torch.zeros(ZMAX, dtype=torch.float64)
    for z, v in (meta.get("atomrefs") or {}).get(target, {}).items():
        table[int(z)] = float(v)
    return table


def mean_per_atom(data, indices: np.ndarray, refs: torch.Tensor, target: str = "U0") -> float:
    """Mean of (E − Σ atomref)/n over ``indices``: SchNetPack's ``get_stats(divide_by_atoms=True)``."""
    sub = data.subset(np.asarray(indices))
    ref_sum = np.add.reduceat(refs.numpy()[sub.numbers], sub.offsets[:-1]) if len(sub) else 0.0
    return float(np.mean((sub.system_props[target] - ref_sum) / sub.n_atoms))


def write_ase_db(spk, data, meta: dict, path: str | os.PathLike, target: str = "U0") -> Path:
    """Write all systems of ``data`` (deepatoms ``PackedSystems``) as a SchNetPack ASE db.

    Row k + 1 of the db is system k; ``energy_U0`` is stored in eV with SchNetPack's QM9 layout
    (shape [1]) and the U0 atom references in the metadata.
    """
    path = Path(path)
    if path.exists():
        path.unlink()
    refs = atomref_table(meta, target).tolist()
    db = spk.data.ASEAtomsData.create(
        str(path),
        distance_unit="Ang",
        property_unit_dict={SPK_PROPERTY: "eV"},
        atomrefs={SPK_PROPERTY: refs},
    )
    values = data.system_props[target]
    atoms = [data.get_atoms(k) for k in range(len(data))]
    for a in atoms:  # keep only the structure; properties go through property_list
        a.info.clear()
        for key in list(a.arrays):
            if key not in ("numbers", "positions"):
                del a.arrays[key]
    db.add_systems(
        property_list=[{SPK_PROPERTY: np.array([v], dtype=np.float64)} for v in values],
        atoms_list=atoms,
    )
    return path


class ReduceLROnPlateau(torch.optim.lr_scheduler.ReduceLROnPlateau):
    """``schnetpack.train.ReduceLROnPlateau`` for torch 2.13.

    SchNetPack 2.1.1's class passes ``verbose=`` to torch's ``ReduceLROnPlateau``, which torch
    2.13 no longer accepts (TypeError). Same behaviour otherwise: SchNetPack computes an
    exponential moving average of the metric (``smoothing_factor``) but steps on the raw value.
    """

    def __init__(self, optimizer, smoothing_factor: float = 0.0, **kwargs) -> None:
        kwargs.pop("verbose", None)
        super().__init__(optimizer, **kwargs)
        self.smoothing_factor = smoothing_factor
        self.ema_loss = None

    def step(self, metrics, epoch=None):  # type: ignore[override]
        current = float(metrics)
        if self.ema_loss is None:
            self.ema_loss = current
        else:
            s = self.smoothing_factor
            self.ema_loss = s * self.ema_loss + (1.0 - s) * current
        super().step(current)


def _offsets(spk, cls_name: str, refs: torch.Tensor, mean: float, **flags):
    """``RemoveOffsets`` / ``AddOffsets`` with given statistics.

    SchNetPack 2.1.1 evaluates ``atomrefs or torch.zeros(...)`` in their constructors, which fails
    for any real atomref tensor, so the buffers are set after construction.
    """
    t = getattr(spk.transform, cls_name)(SPK_PROPERTY, **flags)
    t.atomref = refs.clone()
    t.mean = torch.tensor([mean], dtype=torch.float64)
    t._atomrefs_initialized = True
    t._mean_initialized = True
    return t


def make_dataset(
    spk,
    db_path: str | os.PathLike,
    refs: torch.Tensor,
    mean: float,
    neighbors: str = "ase",
    cutoff: float = 5.0,
    subset_idx: list[int] | None = None,
):
    """``ASEAtomsData`` with SchNetPack's QM9 default input transforms."""
    nbl = {"ase": "ASENeighborList", "matscipy": "MatScipyNeighborList"}[neighbors]
    transforms = [
        spk.transform.SubtractCenterOfMass(),
        _offsets(spk, "RemoveOffsets", refs, mean, remove_mean=True, remove_atomrefs=True),
        getattr(spk.transform, nbl)(cutoff=cutoff),
        spk.transform.CastTo32(),
    ]
    return spk.data.ASEAtomsData(
        str(db_path),
        load_properties=[SPK_PROPERTY],
        transforms=transforms,
        subset_idx=subset_idx,
    )


def make_loader(spk, dataset, batch_size: int, shuffle: bool, seed: int = 0):
    """SchNetPack's ``AtomsLoader`` (no worker processes: both libraries get the same 2 cores)."""
    gen = torch.Generator().manual_seed(seed)
    return spk.data.AtomsLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, num_workers=0, generator=gen
    )


def build_schnet(
    spk,
    refs: torch.Tensor,
    mean: float,
    n_atom_basis: int = 128,
    n_interactions: int = 6,
    n_rbf: int = 20,
    cutoff: float = 5.0,
):
    """SchNetPack's QM9 default ``NeuralNetworkPotential`` (SchNet F=128, T=6, 20 Gaussians)."""
    representation = spk.representation.SchNet(
        n_atom_basis=n_atom_basis,
        n_interactions=n_interactions,
        radial_basis=spk.nn.GaussianRBF(n_rbf=n_rbf, cutoff=cutoff),
        cutoff_fn=spk.nn.CosineCutoff(cutoff),
    )
    return spk.model.NeuralNetworkPotential(
        representation=representation,
        input_modules=[spk.atomistic.PairwiseDistances()],
        output_modules=[
            spk.atomistic.Atomwise(
                n_in=n_atom_basis, output_key=SPK_PROPERTY, aggregation_mode="sum"
            )
        ],
        postprocessors=[
            spk.transform.CastTo64(),
            _offsets(spk, "AddOffsets", refs, mean, add_mean=True, add_atomrefs=True),
        ],
    )
