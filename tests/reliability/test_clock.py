"""Time without a real-time clock: a Pi boots at 1970 or at a stale fake-hwclock time, then GPS or NTP
time arrives; every record of that boot reaches the collector on true time.

End to end: the real daemon Service on a clock whose wall is wrong (tests/reliability/clock_agent.py),
a GPS receiver telling true time through the real gpsd, shore power confirming a stop before any fix,
probes against the simulated portals, the real mosquitto and the collector. True time is the GPS's.
Then the publisher's hold on its own: what waits for true time, and what goes when none comes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import sqlite3
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.core.timebase import GpsClock, retime_payload
from agent.mqtt import BatchPolicy, BrokerUrl, Publisher
from agent.outbox import Outbox, Priority
from agent.runtime.timesync import kernel_synchronized, ntp_synchronized, timesyncd_synchronized
from collector.ingest import Collector
from collector.store import Store
from simulators.broker import Mosquitto
from tests.mqtt.conftest import append_events, fast_settings, link, open_outbox
from tests.reliability.clock_bus import ClockBus, Stored, wait_for
from tests.reliability.conftest import report, scale

TRUE_START = dt.datetime(2026, 3, 2, 6, 45, tzinfo=dt.UTC).timestamp()
STALE_BY_S = 3 * 86400.0  # fake-hwclock saved three days ago, at the last clean shutdown
SPEEDUP = 5.0
TOLERANCE_S = 1.0
#: Simulated seconds the bus stays without a fix after the arrival's probes (the soak: half an hour).
DARK_S = scale(0, 1800)


def payload_times(payload: Any) -> Iterator[tuple[float, float, str | None]]:
    """(mono, wall as Unix seconds, source or None) of every time a payload carries beside a monotonic one."""
    if isinstance(payload, list):
        for item in payload:
            yield from payload_times(item)
    if not isinstance(payload, dict):
        return
    for value in payload.values():
        yield from payload_times(value)
    for key, mono in payload.items():
        if key != "mono" and not key.endswith("_mono"):
            continue
        wall = payload.get(key[: -len("mono")] + "wall")
        if wall is None:
            continue
        if isinstance(wall, str):
            wall = dt.datetime.fromisoformat(wall.replace("Z", "+00:00")).timestamp()
        source = payload.get("source", payload.get("wall_source")) if key == "mono" else None
        yield float(mono), float(wall), source


def check_on_true_time(bus: ClockBus, rows: list[Stored], source: str, before_mono: float) -> dict[str, Any]:
    """Every record and every time inside its payload within TOLERANCE_S of true time, from ``source``."""
    errors = [r.wall - bus.true_wall(r.mono) for r in rows]
    inner = [(r, t) for r in rows for t in payload_times(r.payload)]
    inner_errors = [wall - bus.true_wall(mono) for _, (mono, wall, _) in inner]
    worst = max(map(abs, errors + inner_errors))
    assert worst <= TOLERANCE_S, f"a time is {worst:.2f} s off true time"
    assert {r.wall_source for r in rows} == {source}
    assert {s for _, (_, _, s) in inner if s is not None} == {source}
    # Durations never negative: within each stream, later records have later wall times.
    for stream in {r.stream for r in rows}:
        walls = [r.wall for r in sorted((r for r in rows if r.stream == stream), key=lambda r: r.seq)]
        assert walls == sorted(walls), f"{stream}: wall times go backwards"
    early = [r for r in rows if r.mono < before_mono]
    assert {"telemetry/gps", "telemetry/power", "events", "probes/result"} <= {r.stream for r in early}
    return {
        "records": len(rows),
        "before_true_time": len(early),
        "payload_times": len(inner),
        "max_error_s": round(worst, 3),
        "median_error_s": round(statistics.median(errors), 3),
    }


def check_visit(bus: ClockBus, rows: list[Stored], before_mono: float) -> dict[str, Any]:
    """The stop began before true time was known; its visit carries true arrival and departure times."""
    visits = [r.payload for r in rows if r.stream == "stops/visit"]
    assert len(visits) == 1
    visit = visits[0]
    assert visit["confirmed_by"] == "shore" and visit["arrival"]["mono"] < before_mono
    arrival = dt.datetime.fromisoformat(visit["arrival"]["wall"].replace("Z", "+00:00")).timestamp()
    departure = dt.datetime.fromisoformat(visit["departure"]["wall"].replace("Z", "+00:00")).timestamp()
    assert departure - arrival == pytest.approx(visit["duration_s"], abs=0.01) and visit["duration_s"] > 0
    return {"visit_arrival_error_s": round(arrival - bus.true_wall(visit["arrival"]["mono"]), 3)}


def drive_a_boot(
    bus: ClockBus, start_wall: float, ntp_flag: Path | None = None
) -> tuple[list[Stored], float]:
    """Boot at ``start_wall`` on shore power without a fix; probes run; true time comes (NTP first when
    ``ntp_flag``, then the GPS fix); the bus leaves. Returns what the collector stored and the
    monotonic time at which true time first became available."""
    bus.boot_agent(start_wall=start_wall, ntp_flag=ntp_flag)
    wait_for(lambda: bus.events("probe.finished"), 90, "the arrival's probe suite, before any time")
    time.sleep(DARK_S / SPEEDUP)
    assert not bus.events("time.synced")
    true_at = bus.true.monotonic()
    if ntp_flag is not None:
        ntp_flag.touch()  # systemd-timesyncd stepped the clock and touched its flag
        wait_for(lambda: bus.events("time.synced"), 30, "NTP time")
    bus.gps.regain_fix()
    wait_for(lambda: bus.events("time.synced"), 30, "GPS time")
    time.sleep(25 / SPEEDUP)  # 25 s of fixes: the stop, confirmed by shore power only, gets its place
    bus.power.unplug()
    bus.gps.set_motion(12.0, 90.0)
    wait_for(lambda: bus.events("stop.visit"), 60, "the departure")
    wait_for(lambda: any(r.stream == "stops/visit" for r in bus.stored()), 30, "the visit at the collector")
    assert bus.stop_agent() == 0
    time.sleep(0.5)  # the last messages the broker had go on to the collector
    return bus.stored(), true_at


@pytest.mark.timeout(scale(180, 900))
@pytest.mark.parametrize(
    ("case", "start_wall"), [("1970", 0.0), ("fake-hwclock 3 days behind", TRUE_START - STALE_BY_S)]
)
def test_records_made_before_the_first_gps_fix_reach_the_collector_on_gps_time(
    tmp_path_factory: pytest.TempPathFactory, case: str, start_wall: float
) -> None:
    with ClockBus(tmp_path_factory.mktemp("clock"), speedup=SPEEDUP, true_start=TRUE_START) as bus:
        rows, fix_at = drive_a_boot(bus, start_wall)
        figures = check_on_true_time(bus, rows, "gps", fix_at)
        figures |= check_visit(bus, rows, fix_at)
        assert len(bus.events("mqtt.publishing_unsynced")) == 0
    report(f"clock boot {case}, GPS", **figures)


@pytest.mark.timeout(scale(180, 900))
def test_ntp_synchronisation_retimes_a_stale_boot_and_gps_does_not_override_it(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    work = tmp_path_factory.mktemp("clock")
    with ClockBus(work, speedup=SPEEDUP, true_start=TRUE_START) as bus:
        rows, ntp_at = drive_a_boot(bus, TRUE_START - STALE_BY_S, ntp_flag=work / "synchronized")
        figures = check_on_true_time(bus, rows, "ntp", ntp_at)
        figures |= check_visit(bus, rows, ntp_at)
    report("clock boot fake-hwclock 3 days behind, NTP then GPS", **figures)


# -- the pieces, alone ------------------------------------------------------------------------------


def gps_readings(offset: float, fix_phase: float, poll_phase: float, count: int) -> list[tuple[float, float]]:
    """(mono, latest fix time) read once a second from a 1 Hz receiver: fixes at mono k + fix_phase."""
    readings = []
    for k in range(count):
        mono = 100.0 + k + poll_phase
        latest_fix_mono = math.floor(mono - fix_phase) + fix_phase
        readings.append((mono, round(latest_fix_mono + offset, 3)))  # NMEA carries milliseconds
    return readings


def test_gps_time_bracketed_between_reads_is_within_half_a_poll_not_a_whole_poll_off() -> None:
    offset = TRUE_START - 100.0
    worst_bracket = worst_naive = 0.0
    for step in range(20):
        clock = GpsClock()
        readings = gps_readings(offset, fix_phase=0.0, poll_phase=step / 20 + 0.001, count=5)
        clock.add(*readings[0])
        assert clock.offset() is None, "one reading brackets nothing"
        for reading in readings[1:]:
            clock.add(*reading)
        estimate = clock.offset()
        assert estimate is not None
        worst_bracket = max(worst_bracket, abs(estimate - offset))
        worst_naive = max(worst_naive, abs(readings[0][1] - readings[0][0] - offset))
    assert worst_bracket <= 0.5 + 0.001
    assert worst_naive > 0.9  # what taking the first fix time as "now" would have cost
    report(
        "clock GPS bracket", worst_error_s=round(worst_bracket, 3), fix_time_as_now_s=round(worst_naive, 3)
    )


def test_gps_clock_starts_over_when_the_receiver_time_goes_back() -> None:
    clock = GpsClock()
    for mono, wall in gps_readings(TRUE_START, 0.0, 0.5, 3):
        clock.add(mono, wall)
    assert clock.offset() == pytest.approx(TRUE_START, abs=0.5)
    clock.add(103.5, TRUE_START - 3600.0)  # a receiver reset reporting an older time
    assert clock.offset() is None


def test_payload_times_follow_the_record_and_another_boots_stamp_is_left_alone() -> None:
    payload: dict[str, Any] = {
        "stamp": {"boot_id": "b1", "mono": 10.0, "wall": 10.0, "source": "unsynced"},
        "arrival": {"boot_id": "b1", "mono": 20.0, "wall": "1970-01-01T00:00:20Z", "wall_source": "unsynced"},
        "departure_foreseen": {"why": "shore-unplugged", "mono": 30.0, "wall": "1970-01-01T00:00:30Z"},
        "printer_problems": [{"keyword": "media-empty", "first_seen_mono": 25.0, "first_seen_wall": "x"}],
        "earlier": {"boot_id": "b0", "mono": 5.0, "wall": 5.0, "source": "unsynced"},
        "shore": {"first_off_mono": 26.0},
    }
    assert retime_payload(payload, "b1", TRUE_START, "gps")
    assert payload["stamp"] == {"boot_id": "b1", "mono": 10.0, "wall": TRUE_START + 10.0, "source": "gps"}
    assert payload["arrival"]["wall"] == "2026-03-02T06:45:20Z"
    assert payload["arrival"]["wall_source"] == "gps"
    assert payload["departure_foreseen"]["wall"].startswith("2026-03-02T06:45:30")
    assert payload["printer_problems"][0]["first_seen_wall"].startswith("2026-03-02T06:45:25")
    assert payload["earlier"] == {"boot_id": "b0", "mono": 5.0, "wall": 5.0, "source": "unsynced"}
    assert payload["shore"] == {"first_off_mono": 26.0}
    assert not retime_payload({"lat_deg": 44.0, "read_mono_s": 3.0}, "b1", TRUE_START, "gps")


def test_the_ntp_check_reads_systemd_timesyncds_flag(tmp_path: Path) -> None:
    flag = tmp_path / "synchronized"
    assert not timesyncd_synchronized(flag)
    flag.touch()
    assert timesyncd_synchronized(flag) and ntp_synchronized(flag)
    assert isinstance(kernel_synchronized(), bool)  # adjtimex answered, or could not: never raises


# -- the publisher's hold, against the real broker and collector ------------------------------------

OFFSET_S = TRUE_START - 10.0  # true time minus monotonic time, once known


@contextlib.contextmanager
def broker_and_collector(tmp_path: Path) -> Iterator[tuple[BrokerUrl, Path]]:
    broker = Mosquitto(tmp_path)
    broker.start()
    url = BrokerUrl("127.0.0.1", broker.port, tls=False)
    store = Store(tmp_path / "collector.db")
    collector = Collector(link(url, client_id="collector"), store, ack_interval_s=0.1)
    collector.start()
    try:
        yield url, tmp_path / "collector.db"
    finally:
        collector.stop()
        store.close()
        broker.stop()


def stored(db: Path) -> list[tuple[str, str, float, float, str, dict[str, Any]]]:
    """(boot_id, stream, mono, wall, wall_source, payload) of every record the collector stored."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        rows = conn.execute(
            "SELECT boot_id, stream, mono, wall, wall_source, payload FROM messages ORDER BY stream, seq"
        ).fetchall()
    return [(b, s, m, w, src, json.loads(p)) for b, s, m, w, src, p in rows]


