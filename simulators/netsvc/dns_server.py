"""A DNS server on UDP 127.0.0.1, seen through a shaped link: A records for configured names.

Answers A queries for the names it was given (NXDOMAIN for any other name, NOTIMP for other
query types), each reply one round trip of the link late, and drops the link's loss share of
queries. Test verbs change records and make it answer garbage or with the wrong id. It parses
queries itself (no shared code with the probe), so a codec bug cannot hide on both sides.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import struct
import threading
import time
from types import TracebackType
from typing import Literal, NamedTuple, Self

from simulators.base import Clock, History
from simulators.netsvc.arrival import ANCILLARY_BYTES, arrival, stamp_arrivals
from simulators.netsvc.link import Link

Misbehaviour = Literal["none", "garbage", "truncated", "wrong-id", "servfail"]
GARBAGE = b"\x13\x37not a dns message at all\xff\xfe"
_TYPE_A = 1
_CLASS_IN = 1
_RCODE_SERVFAIL = 2
_RCODE_NXDOMAIN = 3
_RCODE_NOTIMP = 4


class Question(NamedTuple):
    """The parts of a query a reply needs; ``end`` is where the question section stops."""

    qid: int
    flags: int
    name: str
    qtype: int
    end: int


def parse_question(query: bytes) -> Question | None:
    """The question of a query, or None when it is not one we can read."""
    if len(query) < 12:
        return None
    qid, flags, qdcount = struct.unpack_from("!HHH", query)
    if qdcount != 1 or flags & 0x8000:
        return None
    labels: list[str] = []
    pos = 12
    while pos < len(query) and query[pos] != 0:
        length = query[pos]
        if length > 63 or pos + 1 + length > len(query):
            return None
        labels.append(query[pos + 1 : pos + 1 + length].decode("ascii", "replace"))
        pos += 1 + length
    if pos + 5 > len(query):
        return None
    (qtype,) = struct.unpack_from("!H", query, pos + 1)
    return Question(qid, flags, ".".join(labels).lower(), qtype, pos + 5)


class DnsServer:
    """The simulated resolver; ``address`` is ``127.0.0.1:PORT``, what the DNS probe is given."""

    def __init__(
        self,
        link: Link,
        records: dict[str, list[str]],
        *,
        ttl_s: int = 300,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Clock = time.monotonic,
    ) -> None:
        self.link = link
        self.history = History(clock)
        self._records = {name.lower().rstrip("."): list(addrs) for name, addrs in records.items()}
        self._ttl_s = ttl_s
        self._bind = (host, port)
        self._lock = threading.Lock()
        self._misbehaviour: Misbehaviour = "none"
        self._stopping = threading.Event()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        if self._sock is None:
            raise RuntimeError("server not started")
        host, port = self._sock.getsockname()[:2]
        return f"{host}:{port}"

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Self:
        self._stopping.clear()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(self._bind)
        stamp_arrivals(self._sock)  # the round trip is counted from when a query arrived
        self._sock.settimeout(0.1)  # so the loop notices stop() promptly
        self._thread = threading.Thread(target=self._serve, name="netsvc-dns", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop answering; replies still waiting out their round trip are dropped."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._sock is not None:
            self._bind = self._sock.getsockname()[:2]  # a later start() comes back on the same port
            self._sock.close()
        self._sock = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ test verbs

    def set_record(self, name: str, addresses: list[str]) -> None:
        """Answer ``name`` with these IPv4 addresses (an empty list: NOERROR without answers)."""
        self.history.record("set_record", qname=name, addresses=addresses)
        with self._lock:
            self._records[name.lower().rstrip(".")] = list(addresses)

    def misbehave(self, how: Misbehaviour) -> None:
        """Answer every query with garbage, a truncated reply, the wrong id, SERVFAIL; or "none"."""
        self.history.record("misbehave", how=how)
        with self._lock:
            self._misbehaviour = how

    # ------------------------------------------------------------------ serving

    def _serve(self) -> None:
        sock = self._sock
        assert sock is not None
        while not self._stopping.is_set():
            try:
                query, ancdata, _, peer = sock.recvmsg(4096, ANCILLARY_BYTES)
            except TimeoutError:
                continue
            except OSError:
                return
            self._on_query(sock, query, peer, arrival(ancdata))

    def _on_query(self, sock: socket.socket, query: bytes, peer: tuple[str, int], arrived: float) -> None:
        question = parse_question(query)
        if question is None:
            self.history.record("unreadable", size=len(query))
            return
        if self.link.drop():
            self.history.record("dropped", qname=question.name, qtype=question.qtype)
            return
        reply = self._reply(query, question)
        self.history.record("query", qname=question.name, qtype=question.qtype, reply_bytes=len(reply))
        # Each reply waits its round trip on its own thread, so one slow answer does not delay the next.
        threading.Thread(target=self._send_later, args=(sock, reply, peer, arrived), daemon=True).start()

    def _send_later(self, sock: socket.socket, reply: bytes, peer: tuple[str, int], arrived: float) -> None:
        if self.link.wait_rtt(self._stopping, since=arrived):
            with contextlib.suppress(OSError):  # stopped meanwhile
                sock.sendto(reply, peer)

    def _reply(self, query: bytes, question: Question) -> bytes:
        with self._lock:
            how = self._misbehaviour
            addresses = self._records.get(question.name)
        if how == "garbage":
            return GARBAGE
        rcode, answers = self._answers(question.qtype, addresses)
        if how == "servfail":
            rcode, answers = _RCODE_SERVFAIL, []
        qid = (question.qid + 1) & 0xFFFF if how == "wrong-id" else question.qid
        reply = _message(
            query[12 : question.end],
            qid=qid,
            query_flags=question.flags,
            rcode=rcode,
            addresses=answers,
            ttl_s=self._ttl_s,
        )
        return reply[: len(reply) - 3] if how == "truncated" else reply

    @staticmethod
    def _answers(qtype: int, addresses: list[str] | None) -> tuple[int, list[str]]:
        if addresses is None:
            return _RCODE_NXDOMAIN, []
        if qtype != _TYPE_A:
            return _RCODE_NOTIMP, []
        return 0, addresses


def _message(
    question: bytes, *, qid: int, query_flags: int, rcode: int, addresses: list[str], ttl_s: int
) -> bytes:
    """A reply: the question copied back, answers pointing at it with a compression pointer."""
    flags = 0x8000 | 0x0400 | (query_flags & 0x0100) | 0x0080 | rcode  # QR, AA, RD echoed, RA
    header = struct.pack("!HHHHHH", qid, flags, 1, len(addresses), 0, 0)
    answers = b"".join(
        struct.pack("!HHHIH", 0xC00C, _TYPE_A, _CLASS_IN, ttl_s, 4) + ipaddress.IPv4Address(a).packed
        for a in addresses
    )
    return header + question + answers
