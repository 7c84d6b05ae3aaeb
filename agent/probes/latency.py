"""Latency and loss probe: N timed tries to one target, given as a URL.

``tcp://host:port`` times the TCP connect. ``http(s)://host[:port]/path`` connects (TCP, then TLS)
and times a ``HEAD`` on the open connection: the request's round trip is the latency, since a
connect alone is answered by the nearest middlebox (or the kernel) and sees no server delay.
``icmp://host`` sends echo requests on an unprivileged ICMP socket where the system permits it
(``net.ipv4.ping_group_range``) and reports "unavailable" otherwise. Loss is the share of tries
without an answer within the timeout. Never raises.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import os
import socket
import ssl
import statistics
import struct
import time
from urllib.parse import urlsplit

from agent.probes import DEFAULT_LATENCY_TARGETS
from agent.probes.dns import system_lookup
from agent.probes.results import LatencyMethod, LatencyResult

_MAX_HEADER_BYTES = 16384
_PING_RANGE = "/proc/sys/net/ipv4/ping_group_range"


@dataclasses.dataclass(frozen=True)
class LatencyConfig:
    targets: tuple[str, ...] = DEFAULT_LATENCY_TARGETS
    tries: int = 5
    timeout_s: float = 2.0  # per try
    interval_s: float = 0.2  # pause between tries, so a try does not queue behind the previous one


@dataclasses.dataclass(frozen=True)
class Target:
    method: LatencyMethod
    host: str
    port: int
    path: str = "/"
    tls: bool = False

    @property
    def host_header(self) -> str:
        """``Host:`` value: the port only when it is not the scheme's own; IPv6 in brackets."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == (443 if self.tls else 80) else f"{host}:{self.port}"


@dataclasses.dataclass(frozen=True)
class _Try:
    rtt_ms: float | None
    connect_ms: float | None = None
    error: str | None = None
    bytes_used: int = 0


def parse_target(text: str) -> Target:
    """``tcp://h:p``, ``http(s)://h[:p]/path`` or ``icmp://h``; raises ValueError with what is wrong."""
    parts = urlsplit(text)
    host = parts.hostname
    if not host:
        raise ValueError(f"{text!r} has no host (want tcp://host:port, http(s)://host/path or icmp://host)")
    port = parts.port  # raises ValueError for a bad port
    if parts.scheme == "tcp":
        if port is None:
            raise ValueError(f"{text!r} needs a port, e.g. tcp://{host}:443")
        return Target("tcp", host, port)
    if parts.scheme in ("http", "https"):
        tls = parts.scheme == "https"
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return Target("http", host, port or (443 if tls else 80), path, tls)
    if parts.scheme == "icmp":
        return Target("icmp", host, 0)
    raise ValueError(f"{text!r}: unknown scheme {parts.scheme!r} (want tcp, http, https or icmp)")


# --------------------------------------------------------------------------- one try per method


def _remaining(deadline: float) -> float:
    left = deadline - time.perf_counter()
    if left <= 0:
        raise TimeoutError
    return left


def _tcp_try(address: tuple[int, tuple[str, int]], timeout_s: float) -> _Try:
    family, sockaddr = address
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        t0 = time.perf_counter()
        sock.connect(sockaddr)
        connect_ms = (time.perf_counter() - t0) * 1000.0
    return _Try(rtt_ms=connect_ms, connect_ms=connect_ms)


def _http_try(
    address: tuple[int, tuple[str, int]], target: Target, timeout_s: float, tls: ssl.SSLContext | None
) -> _Try:
    family, sockaddr = address
    deadline = time.perf_counter() + timeout_s
    raw = sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        raw.settimeout(timeout_s)
        t0 = time.perf_counter()
        raw.connect(sockaddr)
        if tls is not None:
            sock = tls.wrap_socket(raw, server_hostname=target.host)
        connect_ms = (time.perf_counter() - t0) * 1000.0
        request = (
            f"HEAD {target.path} HTTP/1.1\r\nHost: {target.host_header}\r\n"
            "User-Agent: busagent-probe/1\r\nConnection: close\r\n\r\n"
        ).encode()
        sock.settimeout(_remaining(deadline))
        t1 = time.perf_counter()
        sock.sendall(request)
        head = sock.recv(4096)
        rtt_ms = (time.perf_counter() - t1) * 1000.0
        if not head:
            return _Try(None, connect_ms, "connection closed without an answer", len(request))
        used = len(request) + len(head) + _drain_headers(sock, head, deadline)
        return _Try(rtt_ms, connect_ms, bytes_used=used)
    finally:
        sock.close()
        raw.close()


def _drain_headers(sock: socket.socket, head: bytes, deadline: float) -> int:
    """Read the rest of the response headers (they cross the link anyway); returns their size."""
    seen, extra = head, 0
    with contextlib.suppress(OSError):
        while b"\r\n\r\n" not in seen and len(seen) < _MAX_HEADER_BYTES:
            sock.settimeout(_remaining(deadline))
            more = sock.recv(4096)
            if not more:
                break
            seen += more
            extra += len(more)
    return extra


