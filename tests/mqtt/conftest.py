"""MQTT test fixtures: the real mosquitto on a free port, a TCP proxy, outbox and collector helpers."""

from __future__ import annotations

import contextlib
import datetime
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import simulators.broker
from agent.mqtt import BatchPolicy, BrokerUrl, LinkSettings, Publisher, PublisherSettings
from agent.outbox import Outbox
from collector.ingest import Collector
from collector.store import Store

OPENSSL = "/usr/bin/openssl"
VEHICLE = "bus-tdc-01"


def wait_until(predicate: Callable[[], bool], timeout_s: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.02)


class Mosquitto(simulators.broker.Mosquitto):
    """The shared broker helper, with the URL as the publisher's BrokerUrl."""

    @property
    def url(self) -> BrokerUrl:  # type: ignore[override]
        return BrokerUrl("127.0.0.1", self.port, tls=False)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    work = tmp_path / "broker"
    work.mkdir()
    mosquitto = Mosquitto(work)
    mosquitto.start()
    yield mosquitto
    mosquitto.stop()


class TcpProxy:
    """127.0.0.1 proxy to a broker counting bytes each way; can play an MQTT 3.1.1-only broker."""

    def __init__(self, target_port: int, *, refuse_mqtt5: bool = False) -> None:
        self.target_port = target_port
        self.refuse_mqtt5 = refuse_mqtt5
        self.up = 0  # client -> broker
        self.down = 0
        self.levels: list[int] = []  # protocol level of every CONNECT seen
        self.down = False  # the link is cut: connections are closed at once
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        self._spawn(self._accept)

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            self._sockets.append(client)
            self._spawn(self._serve, client)

    def _serve(self, client: socket.socket) -> None:
        if self.down:
            client.close()
            return
        first = client.recv(65536)
        level = connect_level(first)
        self.levels.append(level)
        if self.refuse_mqtt5 and level == 5:
            client.sendall(b"\x20\x02\x00\x01")  # CONNACK "unacceptable protocol version" (3.1.1)
            client.close()
            return
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
        except OSError:
            client.close()
            return
        self._sockets.append(upstream)
        upstream.sendall(first)
        self._count(len(first), 0)
        self._spawn(self._pipe, upstream, client, False)
        self._pipe(client, upstream, True)

    def _pipe(self, source: socket.socket, sink: socket.socket, upward: bool) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
                self._count(len(data) if upward else 0, 0 if upward else len(data))
        except OSError:
            pass
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _count(self, up: int, down: int) -> None:
        with self._lock:
            self.up += up
            self.down += down

    def close(self) -> None:
        self._closed = True
        for sock in (self._server, *self._sockets):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes the threads blocked in accept() and recv()
            sock.close()
        for thread in self._threads:
            thread.join(2)


def connect_level(packet: bytes) -> int:
    """The protocol level of a CONNECT: after the fixed header's varint length and the "MQTT" name."""
    i = 1
    while i < len(packet) and packet[i] & 0x80:
        i += 1
    i += 1 + 2 + 4
    return packet[i] if i < len(packet) else 0


@pytest.fixture
def make_proxy() -> Iterator[Callable[..., TcpProxy]]:
    proxies: list[TcpProxy] = []

    def make(target_port: int, **options: Any) -> TcpProxy:
        proxies.append(TcpProxy(target_port, **options))
        return proxies[-1]

    yield make
    for proxy in proxies:
        proxy.close()


