"""``deepatoms datagen``: labelled data from reference calculators (registered in deepatoms.cli)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from deepatoms.core.progress import ProgressBar

# Defined before the import of deepatoms.cli below: that module imports this one at its end,
# and with `python -m deepatoms.cli` the import chain comes back here half-initialised.
datagen_app = typer.Typer(
    help="Make labelled data with a reference calculator (GFN2-xTB, EMT).", no_args_is_help=True
)

from deepatoms.cli import (  # noqa: E402
    JsonOpt,
    OverwriteOpt,
    _check_new_output,
    _emit_json,
    _fail_cleanly,
    err,
    out,
)


def _structure(
    molecule: str | None,
    bulk: str | None,
    structure: str | None,
    size: int | None,
    lattice_constant: float | None,
    seed: int,
) -> Any:
    """The starting ``Atoms`` from exactly one of --molecule / --bulk."""
    from deepatoms.data.structures import bulk_from_spec, molecule_from_spec

    if (molecule is None) == (bulk is None):
        raise ValueError(
            "give exactly one of --molecule SPEC (name or SMILES) or --bulk SPEC (e.g. Cu, Cu3Au)"
        )
    if molecule is not None:
        given = [
            opt
            for opt, value in (
                ("--structure", structure),
                ("--size", size),
                ("--lattice-constant", lattice_constant),
            )
            if value is not None
        ]
        if given:
            raise ValueError(f"{', '.join(given)} apply to --bulk only; drop them for --molecule")
        return molecule_from_spec(molecule, seed=seed)
    return bulk_from_spec(
        bulk, structure=structure or "fcc", a=lattice_constant, size=size or 32, seed=seed
    )


@datagen_app.command("md")
@_fail_cleanly
def datagen_md(
    out_file: Annotated[
        Path, typer.Option("--out", help="Output dataset (.h5).", metavar="FILE.h5")
    ],
    molecule: Annotated[
        str | None,
        typer.Option(help="Molecule: ASE name (CH3CH2OH), alias (ethanol, aspirin) or SMILES."),
    ] = None,
    bulk: Annotated[
        str | None, typer.Option(help="Bulk metal or random alloy: Cu, CuNi, Cu3Au, Cu0.7Ni0.3.")
    ] = None,
    structure: Annotated[
        str | None, typer.Option(help="Bulk lattice: fcc (default), bcc or hcp.")
    ] = None,
    size: Annotated[
        int | None, typer.Option(help="Bulk: about this many atoms in the cell (default 32).")
    ] = None,
    lattice_constant: Annotated[
        float | None,
        typer.Option(
            help="Bulk lattice constant a (Å) (default: ASE reference, Vegard for alloys)."
        ),
    ] = None,
    calculator: Annotated[
        str | None,
        typer.Option(
            help="Reference calculator: xtb or emt (default: xtb for molecules, emt for bulk)."
        ),
    ] = None,
    method: Annotated[
        str | None, typer.Option(help="xtb Hamiltonian: GFN2-xTB (default) or GFN1-xTB.")
    ] = None,
    threads: Annotated[
        int, typer.Option(help="xtb: OpenMP threads (1 is fastest for small molecules).")
    ] = 1,
    temperature: Annotated[float, typer.Option(help="Temperature (K).")] = 500.0,
    timestep: Annotated[float, typer.Option(help="MD time step (fs).")] = 0.5,
    frames: Annotated[int, typer.Option(help="Frames to record.")] = 1000,
    stride: Annotated[int, typer.Option(help="MD steps between recorded frames.")] = 10,
    equilibration: Annotated[int, typer.Option(help="MD steps before the first frame.")] = 1000,
    friction: Annotated[float, typer.Option(help="Langevin friction (1/fs).")] = 0.01,
    seed: Annotated[int, typer.Option(help="Seed: conformer, alloy, velocities, noise.")] = 0,
    rattle: Annotated[
        float, typer.Option(help="Random displacement (Å, std) added to recorded frames.")
    ] = 0.0,
    strain: Annotated[
        float | None,
        typer.Option(
            help="Random cell strain amplitude of recorded frames (default: 0.02 bulk, 0 molecules)."
        ),
    ] = None,
    overwrite: OverwriteOpt = False,
    no_progress: Annotated[bool, typer.Option("--no-progress", help="No progress bar.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Langevin MD with a reference calculator; writes energies, forces (and stress) per frame.

    Molecules default to GFN2-xTB (tblite), bulk cells to EMT.
    Bulk frames get a random cell strain (--strain) on top of the MD snapshot, so stress varies.
    """
    from deepatoms.data.dataset import write_dataset
    from deepatoms.datagen.md import generate_md
    from deepatoms.simulate.reference import DEFAULT_CALCULATOR, make_calculator

    _check_new_output(out_file, overwrite)
    atoms = _structure(molecule, bulk, structure, size, lattice_constant, seed)
    kind = atoms.info["kind"]
    if strain is not None and kind == "molecule":
        raise ValueError("--strain applies to --bulk only (molecules have no cell); drop it")
    name = (calculator or DEFAULT_CALCULATOR[kind]).lower()
    settings: dict[str, Any] = {}
    if method is not None:
        if name != "xtb":
            raise ValueError(f"--method chooses the xtb Hamiltonian; it does not apply to {name}")
        settings["method"] = method
    if name == "xtb":
        settings["threads"] = threads
        if atoms.info.get("charge"):
            settings["charge"] = atoms.info["charge"]
    try:
        calc, calc_provenance = make_calculator(name, atoms, **settings)
    except ImportError as exc:
        raise ValueError(str(exc)) from exc
    with ProgressBar("MD steps", no_progress) as bar:
        try:
            data, meta = generate_md(
                atoms,
                calc,
                calc_provenance,
                temperature=temperature,
                timestep=timestep,
                n_frames=frames,
                stride=stride,
                seed=seed,
                equilibration_steps=equilibration,
                friction=friction,
                rattle=rattle,
                strain=(0.02 if kind == "bulk" else 0.0) if strain is None else strain,
                progress=bar,
            )
        except RuntimeError as exc:
            err.print(f"[bold red]error:[/] {exc}", markup=True)
            raise typer.Exit(1) from None
    write_dataset(out_file, data, meta)
    prov = meta["provenance"]
    formula, n_atoms = prov["structure"]["formula"], prov["structure"]["n_atoms"]
    out.print(
        f"wrote {len(data)} frames of {formula} ({n_atoms} atoms) with {data.property_names} "
        f"from {calc_provenance['method']} at {temperature:g} K to {out_file} "
        f"in {prov['wall_time_s']:.1f} s (mean kinetic T "
        f"{prov['observed']['mean_kinetic_temperature_K']:.0f} K)"
    )
    if as_json:
        energy = data.system_props["energy"]
        _emit_json(
            {
                "out": str(out_file),
                "n_systems": len(data),
                "n_atoms": n_atoms,
                "formula": formula,
                "calculator": calc_provenance["calculator"],
                "method": calc_provenance["method"],
                "properties": data.property_names,
                "units": meta["units"],
                "energy_mean": float(energy.mean()),
                "energy_std": float(energy.std()),
                "mean_kinetic_temperature_K": prov["observed"]["mean_kinetic_temperature_K"],
                "wall_time_s": prov["wall_time_s"],
            }
        )


# `datagen prototypes`: EMT formation energies on crystal prototypes
# `datagen scaled | crystal | growth`: the VIMPNN datasets (specs/vimpnn.md §8)
from deepatoms.datagen import prototypes_cli  # noqa: E402, F401
from deepatoms.datagen.unstable_cli import register as _register_unstable  # noqa: E402

_register_unstable(datagen_app)
