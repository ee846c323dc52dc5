"""``load_model``: any model file or run folder → the right family's object, checked.

:func:`resolve_model_path` is the one place that turns "a run folder or a model file" into the
path of a model file; :func:`load_model` reads it (:func:`~deepatoms.models.model_file.
read_model_file`), rebuilds the model through the registry, loads and checks the weights, and
wraps the model for its family (:mod:`deepatoms.models.loaded`).
"""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path
from typing import Any

import torch

from deepatoms.core.errors import MissingModelFileError, ModelFileError
from deepatoms.models.model_file import ModelFile, read_model_file
from deepatoms.models.registry import FAMILIES, Family, family_of, model_kind
from deepatoms.models.registry import family as family_by_name

__all__ = ["ATOMISTIC_FAMILIES", "PROPERTY_FAMILIES", "load_model", "resolve_model_path"]

MODEL_FILE = "model.pt"
#: Families of models that predict a property of a structure (and potentials).
PROPERTY_FAMILIES = tuple(f.name for f in FAMILIES if f.models[0].task == "property")
#: Families whose models read atoms through a graph (the above and G-SchNet).
ATOMISTIC_FAMILIES = (*PROPERTY_FAMILIES, "gschnet")


def resolve_model_path(path: str | os.PathLike) -> Path:
    """The model file of ``path``: itself, or ``path/model.pt`` for a run folder.

    Raises ModelFileError when neither exists, saying whether a run folder has not finished.
    """
    path = Path(path)
    if path.is_dir():
        model = path / MODEL_FILE
        if model.is_file():
            return model
        if (path / "checkpoints" / "last.ckpt").is_file():
            raise MissingModelFileError(
                f"run folder {path} has no {MODEL_FILE} yet: its training has not finished; "
                "run the same training command again to resume it"
            )
        raise MissingModelFileError(
            f"{path} is a folder without a {MODEL_FILE}; give a model file or the folder of a "
            "finished training run"
        )
    if not path.is_file():
        raise MissingModelFileError(
            f"model {path} does not exist; give a model file (model.pt) or a run folder"
        )
    return path


def load_model(
    path: str | os.PathLike,
    expect: str | Collection[str] | None = None,
    map_location: str | torch.device = "cpu",
) -> Any:
    """The model of a model file or run folder, in eval mode, wrapped for its family.

    ``expect``: family or model names the caller can use (e.g. ``"density_vae"``, or
    ``("schnet", "dtnn", "nmp_edge", "mpnn")``); another kind of model raises ModelFileError
    naming what it is and what was expected. Returns a
    :class:`~deepatoms.models.loaded.LoadedModel` (property models, potentials, G-SchNet), a
    :class:`~deepatoms.models.latent_space.LatentSpace` (grammar VAE), a
    :class:`~deepatoms.models.latent_regressor.LatentRegressors` or a
    :class:`~deepatoms.models.loaded.LoadedDensityModel`.
    """
    mf = read_model_file(resolve_model_path(path), map_location)
    _check_expected(mf, expect)
    try:
        kind = model_kind(mf.model)
    except ValueError:
        raise ModelFileError(
            f"{mf.path} holds a model {mf.model!r} that this deepatoms does not know; upgrade "
            "deepatoms to load it"
        ) from None
    model = _rebuild(kind, mf)
    return kind.wrap(model, mf)


def _check_expected(mf: ModelFile, expect: str | Collection[str] | None) -> None:
    if expect is None:
        return
    wanted = {expect} if isinstance(expect, str) else set(expect)
    if mf.family in wanted or mf.model in wanted:
        return
    titles = " or ".join(sorted({_title(w) for w in wanted}))
    hint = ""
    if len(wanted) == 1:
        fam = _family(next(iter(wanted)))
        if fam is not None:
            hint = (
                f"; train one with `{fam.command}` and a {fam.title} preset (`deepatoms presets`)"
            )
    raise ModelFileError(
        f"{mf.path} is a {mf.model!r} model ({_title(mf.family)}), not a {titles} model{hint}"
    )


def _family(name: str) -> Family | None:
    """The family called ``name``, or the family of the model ``name``."""
    for lookup in (family_by_name, family_of):
        try:
            return lookup(name)
        except ValueError:
            continue
    return None


def _title(name: str) -> str:
    fam = _family(name)
    return fam.title if fam is not None else name


def _build(kind: Any, mf: ModelFile) -> torch.nn.Module:
    """The model of ``mf`` with fresh weights: one model, or a committee of its members
    (``extras["committee"]``, :mod:`deepatoms.models.committee`)."""
    from deepatoms.models.committee import Committee

    spec = mf.extras.get("committee")
    if spec is None:
        return kind.build(mf.config)
    n = spec.get("n_members") if isinstance(spec, dict) else None
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"extras['committee']['n_members'] must be a whole number ≥ 2, got {n!r}")
    return Committee([kind.build(mf.config) for _ in range(n)],
                     float(spec.get("variance_scale", 1.0)))  # fmt: skip


def _rebuild(kind: Any, mf: ModelFile) -> torch.nn.Module:
    try:
        model = _build(kind, mf)
    except (ValueError, TypeError, KeyError) as exc:
        raise ModelFileError(f"{mf.path}: its model config cannot be built: {exc}") from None
    params = dict(model.named_parameters())
    saved = [
        t.dtype for name, t in mf.state_dict.items() if name in params and t.is_floating_point()
    ]
    if saved and saved[0] != next(iter(params.values())).dtype:
        # Cast first: load_state_dict copies into the existing tensors, so loading float64
        # weights into a freshly built float32 model would round them.
        model.to(dtype=saved[0])
    try:
        model.load_state_dict(mf.state_dict)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise ModelFileError(
            f"{mf.path}: its weights do not match its model config ({' '.join(first[:2])}); "
            "the file is damaged or was edited"
        ) from None
    bad = [
        n
        for n, t in model.state_dict().items()
        if t.is_floating_point() and not torch.isfinite(t).all()
    ]
    if bad:
        raise ModelFileError(
            f"{mf.path} holds non-finite weights (NaN or inf) in {bad[:3]}: the training "
            "diverged or the file is damaged"
        )
    return model.eval()
