"""Stop-visit summaries: shore power seen/lost/never, signal per operator, probe medians, printer, memory."""

from __future__ import annotations

import json
import statistics
import tracemalloc

from agent.core.catalog import Site
from agent.core.stops import Arrived, Departed, DepartureForeseen
from agent.core.timebase import Timebase, TimeStamp
from agent.core.visit import MEDIAN_SAMPLES, VisitRecorder
from agent.core.visit_summary import StopVisit
from agent.probes.results import DnsResult, HttpResult, LatencyResult, SuiteResult, ThroughputResult
from drivers.printer.reasons import problem_keyword as printer_problem
from drivers.snapshots import ModemSnapshot, PowerSnapshot, PrinterSnapshot

SITE = Site("poste-saint-agnan", "La Poste, Saint-Agnan", 43.998, 1.278, 80.0)
T0 = 1000.0  # monotonic time of arrival
WALL0 = 1_772_434_800.0  # 2026-03-02T07:00:00Z, the true wall time at T0
HOUR = 3600.0
CAF = "https://www.caf.fr/"
IMPOTS = "https://www.impots.gouv.fr/"


def recorder(at: float = T0) -> VisitRecorder:
    """Arrival at SITE, processed 300 s after the halt began (the dwell time): the stamp is of that moment."""
    stamp = TimeStamp("boot-1", at + 300.0, WALL0 + 300.0, "gps")
    return VisitRecorder(Arrived(at, SITE.lat, SITE.lon, SITE, "dwell"), stamp)


def leave(rec: VisitRecorder, at: float) -> StopVisit:
    stamp = TimeStamp("boot-1", at + 10.0, WALL0 + (at + 10.0 - T0), "gps")
    return rec.finish(Departed(at, rec.arrived.at, SITE.lat, SITE.lon, SITE), stamp)


def power(shore: bool | None, battery_v: float = 12.8) -> PowerSnapshot:
    return PowerSnapshot(shore_connected=shore, shore_source="gpio", battery_v=battery_v)


def feed_shore(rec: VisitRecorder, start: float, end: float, shore: bool | None, step: float = 10.0) -> None:
    t = start
    while t < end:
        rec.add_power(t, power(shore))
        t += step


def modem(
    operator: str = "20801", rsrp: float = -97.0, rsrq: float = -11.0, sinr: float = 9.0
) -> ModemSnapshot:
    return ModemSnapshot(
        registration="home", operator_code=operator, rat="LTE", rsrp_dbm=rsrp, rsrq_db=rsrq, sinr_db=sinr
    )


def suite(
    at: float,
    *,
    down_mbps: float = 12.0,
    up_mbps: float = 3.0,
    rtts: tuple[float | None, ...] = (40.0, 45.0, 50.0),
    dns_ms: float = 20.0,
    caf: tuple[float, float] = (150.0, 400.0),
    impots_ok: bool = True,
) -> SuiteResult:
    answered = sum(rtt is not None for rtt in rtts)
    latency = LatencyResult(
        target="caf.fr:443", method="tcp", tries=len(rtts), answered=answered, rtt_ms=rtts, bytes_used=600
    )
    dns = DnsResult(name="caf.fr", server="system", resolve_ms=dns_ms, addresses=("192.0.2.1",))
    http = (
        HttpResult(url=CAF, status=200, ttfb_ms=caf[0], fetch_ms=caf[1], bytes_used=50_000),
        HttpResult(url=IMPOTS, status=200, ttfb_ms=200.0, fetch_ms=500.0, bytes_used=40_000)
        if impots_ok
        else HttpResult(url=IMPOTS, ok=False, reason="no answer within 20 s"),
    )
    speed = ThroughputResult(
        server_url="http://127.0.0.1/mini/",
        down_bps=down_mbps * 1e6,
        up_bps=up_mbps * 1e6,
        bytes_used=9_000_000,
    )
    return SuiteResult(
        started_mono_s=at,
        finished_mono_s=at + 40,
        latency=(latency,),
        dns=(dns,),
        http=http,
        throughput=speed,
    )


# -- times and place ---------------------------------------------------------------------------------


