"""DNS probe: how long configured names take to resolve, via the system resolver or a given server.

Against a configured server it speaks DNS itself over UDP (one A question, RD set, retries), so
the time is the server's and the link's, not a local cache's. The codec never raises on what
comes back: garbage is a :class:`Malformed` value and becomes ``ok=False`` with a reason.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import secrets
import socket
import struct
import threading
import time
from typing import Any

from agent.probes import DEFAULT_DNS_NAMES
from agent.probes.results import DnsResult

SYSTEM = "system"
TYPE_A = 1
CLASS_IN = 1
RCODE_NAMES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}
_MAX_REPLY = 4096

AddrInfo = tuple[Any, ...]


@dataclasses.dataclass(frozen=True)
class DnsConfig:
    """Names to resolve; ``server`` None means the system resolver, else ``host[:port]`` (an IP)."""

    names: tuple[str, ...] = DEFAULT_DNS_NAMES
    server: str | None = None
    timeout_s: float = 2.0  # per attempt
    retries: int = 1


@dataclasses.dataclass(frozen=True)
class DnsReply:
    """A well-formed reply: its id, RCODE, TC flag and the IPv4 addresses of its A records."""

    qid: int
    rcode: int
    truncated: bool
    addresses: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Malformed:
    """Bytes that are not a DNS reply, and why."""

    why: str


# --------------------------------------------------------------------------- codec


def encode_query(qid: int, name: str) -> bytes:
    """An A/IN query with recursion desired; raises ValueError for a name DNS cannot carry."""
    labels = name.rstrip(".").encode("idna").split(b".")
    if any(not 0 < len(label) <= 63 for label in labels) or len(name) > 253:
        raise ValueError(f"{name!r} is not a valid DNS name")
    question = b"".join(bytes([len(label)]) + label for label in labels) + b"\x00"
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + question + struct.pack("!HH", TYPE_A, CLASS_IN)


def _skip_name(data: bytes, pos: int) -> int:
    """Offset just past a (possibly compressed) name; raises IndexError/ValueError on garbage."""
    for _ in range(128):  # a name has at most 127 labels: more means a loop or garbage
        length = data[pos]
        if length == 0:
            return pos + 1
        if length & 0xC0 == 0xC0:
            if pos + 1 >= len(data):
                raise ValueError("compression pointer cut short")
            return pos + 2
        if length & 0xC0:
            raise ValueError(f"reserved label type 0x{length:02x} at offset {pos}")
        pos += 1 + length
    raise ValueError("name with too many labels")


def _read_answers(data: bytes, pos: int, count: int) -> tuple[str, ...]:
    addresses: list[str] = []
    for _ in range(count):
        pos = _skip_name(data, pos)
        rtype, rclass, _ttl, rdlength = struct.unpack_from("!HHIH", data, pos)
        pos += 10
        if pos + rdlength > len(data):
            raise ValueError("answer data runs past the end of the message")
        if rtype == TYPE_A and rclass == CLASS_IN and rdlength == 4:
            addresses.append(str(ipaddress.IPv4Address(data[pos : pos + 4])))
        pos += rdlength
    return tuple(addresses)


def decode_reply(data: bytes) -> DnsReply | Malformed:
    """Read a reply; anything that is not one comes back as :class:`Malformed`, never an exception."""
    if len(data) < 12:
        return Malformed(f"{len(data)} bytes, shorter than a DNS header")
    qid, flags, qdcount, ancount = struct.unpack_from("!HHHH", data)
    if not flags & 0x8000:
        return Malformed("not a response (QR bit clear)")
    try:
        pos = 12
        for _ in range(qdcount):
            pos = _skip_name(data, pos) + 4
        addresses = _read_answers(data, pos, ancount)
    except (IndexError, ValueError, struct.error) as exc:
        return Malformed(f"truncated or garbled message ({exc})")
    return DnsReply(qid=qid, rcode=flags & 0x000F, truncated=bool(flags & 0x0200), addresses=addresses)


# --------------------------------------------------------------------------- system resolver


def system_lookup(host: str, port: int | None, timeout_s: float) -> list[AddrInfo]:
    """``socket.getaddrinfo`` with a deadline: it has none of its own, and a dead resolver can block
    for tens of seconds. The lookup runs on a daemon thread that is abandoned when late."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)  # a literal: nothing to wait for
    box: list[list[AddrInfo] | Exception] = []
    done = threading.Event()

    def work() -> None:
        try:
            box.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except (OSError, UnicodeError) as exc:
            box.append(exc)
        finally:
            done.set()

    threading.Thread(target=work, name="probe-getaddrinfo", daemon=True).start()
    if not done.wait(timeout_s):
        raise TimeoutError(f"no answer from the system resolver within {timeout_s:g} s")
    if isinstance(box[0], Exception):
        raise box[0]
    return box[0]


