"""The ``deepatoms`` command line: thin wrappers that parse arguments, call one app, print.

Every command has ``--help``; ``--json`` makes the last stdout line a machine-readable result.
Errors in user input print one clear line to stderr and exit with status 2.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from deepatoms.cli_support import JsonOpt, OverwriteOpt, QuietOpt, err, out
from deepatoms.cli_support import check_new_output as _check_new_output
from deepatoms.cli_support import emit_json as _emit_json
from deepatoms.cli_support import fail_cleanly as _fail_cleanly
from deepatoms.cli_support import number as _number
from deepatoms.core.progress import ProgressBar

app = typer.Typer(
    help="deepatoms: deep learning for molecules and materials (SchNet, DTNN, NMP-edge).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Build, import and inspect datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")


# ---------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------
@data_app.command("qm9")
@_fail_cleanly
def data_qm9(
    out_file: Annotated[Path, typer.Argument(help="Output dataset (.h5).", metavar="OUT.h5")],
    limit: Annotated[int | None, typer.Option(help="Random subset of N molecules.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the random subset.")] = 0,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Build a QM9 dataset (all 130,831 molecules, or --limit N) from the installed qm9pack data.

    Targets (eV-based units): mu, alpha, homo, lumo, gap, r2, zpve, U0, U, H, G, Cv, plus the
    atomization energies U0_atom, U_atom, H_atom, G_atom and SMILES.
    """
    from deepatoms.data.dataset import dataset_info, write_dataset
    from deepatoms.data.sources.qm9 import load_qm9

    _check_new_output(out_file, overwrite)
    data, meta = load_qm9(limit=limit, seed=seed, progress=not quiet)
    write_dataset(out_file, data, meta)
    info = dataset_info(out_file)
    out.print(f"wrote {len(data)} molecules ({int(data.offsets[-1])} atoms) to {out_file}")
    if as_json:
        _emit_json({"out": str(out_file), "n_systems": len(data), "info": info})


@data_app.command("import")
@_fail_cleanly
def data_import(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="Input files (extxyz, xyz, ASE db, CIF, …) then the output .h5.",
            metavar="FILES... OUT.h5",
        ),
    ],
    append: Annotated[bool, typer.Option("--append", help="Add to an existing dataset.")] = False,
    overwrite: OverwriteOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Import structures and their labels from ASE-readable files into one dataset file."""
    from deepatoms.data.dataset import append_dataset, write_dataset
    from deepatoms.data.sources.ase_io import read_structures

    if len(paths) < 2:
        raise ValueError("give at least one input file and the output .h5 file (last)")
    *inputs, out_file = paths
    if out_file.suffix not in (".h5", ".hdf5"):
        raise ValueError(
            f"the last argument is the output dataset and must end in .h5, got {out_file}"
        )
    if append and overwrite:
        raise ValueError("--append and --overwrite exclude each other")
    if not append:
        _check_new_output(out_file, overwrite, " or --append to add to it")
    elif not out_file.exists():
        raise ValueError(f"--append: {out_file} does not exist yet; import without --append first")
    data, meta = read_structures(inputs, progress=not quiet)
    if append:
        append_dataset(out_file, data)
    else:
        write_dataset(out_file, data, meta)
    verb = "appended" if append else "wrote"
    out.print(f"{verb} {len(data)} structures with properties {data.property_names} to {out_file}")
    for name, why in (meta.get("dropped_properties") or {}).items():
        err.print(f"note: dropped property {name!r}: {why}")
    if as_json:
        _emit_json(
            {"out": str(out_file), "n_systems": len(data), "properties": data.property_names}
        )


@data_app.command("md17")
@_fail_cleanly
def data_md17(
    npz: Annotated[Path, typer.Argument(help="MD17 or rMD17 trajectory (.npz).", metavar="NPZ")],
    out_file: Annotated[
        Path, typer.Option("--out", help="Output dataset (.h5).", metavar="FILE.h5")
    ],
    limit: Annotated[int | None, typer.Option(help="Keep N frames (default: all).")] = None,
    seed: Annotated[
        int | None, typer.Option(help="With --limit: a seeded random subset, else the first N.")
    ] = None,
    units: Annotated[
        str, typer.Option(help="Energy unit of the file: kcal/mol (MD17, rMD17) or eV.")
    ] = "kcal/mol",
    overwrite: OverwriteOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Import an MD17-style .npz trajectory (energies → eV, forces → eV/Å)."""
    from deepatoms.data.dataset import write_dataset
    from deepatoms.data.sources.md17 import load_md17

    _check_new_output(out_file, overwrite)
    data, meta = load_md17(npz, limit=limit, seed=seed, units=units)
    write_dataset(out_file, data, meta)
    n_atoms = int(data.n_atoms[0]) if len(data) else 0
    out.print(f"wrote {len(data)} frames of {n_atoms} atoms (energy, forces in eV) to {out_file}")
    if as_json:
        _emit_json(
            {
                "out": str(out_file),
                "n_systems": len(data),
                "n_atoms": n_atoms,
                "properties": data.property_names,
                "units": meta["units"],
            }
        )


