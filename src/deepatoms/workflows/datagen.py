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
from typing import Any

from deepatoms.core.errors import DeepatomsError
from deepatoms.core.files import check_new_file
from deepatoms.core.progress import ProgressBar
from deepatoms.datagen.defaults import DEFAULT_ELEMENTS, DEFAULT_PROTOTYPES
from deepatoms.datagen.growth import generate_growth as crystal_growth
from deepatoms.datagen.infinite_crystal import generate_infinite_crystal as infinite_crystal
from deepatoms.datagen.prototypes import generate_prototype_set as prototype_set
from deepatoms.datagen.resumable import DatagenResult
from deepatoms.datagen.scaled_qm9 import generate_scaled_qm9 as scaled_qm9
from deepatoms.distribute.cluster import on_cluster

__all__ = [
    "DEFAULT_ELEMENTS",
    "DEFAULT_PROTOTYPES",
    "DatagenResult",
    "crystal_growth",
    "infinite_crystal",
    "prototype_set",
    "reference_md",
    "scaled_qm9",
    "starting_structure",
]


def starting_structure(molecule: str | None, bulk: str | None, structure: str | None,
                        size: int | None, lattice_constant: float | None, seed: int) -> Any:  # fmt: skip
    """The starting ``Atoms`` from exactly one of ``molecule`` (name, alias or SMILES) or
    ``bulk`` (metal or alloy; ``structure``, about ``size`` atoms, lattice constant in Å);
    ``atoms.info["kind"]`` is ``molecule`` or ``bulk``."""
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


def _calculator_settings(name: str, atoms: Any, method: str | None, threads: int) -> dict:
    """The settings of the reference calculator ``name``; builds it once to refuse bad ones."""
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
        make_calculator(name, atoms, **settings)
    except ImportError as exc:
        raise DeepatomsError(str(exc)) from exc
    return settings


def reference_md(
    out: str | os.PathLike, *, molecule: str | None = None, bulk: str | None = None,
    structure: str | None = None, size: int | None = None, lattice_constant: float | None = None,
    calculator: str | None = None, method: str | None = None, threads: int = 1,
    temperature: float = 500.0, timestep: float = 0.5, frames: int = 1000, stride: int = 10,
    equilibration: int = 1000, friction: float = 0.01, seed: int = 0, rattle: float = 0.0,
    strain: float | None = None, replicas: int = 1, workers: int = 1,
    scheduler: str | None = None, overwrite: bool = False, progress: bool = True,
) -> DatagenResult:  # fmt: skip
    """Langevin MD of a ``molecule`` (ASE name, alias or SMILES; GFN2-xTB) or ``bulk`` metal or
    alloy (EMT) at ``temperature`` K; ``frames`` frames every ``stride`` steps after
    ``equilibration`` steps, written with energies (eV), forces (eV/Å) and, for bulk cells,
    stress. Bulk frames get a random cell ``strain`` (default 0.02) so the stress varies.

    ``replicas`` independent trajectories share the frames (:mod:`deepatoms.datagen.md_replicas`);
    they run on ``workers`` local Dask processes or the cluster at ``scheduler``, and an
    interrupted run continues with the missing replicas when called again.
    """
    from deepatoms.datagen.md_replicas import generate_md_replicas
    from deepatoms.distribute.chunks import parts_folder
    from deepatoms.simulate.reference import DEFAULT_CALCULATOR

    if overwrite or not parts_folder(out).is_dir():  # else: continue the unfinished run
        check_new_file(out, overwrite)
    atoms = starting_structure(molecule, bulk, structure, size, lattice_constant, seed)
    kind = atoms.info["kind"]
    if strain is not None and kind == "molecule":
        raise DeepatomsError("--strain applies to --bulk only (molecules have no cell); drop it")
    name = (calculator or DEFAULT_CALCULATOR[kind]).lower()
    settings = _calculator_settings(name, atoms, method, threads)
    md = {"temperature": temperature, "timestep": timestep, "stride": stride,
          "equilibration_steps": equilibration, "friction": friction, "rattle": rattle,
          "strain": (0.02 if kind == "bulk" else 0.0) if strain is None else strain}  # fmt: skip
    with (
        on_cluster(workers, scheduler, progress) as cluster,
        ProgressBar("MD replicas" if replicas > 1 else "MD", quiet=not progress) as bar,
    ):
        data, meta, run = generate_md_replicas(
            out, atoms, name, settings, frames=frames, replicas=replicas, seed=seed, md=md,
            cluster=cluster, overwrite=overwrite, progress=bar,
        )  # fmt: skip
    prov = meta["provenance"]
    energy = data.system_props["energy"]
    return DatagenResult(
        out=str(out), n_systems=len(data), n_atoms=prov["structure"]["n_atoms"],
        formula=prov["structure"]["formula"], calculator=prov["calculator"]["calculator"],
        method=prov["calculator"]["method"], properties=data.property_names, units=meta["units"],
        energy_mean=float(energy.mean()), energy_std=float(energy.std()),
        mean_kinetic_temperature_K=prov["observed"]["mean_kinetic_temperature_K"],
        replicas=replicas, replicas_done_before=run["n_done_before"], workers=run["workers"],
        wall_time_s=prov["run_wall_time_s"],
    )  # fmt: skip
