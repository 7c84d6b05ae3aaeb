"""Fuzzing the drivers through their real transports: hostile gpsd, HiLink and IPP peers over TCP on
127.0.0.1, a hostile modem on a pty.

The damaged answers of fuzz_network.py and fuzz_serial.py go through the driver's own framing
(gpsd lines, HTTP with lying lengths and chunk sizes, AT lines with any terminator, echo, URCs,
noise) and time limits. ``Driver.read`` turns any exception into a failed snapshot, so the
invariant is that no reason says "internal error" (an exception outside the DriverError family),
that what reads succeed give is sane, and that every read ends within the time bound.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.base import DriverError, Snapshot
from drivers.gps.gpsd_driver import GpsdDriver
from drivers.modem.at_channel import AtChannel
from drivers.modem.at_driver import AtModemDriver
from drivers.modem.hilink import HiLinkDriver
from drivers.printer.driver import IppPrinterDriver
from simulators.pty import PtyPort
from tests.reliability.fuzz_mutate import Mutator, seeds
from tests.reliability.fuzz_network import hilink_body, http_answer, ipp_answer, poll_line
from tests.reliability.fuzz_peers import AtPeer, GpsdPeer, HttpPeer
from tests.reliability.fuzz_serial import at_flood, at_wire
from tests.reliability.fuzzing import Campaign, finite_json, fuzz_settings, quiet_logs, scaling
from tests.reliability.test_fuzz_parsers import at_work, check_gps

#: Endpoint reads are fewer than pure parser calls: each is a connection or a serial exchange.
SHORT, SOAK = 300, 20_000
#: A read through a real transport may take this long on a loaded machine (the drivers' timeout is
#: 2 s: a read that waited for it fails the campaign); the parsing itself is bounded in test_fuzz_parsers.
IO_S = 0.5


def outcome(snap: Snapshot) -> str:
    """ "ok", or the failure's reason with endpoints and numbers blanked, for the tally."""
    assert not (snap.reason or "").startswith("internal error"), snap.reason
    if snap.ok:
        assert finite_json(snap), snap
        return "ok"
    words = re.sub(r"\S*127\.0\.0\.1\S*|\S*/tty\S*|\d+", "_", snap.reason or "").split()
    return " ".join(words[:6])


@pytest.fixture(autouse=True)
def _quiet() -> Iterator[None]:
    with quiet_logs():
        yield


# -- gpsd -------------------------------------------------------------------------------------------


def test_gpsd_driver_against_a_hostile_gpsd_fails_only_with_driver_reasons() -> None:
    campaign = Campaign("fuzz_gpsd_driver")
    with GpsdPeer() as peer:
        # Never "frozen": the fuzzed TPVs repeat their time, and the decoding is what is under test.
        driver = GpsdDriver(f"gpsd://127.0.0.1:{peer.port}", timeout_s=2.0, stale_after_s=1e9)

        @fuzz_settings(SHORT, SOAK)
        @given(seeds.map(poll_line) | st.binary(max_size=300))
        def run(line: bytes) -> None:
            peer.answer = line
            driver.close()  # a fresh session per input, so that no reply is left over for the next
            snap = campaign.run(len(line), driver.read, io_s=IO_S)
            campaign.count(outcome(snap))
            if snap.ok:
                check_gps(snap, ranges=False)

        run()
        driver.close()
    campaign.report()


# -- AT modem over a pty ----------------------------------------------------------------------------


@pytest.fixture
def modem(tmp_path: Path) -> Iterator[tuple[PtyPort, AtPeer]]:
    with PtyPort(tmp_path / "ttyUSB2") as port:
        peer = AtPeer(port)
        yield port, peer
        peer.close()


