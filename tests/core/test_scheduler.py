"""Probe scheduling: arrival after settling, intervals, once before departure, first movement, budget."""

from __future__ import annotations

import pytest

from agent.core.catalog import Site
from agent.core.scheduler import ProbeParams, ProbeRequest, ProbeScheduler
from agent.core.stops import Arrived, Departed, DepartureForeseen

DAY = "2026-03-02"
SITE = Site("poste", "La Poste", 43.998, 1.278, 80.0)
ARRIVED = Arrived(0.0, SITE.lat, SITE.lon, SITE, "dwell")


def departed(at: float) -> Departed:
    return Departed(at, 0.0, SITE.lat, SITE.lon, SITE)


def run(scheduler: ProbeScheduler, now: float, bytes_used: int = 1_000_000, day: str = DAY) -> ProbeRequest:
    """Start the suite due at ``now`` and finish it at once; fail if none is due."""
    request = scheduler.due(now, day)
    assert request is not None, f"nothing due at {now}"
    scheduler.started(now, request)
    scheduler.finished(now + 30, bytes_used)
    return request


def arrived_at(now: float, params: ProbeParams | None = None) -> ProbeScheduler:
    scheduler = ProbeScheduler(params)
    scheduler.on_events(now, [ARRIVED])
    return scheduler


def test_nothing_is_due_before_any_stop() -> None:
    scheduler = ProbeScheduler()
    assert scheduler.due(0.0, DAY) is None
    assert scheduler.next_due(0.0) is None


def test_arrival_suite_is_due_after_the_settle_delay() -> None:
    scheduler = arrived_at(1000.0)
    assert scheduler.due(1059.0, DAY) is None
    assert scheduler.next_due(1000.0) == 1060.0
    request = scheduler.due(1060.0, DAY)
    assert request == ProbeRequest("arrival", DAY, True, None, "poste")


def test_interval_suites_follow_every_30_minutes_while_parked() -> None:
    scheduler = arrived_at(0.0)
    run(scheduler, 60.0)
    assert scheduler.due(60.0 + 1799, DAY) is None
    assert run(scheduler, 1860.0).reason == "interval"
    assert scheduler.next_due(1900.0) == 3660.0
    assert run(scheduler, 3660.0).reason == "interval"


def test_foreseen_departure_runs_one_suite_at_once_and_only_once() -> None:
    scheduler = arrived_at(0.0)
    run(scheduler, 60.0)
    scheduler.on_events(500.0, [DepartureForeseen(500.0, "shore-unplugged")])
    assert run(scheduler, 500.0).reason == "before-departure"
    scheduler.on_events(600.0, [DepartureForeseen(600.0, "engine-started")])
    assert scheduler.due(600.0, DAY) is None
    scheduler.on_events(700.0, [departed(700.0)])
    assert scheduler.due(700.0, DAY) is None  # measured just before leaving: no first-movement suite


def test_foreseen_departure_while_a_suite_runs_waits_for_it() -> None:
    scheduler = arrived_at(0.0)
    first = scheduler.due(60.0, DAY)
    assert first is not None
    scheduler.started(60.0, first)
    scheduler.on_events(70.0, [DepartureForeseen(70.0, "shore-unplugged")])
    assert scheduler.due(70.0, DAY) is None
    scheduler.finished(90.0, 1000)
    request = scheduler.due(90.0, DAY)
    assert request is not None and request.reason == "before-departure"


def test_unforeseen_departure_runs_a_suite_at_first_movement() -> None:
    scheduler = arrived_at(0.0)
    run(scheduler, 60.0)
    run(scheduler, 1860.0)
    scheduler.on_events(2700.0, [departed(2690.0)])  # last suite 14 min ago
    request = run(scheduler, 2700.0)
    assert (request.reason, request.site_id) == ("first-movement", "poste")
    assert scheduler.due(2800.0, DAY) is None


def test_no_first_movement_suite_when_one_ran_minutes_ago() -> None:
    scheduler = arrived_at(0.0)
    run(scheduler, 60.0)
    scheduler.on_events(400.0, [departed(390.0)])
    assert scheduler.due(400.0, DAY) is None


def test_departure_before_any_suite_runs_one_at_first_movement() -> None:
    scheduler = arrived_at(0.0)
    scheduler.on_events(30.0, [departed(25.0)])
    request = scheduler.due(30.0, DAY)
    assert request is not None and request.reason == "first-movement"


def test_a_new_arrival_replaces_a_pending_first_movement_suite() -> None:
    scheduler = arrived_at(0.0)
    scheduler.on_events(30.0, [departed(25.0), Arrived(90.0, None, None, None, "shore")])
    assert scheduler.due(89.0, DAY) is None  # settling from the new arrival, not the old departure
    request = scheduler.due(90.0, DAY)
    assert request is not None and (request.reason, request.site_id) == ("arrival", None)


