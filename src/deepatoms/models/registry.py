"""The registry of the seven model families: names, model classes, training tasks, config
schemas and presets, in one table (:data:`FAMILIES`).

A **family** is a method from one paper (see ``docs/references.md``): its model class(es), the
training task that fits them (a key of ``deepatoms.train.tasks.TASKS``), the schema every config
of the family is checked against (sections of :mod:`deepatoms.config.sections` plus the model's
own options), what its training reads (a dataset file, a CSV of strings, crystal sources) and the
command that trains it. A family may have several **models** (MPNN and VIMPNN; the grammar VAE
and its latent regressors), each with the name that configs (``model.name``) and model files use.

Presets (``deepatoms/presets/*.yaml``) belong to the family of their ``model.name``;
:func:`load_preset` is the one way to load them (with ``base:`` inheritance), and
:func:`resolve_config` checks any config (a preset with ``--set`` overrides, a run's saved
``config.yaml``) against its family's schema.

Adding a family: a model module in ``deepatoms/models``, a task in ``deepatoms/train/tasks``,
presets, and one :class:`Family` entry here (``docs/architecture.md``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from torch import nn

from deepatoms.config import sections
from deepatoms.config.files import read_config_file
from deepatoms.config.presets import preset_names, read_preset
from deepatoms.config.schema import Schema, free, number, numbers
from deepatoms.core.errors import ConfigError
from deepatoms.models.density_model import MODEL_DEFAULTS as DENSITY_MODEL_DEFAULTS
from deepatoms.models.density_model import DensityVAEModel
from deepatoms.models.dtnn import DTNN
from deepatoms.models.grammar_vae import GrammarVAE
from deepatoms.models.gschnet import GSCHNET_DEFAULTS, build_gschnet
from deepatoms.models.heads import build_atomistic_model
from deepatoms.models.latent_regressor import LatentRegressors
from deepatoms.models.loaded import wrap_atomistic, wrap_density, wrap_grammar_vae, wrap_regressors
from deepatoms.models.model_file import ModelFile
from deepatoms.models.mpnn import MPNN_DEFAULTS, VIMPNN_DEFAULTS, build_mpnn
from deepatoms.models.nmp_edge import NMPEdge
from deepatoms.models.schnet import SchNet

__all__ = [
    "FAMILIES",
    "Family",
    "ModelKind",
    "available_models",
    "build_model",
    "family",
    "family_of",
    "load_preset",
    "load_run_config",
    "model_kind",
    "presets_by_family",
    "resolve_config",
    "schema_of",
]


@dataclass(frozen=True)
class ModelKind:
    """One model of a family: the ``model.name`` that selects it, how to build it from its
    model config, and the training task that fits it."""

    name: str
    build: Callable[[Mapping[str, Any]], nn.Module]
    task: str
    wrap: Callable[[nn.Module, ModelFile], Any]  # model + its file → what load_model returns
    defaults: Mapping[str, Any] | None = None  # model options with defaults (None: open)
    schema: Schema | None = None  # configs of this model, when not the family's


@dataclass(frozen=True)
class Family:
    """A model family (module docstring)."""

    name: str
    title: str
    summary: str
    reference: str
    models: tuple[ModelKind, ...]
    schema: Schema
    inputs: str  # dataset | strings | crystals
    command: str

    @property
    def model_names(self) -> list[str]:
        """``model.name`` values of the family's models."""
        return [m.name for m in self.models]

    def presets(self) -> list[str]:
        """Names of the shipped presets of this family."""
        return [name for name, fam in _preset_families().items() if fam is self]


def _atomistic(representation: type[nn.Module]) -> Callable[[Mapping[str, Any]], nn.Module]:
    return lambda config: build_atomistic_model(representation, config)


def _with_defaults(builder: Callable[..., nn.Module], defaults: Mapping[str, Any]):
    """A build function for families whose builder takes every option as a keyword."""

    def build(config: Mapping[str, Any]) -> nn.Module:
        cfg = dict(config)
        name = cfg.pop("name", None)
        prop = cfg.pop("property", "energy")
        readout = cfg.pop("readout", "sum")
        unknown = set(cfg) - set(defaults)
        if unknown:
            raise ValueError(
                f"unknown option(s) {sorted(unknown)} for model {name!r}; "
                f"allowed: {sorted(defaults)}"
            )
        options = {**defaults, **cfg}
        return builder(property=prop, readout=readout, config=dict(config), **options)

    return build


