"""Broker crashes and a bad link during a drain: nothing lost, reconnects within the backoff cap, no wedge.

A backlog drains while the bus keeps recording, and faults follow each other: the broker SIGKILLed
and restarted with persistence off (what it had queued and not delivered is gone), the link stalled
shorter and longer than ``inflight_timeout_s`` (bytes held, nothing closed), blackholed (new
connections held silently, then reset), and dropping every connection a few hundred bytes in, in
the middle of a packet. After each fault clears the collector must receive more within a bound,
and at the end it must hold every seq of every stream.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.mqtt import BatchPolicy, Publisher, PublisherSettings
from agent.outbox import Outbox
from tests.mqtt.conftest import (
    append_events,
    append_gps,
    fast_settings,
    fully_acknowledged,
    open_outbox,
    start_publisher,
    wait_until,
)
from tests.reliability.broker_rig import Central, central
from tests.reliability.conftest import report, scale

MARGIN_S = 1.0  # scheduling slack on a loaded 2-core machine
FIX_EVERY_S = 0.02  # the bus records 50 fixes a second during the chaos (an event every 25)


def settings_for(rig: Central) -> PublisherSettings:
    """Production window and batches; timeouts short enough that a test sees several of each."""
    return fast_settings(
        rig.bus_url,
        batch=BatchPolicy(max_records=60, wait_s=0.2),
        inflight_timeout_s=2.0,
        ack_timeout_s=3.0,
        backoff_min_s=0.05,
        backoff_max_s=1.0,
        collector_window=20,  # keeps the collector less than ack_timeout_s behind: no needless resend
    )


class Watch:
    """Samples the publisher's status every 10 ms: when each connection came up, each new error."""

    def __init__(self, publisher: Publisher) -> None:
        self._publisher = publisher
        self.connected_at: list[float] = []
        self.errors: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        connections, error = 0, None
        while not self._stop.wait(0.01):
            status, now = self._publisher.status(), time.monotonic()
            self.connected_at += [now] * (status.connections - connections)
            connections = status.connections
            if status.last_error != error and status.last_error is not None:
                self.errors.append((now, status.last_error))
            error = status.last_error

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)

    def connection_after(self, since: float) -> float | None:
        return next((t - since for t in self.connected_at if t >= since), None)

    def error_after(self, since: float, text: str) -> float | None:
        return next((t - since for t, error in self.errors if t >= since and text in error), None)


class Recorder:
    """The bus keeps recording while the faults come: GPS fixes and events appended from a thread."""

    def __init__(self, outbox: Outbox, first_fix: int) -> None:
        self.outbox, self.fixes, self.events = outbox, first_fix, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(FIX_EVERY_S):
            append_gps(self.outbox, 1, start=self.fixes)
            self.fixes += 1
            if self.fixes % 25 == 0:
                append_events(self.outbox, 1)
                self.events += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


class Chaos:
    """Plays the faults and keeps what was observed of each."""

    def __init__(self, rig: Central, watch: Watch, settings: PublisherSettings, rng: random.Random) -> None:
        self.rig, self.watch, self.settings, self.rng = rig, watch, settings, rng
        self.kills = 0
        self.attempt_gaps: list[float] = []  # between connection attempts while the broker was down
        self.reconnects: list[tuple[str, float]] = []  # (fault, seconds from its end to a new connection)
        self.stall_detected: list[float] = []  # seconds from a long stall's start to "no PUBACK"
        self.progress: list[float] = []  # seconds from a fault's end to more records at the collector

    def kill_broker(self) -> None:
        broker, relay = self.rig.broker, self.rig.relay
        killed = time.monotonic()
        broker.kill()
        self.kills += 1
        time.sleep(self.rng.uniform(1.5, 3.0))  # long enough for the backoff to reach its cap
        attempts = [killed] + [t for t in list(relay.accepted) if t > killed]
        self.attempt_gaps += [b - a for a, b in itertools.pairwise(attempts)]
        cleared = time.monotonic()  # before the start: the publisher may connect while it waits
        broker.start()
        self._after("kill", cleared, expect_reconnect=self.settings.backoff_max_s)

    def stall(self, seconds: float) -> None:
        started = time.monotonic()
        self.rig.relay.stall()
        time.sleep(seconds)
        cleared = time.monotonic()
        self.rig.relay.resume()
        if seconds > self.settings.inflight_timeout_s:
            self._stall_detected(started)
            self._after("stall", cleared, expect_reconnect=self._held_connect_bound())
        else:
            self._after("short stall", cleared, expect_reconnect=None)

    def blackhole(self) -> None:
        started = time.monotonic()
        self.rig.relay.blackhole()
        time.sleep(self.long_stall_s())
        cleared = time.monotonic()
        self.rig.relay.restore()
        self._stall_detected(started)
        self._after("blackhole", cleared, expect_reconnect=self._held_connect_bound())

    def drops(self) -> None:
        self.rig.relay.drop_after(self.rng.randint(300, 4000))
        time.sleep(3.0)
        cleared = time.monotonic()
        self.rig.relay.restore()
        self._after("drops", cleared, expect_reconnect=None)

    def long_stall_s(self) -> float:
        """Past the probe (half the in-flight timeout, when the window is full) and the timeout."""
        return 2 * self.settings.inflight_timeout_s + 1.0

    def _held_connect_bound(self) -> float:
        """An attempt may have begun just before the link came back and wait for its CONNACK."""
        return self.settings.link.connect_timeout_s + self.settings.backoff_max_s

    def _stall_detected(self, started: float) -> None:
        detected = self.watch.error_after(started, "no PUBACK within")
        assert detected is not None, f"a stall went unnoticed: {self.watch.errors[-5:]}"
        self.stall_detected.append(detected)

    def _after(self, fault: str, cleared: float, *, expect_reconnect: float | None) -> None:
        """The collector receives more within a bound; a new connection within ``expect_reconnect``."""
        before = self.rig.received()
        bound = self._held_connect_bound() + self.settings.inflight_timeout_s + self.settings.ack_timeout_s
        wait_until(lambda: self.rig.received() > before, bound + 5.0, f"progress after the {fault}")
        self.progress.append(time.monotonic() - cleared)
        if expect_reconnect is not None:
            reconnect = self.watch.connection_after(cleared)
            assert reconnect is not None and reconnect <= expect_reconnect + MARGIN_S, (fault, reconnect)
            self.reconnects.append((fault, reconnect))


