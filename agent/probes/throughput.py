"""Throughput probe: speedtest-cli 2.1.3 as a library, against the fleet's Speedtest Mini server.

``speedtest.Speedtest`` fetches speedtest.net's configuration in its constructor, always. In the
default ``mini`` mode :class:`LocalConfigSpeedtest` builds that configuration locally instead
(test length, sizes, counts, threads), so nothing leaves for the internet; then the library runs
its own Mini flow: ``set_mini_server``, ``get_best_server``, ``download``, ``upload``. The
``public`` mode keeps the normal speedtest.net flow (over HTTPS: plain HTTP gets 403 since 2022).
Results are in bit/s, with the bytes moved for the data budget. The upload rate counts only what
left the bus before the clock stopped (the library counts what was queued too: see
:class:`UnsentTally`). Never raises.
"""

from __future__ import annotations

import dataclasses
import fcntl
import http.client
import socket
import ssl
import struct
import termios
import threading
import time
import urllib.request
from typing import Any

import speedtest

from agent.probes.results import ThroughputMode, ThroughputResult

# Images the library asks for (random{N}x{N}.jpg weighs about 2·N² bytes): 2 MB to 8 MB, so a few
# files per thread fill a test of a few seconds on a good 4G link without a request gap dominating.
DEFAULT_DOWNLOAD_SIDES = (1000, 1500, 2000)
DEFAULT_UPLOAD_SIZES = (262_144, 524_288)
# Mainland France, for the one field of the library's configuration Mini mode does not use.
_FRANCE = (46.6, 2.4)
# The library counts a failed latency try as 3600 s: one of three makes its ping at least this.
_FAILED_PING_MS = 600_000.0
# Bounds of the upload send buffer: below 16 KiB the kernel's own overhead dominates; 256 KiB per
# thread is well past what a 4G uplink needs.
MIN_UPLOAD_BUFFER = 16_384
MAX_UPLOAD_BUFFER = 262_144


@dataclasses.dataclass(frozen=True)
class ThroughputConfig:
    """The speed test; ``length_s`` bounds each direction, and so the data one test can spend."""

    server_url: str = ""  # the fleet's Speedtest Mini, e.g. "https://speed.example.org/"
    mode: ThroughputMode = "mini"
    length_s: float = 5.0
    threads: int = 4
    download_sides: tuple[int, ...] = DEFAULT_DOWNLOAD_SIDES
    download_count: int = 4  # requests per image size
    upload_sizes: tuple[int, ...] = DEFAULT_UPLOAD_SIZES
    upload_count: int = 8  # requests per upload size
    timeout_s: float = 10.0  # per socket operation
    # Bytes the kernel may queue per upload connection; None: one bandwidth-delay product of the
    # measured download, split across the threads (see upload_buffer_bytes()).
    upload_buffer_bytes: int | None = None


class _CancelFlag:
    """The shutdown event speedtest-cli polls, answering ``isSet()`` without the deprecated alias of
    ``threading.Event`` (which warns on Python 3.10+), so no warning needs filtering."""

    def __init__(self, event: threading.Event | None) -> None:
        self._event = event or threading.Event()

    def isSet(self) -> bool:  # the name speedtest-cli calls
        return self._event.is_set()

    def is_set(self) -> bool:
        return self._event.is_set()


class UnsentTally:
    """Bytes still queued in the kernel when the upload test cut its connections.

    speedtest-cli counts a byte as sent once it is handed to the kernel, so its upload figure
    includes what was still waiting in the send queues when the clock stopped. Reading each
    queue (SIOCOUTQ) at that moment lets the probe count only what the link carried.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._total = 0

    @property
    def total(self) -> int:
        with self._lock:
            return self._total

    def add_queue_of(self, sock: socket.socket | None) -> None:
        queued = _send_queue_bytes(sock)
        with self._lock:
            self._total += queued


def _send_queue_bytes(sock: socket.socket | None) -> int:
    """Bytes written to ``sock`` that the peer has not acknowledged yet (0 where unknown)."""
    outq = getattr(termios, "TIOCOUTQ", None)  # SIOCOUTQ on a socket; Linux, as on the Pi
    if sock is None or outq is None:
        return 0
    try:
        raw = fcntl.ioctl(sock.fileno(), outq, b"\0\0\0\0")
    except (OSError, ValueError):
        return 0
    queued: int = struct.unpack("i", raw)[0]
    return max(0, queued)


def _bound(sock: socket.socket, send_buffer_bytes: int) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer_bytes)


class _UploadHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection with a bounded send buffer that reports its queue when the test cuts it."""

    def __init__(
        self, host: str, *, send_buffer_bytes: int = 32768, unsent: UnsentTally | None = None, **kwargs: Any
    ) -> None:
        super().__init__(host, **kwargs)
        self._send_buffer_bytes = send_buffer_bytes
        self._unsent = unsent or UnsentTally()

    def connect(self) -> None:
        super().connect()
        _bound(self.sock, self._send_buffer_bytes)

    def endheaders(self, message_body: Any = None, *, encode_chunked: bool = False) -> None:
        try:
            super().endheaders(message_body, encode_chunked=encode_chunked)
        except speedtest.SpeedtestUploadTimeout:  # raised by the body: the test length is reached
            self._unsent.add_queue_of(self.sock)
            raise


