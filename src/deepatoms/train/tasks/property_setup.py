"""What a property model or potential learns from its training data before the first step.

- the target (a numeric per-system property) and optional force labels, checked against the
  dataset;
- the readout (sum for extensive targets, mean for intensive ones; ``data.readout``) and atom
  references E_ref(Z) (from the dataset, fitted by least squares, or none; ``data.atomref``);
- the output statistics μ, σ of the per-atom target (Schütt 2018 thesis Ch. 4; Jørgensen et
  al. 2018, Paper A §5; ``deepatoms.models.heads``), σ from the force RMS for potentials
  (``data.scale``);
- the bond vocabulary of MPNN/VIMPNN (``model.n_bond_types: auto``);
- fine-tuning (``--init``): weights copied from a model file of the same architecture;
- after training: the energy offset of a force-only potential and the validation errors of a
  potential.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from deepatoms.config.schema import config_diff
from deepatoms.core.errors import ConfigError
from deepatoms.data.neighbors import GraphSpec
from deepatoms.data.packed import PackedSystems
from deepatoms.data.stats import fit_atomrefs, force_rms
from deepatoms.data.validate import non_finite_rows, systems_with
from deepatoms.models.heads import AtomisticModel
from deepatoms.models.inference import predict_potential
from deepatoms.models.loading import PROPERTY_FAMILIES, load_model

__all__ = [
    "check_forces",
    "check_target",
    "fit_energy_offset",
    "init_from",
    "init_mismatch",
    "potential_val_errors",
    "resolve_atomrefs",
    "resolve_bond_types",
    "resolve_readout",
    "resolve_scale",
]


def _non_finite(values: np.ndarray, what: str, path: Path, offsets: np.ndarray | None) -> None:
    """Refuse NaN or infinite label values, naming the first systems that hold them."""
    bad = non_finite_rows(values)
    if not bad.any():
        return
    if offsets is not None:  # per-atom values: the systems of the bad atoms
        bad = systems_with(bad, offsets)
    first = np.flatnonzero(bad)[:5].tolist()
    raise ConfigError(
        f"{what} in {path} is NaN or infinite for {int(bad.sum())} system(s), e.g. {first}; "
        "remove them (re-import with `deepatoms data import --skip-bad-rows`)"
    )


def check_target(data: PackedSystems, meta: dict, target: str | None, path: Path,
                 declared: str | None = None) -> str:  # fmt: skip
    """The unit of ``target``, a numeric, finite per-system property of the dataset
    (ConfigError else). A target whose unit the dataset does not record needs ``declared``
    (``data.target_unit``); ``"dimensionless"`` declares a dimensionless property (unit "")."""
    if not target:
        raise ConfigError("no target given: pass --target NAME (see `deepatoms data info`)")
    numeric = [
        k for k, v in data.system_props.items() if np.issubdtype(v.dtype, np.number) and v.ndim == 1
    ]
    if target not in numeric:
        raise ConfigError(
            f"target {target!r} is not a numeric per-system property of {path}; "
            f"choose one of: {', '.join(sorted(numeric))}"
        )
    _non_finite(data.system_props[target], f"target {target!r}", path, None)
    recorded = (meta.get("units") or {}).get(target) or None
    if recorded and declared and declared != recorded:
        raise ConfigError(
            f"data.target_unit={declared!r}, but {path} records {target!r} in {recorded!r}; "
            "drop data.target_unit (units are converted when the data is imported)"
        )
    unit = recorded or declared
    if not unit:
        raise ConfigError(
            f"{path} records no unit for target {target!r}, so its errors and an MD with the "
            "model would have no meaning; declare it: re-import the data with "
            f"`deepatoms data import FILES --out OUT.h5 --energy-key {target} --energy-unit eV` "
            f"(or Ha, kcal/mol, …; it is converted to eV), or --set data.target_unit=UNIT "
            "(dimensionless for a property without a unit)"
        )
    return "" if unit == "dimensionless" else unit


def check_forces(data: PackedSystems, config: dict, path: Path, unit: str = "eV",
                 meta: dict | None = None) -> str | None:  # fmt: skip
    """The per-atom force label to train on (``data.forces``), checked against the dataset:
    [N,3], finite, in eV/Å with an energy target in eV."""
    name = config["data"]["forces"]
    if not name:
        return None
    arr = data.atom_props.get(name)
    if arr is None:
        have = sorted(k for k, v in data.atom_props.items() if v.ndim == 2 and v.shape[1] == 3)
        raise ConfigError(
            f"data.forces={name!r}, but {path} has no per-atom property of that name; "
            f"per-atom [N,3] properties there: {have or 'none'} (use data.forces=null to train "
            "on energies only)"
        )
    if arr.ndim != 2 or arr.shape[1] != 3 or not np.issubdtype(arr.dtype, np.floating):
        raise ConfigError(
            f"data.forces={name!r} in {path} has shape {arr.shape}; need [N_atoms, 3]"
        )
    f_unit = ((meta or {}).get("units") or {}).get(name) if meta is not None else "eV/Å"
    if unit != "eV" or f_unit != "eV/Å":
        raise ConfigError(
            f"training on forces needs an energy target in eV and forces in eV/Å; {path} "
            f"records the target in {unit or 'no unit'!r} and {name!r} in "
            f"{f_unit or 'no unit'!r}. Declare them when importing: `deepatoms data import "
            f"FILES --out OUT.h5 --energy-key KEY --forces-key {name} --energy-unit UNIT`"
        )
    _non_finite(arr, f"force label {name!r}", path, data.offsets)
    return name


def resolve_readout(config: dict, target: str) -> str:
    """Sum or mean pooling for ``target`` (``data.readout``; ``auto`` uses the preset's table)."""
    readout = config["data"]["readout"]
    if readout == "auto":
        return "mean" if target in config["data"]["mean_readout_targets"] else "sum"
    return readout


def resolve_atomrefs(
    config: dict, data: PackedSystems, meta: dict, target: str, train_idx: np.ndarray
) -> tuple[dict[int, float], str]:
    """Per-element references for ``target`` and where they came from (dataset / fit / none)."""
    mode = config["data"]["atomref"]
    table = (meta.get("atomrefs") or {}).get(target)
    if mode == "auto":
        mode = "dataset" if table else "none"
    if mode == "none":
        return {}, "none"
    if mode == "dataset":
        if not table:
            raise ConfigError(
                f"data.atomref=dataset, but the dataset has no atom references for {target!r} "
                f"(it has them for {sorted(meta.get('atomrefs') or {})}); use data.atomref=fit"
            )
        return {int(z): float(v) for z, v in table.items()}, "dataset"
    sub = data.subset(train_idx)
    refs = fit_atomrefs(sub.numbers, sub.offsets, sub.system_props[target])
    return {int(z): float(v) for z, v in refs.items()}, "fit"


def resolve_scale(config: dict, forces: str | None, std: float, train: PackedSystems) -> float:
    """σ̂ of the output: the energy statistics, or the force RMS for potentials (data.scale)."""
    scale = config["data"]["scale"]
    if scale == "auto":
        scale = "forces" if forces else "energy"
    if scale == "energy":
        return std
    if not forces:
        raise ConfigError("data.scale=forces needs force labels: set data.forces")
    return force_rms(train.atom_props[forces])


def resolve_bond_types(model_cfg: dict, meta: dict, path: Path) -> list[str] | None:
    """Fill ``n_bond_types: auto`` from the dataset's bond vocabulary; return the vocabulary."""
    vocab = meta.get("bond_types")
    if model_cfg.get("n_bond_types") == "auto":
        if not vocab:
            raise ConfigError(
                f"model.n_bond_types=auto, but {path} records no bond vocabulary "
                "(metadata 'bond_types'); make it with `deepatoms datagen scaled|crystal|growth` "
                "or set model.n_bond_types=1"
            )
        model_cfg["n_bond_types"] = len(vocab)
    return list(vocab) if vocab else None


def init_from(
    model: torch.nn.Module,
    path: str | Path,
    exclude: tuple[str, ...] = (),
    expect: str | tuple[str, ...] = PROPERTY_FAMILIES,
) -> dict:
    """Copy every weight and buffer of the model file ``path`` into ``model`` (fine-tuning).

    The model file must hold a model of ``expect`` (families or model names) whose config agrees
    with ``model``'s except for the keys in ``exclude`` (e.g. the target). Returns what was
    loaded, for ``stats.json``.
    """
    loaded = load_model(path, expect=expect)
    src = {k: v for k, v in loaded.model.config.items() if k not in exclude}
    dst = {k: v for k, v in model.config.items() if k not in exclude}
    diff = config_diff(src, dst)
    if diff:
        raise ConfigError(
            f"--init {path}: its model differs from this run's model, so its weights cannot be "
            "loaded:\n  " + "\n  ".join(diff) + "\nUse the same preset (and --set overrides)."
        )
    readout = getattr(getattr(model, "head", None), "readout", None)
    src_readout = getattr(getattr(loaded.model, "head", None), "readout", None)
    if readout != src_readout:
        raise ConfigError(
            f"--init {path}: readout {src_readout!r} differs from this run's {readout!r}"
        )
    model.load_state_dict(loaded.model.state_dict())
    return {
        "model_file": str(Path(loaded.meta["model_file"]).resolve()),
        "property": loaded.property,
        "unit": loaded.unit,
        "elements": sorted(int(z) for z in loaded.meta.get("elements") or []),
        "steps": loaded.meta.get("steps"),
    }


def init_mismatch(info: dict, numbers: np.ndarray, target: str, unit: str) -> list[str]:
    """Why the model of :func:`init_from` (``info``) is a poor start for training ``target``
    (``unit``) on atoms ``numbers``: elements it never saw, another target or unit."""
    from ase.data import chemical_symbols

    problems = []
    seen = set(info.get("elements") or [])
    new = sorted(set(np.unique(numbers).tolist()) - seen) if seen else []
    if new:
        problems.append(
            f"it was trained on {' '.join(chemical_symbols[z] for z in sorted(seen))} only, and "
            f"the data holds {' '.join(chemical_symbols[z] for z in new)}"
        )
    if info.get("property") != target:
        problems.append(f"it learned {info.get('property')!r}, this run learns {target!r}")
    elif (info.get("unit") or "") != (unit or ""):
        problems.append(f"its target is in {info.get('unit')!r}, the data's in {unit!r}")
    return problems


def fit_energy_offset(
    model: AtomisticModel, graph: GraphSpec, data: PackedSystems, target: str
) -> float:
    """Refit the integration constant of a force-only potential (ρ = 0, thesis Table 5.6).

    Least squares for a per-atom shift δ (eV) added to the output bias:
    δ = Σ_k n_k r_k / Σ_k n_k², with residuals r_k = E_k − Ê_k over the training systems.
    Updates ``model.head.mean`` in place and returns δ.
    """
    with torch.no_grad():
        pred = predict_potential(model, graph, data)["energy"]
    n = data.n_atoms.astype(np.float64)
    resid = data.system_props[target] - pred
    delta = float(np.sum(n * resid) / np.sum(n * n))
    with torch.no_grad():
        model.head.mean.add_(delta)
    return delta


def potential_val_errors(
    model: AtomisticModel, graph: GraphSpec, val: PackedSystems, target: str, forces: str
) -> dict[str, float]:
    """Energy and component-wise force MAE/RMSE (eV, eV/Å) of a potential on ``val``."""
    pred = predict_potential(model, graph, val)
    de = pred["energy"] - val.system_props[target]
    df = pred["forces"] - val.atom_props[forces]
    return {
        "val_energy_mae": float(np.abs(de).mean()),
        "val_energy_rmse": float(np.sqrt(np.mean(de**2))),
        "val_force_mae": float(np.abs(df).mean()),
        "val_force_rmse": float(np.sqrt(np.mean(df**2))),
    }
