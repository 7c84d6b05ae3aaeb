"""The collector's SQLite store (WAL): records stored once by msg_id, per-stream seq accounting, rejects.

A record's identity is its msg_id within the outbox epoch that numbered it: ``(vehicle, epoch,
stream, seq)``. The epoch matters because a vehicle whose outbox was moved aside (corrupt) starts
numbering again at 1, possibly in the same boot, so msg_id alone could repeat. Storing the same
record again is a no-op counted as a duplicate.

Per (vehicle, epoch, stream) the store keeps ``contiguous``: the highest seq N with every seq
1..N received or announced dropped. That is what the collector's ack tells the agent.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import heapq
import json
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from agent.mqtt.wire import AckView, Received

SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    vehicle TEXT NOT NULL, epoch TEXT NOT NULL, stream TEXT NOT NULL, seq INTEGER NOT NULL,
    msg_id TEXT NOT NULL, boot_id TEXT NOT NULL, priority TEXT NOT NULL,
    mono REAL NOT NULL, wall REAL NOT NULL, wall_source TEXT NOT NULL,
    payload TEXT NOT NULL, received_at REAL NOT NULL,
    PRIMARY KEY (vehicle, epoch, stream, seq)
);
CREATE INDEX IF NOT EXISTS messages_msg_id ON messages (msg_id);
-- Probe runs labelled by `agentctl test --label` (site surveys), for the maps: a few among millions.
-- Payloads are compact JSON (_columns), so a top-level string "label" reads exactly '"label":"'.
CREATE INDEX IF NOT EXISTS messages_labelled ON messages (vehicle, epoch, stream, seq)
    WHERE instr(payload, '"label":"') > 0;
CREATE TABLE IF NOT EXISTS streams (
    vehicle TEXT NOT NULL, epoch TEXT NOT NULL, stream TEXT NOT NULL,
    contiguous INTEGER NOT NULL DEFAULT 0, max_seq INTEGER NOT NULL DEFAULT 0,
    received INTEGER NOT NULL DEFAULT 0, duplicates INTEGER NOT NULL DEFAULT 0,
    last_seen REAL,
    PRIMARY KEY (vehicle, epoch, stream)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dropped (
    vehicle TEXT NOT NULL, epoch TEXT NOT NULL, stream TEXT NOT NULL,
    first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL,
    PRIMARY KEY (vehicle, epoch, stream, first_seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS vehicles (
    vehicle TEXT PRIMARY KEY, epoch TEXT, state TEXT, reason TEXT, boot_id TEXT,
    status_at REAL, last_seen REAL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rejects (
    reason TEXT PRIMARY KEY, count INTEGER NOT NULL, last_topic TEXT, last_detail TEXT, last_at REAL
) WITHOUT ROWID;
"""

P = ParamSpec("P")
T = TypeVar("T")

#: An ack lists at most this many holes per stream, found among at most HOLE_SCAN received seqs.
MAX_HOLES = 32
HOLE_SCAN = 20_000


