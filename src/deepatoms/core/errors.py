"""Error types with messages meant for the user: what was wrong, where, and how to fix it.

The command line turns these (and ``ValueError``/``FileNotFoundError`` in general) into one
``error: …`` line and exit status 2.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DeepatomsError",
    "MissingFileError",
    "MissingModelFileError",
    "ModelFileError",
]


class DeepatomsError(ValueError):
    """A problem with the user's input that the message explains."""


class ConfigError(DeepatomsError):
    """A configuration value or key is wrong; the message says which and how to fix it."""


class ModelFileError(DeepatomsError):
    """A model file is missing, of another kind, too new, truncated or not safe to load."""


class MissingFileError(FileNotFoundError, DeepatomsError):
    """A file the user named does not exist (also a ``FileNotFoundError``)."""


class MissingModelFileError(MissingFileError, ModelFileError):
    """A model file or run folder the user named does not exist or holds no model yet."""
