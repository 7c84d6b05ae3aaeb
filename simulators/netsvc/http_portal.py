"""A public-service portal (caf.fr, impots.gouv.fr, ...) on 127.0.0.1, seen through a shaped link.

Every request's first byte waits one round trip of the link, pages stream at the link's down
rate, and the link's loss share of requests never get an answer: the connection is held until
the client gives up. Test verbs add pages, redirects and error statuses; every request and what
was done with it is recorded in :attr:`HttpPortal.history`.
"""

from __future__ import annotations

import threading
import time
from urllib.parse import urlsplit

from simulators.base import Clock
from simulators.netsvc.link import Link, LinkedHandler, LinkedHttpService

_FILLER = b"<p>Prenez rendez-vous en ligne avec votre conseiller.</p>\n" * 64


def page(size_bytes: int) -> bytes:
    """An HTML page of exactly ``size_bytes`` bytes."""
    head = b"<!doctype html><html><body>\n"
    body = head + _FILLER * (size_bytes // len(_FILLER) + 1)
    return body[:size_bytes]


class HttpPortal(LinkedHttpService):
    """One portal; every path serves a page of ``page_bytes`` unless a verb says otherwise."""

    thread_name = "netsvc-portal"

    def __init__(
        self,
        link: Link,
        *,
        page_bytes: int = 20_000,
        hold_s: float = 30.0,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Clock = time.monotonic,
    ) -> None:
        super().__init__(link, host=host, port=port, clock=clock)
        self._lock = threading.Lock()
        self._page_bytes = page_bytes
        self._hold_s = hold_s
        self._pages: dict[str, int] = {}
        self._redirects: dict[str, tuple[int, str]] = {}
        self._statuses: dict[str, int] = {}

    # ------------------------------------------------------------------ test verbs

    def set_page(self, path: str, size_bytes: int) -> None:
        """Serve ``path`` as a page of ``size_bytes`` bytes."""
        self.history.record("set_page", path=path, size_bytes=size_bytes)
        with self._lock:
            self._pages[path] = size_bytes

    def redirect(self, path: str, location: str, status: int = 302) -> None:
        """Answer ``path`` with a redirect to ``location`` (relative or absolute)."""
        self.history.record("redirect", path=path, location=location, status=status)
        with self._lock:
            self._redirects[path] = (status, location)

    def fail(self, path: str, status: int) -> None:
        """Answer ``path`` with an error status and a short page (a portal in maintenance)."""
        self.history.record("fail", path=path, status=status)
        with self._lock:
            self._statuses[path] = status

    # ------------------------------------------------------------------ serving

    @property
    def body_bytes_sent(self) -> int:
        """Page bytes that went out to clients (headers not counted)."""
        return sum(e.detail["body_bytes"] for e in self.history.events if e.name == "answered")

    def handle(self, handler: LinkedHandler, method: str) -> None:
        path = urlsplit(handler.path).path
        self.history.record("request", method=method, path=path)
        if self.link.drop():
            self.history.record("dropped", method=method, path=path)
            self.hold_until_client_leaves(handler, self._hold_s)
            return
        if not self.link.wait_rtt(self.stopping, since=handler.arrived):
            return
        status, location, body = self._answer(path)
        handler.send_response(status)
        if location is not None:
            handler.send_header("Location", location)
        handler.send_header("Content-Type", "text/html; charset=utf-8")
        handler.send_header("Content-Length", str(len(body)))
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.close_connection = True
        sent = 0 if method == "HEAD" else self.link.send(handler.connection, body, self.stopping)
        self.history.record("answered", method=method, path=path, status=status, body_bytes=sent)

    def _answer(self, path: str) -> tuple[int, str | None, bytes]:
        with self._lock:
            if path in self._redirects:
                status, location = self._redirects[path]
                return status, location, page(0)
            if path in self._statuses:
                return self._statuses[path], None, page(200)
            return 200, None, page(self._pages.get(path, self._page_bytes))
