"""The simulated access link of one stop, shaped in userspace: rate, round trip and loss.

The kernel here has no netem, and a TCP handshake on loopback completes in no time, so the
simulated servers shape the link themselves: they pace what they write (down) and read (up)
through shared token buckets, answer one round trip after a request arrived (as the kernel dated
it, see arrival.py), and drop a seeded share of requests. Every service of one stop shares one
:class:`Link`, as they share one 4G modem. :class:`LinkedHttpService` is the plumbing that puts an
HTTP service behind a link.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import http.server
import io
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Self

from simulators.base import Clock, History
from simulators.netsvc.arrival import stamp_arrivals, stream_arrival

# Pacing granularity: one chunk is about this much link time, so sleeps stay coarse for the CPU
# while the delivered rate stays smooth at the scale of a probe.
CHUNK_TIME_S = 0.01
MIN_CHUNK_BYTES = 1024
MAX_CHUNK_BYTES = 16384


def chunk_bytes(rate_bytes_s: float) -> int:
    """Bytes paced as one piece at this rate; also the credit an idle link may bank, so that a
    late wake-up is made up for while a fresh request gets no head start worth measuring."""
    return int(min(MAX_CHUNK_BYTES, max(MIN_CHUNK_BYTES, rate_bytes_s * CHUNK_TIME_S)))


@dataclasses.dataclass(frozen=True)
class LinkProfile:
    """What the network really delivers at a stop (the scenario's ``link`` table)."""

    down_mbps: float
    up_mbps: float
    rtt_ms: float
    loss: float = 0.0  # share of requests (or datagrams) that never get an answer

    def __post_init__(self) -> None:
        if self.down_mbps <= 0 or self.up_mbps <= 0:
            raise ValueError(f"link rates must be positive, got {self.down_mbps}/{self.up_mbps} Mbit/s")
        if self.rtt_ms < 0:
            raise ValueError(f"rtt_ms must be >= 0, got {self.rtt_ms}")
        if not 0.0 <= self.loss <= 1.0:
            raise ValueError(f"loss must be within 0..1, got {self.loss}")


class TokenBucket:
    """A shared rate limiter in virtual time: every caller is charged for its bytes and told how
    long to wait, so concurrent connections share the rate instead of each getting all of it."""

    def __init__(self, rate_bytes_s: Callable[[], float], clock: Clock) -> None:
        self._rate = rate_bytes_s
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens = 0.0
        self._last = clock()

    def charge(self, nbytes: int) -> float:
        """Take ``nbytes`` of credit; returns the seconds to wait before they may cross the link."""
        with self._lock:
            now = self._clock()
            rate = self._rate()
            self._tokens = min(chunk_bytes(rate), self._tokens + (now - self._last) * rate)
            self._last = now
            self._tokens -= nbytes
            return max(0.0, -self._tokens / rate)


class Link:
    """One stop's link; ``set_profile`` changes it while services run (the bus moved on)."""

    def __init__(self, profile: LinkProfile, *, seed: int = 0, clock: Clock = time.monotonic) -> None:
        self.history = History(clock)
        self._profile = profile
        self._lock = threading.Lock()
        self._rng = random.Random(seed)  # noqa: S311 - simulated loss, not security
        self._down = TokenBucket(lambda: self.profile.down_mbps * 125_000, clock)
        self._up = TokenBucket(lambda: self.profile.up_mbps * 125_000, clock)
        self._bytes_down = 0
        self._bytes_up = 0

    @property
    def profile(self) -> LinkProfile:
        with self._lock:
            return self._profile

    def set_profile(self, profile: LinkProfile) -> None:
        """Test verb: the link now delivers ``profile`` (next chunk, next request)."""
        self.history.record("set_profile", profile=profile)
        with self._lock:
            self._profile = profile

    @property
    def bytes_down(self) -> int:
        """Bytes the services wrote to clients through this link."""
        with self._lock:
            return self._bytes_down

    @property
    def bytes_up(self) -> int:
        """Bytes the services read from clients through this link."""
        with self._lock:
            return self._bytes_up

    def drop(self) -> bool:
        """Draw from the seeded RNG: should this request go unanswered?"""
        with self._lock:
            return self._rng.random() < self._profile.loss

    def wait_rtt(self, stopping: threading.Event, since: float | None = None) -> bool:
        """Hold an answer until one round trip after ``since`` (the ``time.monotonic()`` instant the
        request arrived; now if None); False when the service stopped meanwhile."""
        delay = self.profile.rtt_ms / 1000.0
        if since is not None:
            delay -= time.monotonic() - since  # reading the request took part of the round trip
        return not stopping.wait(max(0.0, delay))

    def send(self, sock: socket.socket, data: bytes, stopping: threading.Event) -> int:
        """Write ``data`` at the down rate; returns the bytes written before the peer left or we stopped."""
        view = memoryview(data)
        sent = 0
        while sent < len(view) and not stopping.is_set():
            piece = view[sent : sent + self._chunk(self.profile.down_mbps)]
            if stopping.wait(self._down.charge(len(piece))):
                break
            try:
                sock.sendall(piece)
            except OSError:
                break  # the client hung up (test over, timed out): normal on a speed test
            sent += len(piece)
            self._count(down=len(piece))
        return sent

    def receive(self, rfile: io.BufferedIOBase, nbytes: int, stopping: threading.Event) -> int:
        """Read and discard ``nbytes`` at the up rate; returns the bytes read before EOF or stop.

        ``rfile`` should be unbuffered (one ``recv`` per ``read``), so nothing is taken ahead of the pacing.
        """
        got = 0
        while got < nbytes and not stopping.is_set():
            want = min(nbytes - got, self._chunk(self.profile.up_mbps))
            try:
                piece = rfile.read(want)
            except OSError:
                break
            if not piece:
                break
            got += len(piece)
            self._count(up=len(piece))
            # Paying after the read keeps us at most one chunk ahead of the link.
            if stopping.wait(self._up.charge(len(piece))):
                break
        return got

    def _count(self, *, down: int = 0, up: int = 0) -> None:
        with self._lock:
            self._bytes_down += down
            self._bytes_up += up

    @staticmethod
    def _chunk(mbps: float) -> int:
        return chunk_bytes(mbps * 125_000)


def shaped_listener(address: tuple[str, int]) -> socket.socket:
    """A listening socket whose connections behave like a real path, not like loopback.

    Loopback TCP has a 64 KiB MSS and multi-megabyte autotuned buffers: a client could queue
    megabytes in the kernel and count them as "sent" long before our paced reader takes them. A
    1460-byte MSS (a real 1500-byte MTU path) and a small receive window keep what sits between
    the client and the link to a few kilobytes.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 1460)
    stamp_arrivals(sock)  # round trips are counted from when a request arrived (see arrival.py)
    sock.bind(address)
    sock.listen(64)
    # Non-blocking: if another thread takes a pending connection between our select() and accept(),
    # the serving loop must move on, not block so that stop() never returns.
    sock.setblocking(False)
    return sock


class ShapedHTTPServer(http.server.ThreadingHTTPServer):
    """A threading HTTP server on a :func:`shaped_listener` that hands requests to its service."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], service: LinkedHttpService) -> None:
        self.service = service
        super().__init__(address, LinkedHandler, bind_and_activate=False)
        self.socket.close()
        self.socket = shaped_listener(address)
        self.server_address = self.socket.getsockname()[:2]

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that timed out and hung up is normal on a shaped link; no tracebacks."""


class LinkedHandler(http.server.BaseHTTPRequestHandler):
    """One connection to a :class:`LinkedHttpService`; ``arrived`` dates the request being handled."""

    server: ShapedHTTPServer
    # Unbuffered reads: a buffered reader would take 8 KiB from the kernel ahead of the pacing,
    # opening the client's window early and letting it count bytes the link has not carried yet.
    rbufsize = 0
    # No connection thread may block for ever on a client that vanished without closing.
    timeout = 30.0
    #: The ``time.monotonic()`` instant the current request's first bytes arrived.
    arrived = 0.0

    def handle_one_request(self) -> None:
        self.arrived = stream_arrival(self.connection)  # before parsing reads the request
        super().handle_one_request()

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        service = self.server.service
        with service.busy(), contextlib.suppress(OSError):
            service.handle(self, method)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: requests are recorded in the service's history instead of on stderr."""


class LinkedHttpService(abc.ABC):
    """Lifecycle of an HTTP service behind a :class:`Link`: ``start``/``stop``, ``url``, ``history``."""

    thread_name = "netsvc-http"

    def __init__(
        self, link: Link, *, host: str = "127.0.0.1", port: int = 0, clock: Clock = time.monotonic
    ) -> None:
        self.link = link
        self.history = History(clock)
        self.stopping = threading.Event()
        self._address = (host, port)
        self._server: ShapedHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._active = 0
        self._idle = threading.Condition()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash)."""
        if self._server is None:
            raise RuntimeError("service not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Self:
        self.stopping.clear()
        self._server = ShapedHTTPServer(self._address, self)
        # A short poll interval makes stop() quick: tests start and stop services many times.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name=self.thread_name, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; held and paced connections are released. A later start() reuses the port."""
        self.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            host, port = self._server.server_address[:2]
            self._address = (str(host), int(port))
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @contextlib.contextmanager
    def busy(self) -> Iterator[None]:
        """Count a request as in progress while it is handled (see :meth:`wait_idle`)."""
        with self._idle:
            self._active += 1
        try:
            yield
        finally:
            with self._idle:
                self._active -= 1
                self._idle.notify_all()

    def wait_idle(self, timeout_s: float = 5.0) -> bool:
        """Test verb: wait until no request is being handled (clients done, every byte counted)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._active == 0, timeout_s)

    @abc.abstractmethod
    def handle(self, handler: LinkedHandler, method: str) -> None:
        """Answer one request (called on the connection's own thread)."""

    def hold_until_client_leaves(self, handler: http.server.BaseHTTPRequestHandler, limit_s: float) -> None:
        """A lost request: say nothing until the client gives up and closes (or we stop)."""
        sock: socket.socket = handler.connection
        sock.settimeout(0.1)
        deadline = time.monotonic() + limit_s
        while not self.stopping.is_set() and time.monotonic() < deadline:
            try:
                if not sock.recv(4096):
                    return
            except TimeoutError:
                continue
            except OSError:
                return
        handler.close_connection = True
