"""Logging: JSON lines when journald or a pipe reads us, readable lines on a terminal."""

from __future__ import annotations

import io
import json
import os
import pty

import pytest
import structlog

from agent.logs import setup_logging, wants_json


def test_piped_output_is_one_json_object_per_event() -> None:
    stream = io.StringIO()
    setup_logging("info", stream)
    structlog.get_logger("t").info("stop.arrived", stop="La Poste", rsrp_dbm=-97)
    structlog.get_logger("t").debug("hidden.below.level")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["event"] == "stop.arrived"
    assert record["stop"] == "La Poste"
    assert record["level"] == "info"
    assert record["timestamp"].endswith("Z")


def test_terminal_gets_console_lines_unless_journald_reads_us(monkeypatch: pytest.MonkeyPatch) -> None:
    master, slave = pty.openpty()
    try:
        with os.fdopen(slave, "w", closefd=False) as tty_stream:
            monkeypatch.delenv("JOURNAL_STREAM", raising=False)
            assert not wants_json(tty_stream)
            monkeypatch.setenv("JOURNAL_STREAM", "8:12345")
            assert wants_json(tty_stream)
    finally:
        os.close(master)
        os.close(slave)
