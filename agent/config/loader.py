"""Turn a parsed TOML table into frozen dataclasses, collecting every error with its key path.

The schema is the dataclasses themselves: field types say what a value may be, field defaults
say whether a key is optional, and ``check`` metadata adds range or format rules. Unknown keys
are errors (a typo in a config must not silently fall back to a default).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

T = TypeVar("T")
Check = Callable[[Any], "str | None"]


class ConfigError(Exception):
    """A configuration file is invalid; ``errors`` holds one ``file:key: problem`` line each."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


def setting(default: Any = dataclasses.MISSING, *, check: Check | None = None, doc: str = "") -> Any:
    """Declare a config field with an optional validity check (returns a message or None)."""
    meta = {"check": check, "doc": doc}
    if default is dataclasses.MISSING:
        return dataclasses.field(metadata=meta)
    if isinstance(default, (list, dict, set)):
        raise TypeError("mutable defaults are not allowed in config dataclasses")
    return dataclasses.field(default=default, metadata=meta)


def in_range(lo: float | None = None, hi: float | None = None) -> Check:
    """A check that a number lies within [lo, hi]."""

    def check(value: Any) -> str | None:
        if lo is not None and value < lo:
            return f"must be at least {lo}, got {value!r}"
        if hi is not None and value > hi:
            return f"must be at most {hi}, got {value!r}"
        return None

    return check


def _run_check(check: Check, value: Any) -> str | None:
    """A check's verdict; a check that cannot even parse the value (urlsplit on "http://[::1") is a no."""
    try:
        return check(value)
    except ValueError as exc:
        return f"cannot be parsed ({exc}): {value!r}"


class _Builder:
    """Walks one TOML document; accumulates errors instead of stopping at the first."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.errors: list[str] = []

    def error(self, path: str, message: str) -> None:
        self.errors.append(f"{self.source}:{path}: {message}")

    def build(self, cls: type[T], data: Any, path: str) -> T | None:
        if not isinstance(data, dict):
            self.error(path or "(top)", f"must be a table, got {_describe(data)}")
            return None
        hints = get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        for key in data:
            if key not in fields:
                known = ", ".join(sorted(fields)) or "(none)"
                self.error(_join(path, key), f"unknown key (known keys here: {known})")
        values: dict[str, Any] = {}
        ok = True
        for name, field in fields.items():
            where = _join(path, name)
            if name not in data:
                if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                    self.error(where, "missing (this key is required)")
                    ok = False
                continue
            value, good = self.convert(hints[name], data[name], where)
            check: Check | None = field.metadata.get("check")
            if good and check is not None and value is not None:
                problem = _run_check(check, value)
                if problem:
                    self.error(where, problem)
                    good = False
            ok = ok and good
            values[name] = value
        if not ok:
            return None
        try:
            return cls(**values)
        except ValueError as exc:  # cross-field rules live in __post_init__
            self.error(path or "(top)", str(exc))
            return None

    def convert(self, tp: Any, value: Any, path: str) -> tuple[Any, bool]:
        origin = get_origin(tp)
        if origin in (Union, types.UnionType):
            options = [a for a in get_args(tp) if a is not type(None)]
            if len(options) != 1:
                raise TypeError(f"unsupported union {tp}")
            return self.convert(options[0], value, path)
        if origin is typing.Literal:
            allowed = get_args(tp)
            if value in allowed:
                return value, True
            self.error(path, f"must be one of {', '.join(repr(a) for a in allowed)}, got {value!r}")
            return None, False
        if origin is tuple:
            return self.convert_tuple(get_args(tp)[0], value, path)
        if dataclasses.is_dataclass(tp):
            built = self.build(tp, value, path)  # type: ignore[arg-type]
            return built, built is not None
        return self.convert_scalar(tp, value, path)

    def convert_tuple(self, item_tp: Any, value: Any, path: str) -> tuple[Any, bool]:
        if not isinstance(value, list):
            self.error(path, f"must be a list, got {_describe(value)}")
            return None, False
        items = []
        ok = True
        for i, item in enumerate(value):
            converted, good = self.convert(item_tp, item, f"{path}[{i}]")
            items.append(converted)
            ok = ok and good
        return tuple(items), ok

    def convert_scalar(self, tp: Any, value: Any, path: str) -> tuple[Any, bool]:
        # bool is an int in Python; a config that says `port = true` is still wrong.
        if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):  # TOML allows nan and inf; no setting means either
                self.error(path, f"must be a finite number, got {value!r}")
                return None, False
            return float(value), True
        if tp in (int, str, bool) and type(value) is tp:
            return value, True
        self.error(path, f"must be {_TYPE_WORDS.get(tp, tp)}, got {_describe(value)}")
        return None, False


_TYPE_WORDS = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def build(cls: type[T], data: dict[str, Any], source: str) -> T:
    """Build ``cls`` from ``data`` or raise ConfigError listing every problem."""
    builder = _Builder(source)
    result = builder.build(cls, data, "")
    if builder.errors or result is None:
        raise ConfigError(builder.errors or [f"{source}: invalid configuration"])
    return result
