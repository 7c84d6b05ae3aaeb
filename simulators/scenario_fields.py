"""Reading the values of a scenario file: typed, range-checked, times resolved, every problem kept.

:class:`Fields` walks one TOML document for :mod:`simulators.scenario`. Each reader returns the
value or None and records ``file:key: what is wrong`` instead of raising, so that one run of the
parser lists every mistake of the file, not only the first.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Collection
from typing import Any

#: Marks a key without default: absent means "missing (this key is required)".
REQUIRED: Any = object()

_CLOCK_RE = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?")


def describe(value: Any) -> str:
    """How a wrong value is named in a message: its TOML kind, or its Python type and repr."""
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"


def join(path: str, key: str) -> str:
    """``stops[2]`` + ``arrive`` -> ``stops[2].arrive``."""
    return f"{path}.{key}" if path else key


def clock_text(day_s: float) -> str:
    """Seconds since local midnight as the file writes them: ``09:05``, or ``09:05:30`` with seconds."""
    whole = round(day_s)
    hours, rest = divmod(whole, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours:02d}:{minutes:02d}" + (f":{seconds:02d}" if seconds else "")


def duration_text(seconds: float) -> str:
    """``14 min 26 s``, ``1 h 02 min``, ``45 s``: a travel time a planner reads at a glance."""
    whole = math.ceil(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s" if secs else f"{minutes} min"
    return f"{secs} s"


class Fields:
    """Collects ``source:path: problem`` lines while reading values out of TOML tables."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.errors: list[str] = []

    def error(self, path: str, message: str) -> None:
        self.errors.append(f"{self.source}:{path}: {message}")

    def table(self, raw: Any, path: str, known: Collection[str]) -> dict[str, Any] | None:
        """``raw`` when it is a table; every key not in ``known`` is reported (a typo must not pass)."""
        if not isinstance(raw, dict):
            self.error(path or "(top)", f"must be a table, got {describe(raw)}")
            return None
        for key in raw:
            if key not in known:
                self.error(join(path, key), f"unknown key (known keys here: {', '.join(sorted(known))})")
        return raw

    def tables(self, raw: Any, path: str) -> list[Any]:
        """An array of tables (``[[stops]]``); absent is an empty list."""
        if raw is None:
            return []
        if not isinstance(raw, list):
            self.error(path, f"must be a list of tables, got {describe(raw)}")
            return []
        return raw

    def _present(self, raw: dict[str, Any], key: str, path: str, default: Any) -> tuple[bool, Any]:
        """(True, value) when the key is there; else (False, default), reporting a missing required key."""
        if key in raw:
            return True, raw[key]
        if default is REQUIRED:
            self.error(join(path, key), "missing (this key is required)")
            return False, None
        return False, default

    def number(
        self,
        raw: dict[str, Any],
        key: str,
        path: str,
        *,
        lo: float,
        hi: float,
        default: Any = REQUIRED,
        lo_open: bool = False,
    ) -> float | None:
        """A finite number within [lo, hi] (or (lo, hi] with ``lo_open``)."""
        present, value = self._present(raw, key, path, default)
        if not present:
            return value if value is None else float(value)
        where = join(path, key)
        # bool is an int in Python, but `lat = true` is still a mistake; TOML also allows nan and inf.
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            self.error(where, f"must be a number, got {describe(value)}")
            return None
        if lo_open and value <= lo:
            self.error(where, f"must be more than {lo:g}, got {value!r}")
            return None
        if not lo <= value <= hi:
            self.error(where, f"must be between {lo:g} and {hi:g}, got {value!r}")
            return None
        return float(value)

    def text(self, raw: dict[str, Any], key: str, path: str, *, default: Any = REQUIRED) -> str | None:
        """A non-empty string, without its surrounding blanks."""
        present, value = self._present(raw, key, path, default)
        if not present:
            return value  # type: ignore[no-any-return]
        where = join(path, key)
        if not isinstance(value, str) or not value.strip():
            self.error(where, f"must be a non-empty string, got {describe(value)}")
            return None
        return value.strip()

    def choice(
        self, raw: dict[str, Any], key: str, path: str, allowed: tuple[str, ...], *, default: Any = REQUIRED
    ) -> str | None:
        """One of ``allowed`` (exact spelling)."""
        present, value = self._present(raw, key, path, default)
        if not present:
            return value  # type: ignore[no-any-return]
        if value not in allowed:
            self.error(join(path, key), f"must be one of {', '.join(allowed)}, got {describe(value)}")
            return None
        return str(value)

    def flag(self, raw: dict[str, Any], key: str, path: str, *, default: bool) -> bool | None:
        """true or false."""
        value = raw.get(key, default)
        if not isinstance(value, bool):
            self.error(join(path, key), f"must be true or false, got {describe(value)}")
            return None
        return value

    def start(self, raw: dict[str, Any], key: str, path: str) -> dt.datetime | None:
        """An ISO 8601 date and time with its UTC offset, as a string or a TOML offset date-time."""
        present, value = self._present(raw, key, path, REQUIRED)
        if not present:
            return None
        where = join(path, key)
        if isinstance(value, str):
            try:
                value = dt.datetime.fromisoformat(value)
            except ValueError:
                self.error(where, f'"{raw[key]}" is not a date and time like "2026-03-02T07:45:00+01:00"')
                return None
        if not isinstance(value, dt.datetime):
            self.error(
                where, f'must be a date and time like "2026-03-02T07:45:00+01:00", got {describe(value)}'
            )
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            self.error(where, f'"{raw[key]}" has no UTC offset: write it like "2026-03-02T07:45:00+01:00"')
            return None
        return value

    def day_time(self, raw: dict[str, Any], key: str, path: str) -> float | None:
        """A local time "HH:MM" or "HH:MM:SS" (or a TOML local time) as seconds since midnight."""
        present, value = self._present(raw, key, path, REQUIRED)
        if not present:
            return None
        where = join(path, key)
        if isinstance(value, dt.time) and value.tzinfo is None:
            return value.hour * 3600.0 + value.minute * 60.0 + value.second
        if not isinstance(value, str):
            self.error(where, f'must be a time "HH:MM", got {describe(value)}')
            return None
        match = _CLOCK_RE.fullmatch(value.strip())
        if match is None:
            self.error(where, f'"{value}" is not a time HH:MM')
            return None
        hours, minutes, seconds = (int(part) if part else 0 for part in match.groups())
        if hours > 23 or minutes > 59 or seconds > 59:
            self.error(where, f'"{value}" is not a time HH:MM')
            return None
        return hours * 3600.0 + minutes * 60.0 + seconds
