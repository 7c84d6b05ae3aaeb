"""What the collector needs from a store, whatever the database: the ``CollectorStore`` protocol.

:class:`collector.store.Store` (SQLite) and :class:`collector.store_pg.PgStore` (PostgreSQL) both
conform; :mod:`collector.ingest` and the command line speak only to this protocol.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from agent.mqtt.wire import AckView, Received
from collector.store import PayloadRow, StreamRow


class StoreError(Exception):
    """The database refused or lost a write or read (a bad value, a dropped connection, a schema
    this version does not know); the message names the database."""


class CollectorStore(Protocol):
    """Records stored once by ``(vehicle, epoch, stream, seq)``; per-stream contiguous acks."""

    def store_records(
        self, vehicle: str, epoch: str, records: Sequence[Received], now: float
    ) -> tuple[int, int]:
        """Store records of one stream; returns (stored, duplicates). Idempotent."""
        ...

    def store_dropped(
        self, vehicle: str, epoch: str, stream: str, ranges: Sequence[Sequence[int]], now: float
    ) -> None:
        """Seq ranges the agent's outbox dropped: counted as dropped, not missing; not waited for."""
        ...

    def store_status(self, vehicle: str, doc: dict[str, Any], now: float) -> None:
        """The vehicle's retained status document (birth, last will, clean stop)."""
        ...

    def reject(self, reason: str, topic: str, detail: str, now: float) -> None:
        """Count one message that was not stored, by reason."""
        ...

    def ack_state(self, vehicle: str) -> tuple[str, dict[str, AckView]] | None:
        """(epoch, {stream: what we hold}) for the vehicle's latest epoch, or None if never seen."""
        ...

    def stream_rows(self) -> list[StreamRow]:
        """Per vehicle and stream: received, missing (gaps), duplicates, dropped, last seen."""
        ...

    def rejects(self) -> dict[str, int]:
        """Messages not stored, counted by reason."""
        ...

    def payloads(self, vehicle: str, stream: str) -> list[tuple[int, dict[str, Any]]]:
        """(seq, payload) of a stream in the order they first arrived."""
        ...

    def stream_payloads(
        self, stream: str, *, since: float | None = ..., with_text: str | None = ..., chunk: int = ...
    ) -> Iterable[PayloadRow]:
        """Every payload of ``stream``, all vehicles, in (vehicle, epoch, seq) order; for the maps."""
        ...

    def payloads_near(
        self, vehicle: str, stream: str, boot_id: str, mono: float, *, within_s: float, limit: int = ...
    ) -> list[PayloadRow]:
        """One boot's payloads of ``stream`` nearest to monotonic time ``mono``; for the maps."""
        ...

    def close(self) -> None: ...


def display_url(url: str) -> str:
    """The database URL as error messages may show it: a password (``user:pw@`` or
    ``?password=``) replaced by ``***``. A plain file path is shown as it is."""
    if "://" not in url:
        return url
    parts = urllib.parse.urlsplit(url)
    netloc, query = parts.netloc, parts.query
    if parts.password is not None:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.partition(':')[0]}:***@{host}"
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
    if any(k == "password" for k, _ in pairs):
        query = urllib.parse.urlencode([(k, "***" if k == "password" else v) for k, v in pairs], safe="/:*")
    if (netloc, query) == (parts.netloc, parts.query):
        return url  # nothing to hide; urlunsplit would also drop the // of postgresql:///db
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
