"""One HTTP/1.1 request and its answer, all of it (lookup, connect, TLS, send, receive) within a Deadline.

http.client alone bounds each socket operation, not the exchange: a device trickling one byte
just inside the timeout holds a read for as long as it likes. Here every receive waits only for
what is left of the read's :class:`Deadline`, the body is read in chunks up to a size cap, and
every failure becomes a DriverError worded for a technician, naming the device (``label``) and
its endpoint. Used by the HiLink and IPP printer drivers; stdlib only.
"""

from __future__ import annotations

import dataclasses
import http.client
import io
import socket
import ssl
from collections.abc import Mapping
from typing import TYPE_CHECKING, cast

from drivers.base import DeviceTimeout, DeviceUnavailable, DriverError, ProtocolError
from drivers.deadline import Deadline
from drivers.errors import os_reason
from drivers.tcp import Lookup, LookupTimeout, connect, system_lookup

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

_CHUNK = 16_384


@dataclasses.dataclass(frozen=True)
class HttpPeer:
    """Where to send requests, and how to name the device in reasons."""

    label: str  # "HiLink", "printer"
    url: str  # the endpoint as configured, shown in reasons
    host: str
    port: int
    tls: ssl.SSLContext | None = None  # None: plain HTTP
    lookup: Lookup = system_lookup


@dataclasses.dataclass(frozen=True)
class HttpAnswer:
    status: int
    reason: str
    headers: http.client.HTTPMessage
    body: bytes


def exchange(
    peer: HttpPeer,
    method: str,
    path: str,
    deadline: Deadline,
    *,
    max_body: int,
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
) -> HttpAnswer:
    """Send one request and read the whole answer before ``deadline``; DriverError on any failure."""
    try:
        request = _request_bytes(peer, method, path, body, headers or {})
        sock = _open(peer, deadline)
        try:
            sock.settimeout(deadline.left())
            sock.sendall(request)
            return _answer(sock, method, deadline, max_body, peer)
        finally:
            sock.close()
    except DriverError:
        raise
    except LookupTimeout as exc:
        raise DeviceTimeout(
            f"cannot resolve {peer.host} for {peer.label} at {peer.url} within {deadline.budget_s:g} s"
        ) from exc
    except TimeoutError as exc:
        raise DeviceTimeout(
            f"no answer from {peer.label} at {peer.url} within {deadline.budget_s:g} s"
        ) from exc
    except ConnectionRefusedError as exc:
        raise DeviceUnavailable(f"{peer.label} not reachable at {peer.url} (connection refused)") from exc
    except http.client.HTTPException as exc:
        raise ProtocolError(f"{peer.label} at {peer.url} broke the HTTP exchange: {exc!r}") from exc
    except (OSError, UnicodeError) as exc:
        # UnicodeError: a host name that is not valid IDNA, refused by the resolver.
        raise DeviceUnavailable(f"{peer.label} not reachable at {peer.url} ({os_reason(exc)})") from exc


def _open(peer: HttpPeer, deadline: Deadline) -> socket.socket:
    sock = connect(peer.host, peer.port, deadline, peer.lookup)
    if peer.tls is None:
        return sock
    try:
        # The handshake is one call bounded by the socket timeout as a whole (CPython's _ssl).
        sock.settimeout(deadline.left())
        return peer.tls.wrap_socket(sock, server_hostname=peer.host)
    except BaseException:
        sock.close()
        raise


def _request_bytes(peer: HttpPeer, method: str, path: str, body: bytes, headers: Mapping[str, str]) -> bytes:
    if not path.startswith("/") or any(c.isspace() or ord(c) < 0x20 for c in path):
        raise ProtocolError(f"{peer.label} at {peer.url}: cannot request path {path[:60]!r}")
    host = f"[{peer.host}]" if ":" in peer.host else peer.host
    default_port = 443 if peer.tls is not None else 80
    lines = [
        f"{method} {path} HTTP/1.1",
        f"Host: {host}" if peer.port == default_port else f"Host: {host}:{peer.port}",
        "Accept-Encoding: identity",
        "Connection: close",
    ]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    for name, value in headers.items():
        if any(c in "\r\n\0" for c in name + value):
            # A cookie echoed from a device must not be able to add headers of its own.
            raise ProtocolError(
                f"{peer.label} at {peer.url}: refusing to send header {name} with a line break"
            )
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", errors="replace") + body


def _answer(
    sock: socket.socket, method: str, deadline: Deadline, max_body: int, peer: HttpPeer
) -> HttpAnswer:
    # HTTPResponse only ever calls makefile("rb") on what it is given.
    response = http.client.HTTPResponse(cast(socket.socket, _DeadlineSource(sock, deadline)), method=method)
    try:
        response.begin()
        body = _read_body(response, max_body)
    except ValueError as exc:  # http.client takes a chunk size of "-5", then cannot read it
        raise ProtocolError(f"{peer.label} at {peer.url} broke the HTTP exchange: {exc!r}") from exc
    finally:
        response.close()
    if body is None:
        raise ProtocolError(f"{peer.label} at {peer.url} sent an answer over {max_body} bytes")
    return HttpAnswer(response.status, response.reason, response.msg, body)


def _read_body(response: http.client.HTTPResponse, cap: int) -> bytes | None:
    """The body, or None when it is longer than ``cap`` (reading stops there)."""
    parts: list[bytes] = []
    got = 0
    while got <= cap:
        piece = response.read(min(_CHUNK, cap + 1 - got))
        if not piece:
            return b"".join(parts)
        parts.append(piece)
        got += len(piece)
    return None


class _DeadlineReader(io.RawIOBase):
    """Socket reads that each wait only for what is left of the deadline."""

    def __init__(self, sock: socket.socket, deadline: Deadline) -> None:
        super().__init__()
        self._sock = sock
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        self._sock.settimeout(self._deadline.left())
        return self._sock.recv_into(buffer)


class _DeadlineSource:
    """Stands in for the socket given to HTTPResponse, so its reads go through the deadline."""

    def __init__(self, sock: socket.socket, deadline: Deadline) -> None:
        self._sock = sock
        self._deadline = deadline

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(_DeadlineReader(self._sock, self._deadline))