def test_the_visit_runs_from_the_halt_start_to_the_first_movement_with_wall_times_on_the_stamps_footing() -> (
    None
):
    visit = leave(recorder(), T0 + 3 * HOUR)
    assert (visit.site_id, visit.site_name, visit.planned) == (SITE.id, SITE.name, True)
    assert visit.arrival == TimeStamp("boot-1", T0, WALL0, "gps")
    assert visit.departure == TimeStamp("boot-1", T0 + 3 * HOUR, WALL0 + 3 * HOUR, "gps")
    assert visit.duration_s == 3 * HOUR
    data = visit.to_dict()
    assert data["arrival"] == {
        "boot_id": "boot-1",
        "mono": T0,
        "wall": "2026-03-02T07:00:00Z",
        "wall_source": "gps",
    }
    assert data["departure"]["wall"] == "2026-03-02T10:00:00Z"


def test_the_summary_is_json_ready() -> None:
    rec = recorder()
    rec.add_modem(T0 + 60, modem())
    rec.add_power(T0 + 60, power(True))
    rec.add_printer(T0 + 60, PrinterSnapshot(state="stopped", reasons=("media-empty-error",)))
    rec.add_suite(suite(T0 + 60))
    rec.add_foreseen(DepartureForeseen(T0 + HOUR - 120, "shore-unplugged"))
    data = json.loads(json.dumps(leave(rec, T0 + HOUR).to_dict()))
    assert data["site_id"] == SITE.id
    assert data["printer_problems"] == [
        {"keyword": "media-empty", "first_seen_mono": T0 + 60, "first_seen_wall": "2026-03-02T07:01:00Z"}
    ]
    assert data["departure_foreseen"] == {
        "why": "shore-unplugged",
        "mono": T0 + 3480,
        "wall": "2026-03-02T07:58:00Z",
    }
    assert data["signal"][0]["rsrp_dbm"] == {"samples": 1, "min": -97.0, "median": -97.0, "max": -97.0}


def test_a_visit_made_before_gps_time_is_retimed_from_its_monotonic_stamps() -> None:
    rec = VisitRecorder(Arrived(T0, None, None, None, "shore"), TimeStamp("boot-1", T0, 0.0 + T0, "unsynced"))
    visit = rec.finish(
        Departed(T0 + HOUR, T0, None, None, None), TimeStamp("boot-1", T0 + HOUR, T0 + HOUR, "unsynced")
    )
    assert visit.site_id is None and visit.arrival.wall < 10_000  # a Pi that booted at 1970
    timebase = Timebase("boot-1")
    timebase.sync(T0 + 2 * HOUR, WALL0 + 2 * HOUR, "gps")
    retimed = visit.retimed(timebase.retime)
    assert retimed.arrival == TimeStamp("boot-1", T0, WALL0, "gps")
    assert retimed.departure.wall == WALL0 + HOUR


# -- shore power -------------------------------------------------------------------------------------


def test_shore_power_plugged_the_whole_stop_is_seen() -> None:
    rec = recorder()
    feed_shore(rec, T0, T0 + 4 * HOUR, True)
    assert leave(rec, T0 + 4 * HOUR).shore.state == "seen"


def test_shore_power_lost_for_40_minutes_mid_stop_is_lost_with_its_duration() -> None:
    rec = recorder()
    feed_shore(rec, T0, T0 + HOUR, True)
    feed_shore(rec, T0 + HOUR, T0 + HOUR + 2400, False)  # the breaker trips; someone resets it
    feed_shore(rec, T0 + HOUR + 2400, T0 + 4 * HOUR, True)
    shore = leave(rec, T0 + 4 * HOUR).shore
    assert shore.state == "lost"
    assert (shore.off_s, shore.outages, shore.first_off_mono) == (2400.0, 1, T0 + HOUR)


def test_shore_power_never_plugged_is_never() -> None:
    rec = recorder()
    feed_shore(rec, T0, T0 + 2 * HOUR, False)
    assert leave(rec, T0 + 2 * HOUR).shore.state == "never"


def test_unplugging_only_to_leave_is_still_seen() -> None:
    rec = recorder()
    feed_shore(rec, T0, T0 + 3 * HOUR, True)
    rec.add_foreseen(DepartureForeseen(T0 + 3 * HOUR, "shore-unplugged"))
    feed_shore(rec, T0 + 3 * HOUR, T0 + 3 * HOUR + 300, False)  # five minutes to stow the cable
    visit = leave(rec, T0 + 3 * HOUR + 300)
    assert visit.shore.state == "seen"
    assert visit.departure_foreseen == ("shore-unplugged", T0 + 3 * HOUR)


def test_a_socket_dead_long_before_leaving_is_lost_until_departure() -> None:
    rec = recorder()
    feed_shore(rec, T0, T0 + HOUR, True)
    feed_shore(rec, T0 + HOUR, T0 + 3 * HOUR, False)
    shore = leave(rec, T0 + 3 * HOUR).shore
    assert (shore.state, shore.off_s, shore.outages) == ("lost", 2 * HOUR, 1)


