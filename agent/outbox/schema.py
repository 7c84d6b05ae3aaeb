"""The outbox's SQLite schema and per-connection settings (WAL, synchronous, size ceiling)."""

from __future__ import annotations

import sqlite3
from typing import Literal

Synchronous = Literal["FULL", "NORMAL"]

#: Bump when the tables change; an unknown version is treated like a foreign file (moved aside).
SCHEMA_VERSION = "1"

#: Ids use AUTOINCREMENT so that a row id is never reused: a late PUBACK for a record the collector
#: already acknowledged (and we deleted) must not mark a newer record as sent.
#: Partial indexes keep the hot queries proportional to what they return, not to the table:
#: records_pending / records_pending_stream serve pending(), records_sent serves resend_candidates(),
#: records_low serves the cap's thinning sweep.
DDL = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE streams (
    stream TEXT PRIMARY KEY,
    next_seq INTEGER NOT NULL,
    acked_seq INTEGER NOT NULL,
    dropped INTEGER NOT NULL,
    bytes INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    stream TEXT NOT NULL,
    seq INTEGER NOT NULL,
    priority INTEGER NOT NULL,
    payload TEXT NOT NULL,
    size INTEGER NOT NULL,
    mono REAL NOT NULL,
    wall REAL NOT NULL,
    wall_source TEXT NOT NULL,
    boot_id TEXT NOT NULL,
    queued_at REAL NOT NULL,
    state INTEGER NOT NULL,
    sent_at REAL,
    UNIQUE (stream, seq)
);
CREATE INDEX records_pending ON records (id) WHERE state = 0;
CREATE INDEX records_pending_stream ON records (stream, id) WHERE state = 0;
CREATE INDEX records_sent ON records (sent_at) WHERE state = 1;
CREATE INDEX records_low ON records (id) WHERE priority = 0;
CREATE TABLE dropped_ranges (
    stream TEXT NOT NULL,
    first_seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    PRIMARY KEY (stream, first_seq)
) WITHOUT ROWID;
CREATE TABLE boots (boot_id TEXT PRIMARY KEY, first_id INTEGER NOT NULL) WITHOUT ROWID;
"""

#: Bounds the WAL file after each checkpoint: without it the -wal keeps its high-water size (a big
#: thinning or acknowledgement transaction would leave tens of MB on the card for good).
JOURNAL_SIZE_LIMIT = 8 * 1024 * 1024


def configure(conn: sqlite3.Connection, synchronous: Synchronous, max_file_bytes: int | None) -> None:
    """Per-connection settings; journal_mode=WAL is persistent in the file but asked again on purpose."""
    mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise sqlite3.OperationalError(f"cannot switch to WAL journal mode (got {mode!r})")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA busy_timeout=5000")
    conn.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT}")
    # Catches some corruption at read time (bad cell sizes) instead of returning garbage.
    conn.execute("PRAGMA cell_size_check=ON")
    if max_file_bytes is not None:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count={max(1, max_file_bytes // page_size)}")


def create_tables(conn: sqlite3.Connection, meta: dict[str, str]) -> None:
    """Create every table and write the meta rows, in one transaction."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in DDL.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", sorted(meta.items()))
        conn.execute("COMMIT")
    except BaseException:
        conn.rollback()
        raise


def read_meta(conn: sqlite3.Connection) -> dict[str, str] | None:
    """The meta rows, or None when this is not (a known version of) a busagent outbox."""
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "meta" not in tables:
        return None
    meta = {str(key): str(value) for key, value in conn.execute("SELECT key, value FROM meta")}
    if meta.get("schema_version") != SCHEMA_VERSION:
        return None
    return meta
