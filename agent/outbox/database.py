"""Open the outbox database, or move an unusable one aside and start afresh: never a crash loop.

A corrupt, truncated, foreign or unreadable file must not stop the daemon at every start
(Vector #16231, Fluent Bit #5265). The file and its -wal/-shm are renamed together, as a set
(renaming only some of them is how SQLite databases get corrupted), so that a technician can
still open the moved-aside copy with sqlite3 for forensics.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import sqlite3
import uuid
from pathlib import Path

import structlog

from agent.outbox.records import OutboxError, OutboxFull
from agent.outbox.schema import SCHEMA_VERSION, Synchronous, configure, create_tables, read_meta

log = structlog.get_logger(__name__)

#: The companion files SQLite keeps beside a WAL database.
COMPANIONS = ("-wal", "-shm")
#: The first 16 bytes of every SQLite 3 database file.
SQLITE_HEADER = b"SQLite format 3\x00"

#: Primary result codes meaning "this file cannot be used", as opposed to "try again later"
#: (BUSY, LOCKED), "no space" (FULL) or "no memory" (NOMEM), which moving the file would not fix.
_UNUSABLE_CODES = frozenset(
    {
        sqlite3.SQLITE_CORRUPT,
        sqlite3.SQLITE_NOTADB,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_PERM,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_FORMAT,
    }
)


class Unusable(Exception):
    """The file is there but is not a healthy busagent outbox; the message says why."""


class VehicleChanged(Exception):
    """The outbox belongs to another vehicle id: its seq numbers mean nothing for this one."""


def open_database(
    path: Path, vehicle_id: str, synchronous: Synchronous, max_file_bytes: int | None
) -> tuple[sqlite3.Connection, dict[str, str]]:
    """A configured connection and the meta rows; an unusable file is moved aside first."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        exists = path.exists() or path.is_symlink()
    except OSError as exc:
        raise OutboxError(f"outbox {path}: cannot use the directory: {exc}") from exc
    if exists:
        try:
            return _open_checked(path, vehicle_id, synchronous, max_file_bytes)
        except VehicleChanged as exc:
            moved = move_aside(path, "vehicle-changed")
            log.error(
                "outbox.vehicle_changed_moved_aside", path=str(path), moved_to=str(moved), error=str(exc)
            )
        except (Unusable, sqlite3.Error) as exc:
            if isinstance(exc, sqlite3.Error) and not unusable(exc):
                raise translate(path, exc) from exc
            moved = move_aside(path, "corrupt")
            log.critical(
                "outbox.corrupt_moved_aside", path=str(path), moved_to=str(moved), error=describe(exc)
            )
    create_fresh(path, vehicle_id)
    try:
        return _open_checked(path, vehicle_id, synchronous, max_file_bytes)
    except (Unusable, VehicleChanged, sqlite3.Error) as exc:
        raise OutboxError(
            f"outbox {path}: a freshly created database cannot be opened: {describe(exc)}"
        ) from exc


