"""The grammar-VAE model file and the training strings of a run.

The grammar's source text is embedded in the model file (``deepatoms.models.model_file``), so
the file alone rebuilds the grammar, the model and the latent space (:func:`load_latent_space`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from deepatoms.models.grammar_vae import GrammarVAE
from deepatoms.models.latent_space import LatentSpace
from deepatoms.models.loading import load_model
from deepatoms.models.model_file import write_model_file

if TYPE_CHECKING:  # pragma: no cover
    from deepatoms.grammar.cfg import Grammar
    from deepatoms.models.latent_space import LatentSpace

__all__ = [
    "load_grammar_vae",
    "load_latent_space",
    "read_training_strings",
    "save_grammar_vae",
]


def save_grammar_vae(
    path: str | Path, model: GrammarVAE, grammar: Grammar, meta: dict | None = None
) -> None:
    """Write ``model`` with the grammar text and ``meta`` to the model file ``path``."""
    if grammar.n_rules != model.n_rules:
        raise ValueError(
            f"grammar {grammar.name!r} has {grammar.n_rules} productions, the model "
            f"{model.n_rules}: they do not belong together"
        )
    meta = dict(meta or {})
    write_model_file(
        path,
        model,
        "grammar_vae",
        extras={
            "grammar": {"name": grammar.name, "text": grammar.text},
            "training_strings": meta.get("training_strings"),
        },
        training_data={"path": meta.get("dataset")},
        run_config=meta.get("config"),
        meta=meta,
    )


def load_grammar_vae(path: str | Path) -> tuple[GrammarVAE, Grammar, dict]:
    """(model in eval mode, grammar, meta) from a model file or run folder (safe loading)."""
    space = load_latent_space(path)
    return space.model, space.grammar, space.meta


def load_latent_space(path: str | Path) -> LatentSpace:
    """The :class:`~deepatoms.models.latent_space.LatentSpace` of a model file or run folder."""
    return load_model(path, expect="grammar-vae")


TRAINING_STRINGS = "training_strings.txt"


def read_training_strings(path: str | Path, meta: dict | None = None) -> list[str]:
    """The training strings of a run (``RUN/training_strings.txt``, one per line).

    ``path``: the run folder or its model file; ``meta``: a model file's meta, whose
    ``training_strings`` entry is tried next. Returns [] when neither file exists.
    """
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    for cand in (folder / TRAINING_STRINGS, (meta or {}).get("training_strings")):
        if cand and Path(cand).is_file():
            return [s for s in Path(cand).read_text(encoding="utf-8").splitlines() if s]
    return []