@data_app.command("info")
@_fail_cleanly
def data_info(
    file: Annotated[Path, typer.Argument(help="Dataset file (.h5).", metavar="FILE.h5")],
    as_json: JsonOpt = False,
) -> None:
    """Summarise a dataset: sizes, elements, properties with units and statistics, provenance."""
    from deepatoms.data.dataset import dataset_info, format_info

    info = dataset_info(file)
    out.print(format_info(info))
    if as_json:
        _emit_json(info)


# ---------------------------------------------------------------------------------------------
# train / evaluate / predict
# ---------------------------------------------------------------------------------------------
@app.command()
@_fail_cleanly
def train(
    preset: Annotated[str, typer.Option(help="Preset name (see `deepatoms presets`).")],
    data: Annotated[Path, typer.Option(help="Dataset file (.h5).", metavar="FILE.h5")],
    out_dir: Annotated[
        Path, typer.Option("--out", help="Run folder (created; resumed if it holds a run).")
    ],
    target: Annotated[
        str | None, typer.Option(help="Property to learn, e.g. U0 (default: the preset's).")
    ] = None,
    forces: Annotated[
        str | None,
        typer.Option(
            help="Per-atom force label to train on with the energy (thesis Eq. 5.7), e.g. forces; "
            "'none' trains on energies only (default: the preset's)."
        ),
    ] = None,
    rho: Annotated[
        float | None,
        typer.Option(help="Energy weight ρ of the energy–force loss (0: forces only)."),
    ] = None,
    max_epochs: Annotated[int | None, typer.Option(help="Stop after this many epochs.")] = None,
    max_time: Annotated[
        float | None,
        typer.Option(
            help="Stop after this many minutes of training in total (a resumed run counts the time already spent)."
        ),
    ] = None,
    n_train: Annotated[
        str | None, typer.Option(help="Training systems (count or fraction).")
    ] = None,
    n_val: Annotated[
        str | None, typer.Option(help="Validation systems (count or fraction).")
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed for split, initialisation, shuffling.")
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set", help="Override a config value, e.g. --set train.lr=1e-4 (repeatable)."
        ),
    ] = None,
    init: Annotated[
        Path | None,
        typer.Option(
            help="Fine-tune: start from this model.pt (same preset and overrides); the "
            "optimiser starts fresh.",
            metavar="MODEL.pt",
        ),
    ] = None,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Train a model on a dataset; writes a run folder with checkpoints, metrics and model.pt.

    Running the same command again on a run folder with checkpoints/last.ckpt resumes it.
    """
    from deepatoms.workflows.training import train as run_train

    options = {"target": target, "forces": forces, "rho": rho, "max_epochs": max_epochs,
               "max_time": max_time, "seed": seed, "n_train": _number(n_train, "--n-train"),
               "n_val": _number(n_val, "--n-val")}  # fmt: skip
    if not quiet:
        logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    summary = run_train(preset, data, out_dir, overrides=list(set_ or []), init=init,
                        progress=not quiet, command="deepatoms train", **options)  # fmt: skip
    verb = "resumed and finished" if summary["resumed"] else "finished"
    u = summary["unit"]
    if summary.get("model") == "gschnet":
        score = f"best validation loss {summary['best_val_loss']:.5g} nats"
    elif summary.get("forces"):
        score = (
            f"best validation loss {summary['best_val_loss']:.5g}; energy MAE "
            f"{summary['val_energy_mae']:.5g} {u}, force MAE {summary['val_force_mae']:.5g} {u}/Å"
        )
    else:
        score = f"best validation MAE {summary['best_val_mae']:.5g} {u}"
    out.print(
        f"{verb} {summary['preset']} on {summary['target'] or 'molecule generation'}: "
        f"{summary['epochs']} epochs, "
        f"{summary['steps']} steps, {score} ({summary['wall_time_s']} s)"
    )
    out.print(f"model: {summary['model_file']}")
    if as_json:
        _emit_json(summary)


@app.command()
@_fail_cleanly
def evaluate(
    run_or_model: Annotated[
        Path, typer.Argument(help="Run folder or model.pt.", metavar="RUN_DIR_OR_MODEL")
    ],
    data: Annotated[Path, typer.Option(help="Dataset file (.h5).", metavar="FILE.h5")],
    split: Annotated[str, typer.Option(help="train, val, test or all.")] = "test",
    plot: Annotated[Path | None, typer.Option(help="Parity plot path (PNG).")] = None,
    batch_size: Annotated[int, typer.Option(help="Systems per inference batch.")] = 100,
    forces: Annotated[
        str,
        typer.Option(
            help="Force label to score an energy model against: auto (the trained one, else "
            "'forces' if present), a per-atom property name, or none."
        ),
    ] = "auto",
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Report MAE and RMSE of a trained model on a split, with a parity plot.

    For energy models on datasets with forces, component-wise force errors are reported too.
    """
    from deepatoms.apps.evaluate import evaluate as run_eval

    with ProgressBar("evaluating", quiet) as bar:
        res = run_eval(run_or_model, data, split, plot, batch_size, bar, forces)
    u = res["unit"]
    line = f"{res['target']} on {res['split']} ({res['n']} systems): MAE {res['mae']:.5g} {u}, RMSE {res['rmse']:.5g} {u}"
    if u == "eV":
        line += f"  [MAE {res['mae_meV']:.2f} meV = {res['mae_kcal_mol']:.3f} kcal/mol]"
    out.print(line)
    for ref in res["published"]:
        scale, unit = (1e3, "meV") if u == "eV" else (1.0, u)
        out.print(
            f"  published: {ref['mae'] * scale:.4g} {unit} with {ref['n_train']:,} training examples ({ref['source']})"
        )
    if res.get("forces"):
        out.print(
            f"forces ({res['forces']}, all components): MAE {res['force_mae']:.5g} eV/Å, "
            f"RMSE {res['force_rmse']:.5g} eV/Å  [MAE {res['force_mae_kcal_mol']:.3f} kcal/mol/Å]"
        )
    out.print(f"parity plot: {res['plot']}")
    if res.get("force_plot"):
        out.print(f"force parity plot: {res['force_plot']}")
    if as_json:
        _emit_json(res)


