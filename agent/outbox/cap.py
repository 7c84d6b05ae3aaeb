"""The size cap: when to thin, how far below the cap, and the log events that say so."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import structlog

from agent.outbox import thinning

log = structlog.get_logger(__name__)

#: When the cap is hit, thin a little below it so that thinning runs once per ~1 % of the cap
#: (at most 1 MB, which keeps that one transaction short) rather than at every append.
THIN_HEADROOM_FRACTION = 0.01
THIN_HEADROOM_MAX_BYTES = 1_000_000


class Cap:
    """Keeps the outbox's logical byte count under ``cap_bytes`` by thinning low-priority rows only."""

    def __init__(self, path: Path, cap_bytes: int, thin_cursor: int) -> None:
        self.path = path
        self.cap_bytes = cap_bytes
        self._cursor = thin_cursor
        self._parity: dict[str, int] = {}  # lost at restart: costs one uneven step, no more
        self._over = False

    def enforce(self, conn: sqlite3.Connection, used: int) -> tuple[int, thinning.Thinned | None]:
        """Inside the caller's transaction: thin when ``used`` exceeds the cap; returns the new count."""
        if used <= self.cap_bytes:
            return used, None
        headroom = min(int(self.cap_bytes * THIN_HEADROOM_FRACTION), THIN_HEADROOM_MAX_BYTES)
        thinned = thinning.thin_low_priority(
            conn, used - (self.cap_bytes - headroom), self._cursor, self._parity
        )
        conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('thin_cursor', ?)", (str(thinned.cursor),)
        )
        return used - thinned.freed, thinned

    def committed(self, used: int, thinned: thinning.Thinned | None) -> None:
        """After the commit: keep the sweep position and log what changed (once per change of state)."""
        if thinned is not None:
            self._cursor, self._parity = thinned.cursor, thinned.parity
            if thinned.count:
                per_stream = {stream: len(seqs) for stream, seqs in thinned.dropped.items()}
                log.warning(
                    "outbox.thinned", dropped=per_stream, freed_bytes=thinned.freed, cap_bytes=self.cap_bytes
                )
        over = used > self.cap_bytes
        if over and not self._over:
            log.error(
                "outbox.over_cap",
                path=str(self.path),
                bytes_used=used,
                cap_bytes=self.cap_bytes,
                reason="only normal/high priority records left; they are never dropped",
            )
        elif self._over and not over:
            log.info("outbox.under_cap", path=str(self.path), bytes_used=used, cap_bytes=self.cap_bytes)
        self._over = over
