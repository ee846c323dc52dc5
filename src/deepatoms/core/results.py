"""Results of the library functions: a dict whose keys are also attributes.

Every workflow (``deepatoms.fit``, ``deepatoms.evaluate``, ...) returns a :class:`Result`
subclass: ``res.mae`` and ``res["mae"]`` are the same value, ``dict(res)`` is what the command
line prints as ``--json``, and the subclass's docstring lists the keys with their units.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Result"]


class Result(dict):
    """A result: a dict with attribute access to its keys (see the subclass for the keys)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(
                f"{type(self).__name__} has no {name!r}; keys: {', '.join(self)}"
            ) from None

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *self})

    def __repr__(self) -> str:
        return f"{type(self).__name__}({dict.__repr__(self)})"
