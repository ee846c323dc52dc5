"""Screen hypothetical crystals with a trained model: the function behind ``deepatoms screen``.

Every substitution of the requested elements onto the species sites of crystal prototypes
(pymatgen's AFLOW library or CIF files) is predicted, the candidates of each composition are
ranked, and those within ``window`` (eV/atom) of their composition's lowest prediction are
flagged for DFT (Jørgensen et al. 2019, Paper B §VI). With ``reference`` energies the
ground-state gap ΔE is reported. Files: OUT/ranking.csv, OUT/best.db, OUT/screen.json.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from deepatoms.core.progress import ProgressBar
from deepatoms.core.results import Result
from deepatoms.distribute.cluster import on_cluster

__all__ = ["ScreenResult", "screen"]


class ScreenResult(Result):
    """A screening run: ``n_candidates``, ``n_compositions``, ``n_flagged``,
    ``window_eV_per_atom``, ``ground_states`` (per composition: energy eV/atom, candidate id,
    flagged count), ``ground_state`` (against reference energies), ``files``, ``model`` (the
    model's property and unit), ``n_prototypes``, ``wall_time_s``."""


def screen(
    model: str | os.PathLike, out_dir: str | os.PathLike, *, elements: str | None = None,
    arity: Sequence[int] | None = None, stoichiometry: str | None = None,
    formula: Sequence[str] | None = None, prototypes: Sequence[str] = ("aflow",),
    max_atoms: int = 8, rescale: str = "volume", window: float = 0.05, top: int = 3,
    chunk: int = 10_000, batch_size: int = 100, per_atom: str = "auto",
    reference: str | os.PathLike | None = None, reference_column: str = "formation_energy_per_atom",
    threads: int | None = None, overwrite: bool = False, progress: bool = True,
    device: str = "cpu", workers: int = 1, scheduler: str | None = None,
) -> ScreenResult:  # fmt: skip
    """Rank the candidates (prototype × elements) of the requested compositions with ``model``
    (a run folder or model file) and write the files of the run into ``out_dir``.

    Compositions: ``elements`` ("Al,Cu,Ni") combined ``arity`` at a time (or limited to
    ``stoichiometry``, e.g. "AB,AB3"), or explicit ``formula`` ("CuAu"). ``prototypes``:
    "aflow", AFLOW labels, Strukturbericht designations (L1_2, B2) or CIF files. ``device``:
    the torch device of the model (cpu, cuda). ``workers`` local Dask processes, or the
    cluster at ``scheduler``, predict the chunks; an interrupted screen continues from the
    finished chunks in ``out_dir/.parts`` when called again.
    """
    from deepatoms.data.prototypes.substitution import CompositionRequest
    from deepatoms.screen.run import build_space, model_predictor, run_screen

    request = CompositionRequest.parse(elements, list(arity) if arity else None, stoichiometry,
                                       list(formula) if formula else None)  # fmt: skip
    if threads is not None:
        import torch

        torch.set_num_threads(int(threads))
    from deepatoms.core.device import resolve_device

    predictor, info = model_predictor(model, batch_size=batch_size, per_atom=per_atom,
                                      device=resolve_device(device))  # fmt: skip
    specs = [x.strip() for spec in prototypes for x in spec.split(",") if x.strip()]
    space = build_space(request, specs, max_atoms=max_atoms, rescale=rescale)
    with (
        on_cluster(workers, scheduler, progress) as cluster,
        ProgressBar("screening", quiet=not progress) as bar,
    ):
        summary = run_screen(
            space, out_dir, predictor, model_info=info, window=window, top=top, chunk=chunk,
            reference=reference, reference_column=reference_column, overwrite=overwrite,
            progress=bar, cluster=cluster,
        )  # fmt: skip
    return ScreenResult(**summary, n_prototypes=len(space.prototypes), model=info)
