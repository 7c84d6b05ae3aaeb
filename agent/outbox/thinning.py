"""The cap policy: which low-priority rows to drop when the outbox is full, and the ledger of drops.

Thinning sweeps the low-priority rows oldest first and drops every other row *of each stream*
(alternating per stream, so that interleaved GPS/modem/power rows are all thinned evenly rather
than one stream vanishing). A cursor remembers where the sweep stopped, so the next pass goes on
from there instead of re-thinning the oldest end; rows appended meanwhile are reached later. The
result is a track whose resolution decreases with age (measured: 1 row in 8 left at the old end
of a long outage, every row of the last minutes) and never has a hole. Normal and high priority
rows are never touched. Every dropped seq is recorded in
``dropped_ranges`` (adjacent drops merged) so the collector can tell a drop from a loss.

Every function here runs inside the caller's write transaction.
"""

from __future__ import annotations

import dataclasses
import sqlite3

#: Rows examined per query during a sweep: bounds memory, not the work done.
SWEEP_BATCH = 512

LOW_AFTER = (
    "SELECT id, stream, seq, size FROM records INDEXED BY records_low"
    " WHERE priority = 0 AND id > ? ORDER BY id LIMIT ?"
)


@dataclasses.dataclass
class Thinned:
    """What one thinning pass did: bytes freed, seqs dropped per stream, where the sweep stopped."""

    cursor: int
    parity: dict[str, int]
    freed: int = 0
    dropped: dict[str, list[int]] = dataclasses.field(default_factory=dict)
    freed_by_stream: dict[str, int] = dataclasses.field(default_factory=dict)

    @property
    def count(self) -> int:
        return sum(len(seqs) for seqs in self.dropped.values())


@dataclasses.dataclass
class _Sweep:
    """Progress of the sweep (keep/drop turn per stream, whether a full round dropped anything)."""

    from_start: bool
    parity: dict[str, int]
    dropped_this_round: bool = False
    contiguous: bool = False

    def wrap(self) -> None:
        # A whole round from the first row that dropped nothing means every stream is down to one
        # low row: alternate-row thinning cannot free more, so drop them oldest first.
        if self.from_start and not self.dropped_this_round:
            self.contiguous = True
        self.from_start, self.dropped_this_round = True, False
        self.parity.clear()

    def drop(self, stream: str) -> bool:
        turn = self.parity.get(stream, 0)
        self.parity[stream] = turn ^ 1
        return self.contiguous or turn == 1


def thin_low_priority(conn: sqlite3.Connection, need: int, cursor: int, parity: dict[str, int]) -> Thinned:
    """Drop low-priority rows until ``need`` bytes are freed or none is left; returns what was done.

    ``cursor`` and ``parity`` (whose turn it is to be dropped, per stream) are where the previous
    pass stopped, so that successive passes continue one even sweep; the new ones are returned.
    """
    sweep = _Sweep(from_start=cursor == 0, parity=dict(parity))
    result = Thinned(cursor=cursor, parity=sweep.parity)
    while result.freed < need:
        rows = conn.execute(LOW_AFTER, (result.cursor, SWEEP_BATCH)).fetchall()
        if not rows:
            if result.cursor == 0:
                break  # no low-priority row left: the cap reports "over cap" instead
            result.cursor = 0
            sweep.wrap()
            continue
        victims = _pick(rows, sweep, result, need)
        conn.executemany("DELETE FROM records WHERE id = ?", [(row_id,) for row_id in victims])
    _book(conn, result)
    return result


def _pick(rows: list[tuple[int, str, int, int]], sweep: _Sweep, result: Thinned, need: int) -> list[int]:
    """Walk one batch, choosing victims; stops as soon as enough is freed."""
    victims: list[int] = []
    for row_id, stream, seq, size in rows:
        result.cursor = row_id
        if not sweep.drop(stream):
            continue
        victims.append(row_id)
        sweep.dropped_this_round = True
        result.dropped.setdefault(stream, []).append(seq)
        result.freed_by_stream[stream] = result.freed_by_stream.get(stream, 0) + size
        result.freed += size
        if result.freed >= need:
            break
    return victims


def _book(conn: sqlite3.Connection, result: Thinned) -> None:
    """Count the drops per stream (persisted) and record their seq ranges."""
    for stream, seqs in result.dropped.items():
        conn.execute(
            "UPDATE streams SET dropped = dropped + ?, bytes = bytes - ? WHERE stream = ?",
            (len(seqs), result.freed_by_stream[stream], stream),
        )
        for seq in seqs:
            add_dropped_seq(conn, stream, seq)


def add_dropped_seq(conn: sqlite3.Connection, stream: str, seq: int) -> None:
    """Record ``seq`` as dropped, merging with the ranges just below and above it."""
    # The range just below is the one starting last before seq (primary key order); it touches
    # seq only if it ends at seq - 1. No second index on last_seq: it would double the ledger.
    nearest = conn.execute(
        "SELECT first_seq, last_seq FROM dropped_ranges WHERE stream = ? AND first_seq < ?"
        " ORDER BY first_seq DESC LIMIT 1",
        (stream, seq),
    ).fetchone()
    below = nearest if nearest is not None and nearest[1] == seq - 1 else None
    above = conn.execute(
        "SELECT last_seq FROM dropped_ranges WHERE stream = ? AND first_seq = ?", (stream, seq + 1)
    ).fetchone()
    last = above[0] if above else seq
    if above:
        conn.execute("DELETE FROM dropped_ranges WHERE stream = ? AND first_seq = ?", (stream, seq + 1))
    if below:
        conn.execute(
            "UPDATE dropped_ranges SET last_seq = ? WHERE stream = ? AND first_seq = ?",
            (last, stream, below[0]),
        )
    else:
        conn.execute(
            "INSERT INTO dropped_ranges (stream, first_seq, last_seq) VALUES (?, ?, ?)", (stream, seq, last)
        )


def trim_dropped(conn: sqlite3.Connection, stream: str, upto_seq: int) -> None:
    """The collector has accounted for every seq <= ``upto_seq``: forget those ranges."""
    # first_seq <= upto_seq keeps this a primary-key range (every such range qualifies or straddles).
    conn.execute(
        "DELETE FROM dropped_ranges WHERE stream = ? AND first_seq <= ? AND last_seq <= ?",
        (stream, upto_seq, upto_seq),
    )
    conn.execute(
        "UPDATE dropped_ranges SET first_seq = ? WHERE stream = ? AND first_seq <= ?",
        (upto_seq + 1, stream, upto_seq),
    )


def dropped_ranges(conn: sqlite3.Connection, stream: str) -> list[tuple[int, int]]:
    rows = conn.execute(
        "SELECT first_seq, last_seq FROM dropped_ranges WHERE stream = ? ORDER BY first_seq", (stream,)
    )
    return [(int(first), int(last)) for first, last in rows]


def drop_row(conn: sqlite3.Connection, row_id: int, stream: str, seq: int) -> int:
    """Delete one row as dropped (counted, its seq recorded like a thinned one); returns bytes freed."""
    row = conn.execute("SELECT size FROM records WHERE id = ?", (row_id,)).fetchone()
    if row is None:
        return 0
    conn.execute("DELETE FROM records WHERE id = ?", (row_id,))
    conn.execute(
        "UPDATE streams SET dropped = dropped + 1, bytes = bytes - ? WHERE stream = ?", (row[0], stream)
    )
    add_dropped_seq(conn, stream, seq)
    return int(row[0])
