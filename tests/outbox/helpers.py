"""Shared helpers for the outbox tests: a hand-driven clock, opening an outbox, reading its file directly."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from agent.outbox import Outbox, Priority, Record

VEHICLE = "bus-tdc-01"
BOOT = "boot-a"


class FakeClock:
    """Monotonic seconds that only move when a test says so."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def open_outbox(path: Path, clock: FakeClock | None = None, *, boot_id: str = BOOT, **options: Any) -> Outbox:
    return Outbox.open(path, vehicle_id=VEHICLE, boot_id=boot_id, clock=clock or FakeClock(), **options)


def put(outbox: Outbox, stream: str, index: int, priority: Priority = "normal", **extra: Any) -> Record:
    """Append a small payload whose ``i`` field identifies it."""
    return outbox.append(
        stream,
        {"i": index, **extra},
        priority=priority,
        mono=100.0 + index,
        wall=1_000.0 + index,
        wall_source="unsynced",
    )


def query(path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Read the outbox file through a separate connection, as an inspector would."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def seqs(records: list[Record], stream: str) -> list[int]:
    return [r.seq for r in records if r.stream == stream]
