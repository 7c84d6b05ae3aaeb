"""A probe suite belongs to the stop where it started, even when it ends after the bus has moved on."""

from __future__ import annotations

from agent.core.catalog import Catalog, Site
from agent.core.geo import offset_m
from agent.core.scheduler import ProbeRequest
from agent.core.tracker import StopTracker
from agent.core.visit_summary import StopVisit
from agent.probes.results import SuiteResult
from drivers.snapshots import GpsSnapshot

A = (44.0395, 1.1069)
B = offset_m(*A, north_m=0.0, east_m=5000.0)
CATALOG = Catalog((Site("site-a", "Mairie A", *A, 100.0), Site("site-b", "Salle B", *B, 100.0)))
WALL0 = 1_772_438_400.0


def fix(lat: float, lon: float, speed: float) -> GpsSnapshot:
    return GpsSnapshot(fix_mode=3, lat_deg=lat, lon_deg=lon, speed_mps=speed, satellites_used=8)


def stand(tracker: StopTracker, at: tuple[float, float], start: float, seconds: int) -> list[object]:
    out: list[object] = []
    for t in range(seconds):
        out += tracker.gps(start + t, fix(*at, 0.0), WALL0 + start + t)
    return out


def drive(tracker: StopTracker, origin: tuple[float, float], start: float, seconds: int) -> list[object]:
    """East from ``origin`` at 10 m/s for ``seconds``."""
    out: list[object] = []
    for t in range(seconds):
        out += tracker.gps(start + t, fix(*offset_m(*origin, 0.0, 10.0 * t), 10.0), WALL0 + start + t)
    return out


def test_a_suite_ending_at_the_next_stop_counts_for_the_stop_where_it_started() -> None:
    tracker = StopTracker("boot-1", catalog=CATALOG)
    stand(tracker, A, 0, 400)
    assert tracker.state == "parked" and tracker.stop is not None and tracker.stop.site is not None
    request = ProbeRequest("before-departure", "2026-03-02", False, None, "site-a")
    tracker.probe_started(400, request)
    visits = [o for o in drive(tracker, A, 400, 500) if isinstance(o, StopVisit)]
    assert [v.site_id for v in visits] == ["site-a"]
    stand(tracker, B, 900, 400)
    assert tracker.stop is not None and tracker.stop.site is not None and tracker.stop.site.id == "site-b"
    attached = tracker.probe_finished(1300, SuiteResult(started_mono_s=400, finished_mono_s=1300))
    assert attached.stop_id == "site-a"
    visits_at_b = [o for o in drive(tracker, B, 1300, 60) if isinstance(o, StopVisit)]
    assert [v.site_id for v in visits_at_b] == ["site-b"]
    assert visits_at_b[0].probes.runs == 0, "the suite from A is not counted at B"
