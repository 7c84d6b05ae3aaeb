"""Reliability tests: a short version runs in `make test`, the long one in `make soak`.

`make soak` sets BUSAGENT_SOAK=1; each test takes its sizes from :func:`scale` so both versions
run the same code with different figures, and prints its figures (pytest -s shows them).
"""

from __future__ import annotations

import os

SOAK = os.environ.get("BUSAGENT_SOAK") == "1"


def scale(short: int, soak: int) -> int:
    """``short`` in `make test`, ``soak`` in `make soak`."""
    return soak if SOAK else short


def report(name: str, **figures: object) -> None:
    """One line of figures, prefixed so `make soak` can collect them for docs/reliability.md."""
    text = " ".join(f"{key}={value}" for key, value in figures.items())
    print(f"\nFIGURES {name}: {text}", flush=True)
