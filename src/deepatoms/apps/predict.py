"""Predict a trained model's property for structures in any ASE-readable files → CSV."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import ase.io

from deepatoms.core.files import atomic_write_text
from deepatoms.data.packed import PackedSystems
from deepatoms.models.inference import predict_packed, unseen_elements
from deepatoms.models.loading import PROPERTY_FAMILIES, load_model


def read_inputs(paths: list[str | Path]) -> tuple[list, list[tuple[str, int]]]:
    """All structures of ``paths`` (every frame) and their (file, frame index) labels."""
    atoms_list, labels = [], []
    for p in paths:
        p = Path(p)
        if not p.is_file():
            raise FileNotFoundError(f"input file {p} does not exist")
        try:
            frames = ase.io.read(p, index=":")
        except Exception as exc:
            raise ValueError(
                f"cannot read structures from {p}: {type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(frames, list):
            frames = [frames]
        for k, a in enumerate(frames):
            if len(a) == 0:
                raise ValueError(f"{p}, frame {k}: structure has no atoms")
            atoms_list.append(a)
            labels.append((str(p), k))
    if not atoms_list:
        raise ValueError("no structures found in the input files")
    return atoms_list, labels


def predict(
    model_path: str | Path,
    inputs: list[str | Path],
    out: str | Path | None,
    batch_size: int = 100,
    progress=None,
) -> dict:
    """Predict for every structure of ``inputs``; write a CSV to ``out`` (if given).

    Columns: file, frame, formula, n_atoms, <property> [unit]. Returns the rows and warnings.
    """
    loaded = load_model(model_path, expect=PROPERTY_FAMILIES)
    atoms_list, labels = read_inputs(list(inputs))
    data = PackedSystems.from_atoms(atoms_list)
    warnings = []
    unseen = unseen_elements(loaded, data.numbers)
    if unseen:
        warnings.append(
            f"elements with atomic numbers {unseen} never occurred in the training data; "
            "predictions for structures containing them are unreliable"
        )
    values = predict_packed(loaded, data, None, batch_size, progress)
    col = f"{loaded.property} [{loaded.unit}]" if loaded.unit else loaded.property
    rows = [
        {
            "file": f,
            "frame": k,
            "formula": a.get_chemical_formula(),
            "n_atoms": len(a),
            col: float(v),
        }
        for (f, k), a, v in zip(labels, atoms_list, values, strict=True)
    ]
    if out is not None:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(out, buf.getvalue())
    return {
        "model": str(model_path),
        "property": loaded.property,
        "unit": loaded.unit,
        "column": col,
        "n": len(rows),
        "out": str(out) if out is not None else None,
        "rows": rows,
        "warnings": warnings,
    }
