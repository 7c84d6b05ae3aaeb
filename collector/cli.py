"""busagent-collector: subscribe and store, stats, and per-stop maps (built in later releases)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Entry point; the collector commands are not implemented yet."""
    del argv
    print("busagent-collector: not implemented yet", file=sys.stderr)
    return 2
