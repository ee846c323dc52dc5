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


# -- ML potentials for MD (benchmarks/md_speed.py) ---------------------------------------------
SPK_ENERGY, SPK_FORCES, SPK_STRESS = "energy", "forces", "stress"


def build_schnet_potential(
    spk,
    n_atom_basis: int = 64,
    n_interactions: int = 3,
    n_rbf: int = 20,
    cutoff: float = 5.0,
    n_filters: int | None = None,
):
    """A SchNetPack SchNet potential: energy ``"energy"`` and forces ``"forces"`` by autograd.

    SchNet with Gaussians on [0, cutoff], cosine cutoff and shifted-softplus activations
    everywhere (SchNetPack's default); output ``Atomwise`` F → F/2 → 1 with shifted softplus
    (the deepatoms SchNet head), summed over atoms; then ``spk.atomistic.Forces``. Stress is not
    built in: ``SpkCalculator(stress_key="stress")`` activates it (``activate_model_stress``
    inserts ``spk.atomistic.Strain`` and sets ``Forces.calc_stress``), SchNetPack's route for MD.
    """
    ssp = spk.nn.activations.shifted_softplus
    representation = spk.representation.SchNet(
        n_atom_basis=n_atom_basis,
        n_interactions=n_interactions,
        radial_basis=spk.nn.GaussianRBF(n_rbf=n_rbf, cutoff=cutoff),
        cutoff_fn=spk.nn.CosineCutoff(cutoff),
        n_filters=n_filters,
        activation=ssp,
    )
    return spk.model.NeuralNetworkPotential(
        representation=representation,
        input_modules=[spk.atomistic.PairwiseDistances()],
        output_modules=[
            spk.atomistic.Atomwise(
                n_in=n_atom_basis,
                n_layers=2,
                activation=ssp,
                output_key=SPK_ENERGY,
                aggregation_mode="sum",
            ),
            spk.atomistic.Forces(energy_key=SPK_ENERGY, force_key=SPK_FORCES),
        ],
        postprocessors=[],
    )


