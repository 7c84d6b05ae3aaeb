"""The simulated services date a request from when it reached the host (kernel stamp), not from
when a thread got round to reading it, so their round trips do not grow with the machine's load."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from agent.probes import latency as latency_probe
from simulators.netsvc.arrival import ANCILLARY_BYTES, MAX_AGE_S, arrival, stamp_arrivals, stream_arrival
from simulators.netsvc.http_portal import HttpPortal
from simulators.netsvc.link import Link, LinkProfile

LATE_READ_S = 0.2  # how long a datagram or request waits unread in each test


@pytest.fixture
def udp_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with receiver, sender:
        receiver.bind(("127.0.0.1", 0))
        stamp_arrivals(receiver)
        receiver.settimeout(2.0)
        yield receiver, sender


def test_a_datagram_read_late_is_dated_from_its_arrival(
    udp_pair: tuple[socket.socket, socket.socket],
) -> None:
    receiver, sender = udp_pair
    sent_at = time.monotonic()
    sender.sendto(b"query", receiver.getsockname())
    time.sleep(LATE_READ_S)
    data, ancdata, _, _ = receiver.recvmsg(512, ANCILLARY_BYTES)
    read_at = time.monotonic()
    arrived = arrival(ancdata)
    assert data == b"query"
    assert sent_at - 0.001 <= arrived < sent_at + LATE_READ_S / 2 < read_at


def test_a_stamp_older_than_any_plausible_read_is_not_trusted(
    udp_pair: tuple[socket.socket, socket.socket],
) -> None:
    receiver, sender = udp_pair
    sender.sendto(b"query", receiver.getsockname())
    time.sleep(MAX_AGE_S + 0.2)  # as if the wall clock had been set back meanwhile
    _, ancdata, _, _ = receiver.recvmsg(512, ANCILLARY_BYTES)
    before = time.monotonic()
    assert before <= arrival(ancdata) <= time.monotonic()
    assert before <= arrival([]) <= time.monotonic()  # no stamp at all: now


def test_a_request_is_dated_from_its_first_bytes_and_left_unread() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    stamp_arrivals(listener)
    with listener, socket.create_connection(listener.getsockname()) as client:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(2.0)
            sent_at = time.monotonic()
            client.sendall(b"HEAD / HTTP/1.1\r\n\r\n")
            time.sleep(LATE_READ_S)
            arrived = stream_arrival(conn)
            assert sent_at - 0.001 <= arrived < sent_at + LATE_READ_S / 2
            assert conn.recv(100) == b"HEAD / HTTP/1.1\r\n\r\n"  # the parser still gets all of it
            client.close()
            before = time.monotonic()
            assert stream_arrival(conn) >= before  # the peer left: nothing to date, now


def test_the_round_trip_is_counted_from_the_arrival_given() -> None:
    link = Link(LinkProfile(12.0, 3.0, rtt_ms=1000.0))
    stopping = threading.Event()
    t0 = time.monotonic()
    assert link.wait_rtt(stopping, since=t0 - 0.8)  # read 0.8 s after it arrived: 0.2 s to go
    waited = time.monotonic() - t0
    assert 0.19 <= waited < 0.7
    t1 = time.monotonic()
    assert link.wait_rtt(stopping, since=t1 - 5.0)  # overdue: answered at once
    assert time.monotonic() - t1 < 0.5


def test_portal_answers_are_never_earlier_than_one_round_trip_after_the_request() -> None:
    rtt_ms = 80.0
    with HttpPortal(Link(LinkProfile(12.0, 3.0, rtt_ms))) as portal:
        result = latency_probe.measure(portal.url + "/", tries=5, interval_s=0)
    assert result.answered == 5
    assert all(t is not None and t >= rtt_ms - 1 for t in result.rtt_ms)
