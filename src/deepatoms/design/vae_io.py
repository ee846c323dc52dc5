"""Files of the grammar VAE: the model file and CSV tables of strings (``specs/grammar-vae.md``).

Model file (``model.pt``): one ``torch.save`` of plain containers, loaded with
``torch.load(..., weights_only=True)`` (opening it never runs code)::

    {"format": "deepatoms-grammar-vae", "format_version": 1, "deepatoms_version": str,
     "model_config": dict, "grammar": {"name": str, "text": str}, "state_dict": {str: Tensor},
     "meta": dict}

The grammar's source text is embedded, so the file alone rebuilds the grammar, the model and the
latent space (:func:`load_latent_space`). Writes are atomic.

String tables: CSV files with a ``string`` (or ``smiles``) column, an optional ``split`` column
(``train``/``val``/``test``) and optional numeric property columns (eV). Errors name the file,
the line and the column.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from deepatoms import __version__
from deepatoms.models.grammar_vae import GrammarVAE
from deepatoms.models.io import atomic_torch_save, read_payload

if TYPE_CHECKING:  # pragma: no cover
    from deepatoms.design.latent import LatentSpace
    from deepatoms.grammar.cfg import Grammar

__all__ = [
    "FORMAT",
    "SPLITS",
    "StringTable",
    "load_grammar_vae",
    "load_latent_space",
    "read_string_csv",
    "read_training_strings",
    "resolve_model_path",
    "save_grammar_vae",
]

FORMAT = "deepatoms-grammar-vae"
FORMAT_VERSION = 1
STRING_COLUMNS = ("string", "smiles")
SPLITS = ("train", "val", "test")


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
    from deepatoms.design.latent import LatentSpace

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


@dataclass
class StringTable:
    """Rows of a string CSV: strings, their split labels (or None), properties and file lines."""

    path: Path
    column: str
    strings: list[str]
    lines: np.ndarray
    split: np.ndarray | None = None
    properties: dict[str, np.ndarray] = field(default_factory=dict)
    columns: list[str] = field(default_factory=list)

    def where(self, i: int) -> str:
        """'FILE line L' of row ``i`` (the header is line 1), for error messages."""
        return f"{self.path} line {int(self.lines[i])}"

    def rows(self, split: str) -> np.ndarray:
        """Indices of the rows labelled ``split`` (all rows when the table has no split)."""
        if self.split is None:
            return np.arange(len(self.strings))
        return np.flatnonzero(self.split == split)


def _pick_column(header: Sequence[str], wanted: str | None, path: Path) -> str:
    if wanted is not None:
        if wanted not in header:
            raise ValueError(f"{path} has no column {wanted!r}; columns: {', '.join(header)}")
        return wanted
    lower = {h.strip().lower(): h for h in header}
    for name in STRING_COLUMNS:
        if name in lower:
            return lower[name]
    raise ValueError(
        f"{path} has no 'string' (or 'smiles') column; columns: {', '.join(header) or 'none'}. "
        "Name the column holding the strings 'string'."
    )


def read_string_csv(
    path: str | Path,
    column: str | None = None,
    properties: Sequence[str] = (),
    split_column: str | None = "split",
) -> StringTable:
    """Read a CSV of strings; ``properties``: numeric columns to read (eV).

    ``column``: the string column (default ``string``, else ``smiles``, case-insensitive).
    ``split_column``: per-row ``train``/``val``/``test`` labels when that column exists (None:
    ignore it). Empty strings, unknown split labels and non-numeric property values raise
    ``ValueError`` naming the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file {path} does not exist")
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{path} is empty; expected a CSV header with a 'string' column")
        header = [h.strip() for h in header]
        col = _pick_column(header, column, path)
        missing = [p for p in properties if p not in header]
        if missing:
            raise ValueError(
                f"{path} lacks property column(s) {missing}; columns: {', '.join(header)}"
            )
        i_str = header.index(col)
        i_split = header.index(split_column) if split_column in header else None
        i_props = {p: header.index(p) for p in properties}
        strings: list[str] = []
        lines: list[int] = []
        splits: list[str] = []
        values: dict[str, list[float]] = {p: [] for p in properties}
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise ValueError(
                    f"{path} line {line}: {len(row)} fields, but the header has {len(header)}"
                )
            text = row[i_str].strip()
            if not text:
                raise ValueError(f"{path} line {line}: the {col!r} cell is empty")
            strings.append(text)
            lines.append(line)
            if i_split is not None:
                label = row[i_split].strip().lower()
                if label not in SPLITS:
                    raise ValueError(
                        f"{path} line {line}: split label {row[i_split]!r} is not one of "
                        f"{list(SPLITS)}"
                    )
                splits.append(label)
            for p, j in i_props.items():
                try:
                    values[p].append(float(row[j]))
                except ValueError:
                    raise ValueError(
                        f"{path} line {line}: column {p!r} holds {row[j]!r}, not a number"
                    ) from None
    if not strings:
        raise ValueError(f"{path} has a header but no rows")
    props = {p: np.asarray(v, dtype=np.float64) for p, v in values.items()}
    for p, v in props.items():
        bad = np.flatnonzero(~np.isfinite(v))
        if len(bad):
            raise ValueError(f"{path} line {lines[bad[0]]}: column {p!r} is not finite")
    return StringTable(
        path=path,
        column=col,
        strings=strings,
        lines=np.asarray(lines, dtype=np.int64),
        split=np.asarray(splits) if i_split is not None else None,
        properties=props,
        columns=header,
    )


def table_summary(table: StringTable) -> dict[str, Any]:
    """Row counts of a table: total and per split label."""
    out: dict[str, Any] = {"n": len(table.strings)}
    if table.split is not None:
        out.update({s: int((table.split == s).sum()) for s in SPLITS})
    return out