class _UploadHTTPSConnection(_UploadHTTPConnection, http.client.HTTPSConnection):
    """The HTTPS twin: by the method order, connect() and endheaders() above wrap the TLS ones."""


class _UploadHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, buffer_bytes: int, timeout_s: float, unsent: UnsentTally) -> None:
        super().__init__()
        self._args = {"send_buffer_bytes": buffer_bytes, "unsent": unsent}
        self._timeout_s = timeout_s

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        req.timeout = self._timeout_s  # urllib's default would be no timeout at all
        return self.do_open(_UploadHTTPConnection, req, **self._args)


class _UploadHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, buffer_bytes: int, timeout_s: float, unsent: UnsentTally) -> None:
        super().__init__()
        self._args = {
            "send_buffer_bytes": buffer_bytes,
            "unsent": unsent,
            "context": ssl.create_default_context(),
        }
        self._timeout_s = timeout_s

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        req.timeout = self._timeout_s
        return self.do_open(_UploadHTTPSConnection, req, **self._args)


def upload_buffer_bytes(config: ThroughputConfig, down_bps: float, rtt_ms: float | None) -> int:
    """Send buffer for each upload connection.

    What sits in the send queue when the test ends still goes out after it: data spent for
    nothing. With the kernel's autotuned multi-megabyte buffers that is megabytes per thread on a
    slow uplink. One bandwidth-delay product (taking the download rate, which bounds the upload
    on 4G) is what keeps the link busy; more only queues.
    """
    if config.upload_buffer_bytes is not None:
        return config.upload_buffer_bytes
    rtt_s = (rtt_ms if rtt_ms is not None else 100.0) / 1000.0
    wanted = down_bps / 8.0 * rtt_s / max(1, config.threads)
    return int(min(MAX_UPLOAD_BUFFER, max(MIN_UPLOAD_BUFFER, wanted)))


def _upload_opener(buffer_bytes: int, timeout_s: float, unsent: UnsentTally) -> urllib.request.OpenerDirector:
    """speedtest-cli's own opener (proxies from the environment, its User-Agent), on upload connections."""
    opener = urllib.request.OpenerDirector()
    opener.addheaders = [("User-agent", speedtest.build_user_agent())]
    handlers: list[urllib.request.BaseHandler] = [
        urllib.request.ProxyHandler(),
        _UploadHTTPHandler(buffer_bytes, timeout_s, unsent),
        _UploadHTTPSHandler(buffer_bytes, timeout_s, unsent),
        urllib.request.HTTPDefaultErrorHandler(),
        urllib.request.HTTPRedirectHandler(),
        urllib.request.HTTPErrorProcessor(),
    ]
    for handler in handlers:
        opener.add_handler(handler)
    return opener


class LocalConfigSpeedtest(speedtest.Speedtest):  # type: ignore[misc]
    """``speedtest.Speedtest`` whose configuration is built here instead of downloaded."""

    def __init__(self, config: ThroughputConfig, cancel: _CancelFlag) -> None:
        self._probe_config = config  # read by get_config(), which the base constructor calls
        super().__init__(timeout=config.timeout_s, shutdown_event=cancel)

    def get_config(self) -> dict[str, Any]:
        cfg = self._probe_config
        sides, sizes = list(cfg.download_sides), list(cfg.upload_sizes)
        self.config.update(
            # The client position only orders public servers by distance; the Mini is the only server.
            client={"lat": str(_FRANCE[0]), "lon": str(_FRANCE[1]), "ip": "", "isp": ""},
            ignore_servers=[],
            sizes={"download": sides, "upload": sizes},
            counts={"download": cfg.download_count, "upload": cfg.upload_count},
            threads={"download": cfg.threads, "upload": cfg.threads},
            length={"download": cfg.length_s, "upload": cfg.length_s},
            upload_max=cfg.upload_count * len(sizes),
        )
        self.lat_lon = _FRANCE
        return dict(self.config)