def _precheck(path: Path) -> None:
    """Reject what is plainly not a database before SQLite touches it.

    SQLite deletes the -wal of a zero-length database on open, and the last connection to close
    checkpoints and removes the -wal: either would destroy the evidence we mean to move aside.
    """
    if not path.is_file():
        raise Unusable("not a regular file")
    try:
        with path.open("rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise Unusable(f"cannot read the file: {exc}") from exc
    if not header:
        raise Unusable("zero-length file (no database header)")
    if header != SQLITE_HEADER:
        raise Unusable(f"not an SQLite database (header {header[:16]!r})")


def _open_checked(
    path: Path, vehicle_id: str, synchronous: Synchronous, max_file_bytes: int | None
) -> tuple[sqlite3.Connection, dict[str, str]]:
    _precheck(path)
    # mode=rw: never let SQLite create an empty file here; creation goes through create_fresh().
    conn = sqlite3.connect(
        f"{path.absolute().as_uri()}?mode=rw", uri=True, isolation_level=None, check_same_thread=False
    )
    try:
        # Judge the file before writing anything to it: configure() switches the journal mode,
        # which would stamp a header onto an empty or foreign file we are about to move aside.
        conn.execute("PRAGMA busy_timeout=5000")
        problems = [str(row[0]) for row in conn.execute("PRAGMA quick_check")]
        if problems != ["ok"]:
            raise Unusable("quick_check: " + "; ".join(problems[:5]))
        meta = read_meta(conn)
        if meta is None:
            raise Unusable("not a busagent outbox (no meta table or unknown schema version)")
        if meta.get("vehicle_id") != vehicle_id:
            raise VehicleChanged(f"outbox belongs to vehicle {meta.get('vehicle_id')!r}, not {vehicle_id!r}")
        configure(conn, synchronous, max_file_bytes)
        _count_open(conn)
    except BaseException:
        conn.close()
        raise
    return conn, meta


def _count_open(conn: sqlite3.Connection) -> None:
    """Count opens in the file (restarts, for diagnosis); it doubles as the probe that we can write.

    A read-only file opens and reads fine and would fail only at the first append: every start
    would then end the same way, the crash loop this module exists to prevent.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('opens', '1')"
            " ON CONFLICT (key) DO UPDATE SET value = CAST(value AS INTEGER) + 1"
        )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.rollback()
        raise


def create_fresh(path: Path, vehicle_id: str) -> None:
    """Build a new outbox under a temporary name and rename it into place.

    A half-created file can then never sit at ``path``: a zero-length or schema-less file there
    always means something went wrong and is moved aside instead of silently reused.
    """
    staging = path.with_name(path.name + ".creating")
    try:
        for leftover in (staging, *(_companion(staging, suffix) for suffix in (*COMPANIONS, "-journal"))):
            leftover.unlink(missing_ok=True)
        _move_orphans(path)
        conn = sqlite3.connect(staging, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            meta = {"schema_version": SCHEMA_VERSION, "vehicle_id": vehicle_id, "epoch": uuid.uuid4().hex}
            create_tables(conn, meta)
        finally:
            conn.close()  # checkpoints and removes the staging -wal
        _fsync(staging)
        os.replace(staging, path)
        _fsync(path.parent)  # the rename itself must survive a power cut
    except (OSError, sqlite3.Error) as exc:
        if isinstance(exc, sqlite3.Error):
            raise translate(path, exc) from exc
        raise OutboxError(f"outbox {path}: cannot create a fresh database: {exc}") from exc
    log.info("outbox.created", path=str(path), epoch=meta["epoch"], vehicle_id=vehicle_id)


def move_aside(path: Path, tag: str) -> Path:
    """Rename ``path`` and its -wal/-shm to ``<name>.<tag>-<UTC timestamp>[-wal|-shm]``."""
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.{tag}-{stamp}")
    counter = 0
    while any(_companion(target, suffix).exists() for suffix in ("", *COMPANIONS)):
        counter += 1
        target = path.with_name(f"{path.name}.{tag}-{stamp}.{counter}")
    try:
        for suffix in ("", *COMPANIONS):
            source = _companion(path, suffix)
            if source.exists() or source.is_symlink():
                os.replace(source, _companion(target, suffix))
        _fsync(path.parent)
    except OSError as exc:
        raise OutboxError(f"outbox {path}: unusable and cannot be moved aside: {exc}") from exc
    return target


def _move_orphans(path: Path) -> None:
    """A -wal/-shm without its database would be replayed into the new file and corrupt it."""
    if any(_companion(path, suffix).exists() for suffix in COMPANIONS):
        moved = move_aside(path, "orphan")
        log.warning("outbox.orphan_wal_moved_aside", path=str(path), moved_to=str(moved))


def unusable(exc: sqlite3.Error) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and (code & 0xFF) in _UNUSABLE_CODES


def translate(path: Path, exc: sqlite3.Error) -> OutboxError:
    """The project's error for a SQLite failure, naming the file; disk full gets its own type."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and (code & 0xFF) == sqlite3.SQLITE_FULL:
        return OutboxFull(f"outbox {path} is full (disk or max_file_bytes): {exc}")
    return OutboxError(f"outbox {path}: {describe(exc)}")


def describe(exc: BaseException) -> str:
    name = getattr(exc, "sqlite_errorname", None)
    return f"{exc} ({name})" if name else str(exc)


def file_bytes(path: Path) -> int:
    """What the outbox takes on disk: the database file plus its WAL."""
    total = 0
    for suffix in ("", "-wal"):
        with contextlib.suppress(OSError):
            total += _companion(path, suffix).stat().st_size
    return total


def _companion(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def _fsync(path: Path) -> None:
    """fsync a file or a directory: a file's fsync does not make its directory entry durable."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