def _locked(method: Callable[P, T]) -> Callable[P, T]:
    """Run a read method under the store's lock (the MQTT thread may be writing)."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        store = args[0]
        assert isinstance(store, Store)
        with store._lock:
            return method(*args, **kwargs)

    return wrapper


@dataclasses.dataclass(frozen=True)
class StreamRow:
    """``busagent-collector stats``: one line per vehicle and stream, all epochs added up."""

    vehicle: str
    stream: str
    received: int
    missing: int
    duplicates: int
    dropped: int
    last_seen: float | None
    epochs: int


class Store:
    """One SQLite file and connection, shared by the MQTT thread and the ack thread under a lock."""

    def __init__(self, path: str | Path) -> None:
        self._lock = threading.RLock()
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        # FULL: the ack published after a commit makes the agent delete those records, so the commit
        # must be on disk first. With NORMAL a power cut may roll back the last commits in WAL mode,
        # and records already deleted on the bus would be lost for good.
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA busy_timeout=5000")
        self._conn.executescript(SCHEMA)

    def close(self) -> None:
        self._conn.close()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    # -- writing --------------------------------------------------------------------------------

    def store_records(
        self, vehicle: str, epoch: str, records: Sequence[Received], now: float
    ) -> tuple[int, int]:
        """Store records of one stream; returns (stored, duplicates). Idempotent."""
        stream = records[0].stream
        with self._tx() as conn:
            before = conn.total_changes
            conn.executemany(
                # Only a duplicate key is skipped: OR IGNORE would also skip a NOT NULL failure and
                # count a broken record as a duplicate, i.e. as stored.
                "INSERT INTO messages (vehicle, epoch, stream, seq, msg_id, boot_id, priority,"
                " mono, wall, wall_source, payload, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (vehicle, epoch, stream, seq) DO NOTHING",
                [(vehicle, epoch, stream, *_columns(r), now) for r in records],
            )
            stored = conn.total_changes - before
            duplicates = len(records) - stored
            self._stream_row(conn, vehicle, epoch, stream)
            conn.execute(
                "UPDATE streams SET received = received + ?, duplicates = duplicates + ?,"
                " max_seq = MAX(max_seq, ?), last_seen = ? WHERE vehicle = ? AND epoch = ? AND stream = ?",
                (stored, duplicates, max(r.seq for r in records), now, vehicle, epoch, stream),
            )
            self._advance(conn, vehicle, epoch, stream)
            self._seen(conn, vehicle, epoch, now)
        return stored, duplicates

    def store_dropped(
        self, vehicle: str, epoch: str, stream: str, ranges: Sequence[Sequence[int]], now: float
    ) -> None:
        """Seq ranges the agent's outbox dropped: counted as dropped, not missing; not waited for."""
        spans = [(first, last) for first, last in ranges if first <= last]
        with self._tx() as conn:
            self._stream_row(conn, vehicle, epoch, stream)
            conn.executemany(
                "INSERT INTO dropped (vehicle, epoch, stream, first_seq, last_seq) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT DO UPDATE SET last_seq = MAX(last_seq, excluded.last_seq)",
                [(vehicle, epoch, stream, first, last) for first, last in spans],
            )
            self._advance(conn, vehicle, epoch, stream, announced=spans)
            self._seen(conn, vehicle, epoch, now)

    def store_status(self, vehicle: str, doc: dict[str, Any], now: float) -> None:
        with self._tx() as conn:
            self._seen(conn, vehicle, doc["epoch"], now)
            conn.execute(
                "UPDATE vehicles SET state = ?, reason = ?, boot_id = ?, status_at = ? WHERE vehicle = ?",
                (doc["state"], doc["reason"], doc["boot_id"], doc["at"], vehicle),
            )

    def reject(self, reason: str, topic: str, detail: str, now: float) -> None:
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO rejects (reason, count, last_topic, last_detail, last_at) VALUES (?, 1, ?, ?, ?)"
                " ON CONFLICT DO UPDATE SET count = count + 1, last_topic = excluded.last_topic,"
                " last_detail = excluded.last_detail, last_at = excluded.last_at",
                (reason, topic[:200], detail[:300], now),
            )

    @staticmethod
    def _stream_row(conn: sqlite3.Connection, vehicle: str, epoch: str, stream: str) -> None:
        conn.execute(
            "INSERT OR IGNORE INTO streams (vehicle, epoch, stream) VALUES (?, ?, ?)",
            (vehicle, epoch, stream),
        )

    @staticmethod
    def _seen(conn: sqlite3.Connection, vehicle: str, epoch: str, now: float) -> None:
        conn.execute(
            "INSERT INTO vehicles (vehicle, epoch, last_seen) VALUES (?, ?, ?)"
            " ON CONFLICT DO UPDATE SET epoch = excluded.epoch, last_seen = excluded.last_seen",
            (vehicle, epoch, now),
        )

    def _advance(
        self,
        conn: sqlite3.Connection,
        vehicle: str,
        epoch: str,
        stream: str,
        announced: Sequence[tuple[int, int]] = (),
    ) -> None:
        """Move ``contiguous`` over every received seq and dropped range that follows it.

        Once an advance is done, no dropped range holds ``contiguous + 1`` (the walk would have gone
        on), so every range beginning at or before it also ends at or before ``contiguous``. A range
        reaching over the ack from below can then only be one ``announced`` in this transaction;
        the others are found from the ack up through the index, not by reading every range the
        stream ever dropped.
        """
        key = (vehicle, epoch, stream)
        (start,) = conn.execute(
            "SELECT contiguous FROM streams WHERE vehicle = ? AND epoch = ? AND stream = ?", key
        ).fetchone()
        # Both cursors are read lazily, only as far as the contiguous run goes: after a long thinned
        # outage there are thousands of dropped ranges, and each batch moves over a few of them.
        seqs = conn.execute(
            "SELECT seq FROM messages WHERE vehicle = ? AND epoch = ? AND stream = ? AND seq > ?"
            " ORDER BY seq",
            (*key, start),
        )
        above = conn.execute(
            "SELECT first_seq, last_seq FROM dropped WHERE vehicle = ? AND epoch = ? AND stream = ?"
            " AND first_seq > ? ORDER BY first_seq",
            (*key, start),
        )
        over = sorted((first, last) for first, last in announced if first <= start < last)
        contiguous = contiguous_end(start, (seq for (seq,) in seqs), heapq.merge(over, above))
        seqs.close()
        above.close()
        if contiguous != start:
            conn.execute(
                "UPDATE streams SET contiguous = ? WHERE vehicle = ? AND epoch = ? AND stream = ?",
                (contiguous, *key),
            )

    # -- reading --------------------------------------------------------------------------------

    def ack_state(self, vehicle: str) -> tuple[str, dict[str, AckView]] | None:
        """(epoch, {stream: what we hold}) for the vehicle's latest epoch, or None if never seen."""
        with self._lock:
            row = self._conn.execute("SELECT epoch FROM vehicles WHERE vehicle = ?", (vehicle,)).fetchone()
            if row is None or row[0] is None:
                return None
            epoch = str(row[0])
            streams = self._conn.execute(
                "SELECT stream, contiguous, max_seq FROM streams WHERE vehicle = ? AND epoch = ?",
                (vehicle, epoch),
            ).fetchall()
            return epoch, {str(s): self._view((vehicle, epoch, s), upto, top) for s, upto, top in streams}

    def _view(self, key: tuple[str, str, str], upto: int, top: int) -> AckView:
        """Holes above ``upto``: at most MAX_HOLES, read from at most HOLE_SCAN rows; ``top`` is cut
        back to what was examined, so the agent resends anything beyond it."""
        if top <= upto:
            return AckView(upto)
        holes: list[tuple[int, int]] = []
        last = upto
        for (seq,) in self._conn.execute(
            "SELECT seq FROM messages WHERE vehicle = ? AND epoch = ? AND stream = ? AND seq > ?"
            " ORDER BY seq LIMIT ?",
            (*key, upto, HOLE_SCAN),
        ):
            if seq > last + 1:
                if len(holes) == MAX_HOLES:
                    break
                holes.append((last + 1, seq - 1))
            last = seq
        return AckView(upto, last, tuple(holes))

    @_locked
    def stream_rows(self) -> list[StreamRow]:
        """Per vehicle and stream: received, missing (gaps), duplicates, dropped, last seen."""
        totals: dict[tuple[str, str], list[Any]] = {}
        for vehicle, epoch, stream, max_seq, received, duplicates, last_seen in self._conn.execute(
            "SELECT vehicle, epoch, stream, max_seq, received, duplicates, last_seen FROM streams"
            " ORDER BY vehicle, stream, epoch"
        ):
            dropped, dropped_top = self._dropped_not_received(vehicle, epoch, stream)
            missing = max(max_seq, dropped_top) - received - dropped
            row = totals.setdefault((vehicle, stream), [0, 0, 0, 0, None, 0])
            for i, value in enumerate((received, missing, duplicates, dropped)):
                row[i] += value
            row[4] = last_seen if row[4] is None or (last_seen or 0) > row[4] else row[4]
            row[5] += 1
        return [StreamRow(vehicle, stream, *values) for (vehicle, stream), values in totals.items()]

    def _dropped_not_received(self, vehicle: str, epoch: str, stream: str) -> tuple[int, int]:
        """(seqs announced dropped that never arrived anyway, highest dropped seq)."""
        dropped, top = 0, 0
        for first, last in self._conn.execute(
            "SELECT first_seq, last_seq FROM dropped WHERE vehicle = ? AND epoch = ? AND stream = ?",
            (vehicle, epoch, stream),
        ).fetchall():
            (arrived,) = self._conn.execute(
                "SELECT COUNT(*) FROM messages WHERE vehicle = ? AND epoch = ? AND stream = ?"
                " AND seq BETWEEN ? AND ?",
                (vehicle, epoch, stream, first, last),
            ).fetchone()
            dropped += last - first + 1 - arrived
            top = max(top, last)
        return dropped, top

    @_locked
    def rejects(self) -> dict[str, int]:
        return {
            str(reason): int(count)
            for reason, count in self._conn.execute("SELECT reason, count FROM rejects")
        }

    @_locked
    def payloads(self, vehicle: str, stream: str) -> list[tuple[int, dict[str, Any]]]:
        """(seq, payload) of a stream in the order they first arrived; for maps and tests."""
        return [
            (int(seq), json.loads(text))
            for seq, text in self._conn.execute(
                "SELECT seq, payload FROM messages WHERE vehicle = ? AND stream = ? ORDER BY rowid",
                (vehicle, stream),
            )
        ]

    # -- reading for the maps (collector/maps.py). A store for another database offers the same three
    # methods: stream_payloads, payloads_near and PayloadRow; nothing else of the store is read.

    def stream_payloads(
        self, stream: str, *, since: float | None = None, with_text: str | None = None, chunk: int = 2000
    ) -> Iterator[PayloadRow]:
        """Every stored payload of ``stream`` across all vehicles, in (vehicle, epoch, seq) order.

        ``since``: only records whose wall time (Unix seconds) is at least this. ``with_text``: only
        payloads whose top-level key of that name holds a non-empty string; ``"label"`` (probe runs
        of ``agentctl test --label``, a few among millions) is found through the partial index
        ``messages_labelled`` without reading the others, any other key by scanning the stream.
        Rows are read ``chunk`` at a time, each chunk under the lock, so a collector storing at the
        same time is held up for one chunk at most, and memory stays flat.
        """
        if with_text is not None and not (with_text.isascii() and with_text.isidentifier()):
            raise ValueError(f"with_text {with_text!r}: expected a plain key name")
        low = float("-inf") if since is None else since
        extra: tuple[str, ...] = ()
        if with_text is None:
            query = _CHUNK
        elif with_text == "label":
            query = _LABELLED_CHUNK
        else:  # compact JSON (_columns): a top-level string value starts with exactly this text
            query, extra = _TEXT_CHUNK, (f'"{with_text}":"',)
        with self._lock:
            keys = self._conn.execute(
                "SELECT vehicle, epoch FROM streams WHERE stream = ? ORDER BY vehicle, epoch", (stream,)
            ).fetchall()
        for vehicle, epoch in keys:
            after = 0
            while True:
                with self._lock:
                    rows = self._conn.execute(
                        query, (vehicle, epoch, stream, after, low, *extra, chunk)
                    ).fetchall()
                for _seq, boot_id, mono, wall, text in rows:
                    payload = json.loads(text)
                    if with_text is not None:  # the text matched; a nested key of that name does not count
                        value = payload.get(with_text)
                        if not isinstance(value, str) or not value.strip():
                            continue
                    yield PayloadRow(vehicle, boot_id, mono, wall, payload)
                if len(rows) < chunk:
                    break
                after = rows[-1][0]

    @_locked
    def payloads_near(
        self, vehicle: str, stream: str, boot_id: str, mono: float, *, within_s: float, limit: int = 20
    ) -> list[PayloadRow]:
        """Up to ``limit`` payloads of one vehicle's ``stream`` made in boot ``boot_id`` within
        ``within_s`` seconds of monotonic time ``mono``, nearest first (e.g. the GPS fix at a probe run).

        Found through the msg_id index (``vehicle/boot_id/stream/seq``): one boot's records only.
        """
        prefix = f"{vehicle}/{boot_id}/{stream}/"
        rows = self._conn.execute(
            "SELECT boot_id, mono, wall, payload FROM messages INDEXED BY messages_msg_id"
            " WHERE msg_id >= ? AND msg_id < ? AND vehicle = ? AND stream = ? AND boot_id = ?"
            " AND mono BETWEEN ? AND ? ORDER BY abs(mono - ?) LIMIT ?",
            # "0" follows "/" in every collation: the range holds exactly the ids under the prefix.
            (
                prefix,
                prefix[:-1] + "0",
                vehicle,
                stream,
                boot_id,
                mono - within_s,
                mono + within_s,
                mono,
                limit,
            ),
        ).fetchall()
        return [PayloadRow(vehicle, boot, at, wall, json.loads(text)) for boot, at, wall, text in rows]


