"""The collector's PostgreSQL store: the SQLite store's semantics, for collectors sharing one database.

Same identity (``(vehicle, epoch, stream, seq)``), same counts and the same contiguous ack as
:class:`collector.store.Store`. Collectors sharing a fleet through an MQTT 5 shared subscription
may receive the same stream at once (a redelivery after a reconnect lands on another member), so:

- records go in with ``INSERT ... ON CONFLICT DO NOTHING``: a record stored by two collectors is
  one row and one duplicate;
- each write first locks its ``streams`` row (``SELECT ... FOR UPDATE``), so the writers of one
  stream take turns and each one advances ``contiguous`` over everything committed before it. A
  writer that did not see another's uncommitted seqs could otherwise move the ack back.

The schema is versioned: ``schema_version`` lists the migrations applied, each in its own
transaction under an advisory lock, so collectors starting together migrate once.
"""

from __future__ import annotations

import contextlib
import functools
import json
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar

import psycopg
from psycopg.rows import TupleRow

from agent.mqtt.wire import AckView, Received
from collector.pg_schema import INSERT_SQL, MIGRATIONS, STREAM_ROWS_SQL, VIEW_SQL, Conn, migrate
from collector.store import HOLE_SCAN, MAX_HOLES, PayloadRow, StreamRow, contiguous_end
from collector.store_api import StoreError, display_url

Key = tuple[str, str, str]  # (vehicle, epoch, stream)
P = ParamSpec("P")
T = TypeVar("T")

#: Rows read by the first query while walking a contiguous run; each further query reads twice as
#: many, up to CHUNK_MAX: a batch usually moves the ack over a few dozen seqs.
CHUNK_FIRST = 64
CHUNK_MAX = 4096


def _guarded(method: Callable[Concatenate[PgStore, P], T]) -> Callable[Concatenate[PgStore, P], T]:
    """Run a method under the store's lock, with database errors as StoreError naming the database."""

    @functools.wraps(method)
    def wrapper(store: PgStore, /, *args: P.args, **kwargs: P.kwargs) -> T:
        with store._lock:
            try:
                return method(store, *args, **kwargs)
            except psycopg.Error as exc:
                raise StoreError(f"{store.name}: {type(exc).__name__}: {exc}".rstrip()) from exc

    return wrapper


