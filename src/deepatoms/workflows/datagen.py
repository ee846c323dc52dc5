"""Labelled data from reference calculators: the functions behind ``deepatoms datagen ...``.

- :func:`reference_md`: Langevin MD with GFN2-xTB (molecules, via tblite) or EMT (bulk metals
  and alloys); energies, forces and stress per recorded frame;
- :func:`prototype_set`: ordered alloys on crystal prototypes relaxed with EMT, formation
  energies per atom (a labelled screening benchmark);
- :func:`scaled_qm9`, :func:`infinite_crystal`, :func:`crystal_growth`: the datasets of
  Morgan et al. 2020 (augmented QM9, infinite fcc crystals, clusters grown atom by atom).

The generators record their provenance; the last four continue an interrupted run when called
again with the same output and settings.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from deepatoms.core.errors import DeepatomsError
from deepatoms.core.files import check_new_file
from deepatoms.core.progress import ProgressBar
from deepatoms.core.results import Result
from deepatoms.datagen.prototypes import DEFAULT_ELEMENTS, DEFAULT_PROTOTYPES

__all__ = [
    "DEFAULT_ELEMENTS",
    "DEFAULT_PROTOTYPES",
    "DatagenResult",
    "crystal_growth",
    "infinite_crystal",
    "prototype_set",
    "reference_md",
    "scaled_qm9",
]


class DatagenResult(Result):
    """What a generator wrote: ``out``, ``n_samples``/``n_systems``, timings, ``complete``
    (False when a resumable run stopped early) and ``failures`` (points skipped, with the
    reason)."""


def _starting_structure(molecule: str | None, bulk: str | None, structure: str | None,
                        size: int | None, lattice_constant: float | None, seed: int) -> Any:  # fmt: skip
    """The starting ``Atoms`` from exactly one of ``molecule`` / ``bulk``."""
    from deepatoms.data.structures import bulk_from_spec, molecule_from_spec

    if (molecule is None) == (bulk is None):
        raise DeepatomsError(
            "give exactly one of --molecule SPEC (name or SMILES) or --bulk SPEC (e.g. Cu, Cu3Au)"
        )
    if molecule is not None:
        given = [opt for opt, value in (("--structure", structure), ("--size", size),
                                        ("--lattice-constant", lattice_constant)) if value is not None]  # fmt: skip
        if given:
            raise DeepatomsError(
                f"{', '.join(given)} apply to --bulk only; drop them for --molecule"
            )
        return molecule_from_spec(molecule, seed=seed)
    return bulk_from_spec(bulk, structure=structure or "fcc", a=lattice_constant, size=size or 32,
                          seed=seed)  # fmt: skip


def _calculator(name: str, atoms: Any, method: str | None, threads: int) -> tuple[Any, dict]:
    from deepatoms.simulate.reference import make_calculator

    settings: dict[str, Any] = {}
    if method is not None:
        if name != "xtb":
            raise DeepatomsError(
                f"--method chooses the xtb Hamiltonian; it does not apply to {name}"
            )
        settings["method"] = method
    if name == "xtb":
        settings["threads"] = threads
        if atoms.info.get("charge"):
            settings["charge"] = atoms.info["charge"]
    try:
        return make_calculator(name, atoms, **settings)
    except ImportError as exc:
        raise DeepatomsError(str(exc)) from exc


def reference_md(
    out: str | os.PathLike,
    *,
    molecule: str | None = None,
    bulk: str | None = None,
    structure: str | None = None,
    size: int | None = None,
    lattice_constant: float | None = None,
    calculator: str | None = None,
    method: str | None = None,
    threads: int = 1,
    temperature: float = 500.0,
    timestep: float = 0.5,
    frames: int = 1000,
    stride: int = 10,
    equilibration: int = 1000,
    friction: float = 0.01,
    seed: int = 0,
    rattle: float = 0.0,
    strain: float | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> DatagenResult:
    """Langevin MD of a ``molecule`` (ASE name, alias or SMILES; GFN2-xTB) or ``bulk`` metal or
    alloy (EMT) at ``temperature`` K; ``frames`` frames every ``stride`` steps after
    ``equilibration`` steps, written with energies (eV), forces (eV/Å) and, for bulk cells,
    stress. Bulk frames get a random cell ``strain`` (default 0.02) so the stress varies."""
    from deepatoms.data.dataset import write_dataset
    from deepatoms.datagen.md import generate_md
    from deepatoms.simulate.reference import DEFAULT_CALCULATOR

    check_new_file(out, overwrite)
    atoms = _starting_structure(molecule, bulk, structure, size, lattice_constant, seed)
    kind = atoms.info["kind"]
    if strain is not None and kind == "molecule":
        raise DeepatomsError("--strain applies to --bulk only (molecules have no cell); drop it")
    name = (calculator or DEFAULT_CALCULATOR[kind]).lower()
    calc, calc_provenance = _calculator(name, atoms, method, threads)
    with ProgressBar("MD steps", quiet=not progress) as bar:
        data, meta = generate_md(
            atoms, calc, calc_provenance, temperature=temperature, timestep=timestep,
            n_frames=frames, stride=stride, seed=seed, equilibration_steps=equilibration,
            friction=friction, rattle=rattle,
            strain=(0.02 if kind == "bulk" else 0.0) if strain is None else strain, progress=bar,
        )  # fmt: skip
    write_dataset(out, data, meta)
    prov = meta["provenance"]
    energy = data.system_props["energy"]
    return DatagenResult(
        out=str(out), n_systems=len(data), n_atoms=prov["structure"]["n_atoms"],
        formula=prov["structure"]["formula"], calculator=calc_provenance["calculator"],
        method=calc_provenance["method"], properties=data.property_names, units=meta["units"],
        energy_mean=float(energy.mean()), energy_std=float(energy.std()),
        mean_kinetic_temperature_K=prov["observed"]["mean_kinetic_temperature_K"],
        wall_time_s=prov["wall_time_s"],
    )  # fmt: skip


def prototype_set(
    out_dir: str | os.PathLike,
    *,
    elements: Sequence[str] | None = None,
    arities: Sequence[int] = (1, 2, 3),
    prototypes: Sequence[str] | None = None,
    fmax: float = 0.01,
    steps: int = 500,
    optimizer: str = "bfgs",
    rescale: str = "volume",
    rattle: float = 0.0,
    seed: int = 0,
    limit: int | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> DatagenResult:
    """Ordered alloys of ``elements`` on crystal ``prototypes`` relaxed with EMT:
    ``out_dir/initial.h5`` (unrelaxed, rescaled prototypes) and ``relaxed.h5`` with
    formation_energy_per_atom (eV/atom) against the lowest of fcc/bcc/hcp per element."""
    from deepatoms.datagen.prototypes import (
        DEFAULT_ELEMENTS,
        DEFAULT_PROTOTYPES,
        generate_prototype_set,
    )

    with ProgressBar("relaxations", quiet=not progress) as bar:
        summary = generate_prototype_set(
            out_dir, elements=list(elements or DEFAULT_ELEMENTS), arities=list(arities),
            prototypes=list(prototypes or DEFAULT_PROTOTYPES), fmax=fmax, steps=steps,
            optimizer=optimizer, rescale=rescale, rattle=rattle, seed=seed, resume=resume,
            overwrite=overwrite, limit=limit, progress=bar,
        )  # fmt: skip
    return DatagenResult(summary)


def _failures(path: str | os.PathLike) -> list[dict[str, Any]]:
    from deepatoms.data.dataset import dataset_info

    path = Path(path)
    return list(dataset_info(path)["metadata"].get("failures", [])) if path.exists() else []


def scaled_qm9(
    out: str | os.PathLike,
    molecules: int,
    *,
    first: int = 0,
    scales: str = "0.9:1.5:10",
    seed: int = 0,
    bond_rule: str = "rdkit",
    calculator: str = "xtb",
    split: str = "0.8,0.1,0.1",
    flush_every: int = 50,
    overwrite: bool = False,
    progress: bool = True,
) -> DatagenResult:
    """Augmented QM9: the first ``molecules`` QM9 molecules (after ``first``) scaled about their
    centroid by each factor of ``scales``, labelled with GFN2-xTB (SCF failures retried at
    1,000 K and 5,000 K electronic temperature; points still failing are listed)."""
    from deepatoms.datagen.scaled_qm9 import generate_scaled_qm9

    with ProgressBar("molecules", quiet=not progress) as bar:
        summary = generate_scaled_qm9(
            out, molecules=molecules, first=first, scales=scales, seed=seed,
            bond_rule=bond_rule, calculator=calculator, split=split, flush_every=flush_every,
            overwrite=overwrite, progress=bar,
        )  # fmt: skip
    return DatagenResult(summary, failures=_failures(out))


def infinite_crystal(
    out: str | os.PathLike,
    *,
    elements: Sequence[str] = ("Al", "Cu"),
    points: int = 20000,
    train_points: int = 8,
    cell: str = "conventional",
    lattice: str = "minimize",
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = True,
) -> DatagenResult:
    """Infinite Crystal: fcc cells of each element scaled isotropically, EMT energy per cell."""
    from deepatoms.datagen.infinite_crystal import generate_infinite_crystal

    with ProgressBar("cells", quiet=not progress) as bar:
        summary = generate_infinite_crystal(
            out, elements=list(elements), points=points, train_points=train_points, cell=cell,
            lattice=lattice, seed=seed, overwrite=overwrite, progress=bar,
        )  # fmt: skip
    return DatagenResult(summary, failures=_failures(out))


def crystal_growth(
    out: str | os.PathLike,
    *,
    elements: Sequence[str] = ("Al", "Cu"),
    runs: int = 20,
    steps: int = 100,
    min_atoms: int = 15,
    max_atoms: int = 75,
    unstable: bool = False,
    unstable_runs: int = 5,
    scales: str = "0.9:1.5:10",
    seed: int = 0,
    split: str = "0.6,0.2,0.2",
    split_by: str = "group",
    lattice: str = "minimize",
    flush_every: int = 200,
    overwrite: bool = False,
    progress: bool = True,
) -> DatagenResult:
    """Crystal Growth: fcc clusters grown atom by atom from the 14-atom cube, EMT labels;
    ``unstable`` writes the scaled (Unstable CG) set of the first ``unstable_runs`` runs."""
    from deepatoms.datagen.growth import generate_growth

    with ProgressBar("clusters", quiet=not progress) as bar:
        summary = generate_growth(
            out, elements=list(elements), runs=runs, steps=steps, min_atoms=min_atoms,
            max_atoms=max_atoms, unstable=unstable, unstable_runs=unstable_runs, scales=scales,
            seed=seed, split=split, split_by=split_by, lattice=lattice,
            flush_every=flush_every, overwrite=overwrite, progress=bar,
        )  # fmt: skip
    return DatagenResult(summary, failures=_failures(out))