def _checksum(packet: bytes) -> int:
    """The Internet checksum (RFC 1071)."""
    if len(packet) % 2:
        packet += b"\x00"
    total: int = sum(struct.unpack(f"!{len(packet) // 2}H", packet))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def echo_request(seq: int, payload: bytes = b"busagent-probe!!") -> bytes:
    """An ICMP echo request; the kernel puts its own identifier on an unprivileged socket."""
    header = struct.pack("!BBHHH", 8, 0, 0, 0, seq & 0xFFFF)
    return struct.pack("!BBHHH", 8, 0, _checksum(header + payload), 0, seq & 0xFFFF) + payload


def is_echo_reply(data: bytes, seq: int) -> bool:
    """Whether ``data`` (ICMP, no IP header: what a SOCK_DGRAM socket returns) answers try ``seq``."""
    return len(data) >= 8 and data[0] == 0 and struct.unpack_from("!H", data, 6)[0] == seq & 0xFFFF


def _icmp_try(sock: socket.socket, address: tuple[str, int], seq: int, timeout_s: float) -> _Try:
    deadline = time.perf_counter() + timeout_s
    packet = echo_request(seq)
    t0 = time.perf_counter()
    sock.sendto(packet, address)
    while True:
        sock.settimeout(_remaining(deadline))
        data = sock.recv(2048)
        if is_echo_reply(data, seq):
            return _Try((time.perf_counter() - t0) * 1000.0, bytes_used=len(packet) + len(data))


def icmp_socket() -> socket.socket:
    """An unprivileged ICMP socket; raises PermissionError with the system setting that forbids it."""
    try:
        return socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
    except PermissionError as exc:
        try:
            with open(_PING_RANGE, encoding="ascii") as fh:
                setting = " ".join(fh.read().split())
        except OSError:
            setting = "unknown"
        raise PermissionError(
            f"ICMP unavailable: unprivileged ping not permitted for gid {os.getgid()}"
            f" (net.ipv4.ping_group_range = {setting})"
        ) from exc


# --------------------------------------------------------------------------- the probe


def _describe(exc: BaseException, timeout_s: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout_s:g} s"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc}"
    return str(exc) or type(exc).__name__


def _run_tries(target: Target, tries: int, timeout_s: float, interval_s: float) -> list[_Try]:
    """The tries themselves; raises OSError when the target cannot be tried at all."""
    infos = system_lookup(target.host, target.port, timeout_s)
    family, sockaddr = infos[0][0], infos[0][4]
    tls = ssl.create_default_context() if target.tls else None
    icmp = icmp_socket() if target.method == "icmp" else None
    results: list[_Try] = []
    try:
        for index in range(tries):
            if index and interval_s > 0:
                time.sleep(interval_s)
            try:
                if icmp is not None:
                    results.append(_icmp_try(icmp, (str(sockaddr[0]), 0), index, timeout_s))
                elif target.method == "tcp":
                    results.append(_tcp_try((family, sockaddr), timeout_s))
                else:
                    results.append(_http_try((family, sockaddr), target, timeout_s, tls))
            except OSError as exc:  # TimeoutError, refused, reset, TLS errors: this try went unanswered
                results.append(_Try(None, error=_describe(exc, timeout_s)))
    finally:
        if icmp is not None:
            icmp.close()
    return results


def _summary(text: str, method: LatencyMethod, tries: list[_Try], started: float) -> LatencyResult:
    answered = [t.rtt_ms for t in tries if t.rtt_ms is not None]
    errors = collections.Counter(t.error for t in tries if t.error)
    reason = None
    if errors:
        common = errors.most_common(1)[0][0]
        reason = f"{len(tries) - len(answered)} of {len(tries)} tries to {text} unanswered: {common}"
    return LatencyResult(
        ok=bool(answered), reason=reason, target=text, method=method, tries=len(tries),
        answered=len(answered), loss=(len(tries) - len(answered)) / len(tries),
        rtt_ms=tuple(t.rtt_ms for t in tries), connect_ms=tuple(t.connect_ms for t in tries),
        rtt_min_ms=min(answered, default=None), rtt_max_ms=max(answered, default=None),
        rtt_median_ms=statistics.median(answered) if answered else None,
        rtt_mean_ms=statistics.fmean(answered) if answered else None,
        bytes_used=sum(t.bytes_used for t in tries),
        started_mono_s=started, duration_s=time.monotonic() - started,
    )  # fmt: skip


def measure(text: str, *, tries: int = 5, timeout_s: float = 2.0, interval_s: float = 0.2) -> LatencyResult:
    """Probe one target ``tries`` times; never raises."""
    started = time.monotonic()
    try:
        target = parse_target(text)
    except ValueError as exc:
        return LatencyResult(ok=False, reason=str(exc), target=text, method="tcp", started_mono_s=started)
    try:
        results = _run_tries(target, max(1, tries), timeout_s, interval_s)
    except (OSError, UnicodeError) as exc:
        why = exc.strerror if isinstance(exc, socket.gaierror) and exc.strerror else str(exc)
        return LatencyResult(
            ok=False, reason=f"cannot probe {text}: {why}", target=text, method=target.method,
            started_mono_s=started, duration_s=time.monotonic() - started,
        )  # fmt: skip
    return _summary(text, target.method, results, started)


def run(config: LatencyConfig) -> tuple[LatencyResult, ...]:
    """Every configured target, one after the other."""
    return tuple(
        measure(t, tries=config.tries, timeout_s=config.timeout_s, interval_s=config.interval_s)
        for t in config.targets
    )
