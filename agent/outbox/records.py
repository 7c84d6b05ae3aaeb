"""The outbox's value types: records, statistics, priorities and errors, with their row encodings."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from typing import Any, Literal

Priority = Literal["low", "normal", "high"]
State = Literal["pending", "sent"]

#: Stored as small integers so that a partial index can pick out the low-priority rows.
PRIORITY_CODES: dict[Priority, int] = {"low": 0, "normal": 1, "high": 2}
PRIORITY_NAMES: dict[int, Priority] = {code: name for name, code in PRIORITY_CODES.items()}
STATE_PENDING = 0
STATE_SENT = 1

#: What one row costs besides its text columns: the fixed columns, the b-tree cell headers and the
#: entries in the indexes. Measured with GPS fixes: the file is ~1.15x the logical count while
#: nothing is thinned, up to ~2.4x after a long thinning (half-empty pages; docs/reliability.md).
ROW_OVERHEAD_BYTES = 96


class OutboxError(Exception):
    """The outbox cannot do what was asked; the message names the database file."""


class UnreadableRow(ValueError):
    """A stored row cannot be turned back into a Record (payload not UTF-8, not a JSON object)."""


class OutboxFull(OutboxError):
    """The disk (or the configured ``max_file_bytes``) is full: the record was NOT stored."""


@dataclasses.dataclass(frozen=True)
class Record:
    """One stored message: ``msg_id`` is what the collector deduplicates on; ``id`` is the row key."""

    stream: str
    seq: int
    msg_id: str
    priority: Priority
    payload: dict[str, Any]
    mono: float
    wall: float
    wall_source: str
    boot_id: str
    state: State
    sent_at: float | None
    id: int


@dataclasses.dataclass(frozen=True)
class StreamStats:
    """One stream's counters; ``next_seq`` is the seq the next append gets, ``acked_seq`` the collector's."""

    next_seq: int
    acked_seq: int
    dropped: int
    pending: int
    sent_unacked: int
    bytes_used: int


@dataclasses.dataclass(frozen=True)
class OutboxStats:
    """What ``agentctl status`` needs to answer "how much is waiting, since when, was anything lost?"."""

    pending: int
    sent_unacked: int
    bytes_used: int
    cap_bytes: int
    file_bytes: int
    over_cap: bool
    oldest_pending_age_s: float | None
    dropped_total: int
    epoch: str
    streams: Mapping[str, StreamStats]


def msg_id(vehicle_id: str, boot_id: str, stream: str, seq: int) -> str:
    return f"{vehicle_id}/{boot_id}/{stream}/{seq}"


def encode_payload(payload: Mapping[str, Any]) -> str:
    """Compact JSON; NaN/Infinity are refused because the collector's JSON parser would refuse them too."""
    try:
        return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"payload is not JSON-serialisable: {exc}") from exc


def row_size(stream: str, payload_json: str, boot_id: str) -> int:
    """The logical bytes a row counts against the cap: its variable text plus a fixed overhead.

    ``wall_source`` is left out (it is a few bytes inside the overhead) so that re-timing a record
    never changes what it counts.
    """
    return len(payload_json.encode()) + len(stream) + len(boot_id) + ROW_OVERHEAD_BYTES


def check_stream(stream: str) -> None:
    """A stream becomes part of an MQTT topic: no wildcards, no empty levels, no NUL."""
    levels = stream.split("/")
    if not stream or any(not level for level in levels) or any(c in stream for c in "+#\x00"):
        raise ValueError(
            f"bad stream name {stream!r}: want e.g. 'telemetry/gps' (no wildcards or empty levels)"
        )


def check_times(mono: float, wall: float) -> None:
    if not (math.isfinite(mono) and math.isfinite(wall)):
        raise ValueError(f"record times must be finite (mono={mono!r}, wall={wall!r})")


def record_from_row(row: tuple[Any, ...], vehicle_id: str) -> Record:
    """A Record from a row of the columns Record has, ``id`` first (see queries.py)."""
    row_id, stream, seq, priority, payload, mono, wall, wall_source, boot_id, state, sent_at = row
    try:
        text = payload.decode() if isinstance(payload, bytes) else str(payload)
        body = json.loads(text)
        level = PRIORITY_NAMES[priority]
    except (ValueError, KeyError) as exc:  # UnicodeDecodeError and JSONDecodeError are both ValueErrors
        raise UnreadableRow(f"row {row_id} ({stream} seq {seq}): payload unreadable: {exc}") from exc
    if not isinstance(body, dict):
        raise UnreadableRow(f"row {row_id} ({stream} seq {seq}): payload is not a JSON object")
    return Record(
        stream=stream,
        seq=seq,
        msg_id=msg_id(vehicle_id, boot_id, stream, seq),
        priority=level,
        payload=body,
        mono=mono,
        wall=wall,
        wall_source=wall_source,
        boot_id=boot_id,
        state="sent" if state == STATE_SENT else "pending",
        sent_at=sent_at,
        id=row_id,
    )