def append_unsynced(outbox: Outbox, stream: str, count: int) -> None:
    """Records stamped on a 1970 clock, with a time stamp in the payload as events carry one."""
    for i in range(count):
        mono = 10.0 + i
        stamp = {"boot_id": outbox.boot_id, "mono": mono, "wall": mono, "source": "unsynced"}
        priority: Priority = "low" if stream.startswith("telemetry/") else "normal"
        outbox.append(
            stream, {"i": i, "stamp": stamp}, priority=priority, mono=mono, wall=mono, wall_source="unsynced"
        )


def retime(outbox: Outbox) -> None:
    """What the daemon does when GPS time arrives (agent/runtime/retimer.py)."""
    boot = outbox.boot_id
    outbox.retime(boot, OFFSET_S, "gps", payloads=lambda p: retime_payload(p, boot, OFFSET_S, "gps"))


def test_this_boots_records_wait_for_true_time_while_an_earlier_boots_go_at_once(tmp_path: Path) -> None:
    count = scale(20, 2000)
    with broker_and_collector(tmp_path) as (url, db):
        with open_outbox(tmp_path / "outbox.db", boot_id="boot-before") as before:
            append_events(before, 3)  # yesterday's backlog: its time cannot get any better
        outbox = open_outbox(tmp_path / "outbox.db", boot_id="boot-now")
        append_unsynced(outbox, "events", count)
        version = [0]
        publisher = Publisher(
            outbox, fast_settings(url, unsynced_hold_s=60.0), time_version=lambda: version[0]
        )
        publisher.start()
        try:
            wait_for(lambda: len(stored(db)) == 3, 15, "the earlier boot's records")
            time.sleep(1.0)
            assert {row[0] for row in stored(db)} == {"boot-before"}, "this boot's records waited"
            retime(outbox)
            synced_at = time.monotonic()
            version[0] = 1
            wait_for(lambda: len(stored(db)) == 3 + count, 30, "this boot's records, re-timed")
            delay = time.monotonic() - synced_at
        finally:
            publisher.stop(timeout_s=0.5)
            outbox.close()
    now = [row for row in stored(db) if row[0] == "boot-now"]
    assert {row[4] for row in now} == {"gps"}
    assert all(wall == pytest.approx(mono + OFFSET_S) for _, _, mono, wall, _, _ in now)
    assert all(p["stamp"] == {"boot_id": "boot-now", "mono": m, "wall": m + OFFSET_S, "source": "gps"}
               for _, _, m, _, _, p in now)  # fmt: skip
    report("clock hold until true time", records=count, delivered_after_sync_s=round(delay, 2))


