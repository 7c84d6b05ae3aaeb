"""HTTP(S) probe: time to first byte and full fetch time of the portals the bus agents use.

Plain ``http.client`` with timeouts and an overall deadline; up to three redirects are followed
and the final status is recorded. Name resolution is bounded by the timeout but not counted in the
times (the DNS probe measures it); the TLS handshake is. ``bytes_used`` counts request, headers and
body as they crossed the link (compressed if the server compressed), not the TLS handshake.
Never raises.
"""

from __future__ import annotations

import dataclasses
import http.client
import socket
import ssl
import time
from urllib.parse import urljoin, urlsplit

from agent.probes import DEFAULT_PORTAL_URLS
from agent.probes.dns import system_lookup
from agent.probes.results import HttpResult

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_CHUNK = 16384
_HEADERS = {
    "User-Agent": "busagent-probe/1 (+connectivity check of a mobile public-service bus)",
    "Accept": "text/html,*/*;q=0.8",
    "Accept-Encoding": "gzip",  # what a browser gets; we count the bytes, never decompress them
    "Connection": "close",
}


@dataclasses.dataclass(frozen=True)
class HttpConfig:
    urls: tuple[str, ...] = DEFAULT_PORTAL_URLS
    timeout_s: float = 10.0  # for the whole fetch, redirects included
    max_redirects: int = 3
    max_body_bytes: int = 3_000_000  # a portal page is far smaller; this bounds the data spent


@dataclasses.dataclass(frozen=True)
class _Hop:
    """One request/response; times are perf_counter instants."""

    status: int
    location: str | None
    connect_ms: float
    first_byte_at: float
    last_byte_at: float
    body_bytes: int
    truncated: bool
    bytes_used: int


def _remaining(deadline: float, timeout_s: float) -> float:
    left = deadline - time.perf_counter()
    if left <= 0:
        raise TimeoutError(f"page not fetched within {timeout_s:g} s")
    return left


def _open(url: str, deadline: float, timeout_s: float, tls: ssl.SSLContext) -> http.client.HTTPConnection:
    """A connection to ``url``'s host with its socket already set up (TCP, then TLS for https)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    host, secure = parts.hostname, parts.scheme == "https"
    port = parts.port or (443 if secure else 80)
    infos = system_lookup(host, port, _remaining(deadline, timeout_s))
    family, sockaddr = infos[0][0], infos[0][4]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.settimeout(_remaining(deadline, timeout_s))
        sock.connect(sockaddr)
        if secure:
            sock = tls.wrap_socket(sock, server_hostname=host)
    except BaseException:
        sock.close()
        raise
    conn_class = http.client.HTTPSConnection if secure else http.client.HTTPConnection
    conn = conn_class(host, port, timeout=timeout_s)
    conn.sock = sock  # already connected: http.client uses it as is
    return conn


def _read_body(
    response: http.client.HTTPResponse, deadline: float, timeout_s: float, cap: int
) -> tuple[int, bool]:
    """Read and discard the body: (bytes read, whether it was cut at ``cap``)."""
    got = 0
    while got < cap:
        _remaining(deadline, timeout_s)
        piece = response.read(min(_CHUNK, cap - got))
        if not piece:
            return got, False
        got += len(piece)
    return got, bool(response.read(1))


def _request(url: str, deadline: float, timeout_s: float, tls: ssl.SSLContext, cap: int) -> _Hop:
    t0 = time.perf_counter()
    conn = _open(url, deadline, timeout_s, tls)
    try:
        connect_ms = (time.perf_counter() - t0) * 1000.0
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn.request("GET", target, headers=_HEADERS)
        response = conn.getresponse()
        first_byte_at = time.perf_counter()
        body, truncated = _read_body(response, deadline, timeout_s, cap)
        request_bytes = len(target) + sum(len(k) + len(v) + 4 for k, v in _HEADERS.items()) + 40
        header_bytes = len(str(response.msg)) + len(response.reason) + 15
        return _Hop(
            status=response.status, location=response.getheader("Location"), connect_ms=connect_ms,
            first_byte_at=first_byte_at, last_byte_at=time.perf_counter(), body_bytes=body,
            truncated=truncated, bytes_used=request_bytes + header_bytes + body,
        )  # fmt: skip
    finally:
        conn.close()


def _describe(exc: BaseException, url: str, timeout_s: float) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return f"{url}: connection refused"
    if isinstance(exc, TimeoutError):
        return f"{url}: no complete answer within {timeout_s:g} s"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"{url}: certificate not trusted ({exc.verify_message})"
    if isinstance(exc, socket.gaierror):
        return f"{url}: cannot resolve host ({exc.strerror})"
    return f"{url}: {type(exc).__name__}: {exc}"


def fetch(
    url: str,
    *,
    timeout_s: float = 10.0,
    max_redirects: int = 3,
    max_body_bytes: int = 3_000_000,
    tls: ssl.SSLContext | None = None,
) -> HttpResult:
    """Fetch ``url`` once, following up to ``max_redirects`` redirects; never raises."""
    started = time.monotonic()
    context = tls or ssl.create_default_context()
    t0 = time.perf_counter()
    deadline = t0 + timeout_s
    current, redirects, used = url, 0, 0
    try:
        while True:
            hop = _request(current, deadline, timeout_s, context, max_body_bytes)
            used += hop.bytes_used
            if hop.status not in REDIRECT_STATUSES or not hop.location or redirects == max_redirects:
                break
            current, redirects = urljoin(current, hop.location), redirects + 1
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return HttpResult(
            ok=False, reason=_describe(exc, current, timeout_s), url=url, final_url=current,
            redirects=redirects, bytes_used=used, started_mono_s=started,
            duration_s=time.monotonic() - started,
        )  # fmt: skip
    return HttpResult(
        ok=hop.status < 300, reason=_status_reason(hop, current, max_redirects), url=url,
        final_url=current, status=hop.status, redirects=redirects, connect_ms=hop.connect_ms,
        ttfb_ms=(hop.first_byte_at - t0) * 1000.0, fetch_ms=(hop.last_byte_at - t0) * 1000.0,
        body_bytes=hop.body_bytes, truncated=hop.truncated, bytes_used=used,
        started_mono_s=started, duration_s=time.monotonic() - started,
    )  # fmt: skip


def _status_reason(hop: _Hop, url: str, max_redirects: int) -> str | None:
    if hop.status in REDIRECT_STATUSES and hop.location:
        return f"{url}: more than {max_redirects} redirects (still HTTP {hop.status})"
    if hop.status >= 300:
        return f"{url}: HTTP {hop.status}"
    return None


def run(config: HttpConfig) -> tuple[HttpResult, ...]:
    """Every configured URL, one after the other."""
    return tuple(
        fetch(
            url, timeout_s=config.timeout_s, max_redirects=config.max_redirects,
            max_body_bytes=config.max_body_bytes,
        )
        for url in config.urls
    )  # fmt: skip
