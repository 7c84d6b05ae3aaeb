"""``--db URL`` to a store: a SQLite file path (or ``sqlite:///path``) or ``postgresql://...``.

The PostgreSQL driver is imported only for a ``postgresql://`` URL, so a collector on SQLite never
loads it (nor needs libpq).
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path

from collector.store import Store
from collector.store_api import CollectorStore, StoreError, display_url

SQLITE_SCHEMES = ("sqlite", "file")
POSTGRES_SCHEMES = ("postgresql", "postgres")
USAGE = "a SQLite file path, sqlite:///path/to/file.db or postgresql://user@host:port/database"


def sqlite_path(url: str) -> Path | None:
    """The file a SQLite URL or plain path names; None for any other URL. ValueError if unusable."""
    if "://" not in url:
        return Path(url)  # a plain path, even one with a colon in it
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in SQLITE_SCHEMES:
        return None
    if parts.netloc or not parts.path:
        raise ValueError(f"{display_url(url)}: a SQLite URL names a file, as sqlite:///path/to/file.db")
    return Path(urllib.parse.unquote(parts.path))


def open_store(url: str) -> CollectorStore:
    """Open (creating the schema if needed) the store a ``--db`` value names.

    ValueError for a URL that names no store we have; the store's own errors otherwise
    (``sqlite3.Error`` for a file that is not a database, ``StoreError`` for PostgreSQL).
    """
    path = sqlite_path(url)
    if path is not None:
        return Store(path)
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme in POSTGRES_SCHEMES:
        try:
            from collector.store_pg import PgStore
        except ImportError as exc:  # psycopg not installed, or libpq missing
            raise StoreError(
                f"{display_url(url)}: PostgreSQL needs the psycopg package and libpq (Debian: libpq5): {exc}"
            ) from exc
        return PgStore(url)
    raise ValueError(f"{display_url(url)}: not a database URL this collector knows; use {USAGE}")
