"""Generate molecules with a trained G-SchNet: the function behind ``deepatoms generate gschnet``
(Gebauer, Gastegger & Schütt 2019)."""

from __future__ import annotations

import os

from deepatoms import __version__
from deepatoms.core.device import resolve_device
from deepatoms.core.errors import DeepatomsError
from deepatoms.core.progress import ProgressBar
from deepatoms.core.results import Result

__all__ = ["GenerationResult", "generate_gschnet"]


class GenerationResult(Result):
    """Generated molecules: ``out``, ``model``, the settings (``seed``, ``temperature``,
    ``max_atoms``, ``chunk``, ``device``) and the counts ``requested``, ``finished``,
    ``discarded_cap``, ``discarded_nan``, ``molecules_per_minute``, ``wall_s``, ``written``."""


def generate_gschnet(
    model: str | os.PathLike, n: int, out: str | os.PathLike, *, temperature: float = 0.1,
    seed: int = 0, max_atoms: int = 35, chunk: int = 1000, device: str = "cpu",
    overwrite: bool = False, progress: bool = True,
) -> GenerationResult:  # fmt: skip
    """Generate ``n`` molecules atom by atom in 3-D with a G-SchNet (run folder or model file)
    at ``temperature`` (Eq. 5 of the paper) and write the finished ones to ``out`` (ASE
    database .db or extended XYZ). Molecules that reach ``max_atoms`` atoms or whose densities
    turn NaN are discarded and counted."""
    from deepatoms.generate.gschnet_sampler import generate_molecules
    from deepatoms.generate.output import check_output_path, write_molecules
    from deepatoms.models.loading import load_model

    if n < 1:
        raise DeepatomsError(f"-n must be at least 1 molecule, got {n}")
    if not temperature > 0:
        raise DeepatomsError(f"--temperature must be > 0, got {temperature}")
    if max_atoms < 2:
        raise DeepatomsError(f"--max-atoms must be at least 2, got {max_atoms}")
    if chunk < 1:
        raise DeepatomsError(f"--chunk must be at least 1 molecule, got {chunk}")
    check_output_path(out, overwrite)  # fail before the generation, not after
    loaded = load_model(model, expect="gschnet")
    net = loaded.model.to(resolve_device(device))
    with ProgressBar("generating", quiet=not progress) as bar:
        molecules, stats = generate_molecules(net, n, temperature=temperature, seed=seed,
                                              max_atoms=max_atoms, chunk=chunk, progress=bar)  # fmt: skip
    model_file = loaded.meta["model_file"]
    settings = {"seed": seed, "temperature": temperature, "max_atoms": max_atoms, "chunk": chunk,
                "device": device}  # fmt: skip
    metadata = {"generator": "deepatoms generate gschnet", "deepatoms_version": __version__,
                "model": model_file, **settings, "stats": stats, "units": {"positions": "Å"}}  # fmt: skip
    written = write_molecules(out, molecules, model=model_file, seed=seed, temperature=temperature,
                              metadata=metadata, overwrite=overwrite)  # fmt: skip
    return GenerationResult(out=str(out), model=model_file, **settings, **stats, written=written)
