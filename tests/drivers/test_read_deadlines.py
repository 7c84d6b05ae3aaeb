"""A driver's timeout bounds its whole read, against peers that answer each single step in time.

HTTP (HiLink, printer) and gpsd over 127.0.0.1, the AT modem over a pty; name resolution through
an injected lookup that never answers, since the system resolver cannot be made slow from a test.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import pytest

from drivers.base import DeviceTimeout, ProtocolError, Snapshot
from drivers.deadline import Deadline
from drivers.gps.gpsd_driver import GpsdDriver, GpsdSession
from drivers.http_exchange import HttpPeer, exchange
from drivers.modem.at_driver import AtModemDriver
from drivers.modem.hilink import HiLinkDriver
from drivers.printer.driver import IppPrinterDriver
from drivers.tcp import MAX_PENDING_LOOKUPS, AddrInfo, Lookup, LookupTimeout, connect, resolve
from simulators.pty import PtyPort
from tests.drivers.slow_peers import SlowAtModem, ThreadedTcpPeer, trickle

MARGIN_S = 0.35  # scheduling slack on a loaded test machine; the old behaviour overran by seconds


def http_trickling_body(conn: socket.socket) -> None:
    conn.recv(65_536)
    conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/xml\r\n\r\n")
    trickle(conn, b" " * 40, 0.1)  # 4 s in all, a byte every 0.1 s


def http_trickling_headers(conn: socket.socket) -> None:
    conn.recv(65_536)
    trickle(conn, b"HTTP/1.0 200 OK\r\nX-Padding: " + b"x" * 40 + b"\r\n\r\n", 0.1)


@pytest.fixture
def trickling_http() -> Iterator[ThreadedTcpPeer]:
    with ThreadedTcpPeer(http_trickling_body) as peer:
        yield peer


S = TypeVar("S", bound=Snapshot)


def timed_read(read: Callable[[], S]) -> tuple[float, S]:
    started = time.monotonic()
    result = read()
    return time.monotonic() - started, result


# --------------------------------------------------------------------------- HTTP drivers


def test_hilink_read_against_a_trickling_stick_fails_within_its_timeout(
    trickling_http: ThreadedTcpPeer,
) -> None:
    url = f"http://127.0.0.1:{trickling_http.port}"
    elapsed, snap = timed_read(HiLinkDriver(url, timeout_s=0.5).read)
    assert elapsed < 0.5 + MARGIN_S
    assert snap.reason == f"no answer from HiLink at {url} within 0.5 s"


def test_printer_read_against_a_trickling_printer_fails_within_its_timeout(
    trickling_http: ThreadedTcpPeer,
) -> None:
    url = f"ipp://127.0.0.1:{trickling_http.port}/ipp/print"
    elapsed, snap = timed_read(IppPrinterDriver(url, timeout_s=0.5).read)
    assert elapsed < 0.5 + MARGIN_S
    assert snap.reason == f"no answer from printer at {url} within 0.5 s"


def test_trickled_status_line_and_headers_are_bounded_by_the_same_deadline() -> None:
    with ThreadedTcpPeer(http_trickling_headers) as peer:
        url = f"ipp://127.0.0.1:{peer.port}/ipp/print"
        elapsed, snap = timed_read(IppPrinterDriver(url, timeout_s=0.5).read)
    assert elapsed < 0.5 + MARGIN_S
    assert snap.reason == f"no answer from printer at {url} within 0.5 s"


def test_an_answer_over_the_size_cap_is_a_protocol_error_not_a_memory_hog() -> None:
    def huge(conn: socket.socket) -> None:
        conn.recv(65_536)
        conn.sendall(b"HTTP/1.0 200 OK\r\n\r\n" + b"<response>" + b"x" * 200_000)

    with ThreadedTcpPeer(huge) as peer:
        url = f"http://127.0.0.1:{peer.port}"
        snap = HiLinkDriver(url, timeout_s=2.0).read()
    assert not snap.ok and snap.reason == f"HiLink at {url} sent an answer over 65536 bytes"


def test_a_header_value_with_a_line_break_is_refused_before_connecting() -> None:
    with ThreadedTcpPeer(lambda conn: None) as server:
        peer = HttpPeer(label="HiLink", url="http://x", host="127.0.0.1", port=server.port)
        with pytest.raises(ProtocolError, match="line break"):
            exchange(peer, "GET", "/", Deadline(1.0), max_body=10, headers={"Cookie": "a\r\nX-Evil: 1"})
        assert server.history.count("connected") == 0


# --------------------------------------------------------------------------- gpsd


def slow_gpsd(conn: socket.socket) -> None:
    """gpsd answering every line 0.3 s late: each step fits in 0.5 s, the read does not."""
    stream = conn.makefile("rwb")
    time.sleep(0.3)
    stream.write(b'{"class":"VERSION","release":"3.22"}\r\n')
    stream.flush()
    for line in stream:
        time.sleep(0.3)
        if line.startswith(b"?WATCH"):
            stream.write(b'{"class":"DEVICES","devices":[{"path":"/dev/x"}]}\r\n{"class":"WATCH"}\r\n')
        elif line.startswith(b"?POLL"):
            stream.write(b'{"class":"POLL","active":0,"tpv":[],"sky":[]}\r\n')
        elif line.startswith(b"?DEVICES"):
            stream.write(b'{"class":"DEVICES","devices":[{"path":"/dev/x"}]}\r\n')
        stream.flush()


def test_gpsd_read_against_a_slow_gpsd_fails_within_its_timeout() -> None:
    with ThreadedTcpPeer(slow_gpsd) as peer:
        driver = GpsdDriver(f"gpsd://127.0.0.1:{peer.port}", timeout_s=0.5)
        elapsed, snap = timed_read(driver.read)
        driver.close()
    assert elapsed < 0.5 + MARGIN_S
    assert snap.reason == f"gpsd at 127.0.0.1:{peer.port} did not answer within 0.5 s"


# --------------------------------------------------------------------------- name resolution


@pytest.fixture
def stuck_resolver() -> Iterator[threading.Event]:
    """An injected lookup blocks until the event is set (set at teardown, freeing its threads)."""
    release = threading.Event()
    yield release
    release.set()


def stuck_lookup(release: threading.Event) -> Lookup:
    def lookup(host: str, port: int) -> Sequence[AddrInfo]:
        release.wait(10)
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    return lookup


def test_http_exchange_gives_up_on_an_unanswered_name_lookup_at_the_deadline(
    stuck_resolver: threading.Event,
) -> None:
    lookup = stuck_lookup(stuck_resolver)
    peer = HttpPeer(label="printer", url="ipp://printer.lan/x", host="printer.lan", port=631, lookup=lookup)
    started = time.monotonic()
    with pytest.raises(
        DeviceTimeout, match=r"^cannot resolve printer.lan for printer at ipp://printer.lan/x within 0.3 s$"
    ):
        exchange(peer, "POST", "/x", Deadline(0.3), max_body=10)
    assert time.monotonic() - started < 0.3 + MARGIN_S


def test_gpsd_session_gives_up_on_an_unanswered_name_lookup_at_the_deadline(
    stuck_resolver: threading.Event,
) -> None:
    started = time.monotonic()
    with pytest.raises(DeviceTimeout, match=r"^cannot resolve gpsbox.lan for gpsd within 0.3 s$"):
        GpsdSession("gpsbox.lan", 2947, Deadline(0.3), stuck_lookup(stuck_resolver))
    assert time.monotonic() - started < 0.3 + MARGIN_S


def test_ip_literals_are_connected_without_asking_the_resolver(stuck_resolver: threading.Event) -> None:
    with ThreadedTcpPeer(lambda conn: None) as server:
        sock = connect("127.0.0.1", server.port, Deadline(0.5), stuck_lookup(stuck_resolver))
        sock.close()


def test_lookups_stuck_behind_a_dead_resolver_are_capped_and_later_ones_fail_at_once(
    stuck_resolver: threading.Event,
) -> None:
    lookup = stuck_lookup(stuck_resolver)
    for _ in range(MAX_PENDING_LOOKUPS):
        with pytest.raises(LookupTimeout):
            resolve("gpsbox.lan", 2947, Deadline(0.01), lookup)
    started = time.monotonic()
    with pytest.raises(LookupTimeout, match="resolver busy"):
        resolve("gpsbox.lan", 2947, Deadline(5.0), lookup)
    assert time.monotonic() - started < 0.1


# --------------------------------------------------------------------------- AT modem (pty)


@pytest.fixture
def port(tmp_path: Path) -> Iterator[PtyPort]:
    with PtyPort(tmp_path / "ttyUSB2") as pty:
        yield pty


def test_at_read_that_sets_the_modem_up_is_bounded_by_twice_the_read_budget(port: PtyPort) -> None:
    # ~15 commands answered 0.1 s late each (1.5 s) against timeout 0.2 s: budget 0.6 s, set-up read 1.2 s.
    with SlowAtModem(port, delay_s=0.1):
        driver = AtModemDriver(port.path, timeout_s=0.2)
        elapsed, snap = timed_read(driver.read)
        driver.close()
    assert elapsed < 1.2 + MARGIN_S
    assert not snap.ok
    assert f"modem at {port.path} too slow: read not done within 1.2 s" in str(snap.reason)


def test_at_steady_read_is_bounded_by_the_read_budget_not_by_each_command(port: PtyPort) -> None:
    with SlowAtModem(port, delay_s=0.0) as modem:
        driver = AtModemDriver(port.path, timeout_s=1.0, read_budget_s=0.4)
        assert driver.read().ok  # set up at full speed
        modem.set_delay(0.15)  # five commands: 0.75 s, each far inside timeout_s
        elapsed, snap = timed_read(driver.read)
        driver.close()
    assert elapsed < 0.4 + MARGIN_S
    assert str(snap.reason).startswith(f"modem at {port.path} too slow: read not done within 0.4 s")


def test_at_read_budget_that_is_not_a_positive_number_is_a_configuration_error(port: PtyPort) -> None:
    with pytest.raises(ValueError, match="read budget"):
        AtModemDriver(port.path, read_budget_s=float("nan"))