def test_never_two_suites_at_once() -> None:
    scheduler = arrived_at(0.0)
    request = scheduler.due(60.0, DAY)
    assert request is not None
    scheduler.started(60.0, request)
    assert scheduler.running == request
    assert scheduler.due(10_000.0, DAY) is None
    assert scheduler.next_due(10_000.0) is None
    assert scheduler.manual(10_000.0, DAY) is None
    with pytest.raises(RuntimeError, match="already running"):
        scheduler.started(10_000.0, request)
    scheduler.finished(10_030.0, 0)
    assert scheduler.running is None
    with pytest.raises(RuntimeError, match="no probe suite is running"):
        scheduler.finished(10_031.0, 0)


def test_manual_suite_counts_as_the_stop_s_latest_measurement() -> None:
    scheduler = arrived_at(0.0)
    manual = scheduler.manual(20.0, DAY)
    assert manual is not None and manual.reason == "manual"
    scheduler.started(20.0, manual)
    scheduler.finished(50.0, 0)
    assert scheduler.due(60.0, DAY) is None
    assert scheduler.next_due(60.0) == 1820.0


# -- data budget ------------------------------------------------------------------------------------


def test_throughput_is_skipped_with_a_reason_once_the_daily_budget_is_spent() -> None:
    params = ProbeParams(daily_budget_bytes=100_000_000, throughput_estimate_bytes=30_000_000)
    scheduler = arrived_at(0.0, params)
    assert run(scheduler, 60.0, bytes_used=40_000_000).throughput
    assert run(scheduler, 1860.0, bytes_used=40_000_000).throughput
    request = run(scheduler, 3660.0, bytes_used=500_000)  # 80 MB used: a 40 MB test no longer fits
    assert not request.throughput
    assert request.throughput_skipped == (
        "daily data budget exhausted (used 80000000 of 100000000 bytes;"
        " a throughput test needs about 40000000)"
    )
    assert scheduler.used(DAY) == 80_500_000


def test_fully_spent_budget_says_so_and_a_new_day_has_room_again() -> None:
    params = ProbeParams(daily_budget_bytes=10_000_000, throughput_estimate_bytes=1_000_000)
    scheduler = arrived_at(0.0, params)
    run(scheduler, 60.0, bytes_used=12_000_000)
    request = scheduler.due(1860.0, DAY)
    assert request is not None and not request.throughput
    assert request.throughput_skipped == "daily data budget exhausted (used 12000000 of 10000000 bytes)"
    # A suite bigger than the whole budget still gets its one throughput test on a new day.
    tomorrow = scheduler.due(1860.0, "2026-03-03")
    assert tomorrow is not None and tomorrow.throughput and tomorrow.throughput_skipped is None


def test_usage_is_charged_to_the_day_the_suite_started_and_survives_a_restart() -> None:
    scheduler = arrived_at(0.0)
    request = scheduler.due(60.0, DAY)
    assert request is not None
    scheduler.started(60.0, request)
    scheduler.finished(90.0, 5_000)
    restarted = ProbeScheduler()
    restarted.restore_usage(scheduler.usage())
    assert restarted.used(DAY) == 5_000
    assert restarted.used("2026-03-03") == 0


def test_estimate_follows_the_latest_throughput_cost_but_not_below_the_configured_guess() -> None:
    params = ProbeParams(daily_budget_bytes=100_000_000, throughput_estimate_bytes=10_000_000)
    scheduler = arrived_at(0.0, params)
    run(scheduler, 60.0, bytes_used=60_000_000)  # a fast site: 60 MB
    request = run(scheduler, 1860.0, bytes_used=0)
    assert request.throughput_skipped is not None and "needs about 60000000" in request.throughput_skipped
    # A suite without throughput says nothing about its cost: the 60 MB estimate stays.
    assert run(scheduler, 3660.0, bytes_used=0).throughput_skipped is not None
    assert run(scheduler, 5460.0, day="2026-03-03", bytes_used=1_000).throughput
    # The 1 kB test brought the estimate back down to the 10 MB guess: 70 of 100 MB fits today.
    later = scheduler.due(7260.0, DAY)
    assert later is not None and later.throughput


def test_only_a_week_of_usage_is_kept() -> None:
    scheduler = arrived_at(0.0)
    for day in range(1, 11):
        run(scheduler, 60.0 + 1800 * day, bytes_used=day, day=f"2026-03-{day:02d}")
    assert sorted(scheduler.usage()) == [f"2026-03-{day:02d}" for day in range(4, 11)]
