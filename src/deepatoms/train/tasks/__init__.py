"""The training task of every model family, by the task name the registry gives
(``deepatoms.models.registry.ModelKind.task``)."""

from __future__ import annotations

from deepatoms.core.errors import ConfigError
from deepatoms.train.tasks.base import TrainingTask
from deepatoms.train.tasks.density_vae import DensityVAETask
from deepatoms.train.tasks.grammar_vae import GrammarVAETask
from deepatoms.train.tasks.gschnet import GSchNetTask
from deepatoms.train.tasks.property import PropertyTask
from deepatoms.train.tasks.regressors import LatentRegressorTask

__all__ = ["TASKS", "task_class"]

#: Task name → Lightning task class.
TASKS: dict[str, type[TrainingTask]] = {
    "property": PropertyTask,
    "gschnet": GSchNetTask,
    "grammar_vae": GrammarVAETask,
    "latent_regressors": LatentRegressorTask,
    "density_vae": DensityVAETask,
}


def task_class(name: str) -> type[TrainingTask]:
    """The task class called ``name``."""
    try:
        return TASKS[name]
    except KeyError:
        raise ConfigError(f"no training task {name!r}; tasks: {', '.join(TASKS)}") from None