def test_at_channel_splits_any_answer_into_clean_lines_and_raises_only_driver_errors(
    modem: tuple[PtyPort, AtPeer],
) -> None:
    port, peer = modem
    channel = AtChannel(port.path, timeout_s=2.0)
    campaign = Campaign("fuzz_at_channel")

    @fuzz_settings(SHORT * 2, SOAK)
    @given(seeds.map(at_wire) | st.binary(max_size=500).map(lambda raw: ("AT+CSQ", raw + b"\r\nOK\r\n")))
    def run(answer: tuple[str, bytes]) -> None:
        command, data = answer
        peer.answer = data

        def work() -> str:
            try:
                response = channel.command(command)
            except DriverError as exc:
                return type(exc).__name__
            for line in response.lines:
                assert line and line == line.strip() and all(ch == "\t" or ch >= " " for ch in line), line
            at_work(command, list(response.lines))
            return f"{min(len(response.lines), 3)}-lines"

        campaign.count(campaign.run(len(data), work, io_s=IO_S))
        peer.finish()

    run()
    channel.close()
    patient = AtChannel(port.path, timeout_s=60.0)  # 1 MiB at 115200 baud would be 90 s; a pty is faster

    def answer_flood(answer: bytes) -> int:
        peer.answer = answer
        lines = len(patient.command('AT+QENG="servingcell"').lines)
        peer.finish()
        return lines

    campaign.report(**scaling("AT channel", flood_without_finals, answer_flood))
    patient.close()


def flood_without_finals(size: int) -> bytes:
    """``size`` bytes of answer lines, empty lines and noise, with no final result before the last OK."""
    return at_flood(size).replace(b"OK", b"0K").replace(b"ERROR", b"ERR0R") + b"\r\nOK\r\n"


def test_at_modem_driver_against_a_modem_answering_garbage_fails_only_with_driver_reasons(
    modem: tuple[PtyPort, AtPeer],
) -> None:
    port, peer = modem
    driver = AtModemDriver(port.path, timeout_s=2.0)
    campaign = Campaign("fuzz_at_driver")

    @fuzz_settings(SHORT // 3, SOAK // 4)
    @given(seeds)
    def run(seed: int) -> None:
        m = Mutator(seed)
        # The same damaged answer to every command of the read (identity, registration, signal).
        peer.answer = at_wire(seed)[1] if m.chance(0.8) else m.rng.randbytes(200) + b"\r\nOK\r\n"
        campaign.count(outcome(campaign.run(len(peer.answer) * 8, driver.read, io_s=IO_S)))
        peer.finish()

    run()
    driver.close()
    campaign.report()


# -- HTTP devices -----------------------------------------------------------------------------------


def test_hilink_driver_against_a_hostile_stick_fails_only_with_driver_reasons() -> None:
    campaign = Campaign("fuzz_hilink_driver")
    with HttpPeer() as peer:
        driver = HiLinkDriver(f"http://127.0.0.1:{peer.port}", timeout_s=2.0)

        @fuzz_settings(SHORT, SOAK)
        @given(seeds)
        def run(seed: int) -> None:
            answer = http_answer(seed, hilink_body(seed))
            peer.respond = lambda body: answer
            # A read asks for up to five documents (session, token, signal, status, operator).
            campaign.count(outcome(campaign.run(len(answer) * 5, driver.read, io_s=IO_S)))

        run()
    campaign.report()


def test_ipp_printer_driver_against_a_hostile_printer_fails_only_with_driver_reasons() -> None:
    campaign = Campaign("fuzz_ipp_driver")
    with HttpPeer() as peer:
        driver = IppPrinterDriver(f"ipp://127.0.0.1:{peer.port}/printers/fuzz", timeout_s=2.0)

        @fuzz_settings(SHORT, SOAK)
        @given(seeds)
        def run(seed: int) -> None:
            def respond(request: bytes) -> bytes:
                # Echo the request-id (bytes 4-8), or the driver stops at "answered request N".
                request_id = int.from_bytes(request[4:8], "big", signed=True) if len(request) >= 8 else 1
                return http_answer(seed, ipp_answer(seed, request_id))

            peer.respond = respond
            size = len(http_answer(seed, ipp_answer(seed)))  # the request-id does not change the length
            snap = campaign.run(size, driver.read, io_s=IO_S)
            campaign.count(outcome(snap))
            if snap.ok:
                assert all(m.level_pct is None or 0 <= m.level_pct <= 100 for m in snap.markers)

        run()
    campaign.report()
