"""The HTTP simulators (IPP printer, HiLink stick) bound what a client can make them hold.

Raw sockets on 127.0.0.1 play the misbehaving clients: a chunked body with a negative or huge
size, a client that sends nothing, a request cut off when the simulator stops.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from simulators.hilink import HiLinkSimulator
from simulators.printer import MAX_REQUEST_BYTES, IppPrinterSimulator

CHUNKED_POST = b"POST /ipp/print HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"


def address_of(url: str) -> tuple[str, int]:
    host, port = url.split("//")[1].split("/", maxsplit=1)[0].split(":")
    return host, int(port)


def answer_to(address: tuple[str, int], data: bytes, timeout_s: float = 2.0) -> bytes:
    """What the server says to ``data``, read without closing our side (a client still sending)."""
    with socket.create_connection(address, timeout=timeout_s) as sock:
        sock.sendall(data)
        return sock.recv(4096)


def request_threads(before: set[threading.Thread]) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t not in before and t.name.endswith("-request")]


@pytest.fixture
def printer() -> Iterator[IppPrinterSimulator]:
    with IppPrinterSimulator(request_timeout_s=0.3) as sim:
        yield sim


def test_printer_refuses_a_negative_chunk_size_at_once(printer: IppPrinterSimulator) -> None:
    # rfile.read(-1) would read until the client closes: 200 MiB sent would all be buffered.
    answer = answer_to(address_of(printer.url), CHUNKED_POST + b"-1\r\n" + b"A" * 65536)
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert printer.history.events[-1].detail["status"] == "http-400"


@pytest.mark.parametrize("size", [b"+5", b"0x5", b"5_0", b" ", b"5" * 2000])
def test_printer_refuses_a_chunk_size_that_is_not_plain_hex(
    printer: IppPrinterSimulator, size: bytes
) -> None:
    answer = answer_to(address_of(printer.url), CHUNKED_POST + size + b"\r\nhello\r\n0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 ")


def test_printer_refuses_chunks_adding_up_over_the_cap_before_reading_them(
    printer: IppPrinterSimulator,
) -> None:
    over = f"{MAX_REQUEST_BYTES - 10:x}\r\n".encode() + b"A" * (MAX_REQUEST_BYTES - 10) + b"\r\n20\r\n"
    answer = answer_to(address_of(printer.url), CHUNKED_POST + over, timeout_s=5.0)
    assert answer.startswith(b"HTTP/1.1 400 ")


def test_printer_still_reads_a_well_formed_chunked_request(printer: IppPrinterSimulator) -> None:
    body = bytes([2, 0, 0, 0x0B, 0, 0, 0, 7, 3])  # IPP 2.0 Get-Printer-Attributes, no attributes
    chunked = b"4;ext=1\r\n" + body[:4] + b"\r\n5\r\n" + body[4:] + b"\r\n0\r\nX-Trailer: 1\r\n\r\n"
    answer = answer_to(address_of(printer.url), CHUNKED_POST + chunked)
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert printer.history.events[-1].detail["status"] == 0x0400  # bad IPP, but read to the end


Simulator = type[IppPrinterSimulator] | type[HiLinkSimulator]


@pytest.mark.parametrize("make", [IppPrinterSimulator, HiLinkSimulator])
def test_a_client_that_sends_nothing_is_hung_up_on_after_the_request_timeout(make: Simulator) -> None:
    with make(request_timeout_s=0.3) as sim, socket.create_connection(address_of(sim.url), timeout=3) as sock:
        started = time.monotonic()
        assert sock.recv(100) == b""
        assert time.monotonic() - started < 2.0


@pytest.mark.parametrize(
    ("make", "partial"),
    [
        (IppPrinterSimulator, CHUNKED_POST + b"100\r\nonly part of the chunk"),
        (HiLinkSimulator, b"GET /api/device/signal HTTP/1.1\r\nHost: x\r\n"),
    ],
)
def test_stop_cuts_a_half_sent_request_and_leaves_no_handler_thread(make: Simulator, partial: bytes) -> None:
    sim = make().start()
    before = set(threading.enumerate())
    with socket.create_connection(address_of(sim.url), timeout=3.0) as sock:
        sock.sendall(partial)
        deadline = time.monotonic() + 2.0
        while not request_threads(before):
            assert time.monotonic() < deadline, "no handler thread started"
            time.sleep(0.01)
        handlers = request_threads(before)
        started = time.monotonic()
        sim.stop()
        assert sock.recv(100) == b""  # hung up on, not left waiting for the default timeout
        assert time.monotonic() - started < 2.0
    assert not any(t.is_alive() for t in handlers)
