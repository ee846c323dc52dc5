"""Helpers for tests that need small model files without training."""

from __future__ import annotations

from pathlib import Path

from deepatoms.data.neighbors import GraphSpec
from deepatoms.models.model_file import write_model_file
from deepatoms.models.registry import family_of


def save_atomistic(
    path: str | Path, model, graph: GraphSpec, unit: str = "eV", meta: dict | None = None
) -> Path:
    """Write an atomistic model (property model, potential or G-SchNet) as a model file."""
    meta = dict(meta or {})
    prop = getattr(model, "property", "")
    gschnet = model.config.get("name") == "gschnet"
    return write_model_file(
        path,
        model,
        family_of(model.config.get("name")).name,
        extras={"graph": graph.to_config(), "elements": meta.get("elements")},
        units={"target": unit, "length": "Å"},
        target=None if gschnet else {"name": prop, "unit": unit},
        meta=meta,
    )


def save_committee(path: str | Path, committee, graph: GraphSpec, elements: list[int]) -> Path:
    """Write a committee of energy potentials (untrained members are fine) as a model file."""
    spec = {"n_members": len(committee), "variance_scale": committee.variance_scale}
    return write_model_file(
        path,
        committee,
        "schnet",
        extras={"graph": graph.to_config(), "elements": elements, "committee": spec},
        units={"target": "eV", "length": "Å"},
        target={"name": "energy", "unit": "eV"},
        meta={"stats": {"forces": {"mean": 0.0}}},
    )


def save_grammar_vae(path: str | Path, model, grammar, meta: dict | None = None) -> Path:
    """Write a grammar VAE with its grammar text as a model file."""
    return write_model_file(
        path,
        model,
        "grammar_vae",
        extras={"grammar": {"name": grammar.name, "text": grammar.text}},
        meta=meta,
    )


def save_density(path: str | Path, model, grid, class_map, meta: dict | None = None) -> Path:
    """Write a density VAE with its grid and class map as a model file."""
    return write_model_file(
        path,
        model,
        "density_vae",
        extras={"grid": grid.as_dict(), "class_map": class_map.to_list()},
        meta=meta,
    )