def _resolve_system(name: str, timeout_s: float, started: float) -> DnsResult:
    t0 = time.perf_counter()
    try:
        infos = system_lookup(name, None, timeout_s)
    except TimeoutError as exc:
        return _failed(name, SYSTEM, started, str(exc), attempts=1)
    except (OSError, UnicodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return _failed(name, SYSTEM, started, f"cannot resolve {name}: {why}", attempts=1)
    elapsed_ms = (time.perf_counter() - t0) * 1000.0
    addresses = tuple(dict.fromkeys(str(info[4][0]) for info in infos))
    return DnsResult(
        name=name, server=SYSTEM, resolve_ms=elapsed_ms, addresses=addresses, attempts=1,
        started_mono_s=started, duration_s=time.monotonic() - started,
    )  # fmt: skip


# --------------------------------------------------------------------------- configured server


def parse_server(text: str) -> tuple[str, int]:
    """``"192.0.2.53"``, ``"127.0.0.1:5353"`` or ``"[::1]:53"`` -> (ip, port); raises ValueError."""
    host, port = text, 53
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") else 53
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        port = int(port_text)
    ipaddress.ip_address(host)  # a resolver is configured by address, as in resolv.conf
    if not 0 < port < 65536:
        raise ValueError(f"port {port} out of range")
    return host, port


class _MalformedReply(Exception):
    """Garbage came back; carries the bytes spent so far for the data budget."""

    def __init__(self, why: str, used: int) -> None:
        super().__init__(why)
        self.used = used


def _exchange(sock: socket.socket, name: str, timeout_s: float, retries: int) -> tuple[DnsReply, int, int]:
    """Send the query (again on silence) until an answer with our id comes: (reply, attempts, bytes).

    Retries resend the same query, id included, as the libc resolver does: a late answer to the
    first one is as good as an answer to the second.
    """
    used = 0
    qid = secrets.randbelow(0x10000)
    query = encode_query(qid, name)
    for attempt in range(1, retries + 2):
        sock.send(query)
        used += len(query)
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                data = sock.recv(_MAX_REPLY)
            except TimeoutError:
                break
            used += len(data)
            reply = decode_reply(data)
            if isinstance(reply, Malformed):
                raise _MalformedReply(reply.why, used)
            if reply.qid == qid:
                return reply, attempt, used
            # Another id: a stray or spoofed packet; keep listening.
    raise TimeoutError(f"no answer within {timeout_s:g} s after {retries + 1} attempts")


def _resolve_server(name: str, server: str, timeout_s: float, retries: int, started: float) -> DnsResult:
    try:
        host, port = parse_server(server)
    except ValueError as exc:
        return _failed(name, server, started, f"bad DNS server {server!r} (want ip[:port]): {exc}")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    t0 = time.perf_counter()
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            # Connected UDP: an ICMP "port unreachable" comes back as ConnectionRefusedError at once.
            sock.connect((host, port))
            reply, attempts, used = _exchange(sock, name, timeout_s, retries)
    except _MalformedReply as exc:
        return _failed(name, server, started, f"unreadable answer from {server}: {exc}", used=exc.used)
    except TimeoutError as exc:
        return _failed(name, server, started, f"{server}: {exc}", attempts=retries + 1)
    except ConnectionRefusedError:
        return _failed(name, server, started, f"no DNS server listening at {server} (port unreachable)")
    except (OSError, ValueError) as exc:
        return _failed(name, server, started, f"cannot query {server} for {name}: {exc}")
    elapsed_ms = (time.perf_counter() - t0) * 1000.0
    return _answered(
        name, server, reply, attempts=attempts, used=used, elapsed_ms=elapsed_ms, started=started
    )


def _answered(
    name: str, server: str, reply: DnsReply, *, attempts: int, used: int, elapsed_ms: float, started: float
) -> DnsResult:
    reason = None
    if reply.rcode != 0:
        rcode = RCODE_NAMES.get(reply.rcode, f"RCODE {reply.rcode}")
        reason = f"{server} answered {rcode} for {name}"
    elif not reply.addresses:
        reason = f"{server} has no A record for {name}"
    return DnsResult(
        ok=reason is None, reason=reason, name=name, server=server, resolve_ms=elapsed_ms,
        addresses=reply.addresses, rcode=reply.rcode, attempts=attempts, bytes_used=used,
        started_mono_s=started, duration_s=time.monotonic() - started,
    )  # fmt: skip


def _failed(
    name: str, server: str, started: float, reason: str, *, attempts: int = 1, used: int = 0
) -> DnsResult:
    return DnsResult(
        ok=False, reason=reason, name=name, server=server, attempts=attempts, bytes_used=used,
        started_mono_s=started, duration_s=time.monotonic() - started,
    )  # fmt: skip


# --------------------------------------------------------------------------- the probe


def resolve(name: str, *, server: str | None = None, timeout_s: float = 2.0, retries: int = 1) -> DnsResult:
    """Resolve ``name`` once and time it; never raises."""
    started = time.monotonic()
    if server is None:
        return _resolve_system(name, timeout_s, started)
    return _resolve_server(name, server, timeout_s, retries, started)


def run(config: DnsConfig) -> tuple[DnsResult, ...]:
    """Every configured name, one after the other."""
    return tuple(
        resolve(name, server=config.server, timeout_s=config.timeout_s, retries=config.retries)
        for name in config.names
    )
