"""Threaded socket servers for simulators that stop completely: bounded waits, no stray threads.

``socketserver``'s threading servers leave daemon handler threads running after ``server_close()``:
one blocked on a client that sends nothing (or a body that never ends) lives as long as the
process, holding its buffers. Here every connection gets a timeout, every handler thread is
tracked, and :meth:`ClosingThreadingMixIn.close_connections` cuts the open connections and waits
for their threads. :class:`HttpEndpoint` runs one quiet HTTP server that way between start() and
stop(), coming back on the same port after a restart (a replugged stick, a printer switched on).
:func:`read_body` reads a request body, plain or chunked, never past a size cap.
"""

from __future__ import annotations

import contextlib
import http.server
import re
import socket
import socketserver
import threading
import time
from typing import Any, Generic, TypeVar

T = TypeVar("T")

# A client silent for this long is hung up on; generous for tests, short enough to free a thread.
REQUEST_TIMEOUT_S = 5.0
_JOIN_TIMEOUT_S = 2.0
# How often serve_forever() looks at its shutdown flag: shutdown() waits for it.
_POLL_S = 0.05
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")  # no sign, no "0x", no "_": what RFC 9112 allows
_MAX_CHUNK_LINE = 1024
_MAX_TRAILERS = 64


class ClosingThreadingMixIn(socketserver.ThreadingMixIn):
    """A thread per connection, with a timeout on it, and every one tracked until it ends."""

    daemon_threads = True
    block_on_close = False  # close_connections() does the joining, with a bound
    request_timeout_s = REQUEST_TIMEOUT_S

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._live_lock = threading.Lock()
        self._live: dict[Any, threading.Thread] = {}
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        # Registered here, in the serving thread, so no connection can escape close_connections().
        request.settimeout(self.request_timeout_s)
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name=f"{type(self).__name__}-request",
            daemon=True,
        )
        with self._live_lock:
            self._live[request] = thread
        thread.start()

    def shutdown_request(self, request: Any) -> None:
        with self._live_lock:
            self._live.pop(request, None)
        super().shutdown_request(request)  # type: ignore[misc]  # provided by the server class

    def close_connections(self, timeout_s: float = _JOIN_TIMEOUT_S) -> None:
        """Hang up on every open connection and wait (bounded) for the handler threads to end."""
        with self._live_lock:
            live = list(self._live.items())
        for request, _ in live:
            with contextlib.suppress(OSError):  # already closed by its handler
                request.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout_s
        for _, thread in live:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that timed out, hung up or was cut by stop() is normal here: no traceback."""


class QuietHTTPServer(ClosingThreadingMixIn, http.server.HTTPServer, Generic[T]):
    """An HTTP server that knows its simulator (no class-level globals) and stops completely."""

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[http.server.BaseHTTPRequestHandler],
        simulator: T,
        request_timeout_s: float = REQUEST_TIMEOUT_S,
    ) -> None:
        self.simulator = simulator
        self.request_timeout_s = request_timeout_s
        super().__init__(address, handler)


class QuietHandler(http.server.BaseHTTPRequestHandler):
    """Requests are recorded in the simulator's history, not printed on stderr."""

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


class HttpEndpoint(Generic[T]):
    """One :class:`QuietHTTPServer` for ``simulator`` on a daemon thread between start() and stop()."""

    def __init__(
        self,
        simulator: T,
        handler: type[QuietHandler],
        address: tuple[str, int],
        *,
        name: str,
        request_timeout_s: float = REQUEST_TIMEOUT_S,
    ) -> None:
        self._simulator = simulator
        self._handler = handler
        self._name = name
        self._request_timeout_s = request_timeout_s
        self.address = address
        self._server: QuietHTTPServer[T] | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> None:
        """Listen (on the port of the previous run, if any) and serve from a daemon thread."""
        if self._server is not None:
            return
        server = QuietHTTPServer(self.address, self._handler, self._simulator, self._request_timeout_s)
        host, port = server.server_address[:2]
        # Keep the bound port so a stop()/start() comes back on the same URL.
        self.address = (str(host), int(port))
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, args=(_POLL_S,), name=self._name, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Refuse new connections, cut the open ones and wait for every thread of this server."""
        server, thread = self._server, self._thread
        self._server, self._thread = None, None
        if server is not None:
            server.shutdown()
            server.close_connections()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)


def read_body(handler: http.server.BaseHTTPRequestHandler, max_bytes: int) -> bytes | None:
    """The request body (Content-Length or chunked, as CUPS clients send) of at most ``max_bytes``;
    None when it is malformed or larger."""
    try:
        if "chunked" in handler.headers.get("Transfer-Encoding", "").lower():
            return _read_chunked(handler, max_bytes)
        length = int(handler.headers.get("Content-Length") or 0)
    except ValueError:
        return None
    if not 0 <= length <= max_bytes:
        return None
    return handler.rfile.read(length)


def _read_chunked(handler: http.server.BaseHTTPRequestHandler, max_bytes: int) -> bytes | None:
    """A chunked body of at most ``max_bytes`` in all; None as soon as it is malformed or too big."""
    chunks: list[bytes] = []
    total = 0
    while True:
        size = _chunk_size(handler.rfile.readline(_MAX_CHUNK_LINE + 1))
        if size is None:
            return None
        if size == 0:
            return b"".join(chunks) if _skip_trailers(handler) else None
        # Checked before reading: the cap bounds memory whatever sizes the client announces.
        total += size
        if total > max_bytes:
            return None
        chunk = handler.rfile.read(size)
        if len(chunk) != size or handler.rfile.readline(3) not in (b"\r\n", b"\n"):
            return None  # cut short, or no CRLF where the chunk should end
        chunks.append(chunk)


def _chunk_size(line: bytes) -> int | None:
    """The size on a chunk-size line (extensions after ";" ignored); None unless plain hex digits."""
    if not line.endswith(b"\n"):
        return None  # over-long or cut
    digits = line.split(b";")[0].strip()
    return int(digits, 16) if _CHUNK_SIZE.fullmatch(digits) else None


def _skip_trailers(handler: http.server.BaseHTTPRequestHandler) -> bool:
    for _ in range(_MAX_TRAILERS):
        line = handler.rfile.readline(_MAX_CHUNK_LINE + 1)
        if line in (b"\r\n", b"\n"):
            return True
        if not line.endswith(b"\n"):
            return False
    return False
