"""Re-timing a boot's unsent records once true time is known (GPS or NTP), in one transaction.

A record's ``wall`` becomes ``mono + offset``: the monotonic clock was right all along, the wall
clock was 1970 or a stale fake-hwclock value. Only unsent rows change: what the collector already
has keeps the time it was published with. The ``boots`` table bounds the scan to rows appended
since that boot began.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import Any

from agent.outbox.records import encode_payload

PayloadRetimer = Callable[[dict[str, Any]], bool]


def retime_rows(
    conn: sqlite3.Connection, boot_id: str, offset_s: float, source: str, payloads: PayloadRetimer | None
) -> int:
    """Re-time the unsent rows of ``boot_id`` inside the caller's transaction; returns how many.

    ``payloads`` re-times in place the times a payload carries (a stop visit's arrival, an event's
    stamp) and says whether it changed anything. It sees only payloads that mention ``boot_id``, as
    every payload with a time stamp does, so 1 Hz telemetry is not decoded. A re-written payload
    keeps the size it was counted with against the cap (re-timing moves it by a few bytes).
    """
    first = conn.execute("SELECT first_id FROM boots WHERE boot_id = ?", (boot_id,)).fetchone()
    if first is None:
        return 0
    cursor = conn.execute(
        "UPDATE records SET wall = mono + ?, wall_source = ? WHERE id >= ? AND boot_id = ? AND state = 0",
        (offset_s, source, first[0], boot_id),
    )
    if payloads is not None:
        _retime_payloads(conn, first[0], boot_id, payloads)
    return max(cursor.rowcount, 0)


def _retime_payloads(conn: sqlite3.Connection, first_id: int, boot_id: str, retime: PayloadRetimer) -> None:
    rows = conn.execute(
        "SELECT id, CAST(payload AS BLOB) FROM records WHERE id >= ? AND boot_id = ? AND state = 0"
        " AND instr(payload, ?) > 0",
        (first_id, boot_id, boot_id),
    ).fetchall()
    for row_id, raw in rows:
        try:
            payload = json.loads(raw.decode())
        except ValueError:
            continue  # unreadable: the publisher sets such a row aside when it reaches it
        if isinstance(payload, dict) and retime(payload):
            conn.execute("UPDATE records SET payload = ? WHERE id = ?", (encode_payload(payload), row_id))