def _model_section(defaults: Mapping[str, Any] | None, open_: bool = False) -> Schema:
    """A schema of the ``model`` section from its defaults (values are checked by the model)."""
    return Schema(
        {"name": free(None), **_free_fields(defaults or {})}, open=open_ or defaults is None
    )


def _free_fields(defaults: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: Schema(_free_fields(v)) if isinstance(v, Mapping) else free(v)
        for k, v in defaults.items()
    }


def _atomistic_schema(train: Schema = sections.TRAIN_ATOMISTIC, data: Schema = sections.DATASET):
    return Schema(
        {
            **sections.HEADER,
            "model": _model_section(None),
            "graph": sections.GRAPH,
            "data": data,
            "train": train,
        }
    )


_DENSITY_MODEL = {
    k: v for k, v in DENSITY_MODEL_DEFAULTS.items() if k not in ("grid_n", "n_classes")
}
_GRAMMAR_MODEL = {
    "name": "grammar-vae",
    "architecture": "gru",
    "latent_dim": 32,
    "hidden": 256,
    "dense": 128,
    "z_input": "both",
}


def _property_family(name: str, title: str, cls: type, summary: str, reference: str) -> Family:
    """A family of one atomistic model class trained by ``deepatoms train``."""
    return Family(
        name=name, title=title, summary=summary, reference=reference,
        models=(ModelKind(name, _atomistic(cls), "property", wrap_atomistic),),
        schema=_atomistic_schema(), inputs="dataset", command="deepatoms train",
    )  # fmt: skip


_CITE_THESIS_S = "Schütt 2018 thesis"
_CITE_THESIS_J = "Jørgensen 2019 thesis"

#: The seven families, in the order `deepatoms presets` lists them.
FAMILIES: tuple[Family, ...] = (
    _property_family(
        "schnet",
        "SchNet",
        SchNet,
        "continuous-filter convolutions: properties, potentials, crystals",
        f"Schütt et al. 2018, J. Chem. Phys. 148, 241722; {_CITE_THESIS_S} Ch. 4–5",
    ),
    _property_family(
        "dtnn",
        "DTNN",
        DTNN,
        "deep tensor neural network: molecular properties",
        f"Schütt et al. 2017, Nat. Commun. 8, 13890; {_CITE_THESIS_S} Ch. 3",
    ),
    _property_family(
        "nmp_edge",
        "NMP-edge",
        NMPEdge,
        "message passing with edge updates; position-free Voronoi/symmetry graphs",
        f"Jørgensen et al. 2018 (Paper A); Paper B; {_CITE_THESIS_J}",
    ),
    Family(
        name="mpnn",
        title="MPNN/VIMPNN",
        summary="bond-graph message passing for energy curves far from equilibrium",
        reference="Gilmer et al. 2017 (MPNN); Morgan et al. 2020 (VIMPNN)",
        models=(
            ModelKind(
                "mpnn",
                _with_defaults(build_mpnn, MPNN_DEFAULTS),
                "property",
                wrap_atomistic,
                MPNN_DEFAULTS,
            ),
            ModelKind(
                "vimpnn",
                _with_defaults(build_mpnn, VIMPNN_DEFAULTS),
                "property",
                wrap_atomistic,
                VIMPNN_DEFAULTS,
            ),
        ),
        schema=_atomistic_schema(),
        inputs="dataset",
        command="deepatoms train",
    ),
    Family(
        name="gschnet",
        title="G-SchNet",
        summary="autoregressive generation of 3-D molecules",
        reference="Gebauer, Gastegger & Schütt 2019, NeurIPS",
        models=(
            ModelKind(
                "gschnet",
                _with_defaults(build_gschnet, GSCHNET_DEFAULTS),
                "gschnet",
                wrap_atomistic,
                GSCHNET_DEFAULTS,
            ),
        ),
        schema=_atomistic_schema(sections.TRAIN_GSCHNET, sections.DATASET),
        inputs="dataset",
        command="deepatoms train",
    ),
    Family(
        name="grammar_vae",
        title="grammar VAE",
        summary="grammar VAE over strings with latent property regressors (inverse design)",
        reference="Kusner et al. 2017, ICML; Jørgensen et al. 2018 (Paper D)",
        models=(
            ModelKind("grammar-vae", GrammarVAE, "grammar_vae", wrap_grammar_vae, _GRAMMAR_MODEL),
            ModelKind(
                "latent-regressors",
                LatentRegressors,
                "latent_regressors",
                wrap_regressors,
                schema=Schema(
                    {
                        **sections.HEADER,
                        "model": Schema(
                            {
                                "name": free(None),
                                "properties": free([]),
                                "hidden": numbers([512, 512, 256], low=1),
                                "dropout": number(0.2, low=0, high=1),
                                "dropout_after": numbers([2, 3], low=1),
                            }
                        ),
                        "data": sections.REGRESSOR_DATA,
                        "train": sections.TRAIN_REGRESSORS,
                    }
                ),
            ),
        ),
        schema=Schema(
            {
                **sections.HEADER,
                "model": _model_section(_GRAMMAR_MODEL, open_=True),
                "data": sections.STRINGS,
                "train": sections.TRAIN_GRAMMAR_VAE,
                "regressor": sections.REGRESSOR,
            }
        ),
        inputs="strings",
        command="deepatoms vae train",
    ),
    Family(
        name="density_vae",
        title="density VAE",
        summary="crystals as 3-D densities: β-VAE with an attention U-Net",
        reference="Hoffmann et al. 2019, arXiv:1909.00949",
        models=(
            ModelKind("density_vae", DensityVAEModel, "density_vae", wrap_density, _DENSITY_MODEL),
        ),
        schema=Schema(
            {
                **sections.HEADER,
                "model": _model_section(_DENSITY_MODEL),
                "grid": sections.GRID,
                "data": sections.CRYSTALS,
                "train": sections.TRAIN_DENSITY,
            }
        ),
        inputs="crystals",
        command="deepatoms crystals train",
    ),
)