def test_unknown_shore_readings_neither_plug_nor_unplug() -> None:
    rec = recorder()
    feed_shore(rec, T0, T0 + HOUR, True)
    feed_shore(rec, T0 + HOUR, T0 + 2 * HOUR, None)  # the sensor stopped answering
    feed_shore(rec, T0 + 2 * HOUR, T0 + 3 * HOUR, True)
    assert leave(rec, T0 + 3 * HOUR).shore.state == "seen"
    blind = recorder()
    feed_shore(blind, T0, T0 + HOUR, None)
    assert leave(blind, T0 + HOUR).shore.state == "unknown"


def test_battery_minimum_over_the_stop() -> None:
    rec = recorder()
    for t, volts in ((0, 12.9), (600, 12.1), (1200, 12.4)):
        rec.add_power(T0 + t, power(False, volts))
    rec.add_power(T0 + 1800, PowerSnapshot(ok=False, reason="no answer from /dev/ttyUSB1"))
    assert leave(rec, T0 + HOUR).battery_min_v == 12.1


# -- signal and probes ---------------------------------------------------------------------------------


def test_signal_is_summarised_per_operator_and_rat() -> None:
    rec = recorder()
    for i, rsrp in enumerate((-95.0, -97.0, -99.0, -101.0)):
        rec.add_modem(T0 + 10 * i, modem("20801", rsrp=rsrp))
    for i, rsrp in enumerate((-80.0, -84.0)):
        rec.add_modem(T0 + 100 + 10 * i, modem("20810", rsrp=rsrp, sinr=20.0))
    rec.add_modem(T0 + 200, ModemSnapshot(ok=False, reason="no answer from /dev/ttyUSB2 within 2.0 s"))
    rec.add_modem(T0 + 210, ModemSnapshot(registration="searching"))
    visit = leave(rec, T0 + HOUR)
    orange, sfr = visit.signal
    assert (orange.operator_code, orange.rat, orange.samples) == ("20801", "LTE", 4)
    assert orange.rsrp_dbm is not None
    assert (orange.rsrp_dbm.min, orange.rsrp_dbm.median, orange.rsrp_dbm.max) == (-101.0, -98.0, -95.0)
    assert (sfr.operator_code, sfr.samples) == ("20810", 2)
    assert sfr.rsrp_dbm is not None and sfr.rsrp_dbm.median == -82.0
    assert (visit.modem_readings, visit.registered_readings) == (7, 6)


def test_probe_medians_over_the_suites_of_the_visit() -> None:
    rec = recorder()
    rec.add_suite(
        suite(T0 + 60, down_mbps=10.0, up_mbps=2.0, rtts=(40.0, 50.0, 60.0), dns_ms=20.0, caf=(100.0, 300.0))
    )
    rec.add_suite(
        suite(
            T0 + 1860, down_mbps=14.0, up_mbps=4.0, rtts=(70.0, None, 80.0), dns_ms=40.0, caf=(300.0, 900.0)
        )
    )
    rec.add_suite(
        suite(
            T0 + 3660,
            down_mbps=12.0,
            up_mbps=3.0,
            rtts=(90.0,),
            dns_ms=30.0,
            caf=(200.0, 500.0),
            impots_ok=False,
        )
    )
    probes = leave(rec, T0 + 2 * HOUR).probes
    assert (probes.runs, probes.usable_runs) == (3, 1)  # one lost try in three, one portal silent
    assert probes.rtt_ms == 75.0  # per-run medians 50, 75, 90
    assert probes.loss == 0.0  # per-run losses 0, 1/3, 0
    assert probes.dns_ms == 30.0
    assert (probes.down_bps, probes.up_bps) == (12e6, 3e6)
    caf, impots = probes.http
    assert (caf.url, caf.fetches, caf.failures, caf.ttfb_ms, caf.fetch_ms) == (CAF, 3, 0, 200.0, 500.0)
    assert (impots.fetches, impots.failures, impots.fetch_ms) == (3, 1, 500.0)
    assert probes.bytes_used == 3 * (600 + 50_000 + 9_000_000) + 2 * 40_000


# -- printer --------------------------------------------------------------------------------------------


