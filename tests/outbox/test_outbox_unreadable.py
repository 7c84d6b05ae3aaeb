"""Rows damaged in the file (payload not UTF-8, not JSON) are set aside as dropped, never raised."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.outbox.helpers import open_outbox, put, query, seqs


def damage(path: Path, stream: str, seq: int, payload: bytes) -> None:
    """Write raw bytes over a row's payload through a separate connection, as a torn write would."""
    conn = sqlite3.connect(path)
    try:
        conn.execute(
            "UPDATE records SET payload = CAST(? AS TEXT) WHERE stream = ? AND seq = ?",
            (payload, stream, seq),
        )
        conn.commit()
    finally:
        conn.close()


def test_pending_skips_rows_with_invalid_utf8_or_json_and_records_them_as_dropped(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    outbox = open_outbox(path)
    for i in range(5):
        put(outbox, "events", i)
    damage(path, "events", 2, b"\xff\xfe{not utf-8")
    damage(path, "events", 4, b"{not json")
    records = outbox.pending(10)
    assert seqs(records, "events") == [1, 3, 5]
    assert outbox.dropped_ranges("events") == [(2, 2), (4, 4)]
    stats = outbox.stats()
    assert stats.streams["events"].dropped == 2 and stats.pending == 3
    assert outbox.pending(10) == records  # set aside once, for good


def test_resend_candidates_sets_aside_a_damaged_sent_row(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    outbox = open_outbox(path)
    records = [put(outbox, "events", i) for i in range(3)]
    outbox.mark_sent(records)
    damage(path, "events", 1, b"[1, 2]")  # valid JSON, but not an object: not a payload
    assert seqs(outbox.resend_candidates(0.0), "events") == [2, 3]
    assert outbox.dropped_ranges("events") == [(1, 1)]
    assert [(outbox.stats().bytes_used,)] == query(path, "SELECT SUM(size) FROM records")