_BY_MODEL: dict[str, tuple[Family, ModelKind]] = {
    m.name: (f, m) for f in FAMILIES for m in f.models
}
_BY_FAMILY: dict[str, Family] = {f.name: f for f in FAMILIES}


def available_models() -> list[str]:
    """Every ``model.name`` the registry knows."""
    return sorted(_BY_MODEL)


def family(name: str) -> Family:
    """The family called ``name`` (e.g. ``"schnet"``, ``"density_vae"``)."""
    try:
        return _BY_FAMILY[name]
    except KeyError:
        raise ConfigError(
            f"unknown model family {name!r}; families: {sorted(_BY_FAMILY)}"
        ) from None


def model_kind(name: str | None) -> ModelKind:
    """The model kind with ``model.name`` ``name``."""
    return _lookup(name)[1]


def family_of(config_or_name: Mapping[str, Any] | str | None) -> Family:
    """The family of a config (its ``model.name``) or of a model name."""
    name = config_or_name
    if isinstance(config_or_name, Mapping):
        name = (config_or_name.get("model") or {}).get("name")
    return _lookup(name)[0]


def _lookup(name: Any) -> tuple[Family, ModelKind]:
    if name not in _BY_MODEL:
        raise ConfigError(f"unknown model {name!r}; available: {', '.join(available_models())}")
    return _BY_MODEL[name]


def build_model(config: Mapping[str, Any]) -> nn.Module:
    """Build a model from its model config (``{"name": ..., options}``); unknown options raise
    ValueError naming them and the allowed ones."""
    return model_kind(config.get("name")).build(config)


def schema_of(config: Mapping[str, Any]) -> Schema:
    """The schema a config is checked against: its model's, else its family's."""
    fam, kind = _lookup((config.get("model") or {}).get("name"))
    return kind.schema or fam.schema


def resolve_config(config: Mapping[str, Any], where: str = "") -> dict[str, Any]:
    """``config`` merged over its model's defaults, every key and value checked.

    ``where`` prefixes the error messages (e.g. the file the config came from).
    """
    schema = schema_of(config)
    try:
        return schema.resolve(config)
    except ConfigError as exc:
        raise ConfigError(f"{where}{exc}") from None


def load_preset(name: str) -> dict[str, Any]:
    """The preset ``name`` (``base:`` inheritance resolved) merged over its family's defaults
    and checked against the family's schema."""
    return resolve_config(read_preset(name), f"preset {name!r}: ")


def load_run_config(path: str | os.PathLike) -> dict[str, Any]:
    """A run's saved ``config.yaml`` resolved like a new config (so runs written before a key
    was added get its default and still compare equal when resumed)."""
    return resolve_config(read_config_file(path), f"{path}: ")


def _preset_families() -> dict[str, Family]:
    out = {}
    for name in preset_names():
        out[name] = family_of(read_preset(name))
    return out


def presets_by_family() -> dict[str, list[str]]:
    """Preset names grouped by family name, families in registry order."""
    groups: dict[str, list[str]] = {f.name: [] for f in FAMILIES}
    for name, fam in _preset_families().items():
        groups[fam.name].append(name)
    return groups
