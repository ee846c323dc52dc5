"""``deepatoms data qm9-generative``: QM9 prepared for G-SchNet (specs/gschnet.md §6, §10).

:func:`register` adds the command to the ``data`` sub-app; importing this module registers
nothing. The work is :func:`deepatoms.generate.qm9_prep.prepare_qm9_generative`.
"""

# No ``from __future__ import annotations``: typer resolves the annotations of the command
# defined inside register() as objects.
import time
from pathlib import Path
from typing import Annotated

import typer

from deepatoms.cli_support import has_command

__all__ = ["register"]


def register(data_app: typer.Typer) -> None:
    """Add ``qm9-generative`` to the ``deepatoms data`` sub-app (once)."""
    if has_command(data_app, "qm9-generative"):
        return
    from deepatoms.cli import (
        JsonOpt,
        OverwriteOpt,
        QuietOpt,
        _check_new_output,
        _emit_json,
        _fail_cleanly,
        _number,
        out,
    )

    @data_app.command("qm9-generative")
    @_fail_cleanly
    def qm9_generative(
        out_file: Annotated[
            Path, typer.Option("--out", help="Output dataset (.h5).", metavar="OUT.h5")
        ],
        limit: Annotated[
            int | None, typer.Option(help="Seeded random subset of N molecules.", min=1)
        ] = None,
        first: Annotated[
            int | None, typer.Option(help="The first N molecules by QM9 index.", min=1)
        ] = None,
        max_gap: Annotated[
            float | None,
            typer.Option(help="Keep molecules with HOMO-LUMO gap < EV.", metavar="EV"),
        ] = None,
        where: Annotated[
            str | None,
            typer.Option(
                help="Property conditions, e.g. 'gap<4.5' or 'gap<5 and mu>1' (eV, Debye …).",
                metavar="COND",
            ),
        ] = None,
        no_small_rings: Annotated[
            bool,
            typer.Option("--no-small-rings", help="Drop molecules with 3- or 4-membered rings."),
        ] = False,
        n_train: Annotated[
            str | None,
            typer.Option(
                help="Training molecules (count or fraction). Default 50000; the rest for "
                "filtered subsets.",
                metavar="N",
            ),
        ] = None,
        n_val: Annotated[
            str | None,
            typer.Option(
                help="Validation molecules. Default 5000; 2000 with --no-small-rings; 500 "
                "for filtered subsets.",
                metavar="N",
            ),
        ] = None,
        n_test: Annotated[
            str | None,
            typer.Option(help="Test molecules (default: the rest).", metavar="N"),
        ] = None,
        split_seed: Annotated[int, typer.Option(help="Seed of the split.")] = 0,
        seed: Annotated[int, typer.Option(help="Seed of the --limit subset.")] = 0,
        overwrite: OverwriteOpt = False,
        quiet: QuietOpt = False,
        as_json: JsonOpt = False,
    ) -> None:
        """Prepare QM9 for G-SchNet: centred on the centre of mass, atoms sorted by distance to
        it, bonds perceived (RDKit, charge 0), invalid molecules dropped and counted, canonical
        SMILES and a seeded train/val/test 'split' column stored with the data."""
        from deepatoms.core.progress import ProgressBar
        from deepatoms.data.dataset import write_dataset
        from deepatoms.generate.qm9_prep import prepare_qm9_generative

        _check_new_output(out_file, overwrite)
        t0 = time.perf_counter()
        with ProgressBar("QM9: perceiving bonds", quiet=quiet) as bar:
            data, meta = prepare_qm9_generative(
                limit=limit,
                first=first,
                max_gap=max_gap,
                where=where,
                no_small_rings=no_small_rings,
                n_train=_number(n_train, "--n-train"),
                n_val=_number(n_val, "--n-val"),
                n_test=_number(n_test, "--n-test"),
                split_seed=split_seed,
                seed=seed,
                progress=bar,
            )
        write_dataset(out_file, data, meta)
        seconds = time.perf_counter() - t0
        dropped, sizes = meta["dropped"], meta["split"]["sizes"]
        reasons = ", ".join(f"{k} {v}" for k, v in dropped["reasons"].items()) or "none"
        filters = "; ".join(meta["filters"]["applied"]) or "none"
        out.print(
            f"wrote {len(data)} molecules ({int(data.offsets[-1])} atoms) to {out_file} "
            f"in {seconds:.1f} s"
        )
        out.print(f"filters: {filters} ({meta['filters']['n_after_property_filters']} checked)")
        out.print(
            f"dropped {dropped['n_dropped']} of {dropped['n_checked']} failing the validity "
            f"check ({reasons}); valid rate {dropped['n_valid'] / dropped['n_checked']:.2%}"
        )
        out.print(
            f"split (seed {split_seed}): train {sizes['train']}, val {sizes['val']}, "
            f"test {sizes['test']}"
        )
        if as_json:
            _emit_json(
                {
                    "out": str(out_file),
                    "n_systems": len(data),
                    "seconds": seconds,
                    "dropped": {k: v for k, v in dropped.items() if k != "qm9_index"},
                    "filters": meta["filters"],
                    "split": meta["split"],
                    "timing": meta["timing"],
                }
            )