def schnet_potential_from_deepatoms(spk, model):
    """SchNetPack twin of a deepatoms SchNet energy model (``AtomisticModel``), same weights.

    The architectures are the same layer for layer (embedding; per block ``in2f`` without bias,
    filter network rbf → F (ssp) → F (linear) times the cosine cutoff, sum over neighbours,
    ``f2out`` F → F (ssp) → F, residual update; atom-wise head F → F/2 (ssp) → 1, summed), so
    the twin computes the same energy and forces up to float round-off. deepatoms' per-atom scale
    and shift (E_i = σ·o(x_i) + μ) are folded into the last head layer. Only configurations the
    twin can express are accepted (sum aggregation, linear last filter layer, no shared
    filters/blocks, cosine cutoff, no atom references); anything else raises ``ValueError``.
    """
    cfg = dict(model.config)
    problems = []
    if cfg.get("name") != "schnet":
        problems.append(f"model {cfg.get('name')!r} is not schnet")
    if cfg.get("aggregation", "sum") != "sum":
        problems.append("aggregation must be sum")
    if cfg.get("filter_last_activation") is not None:
        problems.append("filter_last_activation must be null (linear last filter layer)")
    if cfg.get("shared_filters") or cfg.get("shared_interactions"):
        problems.append("shared filters/interactions are not supported")
    if cfg.get("cutoff_fn") != "cosine":
        problems.append("cutoff_fn must be cosine")
    if cfg.get("readout", "sum") != "sum":
        problems.append("readout must be sum")
    head = model.head
    if bool(head.atomref.abs().sum() > 0):
        problems.append("atom references are not supported")
    if problems:
        raise ValueError("cannot build a SchNetPack twin: " + "; ".join(problems))
    rep = model.representation
    n_atom_basis = rep.n_atom_basis
    blocks = list(rep.interactions)
    n_filters = blocks[0].in2f.out_features
    twin = build_schnet_potential(
        spk,
        n_atom_basis=n_atom_basis,
        n_interactions=len(blocks),
        n_rbf=rep.rbf.n_rbf,
        cutoff=float(cfg["cutoff"]),
        n_filters=n_filters,
    )
    src = {k: v.detach().to(torch.float32) for k, v in model.state_dict().items()}
    gamma = float(rep.rbf.gamma)
    sr = twin.representation
    with torch.no_grad():
        z_rows = sr.embedding.weight.shape[0]
        sr.embedding.weight.copy_(src["representation.embedding.weight"][:z_rows])
        sr.radial_basis.offsets.copy_(src["representation.rbf.centers"])
        sr.radial_basis.widths.fill_((0.5 / gamma) ** 0.5)  # exp(-γ Δ²) = exp(-Δ²/(2 w²))
        for t, block in enumerate(sr.interactions):
            p = f"representation.interactions.{t}."
            block.in2f.weight.copy_(src[p + "in2f.weight"])
            for k, name in enumerate(("l1", "l2")):
                block.filter_network[k].weight.copy_(src[p + f"filter_net.{name}.weight"])
                block.filter_network[k].bias.copy_(src[p + f"filter_net.{name}.bias"])
            for k, name in enumerate(("f2out", "dense")):
                block.f2out[k].weight.copy_(src[p + f"{name}.weight"])
                block.f2out[k].bias.copy_(src[p + f"{name}.bias"])
        out = twin.output_modules[0].outnet
        n_head = len([k for k in src if k.startswith("head.net.") and k.endswith(".weight")])
        if n_head != len(out):
            raise ValueError(f"head has {n_head} layers, the SchNetPack Atomwise {len(out)}")
        std, mean = float(src["head.std"]), float(src["head.mean"])
        for k, layer in enumerate(out):
            w, b = src[f"head.net.{k}.weight"], src[f"head.net.{k}.bias"]
            if k == len(out) - 1:  # fold E_i = σ·o(x_i) + μ into the last layer
                w, b = std * w, std * b + mean
            layer.weight.copy_(w)
            layer.bias.copy_(b)
    return twin


def spk_calculator(
    spk,
    model_file: str | os.PathLike,
    neighbors: str = "matscipy",
    cutoff: float = 5.0,
    skin: float = 0.5,
    stress: bool = False,
    dtype: torch.dtype = torch.float32,
):
    """``schnetpack.interfaces.SpkCalculator`` for a model saved with ``torch.save``.

    Neighbour list ``neighbors`` (``ase``: ``ASENeighborList``, ``matscipy``:
    ``MatScipyNeighborList``, ``torch``: ``TorchNeighborList``), wrapped in SchNetPack's
    ``SkinNeighborList`` with ``cutoff_skin=skin`` when ``skin > 0`` (the list is built at
    cutoff + skin and reused until an atom has moved more than skin/2; every step it is pruned
    to the cutoff). Energies in eV, positions in Å; ``stress=True`` computes the stress every
    step (``stress_key="stress"``).

    SchNetPack loads the model with ``torch.load(path)``; torch 2.13 defaults to
    ``weights_only=True``, which cannot unpickle a whole model, so the load runs with
    ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` (the file is one this benchmark just wrote).
    """
    names = {
        "ase": "ASENeighborList",
        "matscipy": "MatScipyNeighborList",
        "torch": "TorchNeighborList",
    }
    nbl = getattr(spk.transform, names[neighbors])(cutoff=cutoff)
    if skin > 0:
        nbl = spk.transform.SkinNeighborList(nbl, cutoff_skin=skin)
    key = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"
    old = os.environ.get(key)
    os.environ[key] = "1"
    try:
        from schnetpack.interfaces import SpkCalculator

        return SpkCalculator(
            model_file=str(model_file),
            neighbor_list=nbl,
            energy_key=SPK_ENERGY,
            force_key=SPK_FORCES,
            stress_key=SPK_STRESS if stress else None,
            energy_unit="eV",
            position_unit="Angstrom",
            device="cpu",
            dtype=dtype,
        )
    finally:
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old
