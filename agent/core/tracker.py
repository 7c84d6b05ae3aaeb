"""The agent's brain in one pure object: device snapshots in; stop events, visits and probe decisions out.

Glues the stop detector, the probe scheduler, the visit being recorded and the timebase, so that
the runtime only polls devices, runs what is due and stores what comes out. No I/O, no clock
reads: every call takes ``now`` (monotonic seconds) and, where a record is stamped, the system's
wall clock as read by the caller.
"""

from __future__ import annotations

import dataclasses
import datetime

from agent.core.catalog import Catalog
from agent.core.scheduler import ProbeParams, ProbeRequest, ProbeScheduler
from agent.core.stops import (
    Arrived,
    Departed,
    DepartureForeseen,
    State,
    Stop,
    StopDetector,
    StopEvent,
    StopParams,
    shore_of,
)
from agent.core.timebase import GpsClock, SyncSource, Timebase, TimeStamp, parse_gps_time
from agent.core.visit import VisitRecorder
from agent.core.visit_summary import StopVisit
from agent.probes.results import SuiteResult
from drivers.snapshots import GpsSnapshot, ModemSnapshot, PowerSnapshot, PrinterSnapshot, to_dict


@dataclasses.dataclass(frozen=True)
class StampedEvent:
    """A stop event with the time stamp of the moment it describes (arrival is back-dated)."""

    event: StopEvent
    stamp: TimeStamp


Output = StampedEvent | StopVisit

#: A new estimate of true time moves the offset (and re-times unsent records) only past this. GPS
#: time read through gpsd is good to about half a second: moving for less would make record times
#: jitter (even step back) for no gain. NTP is good to tens of milliseconds; it moves on a step.
GPS_RESYNC_S = 0.5
NTP_RESYNC_S = 0.2


