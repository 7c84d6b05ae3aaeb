"""Where the runtime's records go: the outbox, with a bounded memory queue when the disk refuses.

A full or failing data partition must not lose the records of the moment nor stop the device
pollers: a record the outbox refuses waits here, in order, and is written first on the next
append that succeeds. Only when that queue is full is the oldest low-priority record given up
(counted, and logged). Also keeps the last stop visits for ``agentctl stops``.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from agent.core.timebase import TimeStamp
from agent.outbox import Outbox, OutboxError, Priority

log = structlog.get_logger(__name__)

#: Records held in memory while the outbox refuses writes (about 10 minutes of every stream).
MEMORY_LIMIT = 5000

#: Streams the cap may thin: a second-by-second position is worth less than an event or a visit.
LOW_PRIORITY = {"telemetry/gps", "telemetry/system"}


def priority_of(stream: str) -> Priority:
    return "low" if stream in LOW_PRIORITY else "normal"


class RecordSink:
    """``sink(stream, payload)`` for the runtime: stamped and appended, or held until the disk is back."""

    def __init__(self, outbox: Outbox, stamp: Callable[[], TimeStamp]) -> None:
        self.outbox = outbox
        self.stamp = stamp
        self._held: collections.deque[tuple[str, dict[str, Any], TimeStamp]] = collections.deque()
        self.given_up = 0
        self.last_error: str | None = None
        self._lock = threading.Lock()

    @property
    def held(self) -> int:
        return len(self._held)

    def __call__(self, stream: str, payload: dict[str, Any]) -> None:
        with self._lock:
            record = (stream, payload, self.stamp())
            if self._held:  # keep the order: what waits goes first
                self._held.append(record)
                self._flush()
            elif not self._write(*record):
                self._held.append(record)
            self._bound()

    def retime(
        self, stamp: Callable[[TimeStamp], TimeStamp], payload: Callable[[dict[str, Any]], bool]
    ) -> None:
        """True time arrived: records waiting for the disk get it too (the outbox re-times its own)."""
        with self._lock:
            for _, body, _ in self._held:
                payload(body)
            self._held = collections.deque((s, body, stamp(t)) for s, body, t in self._held)

    def flush(self) -> int:
        """Try to write what is held (on shutdown, or when the disk came back); returns what is left."""
        with self._lock:
            self._flush()
            return len(self._held)

    def _flush(self) -> None:
        while self._held and self._write(*self._held[0]):
            self._held.popleft()

    def _write(self, stream: str, payload: dict[str, Any], stamp: TimeStamp) -> bool:
        """True when the record is in the outbox (or can never be, and was counted as given up)."""
        try:
            self.outbox.append(
                stream, payload, priority=priority_of(stream), mono=stamp.mono, wall=stamp.wall,
                wall_source=stamp.source,
            )  # fmt: skip
        except ValueError as exc:  # a payload the outbox can never take: a bug, not the disk
            self.given_up += 1
            log.error("sink.record_rejected", stream=stream, error=str(exc))
            return True
        except OutboxError as exc:
            if self.last_error is None:
                log.error("sink.outbox_refused", error=str(exc), held=len(self._held))
            self.last_error = str(exc)
            return False
        if self.last_error is not None:
            log.info("sink.outbox_back", error_was=self.last_error)
            self.last_error = None
        return True

    def _bound(self) -> None:
        while len(self._held) > MEMORY_LIMIT:
            victim = next((r for r in self._held if priority_of(r[0]) == "low"), self._held[0])
            self._held.remove(victim)
            self.given_up += 1
            if self.given_up == 1 or self.given_up % 1000 == 0:
                log.error("sink.records_given_up", total=self.given_up, stream=victim[0])


class RecentStops:
    """The last ``limit`` stop visits, newest first, kept in a small JSON file across restarts."""

    def __init__(self, path: Path, limit: int = 50) -> None:
        self.path = path
        self.limit = limit
        self._visits: list[dict[str, Any]] = self._load()
        self._lock = threading.Lock()

    def _load(self) -> list[dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            log.warning("recent_stops.unreadable", path=str(self.path), error=str(exc))
            return []
        return [v for v in data if isinstance(v, dict)][: self.limit] if isinstance(data, list) else []

    def add(self, visit: dict[str, Any]) -> None:
        with self._lock:
            self._visits = [visit, *self._visits][: self.limit]
            self._save()

    def latest(self, limit: int) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._visits[:limit])

    def _save(self) -> None:
        # The visit itself is safe in the outbox; this copy only serves agentctl, so a failed write is
        # logged and the list stays in memory.
        tmp = self.path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps(self._visits), encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("recent_stops.not_saved", path=str(self.path), error=str(exc))
            with contextlib.suppress(OSError):
                tmp.unlink()
