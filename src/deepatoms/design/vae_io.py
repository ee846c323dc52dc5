"""The grammar-VAE model file (``specs/grammar-vae.md``).

Model file (``model.pt``): one ``torch.save`` of plain containers, loaded with
``torch.load(..., weights_only=True)`` (opening it never runs code)::

    {"format": "deepatoms-grammar-vae", "format_version": 1, "deepatoms_version": str,
     "model_config": dict, "grammar": {"name": str, "text": str}, "state_dict": {str: Tensor},
     "meta": dict}

The grammar's source text is embedded, so the file alone rebuilds the grammar, the model and the
latent space (:func:`load_latent_space`). Writes are atomic.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from deepatoms import __version__
from deepatoms.core.files import atomic_torch_save
from deepatoms.models.grammar_vae import GrammarVAE
from deepatoms.models.io import read_payload

if TYPE_CHECKING:  # pragma: no cover
    from deepatoms.grammar.cfg import Grammar
    from deepatoms.models.latent_space import LatentSpace

__all__ = [
    "FORMAT",
    "load_grammar_vae",
    "load_latent_space",
    "read_training_strings",
    "resolve_model_path",
    "save_grammar_vae",
]

FORMAT = "deepatoms-grammar-vae"
FORMAT_VERSION = 1


def save_grammar_vae(
    path: str | Path, model: GrammarVAE, grammar: Grammar, meta: dict | None = None
) -> None:
    """Write ``model`` with its config, the grammar text and ``meta`` to ``path`` atomically."""
    if grammar.n_rules != model.n_rules:
        raise ValueError(
            f"grammar {grammar.name!r} has {grammar.n_rules} productions, the model "
            f"{model.n_rules}: they do not belong together"
        )
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "deepatoms_version": __version__,
        "model_config": dict(model.config),
        "grammar": {"name": grammar.name, "text": grammar.text},
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "meta": meta or {},
    }
    atomic_torch_save(payload, path)


def resolve_model_path(path: str | Path) -> Path:
    """``path`` itself, or ``path/model.pt`` for a run folder; FileNotFoundError otherwise."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.pt"
        if not path.is_file():
            raise FileNotFoundError(
                f"run folder {path.parent} has no model.pt yet; train it to the end first "
                "(`deepatoms vae train`)"
            )
    if not path.is_file():
        raise FileNotFoundError(f"grammar-VAE model file {path} does not exist")
    return path


def load_grammar_vae(path: str | Path) -> tuple[GrammarVAE, Grammar, dict]:
    """(model in eval mode, grammar, meta) from a model file or run folder (safe loading)."""
    from deepatoms.grammar.cfg import Grammar

    path = resolve_model_path(path)
    payload = read_payload(
        path, FORMAT, FORMAT_VERSION, "grammar-VAE model",
        "property models and G-SchNet files are loaded by other commands",
    )  # fmt: skip
    g = payload["grammar"]
    grammar = Grammar.from_text(g["text"], g["name"])
    model = GrammarVAE(payload["model_config"])
    model.load_state_dict(payload["state_dict"])
    model.eval()
    meta = dict(payload.get("meta") or {})
    meta["model_file"] = str(path)
    return model, grammar, meta


def load_latent_space(path: str | Path) -> LatentSpace:
    """The :class:`~deepatoms.design.latent.LatentSpace` of a model file or run folder."""
    from deepatoms.models.latent_space import LatentSpace

    model, grammar, meta = load_grammar_vae(path)
    return LatentSpace(model, grammar, meta)


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
