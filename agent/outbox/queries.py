"""Read-side queries of the outbox, each pinned to the partial index that keeps it O(rows returned)."""

from __future__ import annotations

import sqlite3
from collections.abc import Collection
from typing import Any

from agent.outbox.records import StreamStats

Row = tuple[Any, ...]

# The column lists are spelled out (in record_from_row's order) rather than formatted in, so every
# statement here is a constant. The payload is read as bytes: a row whose text is not UTF-8 (a torn
# write, a hand edit) would otherwise make sqlite3 fail the whole fetch, not just that row.
PENDING = (
    "SELECT id, stream, seq, priority, CAST(payload AS BLOB), mono, wall, wall_source, boot_id, state,"
    " sent_at"
    " FROM records INDEXED BY records_pending WHERE state = 0 AND id > ? ORDER BY id LIMIT ?"
)
PENDING_OF_STREAM = (
    "SELECT id, stream, seq, priority, CAST(payload AS BLOB), mono, wall, wall_source, boot_id, state,"
    " sent_at"
    " FROM records INDEXED BY records_pending_stream WHERE state = 0 AND stream = ? AND id > ?"
    " ORDER BY id LIMIT ?"
)
SENT_BEFORE = (
    "SELECT id, stream, seq, priority, CAST(payload AS BLOB), mono, wall, wall_source, boot_id, state,"
    " sent_at"
    " FROM records INDEXED BY records_sent WHERE state = 1 AND sent_at <= ? ORDER BY id LIMIT ?"
)


def pending_rows(
    conn: sqlite3.Connection, limit: int, streams: Collection[str] | None, after: int
) -> list[Row]:
    """Unsent rows after row id ``after``, oldest first; with ``streams``, one index range per stream."""
    if streams is None:
        return conn.execute(PENDING, (after, limit)).fetchall()
    rows: list[Row] = []
    for stream in sorted(set(streams)):
        rows += conn.execute(PENDING_OF_STREAM, (stream, after, limit)).fetchall()
    return sorted(rows, key=lambda row: int(row[0]))[:limit]


def sent_rows(conn: sqlite3.Connection, sent_before: float, limit: int | None) -> list[Row]:
    """Rows marked sent at or before ``sent_before`` (clock seconds), oldest first."""
    return conn.execute(SENT_BEFORE, (sent_before, -1 if limit is None else limit)).fetchall()


def stream_stats(conn: sqlite3.Connection) -> dict[str, StreamStats]:
    """Per-stream counters; counting pending rows walks an index, so it grows with the backlog."""
    pending = dict(
        conn.execute(
            "SELECT stream, COUNT(*) FROM records INDEXED BY records_pending_stream"
            " WHERE state = 0 GROUP BY stream"
        ).fetchall()
    )
    # Sent-but-unacknowledged rows are few (in flight towards the collector): no index needed.
    sent = dict(
        conn.execute("SELECT stream, COUNT(*) FROM records WHERE state = 1 GROUP BY stream").fetchall()
    )
    return {
        name: StreamStats(next_seq, acked, dropped, pending.get(name, 0), sent.get(name, 0), used)
        for name, next_seq, acked, dropped, used in conn.execute(
            "SELECT stream, next_seq, acked_seq, dropped, bytes FROM streams ORDER BY stream"
        )
    }


def oldest_pending(conn: sqlite3.Connection) -> tuple[str, float] | None:
    """(boot_id, queued_at) of the oldest unsent row, or None when nothing waits."""
    row = conn.execute(
        "SELECT boot_id, queued_at FROM records INDEXED BY records_pending"
        " WHERE state = 0 ORDER BY id LIMIT 1"
    ).fetchone()
    return None if row is None else (str(row[0]), float(row[1]))