class PgStore:
    """One PostgreSQL connection, shared by the MQTT thread and the ack thread under a lock; it is
    opened again at the next call after the server dropped it."""

    def __init__(self, url: str, *, migrations: Sequence[str] = MIGRATIONS) -> None:
        self.url = url
        self.name = display_url(url)
        self._lock = threading.RLock()
        self._conn = self._connect()
        try:
            migrate(self._conn, migrations, self.name)
        except psycopg.Error as exc:
            self._conn.close()
            raise StoreError(f"{self.name}: cannot bring the schema up to date: {exc}".rstrip()) from exc
        except BaseException:
            self._conn.close()
            raise

    def _connect(self) -> Conn:
        try:
            conn = psycopg.connect(self.url, autocommit=True, application_name="busagent-collector")
            # The ack published after a commit makes the agent delete those records: the commit must
            # be on disk first, whatever the server's or the role's default says (any other value
            # than off waits for the local disk at least, and may be a stronger replica setting).
            if _one(conn.execute("SHOW synchronous_commit")) == "off":
                conn.execute("SET synchronous_commit TO on")
        except psycopg.Error as exc:
            raise StoreError(f"{self.name}: cannot open the database: {exc}".rstrip()) from exc
        return conn

    def _live(self) -> Conn:
        if self._conn.closed:  # lost (server restart, idle timeout): the agent resends what failed
            self._conn = self._connect()
        return self._conn

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[Conn]:
        conn = self._live()
        with conn.transaction():
            yield conn

    @contextlib.contextmanager
    def _snapshot(self) -> Iterator[Conn]:
        """A read-only transaction that sees one moment: the ack never mixes two commits."""
        conn = self._live()
        with conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield conn

    # -- writing --------------------------------------------------------------------------------

    @_guarded
    def store_records(
        self, vehicle: str, epoch: str, records: Sequence[Received], now: float
    ) -> tuple[int, int]:
        """Store records of one stream; returns (stored, duplicates). Idempotent."""
        key = (vehicle, epoch, records[0].stream)
        with self._tx() as conn:
            start = _lock_stream(conn, key)
            columns = [list(column) for column in zip(*(_columns(r) for r in records), strict=True)]
            stored = conn.execute(INSERT_SQL, (*key, now, *columns)).rowcount  # inserted, not skipped
            duplicates = len(records) - stored
            conn.execute(
                "UPDATE streams SET received = received + %s, duplicates = duplicates + %s,"
                " max_seq = GREATEST(max_seq, %s), last_seen = %s"
                " WHERE vehicle = %s AND epoch = %s AND stream = %s",
                (stored, duplicates, max(r.seq for r in records), now, *key),
            )
            _advance(conn, key, start)
            _seen(conn, vehicle, epoch, now)
        return stored, duplicates

    @_guarded
    def store_dropped(
        self, vehicle: str, epoch: str, stream: str, ranges: Sequence[Sequence[int]], now: float
    ) -> None:
        """Seq ranges the agent's outbox dropped: counted as dropped, not missing; not waited for."""
        key = (vehicle, epoch, stream)
        rows = [(*key, first, last) for first, last in ranges if first <= last]
        with self._tx() as conn:
            start = _lock_stream(conn, key)
            if rows:
                with conn.cursor() as cur:
                    cur.executemany(
                        "INSERT INTO dropped (vehicle, epoch, stream, first_seq, last_seq)"
                        " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (vehicle, epoch, stream, first_seq)"
                        " DO UPDATE SET last_seq = GREATEST(dropped.last_seq, excluded.last_seq)",
                        rows,
                    )
            _advance(conn, key, start)
            _seen(conn, vehicle, epoch, now)

    @_guarded
    def store_status(self, vehicle: str, doc: dict[str, Any], now: float) -> None:
        with self._tx() as conn:
            _seen(conn, vehicle, doc["epoch"], now)
            conn.execute(
                "UPDATE vehicles SET state = %s, reason = %s, boot_id = %s, status_at = %s"
                " WHERE vehicle = %s",
                (doc["state"], doc["reason"], doc["boot_id"], doc["at"], vehicle),
            )

    @_guarded
    def reject(self, reason: str, topic: str, detail: str, now: float) -> None:
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO rejects (reason, count, last_topic, last_detail, last_at)"
                " VALUES (%s, 1, %s, %s, %s)"
                " ON CONFLICT (reason) DO UPDATE SET count = rejects.count + 1,"
                " last_topic = excluded.last_topic, last_detail = excluded.last_detail,"
                " last_at = excluded.last_at",
                (_text(reason), _text(topic[:200]), _text(detail[:300]), now),
            )

    # -- reading --------------------------------------------------------------------------------

    @_guarded
    def ack_state(self, vehicle: str) -> tuple[str, dict[str, AckView]] | None:
        """(epoch, {stream: what we hold}) for the vehicle's latest epoch, or None if never seen."""
        with self._snapshot() as conn:
            row = conn.execute("SELECT epoch FROM vehicles WHERE vehicle = %s", (vehicle,)).fetchone()
            if row is None or row[0] is None:
                return None
            epoch = str(row[0])
            streams = conn.execute(
                "SELECT stream, contiguous, max_seq FROM streams WHERE vehicle = %s AND epoch = %s",
                (vehicle, epoch),
            ).fetchall()
            return epoch, {str(s): _view(conn, (vehicle, epoch, s), upto, top) for s, upto, top in streams}

    @_guarded
    def stream_rows(self) -> list[StreamRow]:
        """Per vehicle and stream: received, missing (gaps), duplicates, dropped, last seen."""
        totals: dict[tuple[str, str], list[Any]] = {}
        with self._snapshot() as conn:
            found = conn.execute(STREAM_ROWS_SQL).fetchall()
        for vehicle, _epoch, stream, max_seq, received, duplicates, last_seen, dropped, top in found:
            missing = max(max_seq, top) - received - dropped
            row = totals.setdefault((vehicle, stream), [0, 0, 0, 0, None, 0])
            for i, value in enumerate((received, missing, duplicates, dropped)):
                row[i] += value
            row[4] = last_seen if row[4] is None or (last_seen or 0) > row[4] else row[4]
            row[5] += 1
        return [StreamRow(vehicle, stream, *values) for (vehicle, stream), values in totals.items()]

    def stream_payloads(
        self, stream: str, *, since: float | None = None, with_text: str | None = None, chunk: int = 2000
    ) -> Iterator[PayloadRow]:
        """Every stored payload of ``stream`` across all vehicles, in (vehicle, epoch, seq) order, as
        :meth:`collector.store.Store.stream_payloads`: ``since`` on the record's wall time,
        ``with_text`` keeps payloads whose top-level key of that name holds a non-empty string.
        Read ``chunk`` rows per query, so neither the store nor memory is held for the whole stream."""
        if with_text is not None and not (with_text.isascii() and with_text.isidentifier()):
            raise ValueError(f"with_text {with_text!r}: expected a plain key name")
        # The json column keeps the compact text it was given: a top-level string value starts so.
        needle = f'"{with_text}":"' if with_text is not None else ""
        low = float("-inf") if since is None else since
        for vehicle, epoch in self._stream_keys(stream):
            after = 0
            while True:
                rows = self._payload_chunk((vehicle, epoch, stream), after, low, needle, chunk)
                for _seq, boot_id, mono, wall, payload in rows:
                    if with_text is not None:
                        value = payload.get(with_text)
                        if not isinstance(value, str) or not value.strip():
                            continue
                    yield PayloadRow(vehicle, boot_id, mono, wall, payload)
                if len(rows) < chunk:
                    break
                after = rows[-1][0]

    @_guarded
    def _stream_keys(self, stream: str) -> list[tuple[str, str]]:
        with self._snapshot() as conn:
            rows = conn.execute(
                "SELECT vehicle, epoch FROM streams WHERE stream = %s"
                ' ORDER BY vehicle COLLATE "C", epoch COLLATE "C"',  # byte order, as SQLite sorts
                (stream,),
            ).fetchall()
        return [(str(vehicle), str(epoch)) for vehicle, epoch in rows]

    @_guarded
    def _payload_chunk(self, key: Key, after: int, low: float, needle: str, chunk: int) -> list[TupleRow]:
        with self._snapshot() as conn:
            return conn.execute(
                "SELECT seq, boot_id, mono, wall, payload FROM messages"
                " WHERE vehicle = %s AND epoch = %s AND stream = %s AND seq > %s AND wall >= %s"
                " AND strpos(payload::text, %s) > 0 ORDER BY seq LIMIT %s",
                (*key, after, low, needle, chunk),
            ).fetchall()

    @_guarded
    def payloads_near(
        self, vehicle: str, stream: str, boot_id: str, mono: float, *, within_s: float, limit: int = 20
    ) -> list[PayloadRow]:
        """Up to ``limit`` payloads of one vehicle's ``stream`` made in boot ``boot_id`` within
        ``within_s`` seconds of monotonic time ``mono``, nearest first (e.g. the GPS fix at a probe run).
        Found through the msg_id index (``vehicle/boot_id/stream/seq``, byte order): one boot only."""
        prefix = f"{vehicle}/{boot_id}/{stream}/"
        # "0" follows "/" in byte order: the range holds exactly the ids under the prefix.
        params = (prefix, prefix[:-1] + "0", vehicle, stream, boot_id, mono - within_s, mono + within_s)
        with self._snapshot() as conn:
            rows = conn.execute(
                'SELECT boot_id, mono, wall, payload FROM messages WHERE msg_id COLLATE "C" >= %s'
                ' AND msg_id COLLATE "C" < %s AND vehicle = %s AND stream = %s AND boot_id = %s'
                " AND mono BETWEEN %s AND %s ORDER BY abs(mono - %s) LIMIT %s",
                (*params, mono, limit),
            ).fetchall()
        return [PayloadRow(vehicle, boot, at, wall, payload) for boot, at, wall, payload in rows]

    @_guarded
    def rejects(self) -> dict[str, int]:
        with self._snapshot() as conn:
            return {str(r): int(n) for r, n in conn.execute("SELECT reason, count FROM rejects")}

    @_guarded
    def payloads(self, vehicle: str, stream: str) -> list[tuple[int, dict[str, Any]]]:
        """(seq, payload) of a stream in the order they first arrived; for maps and tests."""
        with self._snapshot() as conn:
            rows = conn.execute(
                "SELECT seq, payload FROM messages WHERE vehicle = %s AND stream = %s ORDER BY arrival",
                (vehicle, stream),
            ).fetchall()
        return [(int(seq), payload) for seq, payload in rows]