def test_without_true_time_the_hold_ends_and_records_still_staged_take_a_late_sync(tmp_path: Path) -> None:
    hold_s = 0.5
    with broker_and_collector(tmp_path) as (url, db):
        outbox = open_outbox(tmp_path / "outbox.db", boot_id="boot-now")
        version = [0]
        settings = fast_settings(url, unsynced_hold_s=hold_s, batch=BatchPolicy(max_records=60, wait_s=3.0))
        started = time.monotonic()
        publisher = Publisher(outbox, settings, time_version=lambda: version[0])
        append_unsynced(outbox, "events", 3)
        publisher.start()
        try:
            wait_for(lambda: len(stored(db)) == 3, 15, "records published without true time")
            waited = time.monotonic() - started
            append_unsynced(outbox, "telemetry/gps", 10)  # staged: a telemetry batch waits 3 s to fill
            wait_for(lambda: publisher.status().staged == 10, 5, "the batch to be staged")
            retime(outbox)
            version[0] = 1
            wait_for(lambda: len(stored(db)) == 13, 15, "the telemetry batch")
        finally:
            publisher.stop(timeout_s=0.5)
            outbox.close()
    rows = stored(db)
    assert waited >= hold_s
    # What went before true time keeps "unsynced" at the collector: it was published that way.
    assert [row[4] for row in rows if row[1] == "events"] == ["unsynced"] * 3
    assert {row[4] for row in rows if row[1] == "telemetry/gps"} == {"gps"}
    assert all(
        wall == pytest.approx(mono + OFFSET_S) for _, s, mono, wall, _, _ in rows if s == "telemetry/gps"
    )
    report("clock hold expiry", hold_s=hold_s, first_unsynced_after_s=round(waited, 2))
