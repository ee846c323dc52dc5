"""Results of the library functions: a dict whose keys are also attributes.

Every workflow (``deepatoms.fit``, ``deepatoms.evaluate``, ...) returns a :class:`Result`
subclass: ``res.mae`` and ``res["mae"]`` are the same value, ``dict(res)`` is what the command
line prints as ``--json``, and the subclass's docstring lists the keys with their units.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Result"]


class Result(dict):
    """A result: a dict with attribute access to its keys (see the subclass for the keys).

    A key may not be the name of a dict method (``values``, ``items``…): the attribute would be
    the method, not the value.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        clash = sorted(k for k in self if isinstance(k, str) and hasattr(dict, k))
        if clash:
            raise ValueError(
                f"{type(self).__name__}: keys {clash} shadow dict methods; rename them"
            )

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