_CHUNK = (
    "SELECT seq, boot_id, mono, wall, payload FROM messages"
    " WHERE vehicle = ? AND epoch = ? AND stream = ? AND seq > ? AND wall >= ? ORDER BY seq LIMIT ?"
)
_TEXT_CHUNK = (
    "SELECT seq, boot_id, mono, wall, payload FROM messages"
    " WHERE vehicle = ? AND epoch = ? AND stream = ? AND seq > ? AND wall >= ?"
    " AND instr(payload, ?) > 0 ORDER BY seq LIMIT ?"
)
# The WHERE term must be the index's own, word for word, for SQLite to use a partial index.
_LABELLED_CHUNK = (
    "SELECT seq, boot_id, mono, wall, payload FROM messages INDEXED BY messages_labelled"
    " WHERE vehicle = ? AND epoch = ? AND stream = ? AND seq > ? AND wall >= ?"
    """ AND instr(payload, '"label":"') > 0 ORDER BY seq LIMIT ?"""
)


@dataclasses.dataclass(frozen=True, slots=True)
class PayloadRow:
    """One stored record's payload with the record's own vehicle, boot, monotonic and wall time."""

    vehicle: str
    boot_id: str
    mono: float
    wall: float
    payload: dict[str, Any]


def contiguous_end(start: int, seqs: Iterable[int], dropped: Iterable[Sequence[int]]) -> int:
    """The highest N >= ``start`` such that every seq in start+1..N is in ``seqs`` or in a range of
    ``dropped`` (inclusive ``(first, last)`` pairs, which may overlap or touch).

    ``seqs`` ascend without repeats and ``dropped`` ascends by first seq: one merge of the two,
    constant work per seq or range taken, and neither is read past the first seq that is missing.
    """
    seq_iter, range_iter = iter(seqs), iter(dropped)
    upcoming = next(range_iter, None)
    upto = reach = start  # reach: the furthest end of the ranges that begin at or before upto + 1
    while True:
        while upcoming is not None and upcoming[0] <= upto + 1:
            reach = max(reach, upcoming[1])
            upcoming = next(range_iter, None)
        if reach > upto:
            upto = reach  # those ranges cover upto + 1 onwards, up to reach
            continue
        seq = next(seq_iter, None)
        while seq is not None and seq <= upto:  # received although announced dropped: passed already
            seq = next(seq_iter, None)
        if seq != upto + 1:
            return upto
        upto = seq


def _columns(record: Received) -> tuple[Any, ...]:
    payload = json.dumps(record.payload, separators=(",", ":"), ensure_ascii=False)
    return (
        record.seq,
        record.msg_id,
        record.boot_id,
        record.priority,
        record.mono,
        record.wall,
        record.wall_source,
        payload,
    )
