"""structlog setup: JSON lines under systemd or when piped, readable console lines on a TTY."""

from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

import structlog

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def wants_json(stream: TextIO) -> bool:
    """JSON when journald reads us (JOURNAL_STREAM is set) or when nobody is watching a TTY."""
    if os.environ.get("JOURNAL_STREAM"):
        return True
    return not stream.isatty()


def setup_logging(level: str = "info", stream: TextIO | None = None) -> None:
    """Configure structlog once for this process; safe to call again (e.g. after a reload)."""
    out = stream if stream is not None else sys.stderr
    renderer: structlog.types.Processor
    if wants_json(out):
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=True)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS.get(level, logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