# -- inside a write transaction ---------------------------------------------------------------------


def _lock_stream(conn: Conn, key: Key) -> int:
    """Create the stream's row if new and lock it to the end of the transaction; returns its
    ``contiguous`` as last committed."""
    conn.execute(
        "INSERT INTO streams (vehicle, epoch, stream) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING", key
    )
    sql = "SELECT contiguous FROM streams WHERE vehicle = %s AND epoch = %s AND stream = %s FOR UPDATE"
    return int(_one(conn.execute(sql, key)))  # the row exists: inserted above, streams are never deleted


def _advance(conn: Conn, key: Key, start: int) -> None:
    """Move ``contiguous`` over every received seq and announced dropped range that follows it."""
    seqs = (
        seq
        for (seq,) in _chunked(
            conn,
            "SELECT seq FROM messages WHERE vehicle = %s AND epoch = %s AND stream = %s AND seq > %s"
            " ORDER BY seq LIMIT %s",
            key,
            start,
        )
    )
    ranges = _chunked(
        conn,
        "SELECT first_seq, last_seq FROM dropped WHERE vehicle = %s AND epoch = %s AND stream = %s"
        " AND last_seq > %s AND first_seq > %s ORDER BY first_seq LIMIT %s",
        (*key, start),
        -(2**63),
    )
    contiguous = contiguous_end(start, seqs, ranges)
    if contiguous != start:
        conn.execute(
            "UPDATE streams SET contiguous = %s WHERE vehicle = %s AND epoch = %s AND stream = %s",
            (contiguous, *key),
        )


