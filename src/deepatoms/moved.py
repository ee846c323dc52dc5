"""Old module paths that moved in the one-architecture refactor (version 0.2).

Scripts written against 0.1 keep working: ``import deepatoms.apps.train`` or
``from deepatoms.density.model_io import load_density_model`` still succeed, with a
``DeprecationWarning`` that names the new home. A name whose calling convention changed is not
forwarded silently: importing it raises an ``ImportError`` that says what to use instead.

:data:`MOVED` maps each old module to its new module and, per name, either the new location
(``"module:name"``) or the message to show. The finder is installed by ``deepatoms/__init__.py``;
it imports nothing until an old path is used.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings
from typing import Any

__all__ = ["MOVED", "install"]

_FIT = "deepatoms.train.protocol:fit"
_REGISTRY = "use deepatoms.models.registry.load_preset(name) (one loader for every family)"
_LOAD = "use deepatoms.load_model(path, expect={!r}) (a model file or run folder)"
_WRITE = (
    "model files are written by the training protocol (deepatoms.fit); to write one yourself "
    "use deepatoms.models.model_file.write_model_file"
)

#: old module → (new module, {old name: "new.module:new_name" or "use ..." message}).
MOVED: dict[str, tuple[str, dict[str, str]]] = {
    "deepatoms.progress": ("deepatoms.core.progress", {}),
    "deepatoms.apps.crossval": ("deepatoms.workflows.crossval", {}),
    "deepatoms.apps.evaluate": ("deepatoms.workflows.evaluation", {}),
    "deepatoms.apps.predict": ("deepatoms.workflows.evaluation", {}),
    "deepatoms.apps.inference": ("deepatoms.models.inference", {}),
    "deepatoms.apps.references": ("deepatoms.analysis.published", {}),
    "deepatoms.apps.train": (
        "deepatoms.workflows.training",
        {
            "train": _FIT,
            "resolve_readout": "deepatoms.train.tasks.property_setup:resolve_readout",
            "resolve_atomrefs": "deepatoms.train.tasks.property_setup:resolve_atomrefs",
            "fit_energy_offset": "deepatoms.train.tasks.property_setup:fit_energy_offset",
        },
    ),
    "deepatoms.apps.train_gschnet": (
        "deepatoms.train.tasks.gschnet",
        {"train_gschnet": _FIT, "StopAtMinLR": "deepatoms.train.trainer:StopAtMinLR"},
    ),
    "deepatoms.datagen.calculators": ("deepatoms.simulate.reference", {}),
    "deepatoms.datagen.scaling": ("deepatoms.data.scaling", {}),
    "deepatoms.datagen.structures": ("deepatoms.data.structures", {}),
    "deepatoms.simulate.structures": ("deepatoms.data.structure_files", {}),
    "deepatoms.simulate.allocator": ("deepatoms.core.allocator", {}),
    "deepatoms.screen.candidates": ("deepatoms.data.prototypes.substitution", {}),
    "deepatoms.screen.prototypes": ("deepatoms.data.prototypes.library", {}),
    "deepatoms.screen.scaling": ("deepatoms.data.prototypes.rescale", {}),
    "deepatoms.density.crystal_sets": ("deepatoms.data.voxels.crystal_sets", {}),
    "deepatoms.density.dataset": ("deepatoms.data.voxels.dataset", {}),
    "deepatoms.density.grid": ("deepatoms.data.voxels.grid", {}),
    "deepatoms.density.samples": ("deepatoms.data.voxels.samples", {}),
    "deepatoms.density.model": ("deepatoms.models.density_model", {}),
    "deepatoms.density.model_io": (
        "deepatoms.models.loaded",
        {
            "load_density_model": _LOAD.format("density_vae"),
            "save_density_model": _WRITE,
        },
    ),
    "deepatoms.density.training": (
        "deepatoms.train.tasks.density_vae",
        {
            "train_density_vae": _FIT,
            "density_preset": _REGISTRY,
            "resolve_density_config": "use deepatoms.models.registry.resolve_config(config)",
            "select_crystals": "deepatoms.data.voxels.crystal_sets:select_crystals",
        },
    ),
    "deepatoms.design.latent": ("deepatoms.models.latent_space", {}),
    "deepatoms.design.regressors": (
        "deepatoms.models.latent_regressor",
        {
            "train_regressors": "use deepatoms.workflows.grammar_vae.regress (or deepatoms.fit "
            "with a latent-regressors preset)",
            "load_regressors": _LOAD.format("latent_regressors"),
            "save_regressors": _WRITE,
            "RegressorSet": "use deepatoms.models.latent_regressor.LatentRegressors",
            "fit_regressor": "use deepatoms.workflows.grammar_vae.regress",
            "latent_space_info": "use deepatoms.models.latent_space.LatentSpace.meta",
        },
    ),
    "deepatoms.design.vae_io": (
        "deepatoms.data.strings",
        {
            "load_latent_space": _LOAD.format("grammar_vae"),
            "load_grammar_vae": _LOAD.format("grammar_vae") + "; it returns a LatentSpace",
            "save_grammar_vae": _WRITE,
            "resolve_model_path": "deepatoms.models.loading:resolve_model_path",
            "TRAINING_STRINGS": "deepatoms.models.latent_space:TRAINING_STRINGS",
            "read_training_strings": "use LatentSpace.training_strings() of "
            "deepatoms.load_model(run, expect='grammar_vae')",
        },
    ),
    "deepatoms.design.vae_training": (
        "deepatoms.train.tasks.grammar_vae",
        {
            "train_grammar_vae": _FIT,
            "load_vae_preset": _REGISTRY,
            "vae_preset_names": "use deepatoms.models.registry.presets_by_family()",
            "load_vae_config": "use deepatoms.models.registry.load_run_config(path)",
            "resolve_vae_split": "deepatoms.train.tasks.grammar_vae:string_table_split",
        },
    ),
    "deepatoms.train.config": (
        "deepatoms.config.overrides",
        {
            "ConfigError": "deepatoms.core.errors:ConfigError",
            "preset_names": "deepatoms.config.presets:preset_names",
            "load_preset": "deepatoms.models.registry:load_preset",
            "save_config": "deepatoms.config.files:save_config",
            "load_config": "use deepatoms.models.registry.load_run_config(path)",
        },
    ),
    "deepatoms.train.runfiles": (
        "deepatoms.core.files",
        {
            "config_diff": "deepatoms.config.schema:config_diff",
            "RunDir": "use deepatoms.train.run_folder.RunFolder",
            "check_run_folder": "use deepatoms.train.run_folder.check_resume",
        },
    ),
    "deepatoms.train.task": (
        "deepatoms.train.tasks.property",
        {"linear_decay_factor": "deepatoms.train.optim:linear_decay_factor"},
    ),
}


class _MovedModule(types.ModuleType):
    """Stands in for an old module: attributes come from the new home, with a warning."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        new_module, renamed = MOVED[self.__name__]
        target = renamed.get(name, f"{new_module}:{name}")
        if " " in target:  # a message: the name has no drop-in replacement
            raise ImportError(f"{self.__name__}.{name} was removed in deepatoms 0.2: {target}")
        module, attr = target.split(":")
        try:
            value = getattr(importlib.import_module(module), attr)
        except AttributeError:
            raise ImportError(f"{self.__name__} (now {new_module}) has no name {name!r}") from None
        warnings.warn(
            f"{self.__name__}.{name} moved to {module}.{attr}; import it from there",
            DeprecationWarning,
            stacklevel=2,
        )
        return value


class _MovedFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname: str, path: Any = None, target: Any = None):
        if fullname not in MOVED and fullname != "deepatoms.apps":
            return None
        return importlib.machinery.ModuleSpec(
            fullname, self, is_package=fullname == "deepatoms.apps"
        )

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        if spec.name == "deepatoms.apps":
            return types.ModuleType(spec.name, "Moved: see deepatoms.workflows.")
        return _MovedModule(spec.name, f"Moved to {MOVED[spec.name][0]}.")

    def exec_module(self, module: types.ModuleType) -> None:
        if module.__name__ in MOVED:
            warnings.warn(
                f"{module.__name__} moved to {MOVED[module.__name__][0]} in deepatoms 0.2; "
                "import from there",
                DeprecationWarning,
                stacklevel=2,
            )


def install() -> None:
    """Put the finder for old module paths on ``sys.meta_path`` (once)."""
    if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
        sys.meta_path.append(_MovedFinder())
