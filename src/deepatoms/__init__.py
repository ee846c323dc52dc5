"""deepatoms: deep learning for molecules and materials.

The Python API (docs/python-api.md): the functions behind every command live in
:mod:`deepatoms.workflows`; the most used are importable from here, e.g. ::

    import deepatoms
    deepatoms.build_qm9("qm9.h5", limit=1000)
    deepatoms.fit("schnet-fast", "qm9.h5", "runs/u0", target="U0")
    model = deepatoms.load_model("runs/u0")
    atoms.calc = deepatoms.Calculator("runs/u0")

Layers (imports point down only; see docs/architecture.md): ``core``/``config`` → ``nn`` →
``data`` → ``models`` → engines (``simulate``, ``screen``, ``generate``, ``design``,
``density``, ``datagen``, ``analysis``) → ``train`` → ``workflows`` → ``cli``.
Units inside the package are eV and Å throughout. Names are imported on first use, so
``import deepatoms`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

from deepatoms.moved import install as _install_moved

__version__ = "0.2.0"

#: public name → module it lives in.
_API: dict[str, str] = {
    # datasets
    "build_qm9": "deepatoms.workflows.datasets",
    "import_structures": "deepatoms.workflows.datasets",
    "import_md17": "deepatoms.workflows.datasets",
    "dataset_summary": "deepatoms.workflows.datasets",
    "reference_md": "deepatoms.workflows.datagen",
    "read_dataset": "deepatoms.data.dataset",
    "write_dataset": "deepatoms.data.dataset",
    # training (``fit`` is ``deepatoms.workflows.training.train``: a preset name or a config)
    "fit": "deepatoms.workflows.training:train",
    "training_config": "deepatoms.workflows.training",
    "list_presets": "deepatoms.workflows.training",
    "cross_validate": "deepatoms.workflows.crossval",
    "learn": "deepatoms.workflows.learn",
    # models
    "load_model": "deepatoms.models.loading",
    "build_model": "deepatoms.models.registry",
    "load_preset": "deepatoms.models.registry",
    # using a model
    "evaluate": "deepatoms.workflows.evaluation",
    "predict": "deepatoms.workflows.evaluation",
    "Calculator": "deepatoms.simulate.calculator",
    "relax_structure": "deepatoms.workflows.simulation",
    "molecular_dynamics": "deepatoms.workflows.simulation",
    "vibrations": "deepatoms.workflows.simulation",
    "scan_structure": "deepatoms.workflows.simulation",
    "generate_gschnet": "deepatoms.workflows.generation",
    "design_run": "deepatoms.workflows.design",
    # errors
    "DeepatomsError": "deepatoms.core.errors",
    "ConfigError": "deepatoms.core.errors",
    "ModelFileError": "deepatoms.core.errors",
}

__all__ = ["__version__", *sorted(_API)]


def __getattr__(name: str) -> Any:
    where = _API.get(name)
    if where is None:
        raise AttributeError(f"module 'deepatoms' has no attribute {name!r}")
    module, _, attr = where.partition(":")
    value = getattr(importlib.import_module(module), attr or name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})


_install_moved()