class FakeClock:
    """Outbox seconds that move only when told to (a simulated hour takes no time), then, after
    ``run()``, with real time (so that the publisher's resend timeouts can expire)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self._real_from: float | None = None

    def __call__(self) -> float:
        if self._real_from is None:
            return self.now
        return self.now + time.monotonic() - self._real_from

    def run(self) -> None:
        self._real_from = time.monotonic()


def open_outbox(path: Path, *, boot_id: str = "boot-a", **options: Any) -> Outbox:
    """NORMAL sync: these tests kill brokers and processes, not the power; FULL would only slow them."""
    options.setdefault("synchronous", "NORMAL")
    return Outbox.open(path, vehicle_id=VEHICLE, boot_id=boot_id, **options)


def link(url: BrokerUrl, **options: Any) -> LinkSettings:
    return LinkSettings(
        url=url, client_id=options.pop("client_id", f"busagent-{VEHICLE}"), connect_timeout_s=3.0, **options
    )


def fast_settings(url: BrokerUrl, **overrides: Any) -> PublisherSettings:
    """Short timeouts and backoff caps so outages cost tenths of a second, not minutes."""
    options: dict[str, Any] = {
        "link": link(url, **overrides.pop("link_options", {})),
        "batch": BatchPolicy(max_records=60, wait_s=0.2),
        "ack_timeout_s": 1.5,
        "inflight_timeout_s": 3.0,
        "backoff_min_s": 0.05,
        "backoff_max_s": 0.3,
        "announce_every_s": 0.3,
        "tick_s": 0.01,
    }
    options.update(overrides)
    return PublisherSettings(**options)


def start_publisher(outbox: Outbox, settings: PublisherSettings) -> Publisher:
    publisher = Publisher(outbox, settings, rng=random.Random(7))
    publisher.start()
    return publisher


@pytest.fixture
def publishers() -> Iterator[Callable[[Outbox, PublisherSettings], Publisher]]:
    started: list[Publisher] = []

    def start(outbox: Outbox, settings: PublisherSettings) -> Publisher:
        started.append(start_publisher(outbox, settings))
        return started[-1]

    yield start
    for publisher in started:
        publisher.stop(timeout_s=0.5)


@pytest.fixture
def collectors(tmp_path: Path) -> Iterator[Callable[..., Collector]]:
    started: list[Collector] = []

    def start(url: BrokerUrl, db: Path | None = None, **options: Any) -> Collector:
        store = Store(db or tmp_path / "collector.db")
        collector = Collector(
            link(url, client_id=f"collector-{len(started)}", **options.pop("link_options", {})),
            store,
            ack_interval_s=0.1,
            reconnect_max_s=1,
            **options,
        )
        collector.start()
        started.append(collector)
        return collector

    yield start
    for collector in started:
        collector.stop()
        collector.ingest.store.close()


def fully_acknowledged(outbox: Outbox) -> bool:
    stats = outbox.stats()
    return stats.pending == 0 and stats.sent_unacked == 0


def gps_payload(i: int, rng: random.Random) -> dict[str, Any]:
    """A realistic gpsd fix at 1 Hz: 1e-7 degrees, ns monotonic read time with jitter, ISO ms time."""
    when = datetime.datetime(2026, 3, 2, 8, 0, tzinfo=datetime.UTC) + datetime.timedelta(seconds=i)
    return {
        "ok": True,
        "reason": None,
        "read_mono_s": round(12345.678912345 + i + rng.uniform(0, 0.003), 9),
        "source": "gpsd",
        "fix_mode": 3,
        "lat_deg": round(44.0395 + 0.00009 * i + rng.gauss(0, 0.000002), 7),
        "lon_deg": round(1.1069 + 0.00012 * i + rng.gauss(0, 0.000002), 7),
        "speed_mps": round(13.9 + rng.gauss(0, 0.2), 3),
        "track_deg": round(53.0 + rng.gauss(0, 1), 1),
        "altitude_m": round(150 + rng.gauss(0, 0.5), 1),
        "satellites_used": 8 + (i // 100) % 2,
        "satellites_seen": 12,
        "hdop": round(0.9 + (i // 50) % 3 * 0.1, 2),
        "gps_time_utc": when.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
    }


def append_gps(outbox: Outbox, count: int, *, start: int = 0, clock: FakeClock | None = None) -> None:
    rng = random.Random(start)
    for i in range(start, start + count):
        if clock is not None:
            clock.now += 1.0
        outbox.append(
            "telemetry/gps",
            gps_payload(i, rng),
            priority="low",
            mono=12345.0 + i + rng.uniform(0, 0.003),
            wall=1_772_434_800.0 + i + rng.uniform(0, 0.003),
            wall_source="gps",
        )


def append_events(outbox: Outbox, count: int, *, stream: str = "events", priority: str = "high") -> None:
    for i in range(count):
        outbox.append(
            stream,
            {"event": "printer", "state": "stopped", "reasons": ["media-empty"], "i": i},
            priority=priority,  # type: ignore[arg-type]
            mono=500.0 + i,
            wall=1_772_434_800.0 + i,
            wall_source="ntp",
        )