class StopTracker:
    """Feed it every snapshot the runtime reads; ask it what probe suite is due."""

    def __init__(
        self,
        boot_id: str,
        *,
        catalog: Catalog | None = None,
        stop_params: StopParams | None = None,
        probe_params: ProbeParams | None = None,
    ) -> None:
        self.detector = StopDetector(stop_params, catalog)
        self.scheduler = ProbeScheduler(probe_params)
        self.timebase = Timebase(boot_id)
        self._gps_clock = GpsClock()
        self._visit: VisitRecorder | None = None
        self._radio: ModemSnapshot | None = None
        self._probe_origin: tuple[Stop | None, VisitRecorder | None, ModemSnapshot | None] | None = None
        self._last_gps: GpsSnapshot | None = None

    @property
    def state(self) -> State:
        return self.detector.state

    @property
    def stop(self) -> Stop | None:
        return self.detector.stop

    @property
    def last_gps(self) -> GpsSnapshot | None:
        return self._last_gps

    def stamp(self, now: float, system_wall: float) -> TimeStamp:
        """The time stamp of ``now`` by the best clock known (GPS or NTP once synced)."""
        return self.timebase.stamp(now, system_wall)

    def day(self, now: float, system_wall: float) -> str:
        """The UTC date used for the daily data budget ("unsynced" days count on the system clock)."""
        wall = self.stamp(now, system_wall).wall
        return datetime.datetime.fromtimestamp(wall, datetime.UTC).date().isoformat()

    # -- device snapshots -----------------------------------------------------------------------

    def gps(self, now: float, snap: GpsSnapshot, system_wall: float) -> list[Output]:
        """A GPS reading: syncs the timebase on GPS time, moves the stop detector."""
        self._last_gps = snap
        gps_wall = parse_gps_time(snap.gps_time_utc) if snap.has_fix else None
        if gps_wall is not None:
            self._gps_clock.add(now, gps_wall)
            offset = self._gps_clock.offset()
            # NTP, once the kernel has it, is the better clock: GPS time only serves without it.
            if offset is not None and self.timebase.source != "ntp":
                # An estimate no surer than the move it asks for is not worth re-timing records for.
                self._resync(now, now + offset, "gps", max(GPS_RESYNC_S, self._gps_clock.uncertainty()))
        return self._handle(now, self.detector.update(now, snap, None), system_wall)

    def keep_time_of(self, other: StopTracker) -> None:
        """Take over ``other``'s timebase (a reload replaced the tracker within the same boot)."""
        self.timebase, self._gps_clock = other.timebase, other._gps_clock

    def ntp_synchronized(self, now: float, system_wall: float) -> bool:
        """The kernel says NTP synchronised the system clock: ``system_wall`` is true time at ``now``.

        Returns True when the offset changed (this boot's unsent records are then due for re-timing).
        """
        return self._resync(now, system_wall, "ntp", NTP_RESYNC_S)

    def _resync(self, now: float, true_wall: float, source: SyncSource, tolerance: float) -> bool:
        current = self.timebase.wall_at(now)
        if source == self.timebase.source and current is not None and abs(current - true_wall) <= tolerance:
            return False
        return self.timebase.sync(now, true_wall, source)

    def power(self, now: float, snap: PowerSnapshot, system_wall: float) -> list[Output]:
        """A power reading: shore power confirms or foresees the end of a stop."""
        if self._visit is not None:
            self._visit.add_power(now, snap)
        return self._handle(now, self.detector.update(now, None, shore_of(snap)), system_wall)

    def modem(self, now: float, snap: ModemSnapshot) -> None:
        """A modem reading: remembered for probe results, summarised into the visit."""
        self._radio = snap
        if self._visit is not None:
            self._visit.add_modem(now, snap)

    def printer(self, now: float, snap: PrinterSnapshot) -> None:
        if self._visit is not None:
            self._visit.add_printer(now, snap)

    # -- probe suites ---------------------------------------------------------------------------

    def due_probe(self, now: float, system_wall: float) -> ProbeRequest | None:
        """The suite to start now (None while one runs or none is due)."""
        return self.scheduler.due(now, self.day(now, system_wall))

    def manual_probe(self, now: float, system_wall: float) -> ProbeRequest | None:
        """A suite asked for by a technician; None while another runs."""
        return self.scheduler.manual(now, self.day(now, system_wall))

    def probe_started(self, now: float, request: ProbeRequest) -> None:
        self.scheduler.started(now, request)
        # A suite belongs to where it started: one still running when the bus leaves (a
        # before-departure suite on a slow link) must not count for the road or the next stop.
        self._probe_origin = (self.detector.stop, self._visit, self._radio)

    def probe_finished(self, now: float, suite: SuiteResult) -> SuiteResult:
        """Charge the suite to the budget and to the visit it started in; returns it with the radio and
        the stop of its start attached."""
        self.scheduler.finished(now, suite.bytes_used)
        stop, visit, radio = self._probe_origin or (self.detector.stop, self._visit, self._radio)
        self._probe_origin = None
        attached = dataclasses.replace(
            suite,
            radio=to_dict(radio) if radio is not None else None,
            stop_id=stop.site.id if stop is not None and stop.site is not None else None,
        )
        if visit is not None and visit is self._visit:
            visit.add_suite(attached)
        return attached

    # -- events ---------------------------------------------------------------------------------

    def _handle(self, now: float, events: list[StopEvent], system_wall: float) -> list[Output]:
        self.scheduler.on_events(now, events)
        outputs: list[Output] = []
        for event in events:
            stamp = self.stamp(event.at, system_wall - (now - event.at))
            outputs.append(StampedEvent(event, stamp))
            if isinstance(event, Arrived):
                self._visit = VisitRecorder(event, stamp)
            elif isinstance(event, DepartureForeseen) and self._visit is not None:
                self._visit.add_foreseen(event)
            elif isinstance(event, Departed) and self._visit is not None:
                # A visit that began before true time was known gets it now, from its monotonic times.
                outputs.append(self._visit.finish(event, stamp).retimed(self.timebase.retime))
                self._visit = None
        return outputs