def test_a_printer_problem_is_listed_once_with_when_it_was_first_seen() -> None:
    rec = recorder()
    rec.add_printer(T0 + 60, PrinterSnapshot(state="idle"))
    for minute in range(2, 30):  # out of paper for half an hour, read every minute
        rec.add_printer(T0 + 60 * minute, PrinterSnapshot(state="stopped", reasons=("media-empty-error",)))
    rec.add_printer(T0 + 1800, PrinterSnapshot(ok=False, reason="no answer from ipp://printer:631"))
    visit = leave(rec, T0 + HOUR)
    assert [(p.keyword, p.first_seen_mono) for p in visit.printer_problems] == [("media-empty", T0 + 120)]
    assert visit.printer_read_failures == 1


def test_printer_reasons_become_plain_keywords_and_reports_are_not_problems_except_offline() -> None:
    assert printer_problem("media-jam") == "media-jam"
    assert printer_problem("media-jam-error") == "media-jam"
    assert printer_problem("toner-low-warning") == "toner-low"
    assert printer_problem("toner-low-report") is None
    assert printer_problem("offline-report") == "offline"
    assert printer_problem("none") is None
    assert printer_problem("x" * 500) is None


# -- grade ----------------------------------------------------------------------------------------------


def test_the_visit_is_graded_from_its_probe_medians() -> None:
    rec = recorder()
    for i in range(3):
        rec.add_suite(suite(T0 + 1800 * i, down_mbps=0.8))
        rec.add_modem(T0 + 1800 * i, modem())
    visit = leave(rec, T0 + 2 * HOUR)
    assert visit.grade == "poor"
    assert visit.grade_reason.startswith(
        "median download 0.8 Mbit/s under the 2 Mbit/s floor for online procedures"
    )


def test_a_visit_without_suites_is_graded_from_the_signal_and_says_no_probe_ran() -> None:
    rec = recorder()
    for i in range(30):
        rec.add_modem(T0 + 10 * i, modem(rsrp=-112.0, rsrq=-12.0, sinr=5.0))
    visit = leave(rec, T0 + HOUR)
    assert visit.grade == "poor"
    assert visit.grade_reason == (
        "no probe ran; from the signal alone: median RSRP -112 dBm (under -100 dBm) on 20801 LTE is poor"
    )


# -- memory ---------------------------------------------------------------------------------------------


def feed_modem(rec: VisitRecorder, hours: float, step_s: float) -> None:
    for i in range(int(hours * HOUR / step_s)):
        rsrp = -90.0 - (i % 21)  # -90 .. -110, median -100
        rec.add_modem(T0 + i * step_s, modem(rsrp=rsrp, rsrq=-10.0 - (i % 5), sinr=float(i % 11)))
        rec.add_power(T0 + i * step_s, power(True, 12.0 + (i % 7) / 10))
        rec.add_printer(T0 + i * step_s, PrinterSnapshot(state="idle", reasons=("toner-low-report",)))


def test_a_ten_hour_stop_read_every_ten_seconds_keeps_its_readings_as_floats_only() -> None:
    rec = recorder()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        feed_modem(rec, hours=10, step_s=10)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert rec.retained_values() == 3 * 3600  # RSRP, RSRQ, SINR of one operator, each whole
    assert held < 200_000  # ~90 kB of floats; 3600 kept modem snapshots take ~1 MB
    rsrp = leave(rec, T0 + 10 * HOUR).signal[0].rsrp_dbm
    assert rsrp is not None and (rsrp.samples, rsrp.min, rsrp.median, rsrp.max) == (
        3600,
        -110.0,
        -100.0,
        -90.0,
    )


def test_longer_or_faster_reading_is_thinned_evenly_and_the_median_holds() -> None:
    rec = recorder()
    feed_modem(rec, hours=12, step_s=1)  # 43 200 readings
    assert rec.retained_values() <= 3 * MEDIAN_SAMPLES
    visit = leave(rec, T0 + 12 * HOUR)
    rsrp = visit.signal[0].rsrp_dbm
    assert rsrp is not None
    assert rsrp.samples == 43_200 and (rsrp.min, rsrp.max) == (-110.0, -90.0)
    assert abs(rsrp.median - -100.0) <= 1.0


def test_thinning_keeps_a_trend_unbiased() -> None:
    rec = recorder()
    n = 5 * MEDIAN_SAMPLES + 123
    for i in range(n):  # RSRP falling steadily over the stop: the median is the middle of the day
        rec.add_modem(T0 + i, modem(rsrp=-80.0 - 40.0 * i / n))
    rsrp = leave(rec, T0 + n).signal[0].rsrp_dbm
    assert rsrp is not None
    assert abs(rsrp.median - statistics.median(-80.0 - 40.0 * i / n for i in range(n))) < 0.1