def _chunked(conn: Conn, sql: str, params: tuple[Any, ...], after: int) -> Iterator[tuple[Any, ...]]:
    """The rows of ``sql`` (ordered by its first column, which is unique, from above ``after``) read
    lazily in growing chunks: the caller stops at the first missing seq, usually in the first chunk."""
    size = CHUNK_FIRST
    while True:
        rows = conn.execute(sql, (*params, after, size)).fetchall()
        yield from rows
        if len(rows) < size:
            return
        after, size = rows[-1][0], min(size * 2, CHUNK_MAX)


def _seen(conn: Conn, vehicle: str, epoch: str, now: float) -> None:
    conn.execute(
        "INSERT INTO vehicles (vehicle, epoch, last_seen) VALUES (%s, %s, %s)"
        " ON CONFLICT (vehicle) DO UPDATE SET epoch = excluded.epoch, last_seen = excluded.last_seen",
        (vehicle, epoch, now),
    )


def _view(conn: Conn, key: Key, upto: int, top: int) -> AckView:
    """Holes above ``upto``: at most MAX_HOLES, read from at most HOLE_SCAN rows; ``top`` is cut
    back to what was examined (before the first hole not listed), so the agent resends beyond it."""
    if top <= upto:
        return AckView(upto)
    scanned_top, prevs, seqs = _row(conn.execute(VIEW_SQL, (*key, upto, HOLE_SCAN, upto, MAX_HOLES + 1)))
    last = prevs[MAX_HOLES] if len(seqs) > MAX_HOLES else (scanned_top or upto)
    holes = tuple((prev + 1, seq - 1) for prev, seq in zip(prevs[:MAX_HOLES], seqs[:MAX_HOLES], strict=True))
    return AckView(upto, last, holes)


def _columns(record: Received) -> tuple[Any, ...]:
    payload = json.dumps(record.payload, separators=(",", ":"), ensure_ascii=False)
    return (
        record.seq,
        record.msg_id,
        record.boot_id,
        record.priority,
        record.mono,
        record.wall,
        _text(record.wall_source),  # free text up to 32 chars: a NUL must not make the record unstorable
        payload,
    )


def _row(cursor: psycopg.Cursor[TupleRow]) -> TupleRow:
    """The one row a query returns by its nature (an aggregate, a row just made)."""
    row = cursor.fetchone()
    if row is None:
        raise psycopg.DataError("the query returned no row")
    return row


def _one(cursor: psycopg.Cursor[TupleRow]) -> Any:
    return _row(cursor)[0]


def _text(value: str) -> str:
    """PostgreSQL text cannot hold NUL, which free text from the wire may: U+FFFD stands for it.
    (A record refused by the store would never be acked and would hold its stream's ack back.)"""
    return value.replace("\x00", "\ufffd")
