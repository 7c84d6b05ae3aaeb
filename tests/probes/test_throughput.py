"""Throughput probe (speedtest-cli as a library) against the simulated Speedtest Mini, and the suite.

Each profile's speed test runs three times (module fixture) and several tests check what it
measured against what the simulated link delivered: median rates within ±25 %, median round trip
within ±20 ms, bytes close to what the server counted in every run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import statistics
import threading
import time
import warnings
from collections.abc import Iterator

import pytest

from agent.probes import throughput
from agent.probes.dns import DnsConfig
from agent.probes.http import HttpConfig
from agent.probes.latency import LatencyConfig
from agent.probes.results import SuiteResult, ThroughputResult, to_dict
from agent.probes.suite import SuiteConfig, run_suite
from agent.probes.throughput import ThroughputConfig, upload_buffer_bytes
from simulators.netsvc.dns_server import DnsServer
from simulators.netsvc.http_portal import HttpPortal
from simulators.netsvc.link import Link, LinkProfile
from simulators.netsvc.speedtest_mini import SpeedtestMini

# Measurements of a simulated link in real time: a scheduler stall on a shared 2-core machine can
# delay one run by tens of milliseconds. A wrong measurement fails all three attempts.
pytestmark = pytest.mark.flaky(reruns=2)


RATE_TOLERANCE = 0.25
LATENCY_TOLERANCE_MS = 20.0
THREADS = 2
RUNS = 3  # per profile; the median is checked, so one run hit by a stall of this VM cannot fail it
# Small images (500x500: 500 kB) and upload bodies, many of them: the pacing dominates the
# per-request overhead and the queue never runs dry within the test length.
FAST_TEST = ThroughputConfig(
    length_s=2.0,
    threads=THREADS,
    download_sides=(500,),
    download_count=40,
    upload_sizes=(131_072,),
    upload_count=40,
    timeout_s=5.0,
)
# What may sit between the client's count and the server's: socket buffers and one 8 KiB block.
IN_FLIGHT_PER_THREAD = 64 * 1024


@dataclasses.dataclass(frozen=True)
class Run:
    result: ThroughputResult
    server_download_bytes: int
    server_upload_bytes: int
    warnings: list[warnings.WarningMessage]


@dataclasses.dataclass(frozen=True)
class Measured:
    profile: LinkProfile
    runs: list[Run]

    def median(self, field: str) -> float:
        values = [getattr(run.result, field) for run in self.runs]
        assert None not in values, (field, values)
        return float(statistics.median(values))


def _speed_test(profile: LinkProfile) -> Run:
    with SpeedtestMini(Link(profile)) as mini:
        config = dataclasses.replace(FAST_TEST, server_url=mini.url + "/")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = throughput.run(config)
        assert mini.wait_idle(5.0)  # every byte the server took is counted
        return Run(result, mini.download_bytes, mini.upload_bytes, list(caught))


@pytest.fixture(scope="module")
def good_stop() -> Measured:
    profile = LinkProfile(down_mbps=12.0, up_mbps=3.0, rtt_ms=45.0)
    return Measured(profile, [_speed_test(profile) for _ in range(RUNS)])


@pytest.fixture(scope="module")
def poor_stop() -> Measured:
    profile = LinkProfile(down_mbps=2.0, up_mbps=1.0, rtt_ms=120.0)
    return Measured(profile, [_speed_test(profile) for _ in range(RUNS)])


@pytest.fixture(params=["good_stop", "poor_stop"])
def measured(request: pytest.FixtureRequest) -> Measured:
    value: Measured = request.getfixturevalue(request.param)
    return value


def test_speed_test_succeeds_against_the_fleet_mini_server(measured: Measured) -> None:
    for run in measured.runs:
        assert run.result.ok, run.result.reason
        assert run.result.mode == "mini" and run.result.reason is None


def test_download_rate_is_what_the_link_delivered(measured: Measured) -> None:
    assert measured.median("down_bps") == pytest.approx(measured.profile.down_mbps * 1e6, rel=RATE_TOLERANCE)


def test_upload_rate_is_what_the_link_delivered(measured: Measured) -> None:
    assert measured.median("up_bps") == pytest.approx(measured.profile.up_mbps * 1e6, rel=RATE_TOLERANCE)


def test_server_round_trip_is_the_link_rtt(measured: Measured) -> None:
    rtt_ms = measured.profile.rtt_ms
    assert measured.median("server_rtt_ms") == pytest.approx(rtt_ms, abs=LATENCY_TOLERANCE_MS)


def test_bytes_used_are_close_to_what_the_server_counted(measured: Measured) -> None:
    slack = THREADS * IN_FLIGHT_PER_THREAD
    for run in measured.runs:
        result = run.result
        # Received: the server wrote it all; a little was still in the pipe when the client stopped.
        assert 0 <= run.server_download_bytes - result.bytes_received <= slack
        # Sent: the library counts bytes handed to the kernel, which all reach the server in the end.
        assert 0 <= result.bytes_sent - run.server_upload_bytes <= slack
        assert result.bytes_used == result.bytes_received + result.bytes_sent
    # And the volume fits the rate: about rate x test length.
    expected_down = measured.profile.down_mbps * 125_000 * FAST_TEST.length_s
    assert measured.median("bytes_received") == pytest.approx(expected_down, rel=RATE_TOLERANCE)


def test_the_library_deprecation_warning_is_avoided(measured: Measured) -> None:
    caught = [w for run in measured.runs for w in run.warnings]
    assert [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)] == []


def test_an_unreachable_server_is_a_failed_result() -> None:
    mini = SpeedtestMini(Link(LinkProfile(12.0, 3.0, 45.0))).start()
    url = mini.url + "/"
    mini.stop()
    result = throughput.run(dataclasses.replace(FAST_TEST, server_url=url))
    assert not result.ok
    assert result.reason is not None and result.reason.startswith(f"speed test server {url} unreachable")
    assert result.down_bps is None and result.bytes_used == 0


def test_a_server_that_is_not_a_mini_is_a_failed_result() -> None:
    with HttpPortal(Link(LinkProfile(12.0, 3.0, 5.0)), page_bytes=500) as portal:
        url = portal.url + "/"
        result = throughput.run(dataclasses.replace(FAST_TEST, server_url=url))
    assert not result.ok
    assert result.reason == f"{url} is not a Speedtest Mini server (no upload extension found)"


def test_no_configured_server_is_a_failed_result() -> None:
    result = throughput.run(ThroughputConfig())
    assert not result.ok and result.reason == "no Speedtest Mini server URL configured"


def test_cancel_cuts_a_speed_test_short() -> None:
    cancel = threading.Event()
    with SpeedtestMini(Link(LinkProfile(12.0, 3.0, 45.0))) as mini:
        config = dataclasses.replace(FAST_TEST, server_url=mini.url + "/", length_s=30.0)
        threading.Timer(0.5, cancel.set).start()
        t0 = time.monotonic()
        result = throughput.run(config, cancel=cancel)
        elapsed = time.monotonic() - t0
    assert not result.ok and result.reason == "speed test cancelled"
    assert elapsed < 5.0


def test_bytes_still_queued_in_the_kernel_are_tallied() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    with listener, socket.create_connection(listener.getsockname()) as sender:
        peer, _ = listener.accept()
        with peer:  # never reads: what the sender writes piles up in its own queue
            sender.setblocking(False)
            written = 0
            with contextlib.suppress(BlockingIOError):
                while written < 4_000_000:
                    written += sender.send(b"x" * 65536)
            tally = throughput.UnsentTally()
            tally.add_queue_of(sender)
            tally.add_queue_of(None)
    assert 0 < tally.total <= written


def test_upload_buffer_is_one_bandwidth_delay_product_per_thread_within_bounds() -> None:
    config = ThroughputConfig(threads=2)
    assert upload_buffer_bytes(config, 12e6, 45.0) == 33_750  # 1.5 MB/s x 45 ms / 2
    assert upload_buffer_bytes(config, 2e6, 120.0) == throughput.MIN_UPLOAD_BUFFER
    assert upload_buffer_bytes(config, 150e6, 200.0) == throughput.MAX_UPLOAD_BUFFER
    assert upload_buffer_bytes(config, 12e6, None) == 75_000  # unknown round trip: 100 ms assumed
    assert upload_buffer_bytes(dataclasses.replace(config, upload_buffer_bytes=4096), 12e6, 45.0) == 4096


# =========================================================================== the suite


@pytest.fixture
def stop_services() -> Iterator[tuple[HttpPortal, DnsServer, SpeedtestMini]]:
    link = Link(LinkProfile(down_mbps=12.0, up_mbps=3.0, rtt_ms=45.0), seed=1)
    with (
        HttpPortal(link, page_bytes=30_000) as portal,
        DnsServer(link, {"www.caf.fr": ["192.0.2.10"]}) as dns_server,
        SpeedtestMini(link) as mini,
    ):
        yield portal, dns_server, mini


def _suite_config(portal: HttpPortal, dns_server: DnsServer, mini: SpeedtestMini) -> SuiteConfig:
    return SuiteConfig(
        latency=LatencyConfig(targets=(portal.url + "/", "tcp://127.0.0.1:1"), tries=3, interval_s=0),
        dns=DnsConfig(names=("www.caf.fr",), server=dns_server.address, timeout_s=1.0),
        http=HttpConfig(urls=(portal.url + "/", portal.url + "/missing"), timeout_s=3.0),
        throughput=dataclasses.replace(FAST_TEST, server_url=mini.url + "/", length_s=1.0),
    )


def test_suite_runs_every_probe_in_turn_and_totals_the_bytes(
    stop_services: tuple[HttpPortal, DnsServer, SpeedtestMini],
) -> None:
    portal, dns_server, mini = stop_services
    portal.fail("/missing", 404)
    result = run_suite(_suite_config(portal, dns_server, mini), include_throughput=True)
    assert isinstance(result, SuiteResult)
    assert [r.ok for r in result.latency] == [True, False]  # nothing listens on port 1
    assert [r.ok for r in result.dns] == [True]
    assert [(r.ok, r.status) for r in result.http] == [(True, 200), (False, 404)]
    assert result.throughput is not None and result.throughput.ok
    assert len(result.failures) == 2
    assert result.bytes_used == sum(r.bytes_used for r in result.results)
    assert result.bytes_used > result.throughput.bytes_used > 0
    assert result.started_mono_s <= result.finished_mono_s
    assert result.radio is None and result.stop_id is None
    assert to_dict(result)["bytes_used"] == result.bytes_used


def test_suite_leaves_throughput_out_when_told(
    stop_services: tuple[HttpPortal, DnsServer, SpeedtestMini],
) -> None:
    result = run_suite(_suite_config(*stop_services), include_throughput=False)
    assert result.throughput is None
    assert stop_services[2].history.count("request") == 0


def test_a_broken_probe_becomes_a_failed_result_and_the_suite_goes_on(
    stop_services: tuple[HttpPortal, DnsServer, SpeedtestMini],
) -> None:
    portal, dns_server, mini = stop_services
    config = dataclasses.replace(
        _suite_config(portal, dns_server, mini),
        http=HttpConfig(urls=(portal.url + "/",), timeout_s="soon"),  # type: ignore[arg-type]
    )
    result = run_suite(config, include_throughput=False)
    assert [r.ok for r in result.dns] == [True]
    (page,) = result.http
    assert not page.ok
    assert page.reason is not None and page.reason.startswith("internal error in the http probe: TypeError")
