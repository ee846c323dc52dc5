"""The one training protocol (:func:`fit`) and the task of every model family."""

from deepatoms.train.protocol import TrainResult, fit

__all__ = ["TrainResult", "fit"]