@app.command()
@_fail_cleanly
def predict(
    model: Annotated[
        Path, typer.Argument(help="Model file (model.pt) or run folder.", metavar="MODEL")
    ],
    inputs: Annotated[
        list[Path], typer.Argument(help="ASE-readable structure files.", metavar="INPUT...")
    ],
    out_file: Annotated[
        Path | None, typer.Option("--out", help="CSV to write.", metavar="OUT.csv")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Systems per inference batch.")] = 100,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Predict the model's property for every structure in the input files."""
    from deepatoms.apps.predict import predict as run_predict

    if model.is_dir():
        model = model / "model.pt"
    with ProgressBar("predicting", quiet) as bar:
        res = run_predict(model, inputs, out_file, batch_size, bar)
    for w in res["warnings"]:
        err.print(f"warning: {w}")
    col = res["column"]
    shown = res["rows"][:20]
    for r in shown:
        out.print(f"{r['file']}[{r['frame']}]  {r['formula']:<12} {col} = {r[col]:.6g}")
    if len(res["rows"]) > len(shown):
        out.print(f"… {len(res['rows']) - len(shown)} more")
    if out_file is not None:
        out.print(f"wrote {res['n']} predictions to {out_file}")
    if as_json:
        _emit_json({k: v for k, v in res.items() if k != "rows" or res["n"] <= 1000})


@app.command()
@_fail_cleanly
def presets(as_json: JsonOpt = False) -> None:
    """List the shipped presets, one line each."""
    from deepatoms.config.presets import preset_names
    from deepatoms.models.registry import load_preset

    rows = []
    for name in preset_names():
        cfg = load_preset(name)
        rows.append(
            {"name": name, "model": cfg["model"]["name"], "description": cfg["description"]}
        )
        out.print(f"{name:<18} {cfg['description']}")
    if as_json:
        _emit_json({"presets": rows})


# imported last: deepatoms.datagen.cli uses the helpers defined above
from deepatoms.datagen.cli import datagen_app  # noqa: E402

app.add_typer(datagen_app, name="datagen")

# simulation commands (relax, md, vibrations, scan) at the top level; imported last like datagen
from deepatoms.simulate.cli import simulate_app  # noqa: E402

app.add_typer(simulate_app)

# k-fold cross-validation (cv); imported last like datagen
from deepatoms.apps.crossval_cli import register as _register_cv  # noqa: E402

_register_cv(app)

# crystal dataset commands (data cif-csv | cif-folder | mp-json); imported last like datagen
import deepatoms.data.sources.crystals_cli  # noqa: E402,F401

# screening (`deepatoms screen`) at the top level; imported last like datagen
from deepatoms.screen.cli import register as _register_screen  # noqa: E402

_register_screen(app)

# energy-curve analysis (`deepatoms curves`) at the top level; imported last like datagen
from deepatoms.apps.curves_cli import register as _register_curves  # noqa: E402

_register_curves(app)

# G-SchNet generation (`deepatoms generate gschnet`); imported last like datagen
from deepatoms.generate.cli import register as _register_generate  # noqa: E402

_register_generate(app)

# G-SchNet QM9 preparation (`deepatoms data qm9-generative`); imported last like datagen
from deepatoms.generate.qm9_prep_cli import register as _register_qm9gen  # noqa: E402

_register_qm9gen(data_app)

# evaluation of generated molecules (`deepatoms evaluate-generated`); imported last like datagen
from deepatoms.apps.evaluate_generated_cli import register as _register_evalgen  # noqa: E402

_register_evalgen(app)


# grammar VAE (`deepatoms vae`), inverse design (`deepatoms design`, `deepatoms data qm9-smiles|polymers`)
# and the crystal density VAE (`deepatoms crystals`); imported last like datagen
from deepatoms.apps.crystals_cli import register as _register_crystals  # noqa: E402
from deepatoms.apps.design_cli import register as _register_design  # noqa: E402
from deepatoms.apps.design_cli import register_data as _register_design_data  # noqa: E402
from deepatoms.apps.grammar_vae_cli import register as _register_vae  # noqa: E402

_register_vae(app)
_register_design(app)
_register_design_data(data_app)
_register_crystals(app)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    # Run the importable module, not this __main__ copy: command modules (cv, crystal data)
    # register themselves on deepatoms.cli's apps.
    from deepatoms.cli import main as _main

    _main()