def faults(chaos: Chaos) -> list[Callable[[], None]]:
    inflight = chaos.settings.inflight_timeout_s
    return [
        chaos.kill_broker,
        lambda: chaos.stall(inflight / 2),
        chaos.kill_broker,
        lambda: chaos.stall(chaos.long_stall_s()),
        chaos.drops,
        chaos.kill_broker,
        chaos.blackhole,
    ]


@pytest.mark.timeout(scale(180, 7200))
def test_broker_kills_and_a_bad_link_during_a_drain_lose_nothing_and_never_wedge_the_publisher(
    tmp_path: Path,
) -> None:
    backlog, rounds = scale(10_000, 60_000), scale(1, 8)
    rng = random.Random(20260302)
    outbox = open_outbox(tmp_path / "outbox.db")
    append_gps(outbox, backlog)
    append_events(outbox, backlog // 25)
    with central(tmp_path) as rig:
        settings = settings_for(rig)
        started = time.monotonic()
        publisher = start_publisher(outbox, settings)
        watch, recorder = Watch(publisher), Recorder(outbox, backlog)
        chaos = Chaos(rig, watch, settings, rng)
        try:
            wait_until(lambda: rig.received() > 0, 10, "the drain to start")
            for _ in range(rounds):
                order = faults(chaos)
                rng.shuffle(order)
                for fault in order:
                    fault()
            recorder.stop()
            calm = time.monotonic()
            wait_until(
                lambda: fully_acknowledged(outbox), 90, "the outbox to be acknowledged after the chaos"
            )
            drain_s, total_s = time.monotonic() - calm, time.monotonic() - started
            status = publisher.status()
        finally:
            recorder.stop()
            watch.stop()
            publisher.stop(timeout_s=1)
        fixes, events = recorder.fixes, backlog // 25 + recorder.events
        rig.assert_complete({"telemetry/gps": fixes, "events": events})
        rows = rig.rows()
        stalls, drops = rig.relay.stalls, rig.relay.drops
    assert status.running and status.internal_errors == 0
    report(
        "broker_chaos",
        records=fixes + events,
        kills=chaos.kills,
        stalls=stalls,
        connections_dropped_mid_packet=drops,
        reconnects=status.connections - 1,
        backoff_cap_s=settings.backoff_max_s,
        max_attempt_gap_while_down_s=round(max(chaos.attempt_gaps), 2),
        max_reconnect_after_fault_s=round(max(t for _, t in chaos.reconnects), 2),
        stall_detected_after_s=round(max(chaos.stall_detected), 2),
        inflight_timeout_s=settings.inflight_timeout_s,
        max_progress_after_fault_s=round(max(chaos.progress), 2),
        resent=status.records_resent,
        duplicates=sum(row.duplicates for row in rows.values()),
        final_drain_s=round(drain_s, 1),
        total_s=round(total_s, 1),
    )
    assert max(chaos.attempt_gaps) <= settings.backoff_max_s + MARGIN_S
