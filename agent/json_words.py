"""Reading figures out of the daemon's JSON answers, and wording them, for agentctl's screens.

The status object, stop visits and probe records arrive as plain JSON; a field may be null, absent
or (from a newer or broken daemon) of another type. These helpers turn anything unexpected into
"not known" instead of an exception, so one odd field never hides the rest of the screen.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent.render import format_duration


def number(value: Any) -> float | None:
    """A number from a JSON document; None for null or anything else (a bool is not a figure)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def table(value: Any) -> Mapping[str, Any]:
    """A JSON object, or an empty one for null or anything else."""
    return value if isinstance(value, dict) else {}


def figure(value: Any, fmt: str, scale: float = 1.0) -> str | None:
    """``fmt`` filled with the number times ``scale``, or None when there is no number."""
    found = number(value)
    return None if found is None else fmt.format(found * scale)


def age(seconds: float | None) -> str:
    """ "12 s", "5m 00s", "1h 30m", "2d 3h"."""
    if seconds is None:
        return "an unknown time"
    return f"{seconds:.0f} s" if seconds < 60 else format_duration(seconds)


def share(part: float, whole: float) -> str:
    return f"{part / whole * 100:.0f} %"


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'s' * (count != 1)}"
