"""The collector's PostgreSQL schema: its versioned migrations, and the store's statements that
lean most on its layout.

``schema_version`` lists the migrations applied. Each is applied in its own transaction under an
advisory lock, so collectors starting together migrate once and a failed migration leaves the
version before it. A database newer than this code is refused rather than misread.
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg
from psycopg.rows import TupleRow

from collector.store_api import StoreError

Conn = psycopg.Connection[TupleRow]

#: pg_advisory_xact_lock key held while migrating ("busa" in ASCII): one collector migrates at a time.
SCHEMA_LOCK = 0x62757361

#: Migration N is MIGRATIONS[N - 1]; append, never edit one that has shipped.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE messages (
        vehicle text NOT NULL, epoch text NOT NULL, stream text NOT NULL, seq bigint NOT NULL,
        msg_id text NOT NULL, boot_id text NOT NULL, priority text NOT NULL,
        mono double precision NOT NULL, wall double precision NOT NULL, wall_source text NOT NULL,
        payload json NOT NULL, received_at double precision NOT NULL,
        arrival bigint GENERATED ALWAYS AS IDENTITY,
        PRIMARY KEY (vehicle, epoch, stream, seq)
    );
    CREATE INDEX messages_msg_id ON messages (msg_id COLLATE "C");  -- byte order: prefix ranges
    CREATE INDEX messages_arrival ON messages (vehicle, stream, arrival);
    CREATE TABLE streams (
        vehicle text NOT NULL, epoch text NOT NULL, stream text NOT NULL,
        contiguous bigint NOT NULL DEFAULT 0, max_seq bigint NOT NULL DEFAULT 0,
        received bigint NOT NULL DEFAULT 0, duplicates bigint NOT NULL DEFAULT 0,
        last_seen double precision,
        PRIMARY KEY (vehicle, epoch, stream)
    );
    CREATE TABLE dropped (
        vehicle text NOT NULL, epoch text NOT NULL, stream text NOT NULL,
        first_seq bigint NOT NULL, last_seq bigint NOT NULL,
        PRIMARY KEY (vehicle, epoch, stream, first_seq)
    );
    CREATE TABLE vehicles (
        vehicle text PRIMARY KEY, epoch text, state text, reason text, boot_id text,
        status_at double precision, last_seen double precision
    );
    CREATE TABLE rejects (
        reason text PRIMARY KEY, count bigint NOT NULL, last_topic text, last_detail text,
        last_at double precision
    );
    """,
)


# One statement for the whole batch, a column per array; ``arrival`` numbers the rows in batch order.
INSERT_SQL = """
INSERT INTO messages (vehicle, epoch, stream, received_at, seq, msg_id, boot_id, priority, mono, wall,
                      wall_source, payload)
SELECT %s, %s, %s, %s, r.seq, r.msg_id, r.boot_id, r.priority, r.mono, r.wall, r.wall_source, r.payload::json
FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[], %s::float8[], %s::float8[], %s::text[],
            %s::text[])
     WITH ORDINALITY AS r(seq, msg_id, boot_id, priority, mono, wall, wall_source, payload, n)
ORDER BY r.n
ON CONFLICT (vehicle, epoch, stream, seq) DO NOTHING
"""

# The ack's holes above ``upto``: the first MAX_HOLES + 1 gaps among at most HOLE_SCAN seqs.
VIEW_SQL = """
WITH scanned AS (
    SELECT seq FROM messages WHERE vehicle = %s AND epoch = %s AND stream = %s AND seq > %s
    ORDER BY seq LIMIT %s),
steps AS (SELECT seq, COALESCE(lag(seq) OVER (ORDER BY seq), %s) AS prev FROM scanned),
gaps AS (SELECT prev, seq FROM steps WHERE seq > prev + 1 ORDER BY seq LIMIT %s)
SELECT (SELECT max(seq) FROM scanned), ARRAY(SELECT prev FROM gaps ORDER BY seq),
       ARRAY(SELECT seq FROM gaps ORDER BY seq)
"""

# Dropped seqs that never arrived, per stream and epoch, as the SQLite store counts them.
STREAM_ROWS_SQL = """
SELECT s.vehicle, s.epoch, s.stream, s.max_seq, s.received, s.duplicates, s.last_seen,
       COALESCE(d.dropped, 0)::bigint, COALESCE(d.top, 0)::bigint
FROM streams s LEFT JOIN LATERAL (
    SELECT SUM(r.last_seq - r.first_seq + 1 - (
               SELECT COUNT(*) FROM messages m WHERE m.vehicle = r.vehicle AND m.epoch = r.epoch
               AND m.stream = r.stream AND m.seq BETWEEN r.first_seq AND r.last_seq)) AS dropped,
           MAX(r.last_seq) AS top
    FROM dropped r WHERE r.vehicle = s.vehicle AND r.epoch = s.epoch AND r.stream = s.stream
) d ON true
ORDER BY s.vehicle COLLATE "C", s.stream COLLATE "C", s.epoch COLLATE "C"
"""


def migrate(conn: Conn, migrations: Sequence[str], name: str) -> int:
    """Apply the migrations the database lacks, each in its own transaction; returns the version
    found. A database newer than ``migrations`` is refused: this code would misread it."""
    known = len(migrations)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version"
            " (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        found = schema_version(conn)
    if found > known:
        raise StoreError(
            f"{name}: the collector schema there is version {found}, newer than this busagent-collector"
            f" knows ({known}); upgrade busagent-collector, or use another database"
        )
    for version in range(found + 1, known + 1):
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            if schema_version(conn) >= version:
                continue  # another collector applied it while we waited for the lock
            conn.execute(migrations[version - 1])
            conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))
    return found


def schema_version(conn: Conn) -> int:
    row = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()
    return int(row[0]) if row is not None else 0
