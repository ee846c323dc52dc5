"""A declarative schema for configs: defaults, allowed values and which keys may change on resume.

A :class:`Schema` maps section names to :class:`Field` objects (or nested schemas). It gives the
defaults of a config (:meth:`Schema.defaults`), merges a partial config over them
(:meth:`Schema.resolve`) and checks every key and value: an unknown key or a bad value raises
:class:`~deepatoms.core.errors.ConfigError` naming the key, the value and what is allowed.

A field marked ``resumable`` does not change what a run computes (a stopping limit, a thread
count), so a run may be resumed with another value of it.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from deepatoms.core.errors import ConfigError

__all__ = [
    "Field",
    "Schema",
    "choice",
    "config_diff",
    "count_or_fraction",
    "flag",
    "free",
    "integer",
    "merge",
    "number",
    "numbers",
    "text",
]


@dataclass(frozen=True)
class Field:
    """One config value: its default and how to check it.

    ``kind``: ``number``, ``integer``, ``flag``, ``choice``, ``text``, ``numbers`` (a list of
    numbers), ``count_or_fraction`` (a count ≥ 1 or a fraction in (0, 1)) or ``free`` (anything).
    ``low``/``high``: bounds of numbers (``low_open``: the lower bound is excluded);
    ``choices``: the allowed values of a ``choice``; ``nullable``: None is allowed too.
    """

    default: Any
    kind: str
    choices: tuple = ()
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    nullable: bool = False
    resumable: bool = False
    doc: str = ""

    def check(self, value: Any, key: str) -> Any:
        """The checked (and, for numbers given as text or ints, converted) value."""
        if value is None:
            if self.nullable:
                return None
            raise ConfigError(f"{key}: a value is required, got null; {self.allowed()}")
        check = _CHECKS.get(self.kind)
        if check is None:
            raise ValueError(f"unknown field kind {self.kind!r} for {key}")
        return check(self, value, key)

    def allowed(self) -> str:
        """What this field accepts, in words."""
        if self.kind == "choice":
            text = "one of " + ", ".join(repr(c) for c in self.choices)
        elif self.kind in ("number", "integer", "numbers"):
            what = {
                "number": "a number",
                "integer": "a whole number",
                "numbers": "a list of numbers",
            }
            text = what[self.kind] + _bounds(self)
        elif self.kind == "count_or_fraction":
            text = "a count (whole number ≥ 1) or a fraction in (0, 1)"
        elif self.kind == "flag":
            text = "true or false"
        elif self.kind == "text":
            text = "a text value"
        else:
            text = "any value"
        return "expected " + text + (" or null" if self.nullable else "")


def _bounds(f: Field) -> str:
    parts = []
    if f.low is not None:
        parts.append(f"{'>' if f.low_open else '≥'} {f.low:g}")
    if f.high is not None:
        parts.append(f"≤ {f.high:g}")
    return (" " + " and ".join(parts)) if parts else ""


def _as_number(f: Field, value: Any, key: str) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"{key}: {value!r} is not a number; {f.allowed()}")
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ConfigError(f"{key}: {value!r} is not a number; {f.allowed()}") from None
    if not isinstance(value, (int, float)) or (isinstance(value, float) and math.isnan(value)):
        raise ConfigError(f"{key}: {value!r} is not a number; {f.allowed()}")
    too_low = f.low is not None and (value <= f.low if f.low_open else value < f.low)
    if too_low or (f.high is not None and value > f.high):
        raise ConfigError(f"{key}: {value!r} is out of range; {f.allowed()}")
    return value


def _check_number(f: Field, value: Any, key: str) -> float | int:
    v = _as_number(f, value, key)
    return v if isinstance(v, int) else float(v)


def _check_integer(f: Field, value: Any, key: str) -> int:
    v = _as_number(f, value, key)
    if isinstance(v, float) and (not math.isfinite(v) or v != int(v)):
        raise ConfigError(f"{key}: {value!r} is not a whole number; {f.allowed()}")
    return int(v)


def _check_numbers(f: Field, value: Any, key: str) -> list:
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{key}: {value!r} is not a list; {f.allowed()}")
    return [_check_number(f, v, f"{key}[{i}]") for i, v in enumerate(value)]


def _check_flag(f: Field, value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{key}: {value!r} is not true or false")
    return value


def _check_choice(f: Field, value: Any, key: str) -> Any:
    if value not in f.choices and str(value) in f.choices:  # YAML reads 32 as a number
        return str(value)
    if value not in f.choices:
        raise ConfigError(f"{key}: {value!r} is not allowed; {f.allowed()}")
    return value


def _check_text(f: Field, value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{key}: {value!r} is not a text value")
    return value


def _check_count_or_fraction(f: Field, value: Any, key: str) -> int | float:
    v = _as_number(f, value, key)
    if 0 < v < 1:
        return float(v)
    if v >= 1 and float(v) == int(v):
        return int(v)
    if v == 0:
        return 0
    raise ConfigError(f"{key}: {value!r} is neither a count nor a fraction; {f.allowed()}")


_CHECKS: dict[str, Callable[[Field, Any, str], Any]] = {
    "number": _check_number,
    "integer": _check_integer,
    "numbers": _check_numbers,
    "flag": _check_flag,
    "choice": _check_choice,
    "text": _check_text,
    "count_or_fraction": _check_count_or_fraction,
    "free": lambda f, v, k: v,
}


# -- constructors -------------------------------------------------------------------------------
def number(
    default: float | None, low: float | None = None, high: float | None = None, *,
    low_open: bool = False, nullable: bool = False, resumable: bool = False, doc: str = "",
) -> Field:  # fmt: skip
    """A real number within [low, high] (``low_open``: excluding low)."""
    return Field(default, "number", low=low, high=high, low_open=low_open,
                 nullable=nullable or default is None, resumable=resumable, doc=doc)  # fmt: skip


def integer(default: int | None, low: int | None = None, high: int | None = None, *,
            nullable: bool = False, resumable: bool = False, doc: str = "") -> Field:  # fmt: skip
    """A whole number within [low, high]."""
    return Field(default, "integer", low=low, high=high, nullable=nullable or default is None,
                 resumable=resumable, doc=doc)  # fmt: skip


def numbers(default: list | None, low: float | None = None, *, nullable: bool = False,
            doc: str = "") -> Field:  # fmt: skip
    """A list of numbers, each ≥ ``low``."""
    return Field(default, "numbers", low=low, nullable=nullable or default is None, doc=doc)


def flag(default: bool, *, doc: str = "") -> Field:
    """True or false."""
    return Field(default, "flag", doc=doc)


def choice(default: Any, *choices: Any, nullable: bool = False, resumable: bool = False,
           doc: str = "") -> Field:  # fmt: skip
    """One of ``choices`` (the default among them)."""
    return Field(default, "choice", choices=tuple(choices), nullable=nullable,
                 resumable=resumable, doc=doc)  # fmt: skip


def text(default: str | None, *, nullable: bool = True, doc: str = "") -> Field:
    """Any text (a name, a path)."""
    return Field(default, "text", nullable=nullable, doc=doc)


def count_or_fraction(default: int | float | None, *, nullable: bool = True,
                      doc: str = "") -> Field:  # fmt: skip
    """A number of systems, or a fraction of them."""
    return Field(default, "count_or_fraction", nullable=nullable, doc=doc)


def free(default: Any, *, resumable: bool = False, doc: str = "") -> Field:
    """Any value (checked where it is used)."""
    return Field(default, "free", nullable=True, resumable=resumable, doc=doc)


# -- schema ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Schema:
    """Named fields and sub-schemas. ``open``: keys not listed are allowed (checked elsewhere,
    e.g. a model section, whose keys the model builder checks)."""

    fields: Mapping[str, Field | Schema] = field(default_factory=dict)
    open: bool = False

    def defaults(self) -> dict:
        """The default config of this schema (a new dict)."""
        return {
            k: v.defaults() if isinstance(v, Schema) else copy.deepcopy(v.default)
            for k, v in self.fields.items()
        }

    def resolve(self, config: Mapping | None, where: str = "") -> dict:
        """``config`` merged over the defaults, every key and value checked."""
        return self.check(merge(self.defaults(), config or {}), where)

    def check(self, config: Mapping, where: str = "") -> dict:
        """A checked copy of a complete ``config`` (ConfigError on the first problem)."""
        if not isinstance(config, Mapping):
            raise ConfigError(f"{where or 'the config'} must be a mapping of keys to values")
        out = {}
        for key, value in config.items():
            path = f"{where}{key}"
            spec = self.fields.get(key)
            if spec is None:
                if self.open:
                    out[key] = copy.deepcopy(value)
                    continue
                known = ", ".join(sorted(self.fields)) or "none"
                raise ConfigError(f"unknown key {path}; known keys here: {known}")
            if isinstance(spec, Schema):
                if not isinstance(value, Mapping):
                    raise ConfigError(f"{path} is a section; give its keys, e.g. {path}.KEY=VALUE")
                out[key] = spec.check(value, f"{path}.")
            else:
                out[key] = spec.check(value, path)
        return out

    def resumable_keys(self, prefix: str = "") -> set[str]:
        """Dotted keys whose value may change when a run is resumed."""
        keys = set()
        for k, v in self.fields.items():
            if isinstance(v, Schema):
                keys |= v.resumable_keys(f"{prefix}{k}.")
            elif v.resumable:
                keys.add(f"{prefix}{k}")
        return keys

    def field(self, dotted: str) -> Field | Schema | None:
        """The field or sub-schema at ``section.key`` (None if there is none)."""
        node: Field | Schema | None = self
        for part in dotted.split("."):
            if not isinstance(node, Schema):
                return None
            node = node.fields.get(part)
        return node

    def extend(self, **fields: Field | Schema) -> Schema:
        """This schema with more (or replaced) fields."""
        return Schema({**self.fields, **fields}, self.open)


def merge(base: Mapping, update: Mapping) -> dict:
    """Deep merge: ``update``'s values over ``base``; nested mappings are merged key by key."""
    out = copy.deepcopy(dict(base))
    for k, v in update.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping) and out[k]:
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def config_diff(
    saved: Mapping, now: Mapping, ignore: Iterable[str] = (), prefix: str = ""
) -> list[str]:
    """Lines ``key: saved vs now`` for every differing (nested) value, keys sorted; dotted keys
    in ``ignore`` (e.g. ``train.max_epochs``) are skipped."""
    ignore = set(ignore)
    out = []
    for k in sorted(set(saved) | set(now), key=str):
        a, b = saved.get(k), now.get(k)
        if f"{prefix}{k}" in ignore:
            continue
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out += config_diff(a, b, ignore, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}: {a!r} (saved) vs {b!r} (now)")
    return out