def _speedtest(config: ThroughputConfig, cancel: _CancelFlag) -> Any:
    """A ready speed test with its best server chosen (the Mini server, or the nearest public one)."""
    if config.mode == "public":
        # speedtest.net's configuration, with our test length merged in: it bounds the data spent.
        length = {"length": {"download": config.length_s, "upload": config.length_s}}
        public = speedtest.Speedtest(
            config=length, timeout=config.timeout_s, secure=True, shutdown_event=cancel
        )
        public.get_servers()
        public.get_best_server()
        return public
    mini = LocalConfigSpeedtest(config, cancel)
    mini.get_best_server(mini.set_mini_server(config.server_url))
    return mini


def _rtt_ms(test: Any) -> float | None:
    """Mean HTTP round trip to the server: the library's ping is sum(3 round trips)/6, half of it."""
    ping_ms = float(test.results.ping)
    return 2.0 * ping_ms if 0 < ping_ms < _FAILED_PING_MS else None


def _upload_bps(test: Any, unsent: UnsentTally) -> float:
    """The library's upload rate, counting only the bytes the link carried before the clock stopped."""
    sent = int(test.results.bytes_sent)
    if sent <= 0:
        return 0.0
    carried = max(0, sent - unsent.total)
    return float(test.results.upload) * carried / sent


def _result(config: ThroughputConfig, test: Any, up_bps: float, started: float) -> ThroughputResult:
    received, sent = int(test.results.bytes_received), int(test.results.bytes_sent)
    server = config.server_url or str((test.results.server or {}).get("url", ""))
    reason = None
    if received == 0:
        reason = f"no data received from {server} during the download test"
    elif sent == 0:
        reason = f"no data accepted by {server} during the upload test"
    return ThroughputResult(
        ok=reason is None, reason=reason, server_url=server, mode=config.mode,
        down_bps=float(test.results.download), up_bps=up_bps,
        server_rtt_ms=_rtt_ms(test),
        bytes_received=received, bytes_sent=sent, bytes_used=received + sent,
        started_mono_s=started, duration_s=time.monotonic() - started,
    )  # fmt: skip


def run(config: ThroughputConfig, *, cancel: threading.Event | None = None) -> ThroughputResult:
    """One speed test (download, then upload); setting ``cancel`` cuts it short. Never raises."""
    started = time.monotonic()
    if config.mode == "mini" and not config.server_url:
        return ThroughputResult(
            ok=False, reason="no Speedtest Mini server URL configured", server_url="", started_mono_s=started
        )
    flag = _CancelFlag(cancel)
    test: Any = None
    try:
        test = _speedtest(config, flag)
        down_bps = test.download(threads=config.threads)
        buffer = upload_buffer_bytes(config, down_bps, _rtt_ms(test))
        unsent = UnsentTally()
        test._opener = _upload_opener(buffer, config.timeout_s, unsent)  # the library offers no hook
        test.upload(threads=config.threads, pre_allocate=False)
    except (speedtest.SpeedtestException, OSError, http.client.HTTPException, ValueError) as exc:
        moved = 0 if test is None else int(test.results.bytes_received) + int(test.results.bytes_sent)
        return ThroughputResult(
            ok=False, reason=_describe(exc, config), server_url=config.server_url, mode=config.mode,
            bytes_used=moved, started_mono_s=started, duration_s=time.monotonic() - started,
        )  # fmt: skip
    result = _result(config, test, _upload_bps(test, unsent), started)
    if flag.is_set():
        return dataclasses.replace(result, ok=False, reason="speed test cancelled")
    return result


def _describe(exc: BaseException, config: ThroughputConfig) -> str:
    where = config.server_url or "speedtest.net"
    if isinstance(exc, speedtest.SpeedtestMiniConnectFailure | speedtest.SpeedtestBestServerFailure):
        return f"speed test server {where} unreachable ({exc})"
    if isinstance(exc, speedtest.InvalidSpeedtestMiniServer):
        return f"{where} is not a Speedtest Mini server (no upload extension found)"
    if isinstance(exc, speedtest.ConfigRetrievalError):
        return f"cannot retrieve the speedtest.net configuration ({exc})"
    return f"speed test against {where} failed: {type(exc).__name__}: {exc}"
