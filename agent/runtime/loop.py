"""The runtime loop: poll each device on its own thread, feed the core, run probe suites, emit records.

Threads: one poller per device (a hung printer never delays the GPS), one worker for a probe
suite at a time (probes never block device polling), and the loop itself, the only thread that
touches the pure :class:`StopTracker`. Everything the agent records leaves through ``sink`` as
``(stream, payload)``; the outbox sits behind it.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import Any

import structlog

from agent.core.scheduler import ProbeRequest
from agent.core.tracker import Output, StampedEvent, StopTracker
from agent.core.visit_summary import StopVisit
from agent.probes.results import SuiteResult
from agent.probes.results import to_dict as result_dict
from agent.runtime.clock import Clock
from agent.runtime.watchdog import Health
from drivers.base import Driver, Snapshot
from drivers.snapshots import GpsSnapshot, ModemSnapshot, PowerSnapshot, PrinterSnapshot, to_dict

log = structlog.get_logger(__name__)

Sink = Callable[[str, dict[str, Any]], None]
SuiteRunner = Callable[[ProbeRequest], SuiteResult]

#: How often the loop looks at the scheduler when no snapshot arrives (clock seconds).
TICK_S = 1.0


@dataclasses.dataclass
class DeviceStatus:
    """What the runtime knows about one device: last reading, and since when it has been failing."""

    last: Snapshot | None = None
    last_ok_mono: float | None = None
    failing_since_mono: float | None = None
    last_read_mono: float | None = None
    reads: int = 0


class DevicePoller(threading.Thread):
    """Reads one driver every ``interval_s`` of the clock and posts each snapshot to the inbox."""

    def __init__(
        self,
        name: str,
        driver: Driver[Any],
        *,
        interval_s: float,
        clock: Clock,
        inbox: queue.Queue[tuple[str, float, object]],
        stopping: threading.Event,
        health: Health,
    ) -> None:
        super().__init__(name=f"poll-{name}", daemon=True)
        self.device = name
        self.driver = driver
        self.interval_s = interval_s
        self.clock = clock
        self.inbox = inbox
        self.stopping = stopping
        self.health = health

    def run(self) -> None:
        next_at = self.clock.monotonic()
        while not self.stopping.is_set():
            snap = self.driver.read()  # never raises: failures are snapshots too
            now = self.clock.monotonic()
            self.health.beat(self.name)
            self.inbox.put((self.device, now, snap))
            # Fixed rate, not fixed delay: a slow read does not stretch the schedule, and a read
            # slower than the interval starts the next one at once instead of piling up.
            next_at = max(next_at + self.interval_s, now)
            self.clock.wait(self.stopping, next_at - now)
        self.driver.close()


class Runtime:
    """Owns the pollers, the probe worker and the tracker; call :meth:`run` until ``stop()``."""

    def __init__(
        self,
        *,
        drivers: Mapping[str, Driver[Any]],
        intervals: Mapping[str, float],
        tracker: StopTracker,
        run_suite: SuiteRunner,
        sink: Sink,
        clock: Clock,
        health: Health | None = None,
    ) -> None:
        self.tracker = tracker
        self.run_suite = run_suite
        self.sink = sink
        self.clock = clock
        self.stopping = threading.Event()
        self.inbox: queue.Queue[tuple[str, float, object]] = queue.Queue()
        self.health = health or Health()
        self.intervals = dict(intervals)
        self.devices = {name: DeviceStatus() for name in drivers}
        self.pollers = [
            DevicePoller(
                name,
                driver,
                interval_s=intervals[name],
                clock=clock,
                inbox=self.inbox,
                stopping=self.stopping,
                health=self.health,
            )
            for name, driver in drivers.items()
        ]
        self._probe_thread: threading.Thread | None = None
        self._probe: _RunningProbe | None = None
        self._manual: list[tuple[str | None, Future[dict[str, Any]]]] = []
        self.last_suite: SuiteResult | None = None
        self.last_probe: dict[str, Any] | None = None

    def stop(self) -> None:
        self.stopping.set()

    def run(self) -> None:
        """Poll, decide and emit until :meth:`stop`; then wait for the workers to finish."""
        for poller in self.pollers:
            poller.start()
        try:
            while not self.stopping.is_set():
                self.health.beat("loop")
                self._drain(timeout_s=TICK_S)
                self._maybe_start_probe()
        finally:
            self.stopping.set()
            for poller in self.pollers:
                poller.join(timeout=30)
            if self._probe_thread is not None:
                self._probe_thread.join(timeout=120)
            self._drain(timeout_s=0)
            for _, waiter in self._manual:
                waiter.set_exception(RuntimeError("the daemon is stopping"))

    def call(self, fn: Callable[[], Any]) -> Future[Any]:
        """Run ``fn`` on the loop thread (the only one that may touch the tracker); its Future."""
        future: Future[Any] = Future()
        self.inbox.put(("call", self.clock.monotonic(), _Call(fn, future)))
        return future

    def request_probe(self, label: str | None) -> Future[dict[str, Any]]:
        """A technician's suite (``agentctl test``): starts when no other runs; resolves to its record."""
        future: Future[dict[str, Any]] = Future()
        self.call(lambda: self._manual.append((label, future)))
        return future

    # -- inbox ----------------------------------------------------------------------------------

    def _drain(self, timeout_s: float) -> None:
        try:
            if timeout_s > 0:
                item = self.inbox.get(timeout=self.clock.to_real(timeout_s))
            else:
                item = self.inbox.get_nowait()
        except queue.Empty:
            return
        while True:
            self._dispatch(*item)
            try:
                item = self.inbox.get_nowait()
            except queue.Empty:
                return

    def _dispatch(self, source: str, now: float, item: object) -> None:
        if isinstance(item, _Call):
            if item.future.set_running_or_notify_cancel():
                try:
                    item.future.set_result(item.fn())
                except Exception as exc:  # noqa: BLE001 -- handed to the caller, who reports it
                    item.future.set_exception(exc)
        elif isinstance(item, SuiteResult):
            self._on_suite(now, item)
        elif isinstance(item, Snapshot):
            self._on_snapshot(source, now, item)

    def _on_snapshot(self, device: str, now: float, snap: Snapshot) -> None:
        self._track_status(device, now, snap)
        self.sink(f"telemetry/{device}", to_dict(snap))
        wall = self.clock.wall()
        outputs: list[Output] = []
        if isinstance(snap, GpsSnapshot):
            outputs = self.tracker.gps(now, snap, wall)
        elif isinstance(snap, PowerSnapshot):
            outputs = self.tracker.power(now, snap, wall)
        elif isinstance(snap, ModemSnapshot):
            self.tracker.modem(now, snap)
        elif isinstance(snap, PrinterSnapshot):
            self.tracker.printer(now, snap)
        for output in outputs:
            self._emit(output)

    def _track_status(self, device: str, now: float, snap: Snapshot) -> None:
        status = self.devices[device]
        status.last = snap
        status.last_read_mono = now
        status.reads += 1
        if snap.ok:
            if status.failing_since_mono is not None:
                log.info("device.recovered", device=device, after_s=round(now - status.failing_since_mono))
            status.last_ok_mono, status.failing_since_mono = now, None
        elif status.failing_since_mono is None:
            status.failing_since_mono = now
            log.warning("device.failing", device=device, reason=snap.reason)

    def _emit(self, output: Output) -> None:
        if isinstance(output, StopVisit):
            self.sink("stops/visit", output.to_dict())
            log.info("stop.visit", site=output.site_id, name=output.site_name, grade=output.grade)
            return
        assert isinstance(output, StampedEvent)
        event = output.event
        kind = type(event).__name__.lower()
        payload = {"type": kind, **dataclasses.asdict(event), "stamp": output.stamp.to_dict()}
        self.sink("events", payload)
        log.info(f"stop.{kind}", at=event.at)

    # -- probes ---------------------------------------------------------------------------------

    def _maybe_start_probe(self) -> None:
        if self._probe_thread is not None and self._probe_thread.is_alive():
            return
        now, wall = self.clock.monotonic(), self.clock.wall()
        if self._manual:
            label, waiter = self._manual.pop(0)
            request = self.tracker.manual_probe(now, wall)
            if request is not None:
                self.start_probe(now, request, label=label, waiter=waiter)
                return
            self._manual.insert(0, (label, waiter))
        request = self.tracker.due_probe(now, wall)
        if request is not None:
            self.start_probe(now, request)

    def start_probe(
        self,
        now: float,
        request: ProbeRequest,
        *,
        label: str | None = None,
        waiter: Future[dict[str, Any]] | None = None,
    ) -> None:
        """Start ``request`` on the probe worker (the scheduler already said it may run)."""
        self.tracker.probe_started(now, request)
        self._probe = _RunningProbe(request, label, waiter)
        log.info("probe.started", reason=request.reason, throughput=request.throughput, label=label)
        self.health.idle("probe", False)

        def work() -> None:
            started = self.clock.monotonic()
            suite = self.run_suite(request)  # never raises (agent.probes.suite is a boundary)
            finished = self.clock.monotonic()
            # Probes time themselves in real seconds; the record says when on the agent's clock.
            suite = dataclasses.replace(suite, started_mono_s=started, finished_mono_s=finished)
            self.health.idle("probe", True)
            self.inbox.put(("probe", finished, suite))

        self._probe_thread = threading.Thread(target=work, name="probe-suite", daemon=True)
        self._probe_thread.start()

    def _on_suite(self, now: float, suite: SuiteResult) -> None:
        attached = self.tracker.probe_finished(now, suite)
        self.last_suite = attached
        running, self._probe = self._probe, None
        payload = result_dict(attached)
        if running is not None:
            payload["reason"] = running.request.reason
            payload["label"] = running.label
        # Provenance: when the suite started, by the best clock known (boot, monotonic, wall, source).
        started_wall = self.clock.wall() - (now - attached.started_mono_s)
        payload["stamp"] = self.tracker.stamp(attached.started_mono_s, started_wall).to_dict()
        self.sink("probes/result", payload)
        self.last_probe = payload
        log.info("probe.finished", bytes_used=attached.bytes_used, failures=len(attached.failures))
        if running is not None and running.waiter is not None:
            running.waiter.set_result(payload)


@dataclasses.dataclass(frozen=True)
class _RunningProbe:
    request: ProbeRequest
    label: str | None
    waiter: Future[dict[str, Any]] | None


@dataclasses.dataclass(frozen=True)
class _Call:
    fn: Callable[[], Any]
    future: Future[Any]
