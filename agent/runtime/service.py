"""The daemon's life: open the outbox, start the workers and the control socket, serve until SIGTERM.

Signals become events (the handlers only set flags; the main thread acts): SIGTERM/SIGINT stop
cleanly, SIGHUP reloads the configuration, keeping the old one when the new file is bad. The
main thread also tells systemd how things are (READY, STATUS) and runs nothing else.
"""

from __future__ import annotations

import contextlib
import fcntl
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import structlog

from agent.config import ConfigError, load_config
from agent.config.schema import AgentConfig
from agent.outbox import Outbox
from agent.runtime import assemble, timesync
from agent.runtime.clock import Clock, SystemClock
from agent.runtime.control import ControlError, ControlServer, ControlSetupError, resolve_group, socket_path
from agent.runtime.mqtt_settings import publisher_settings
from agent.runtime.retimer import Retimer
from agent.runtime.sdnotify import Notifier
from agent.runtime.sink import RecentStops, RecordSink
from agent.runtime.status import StatusSources, build_status
from agent.runtime.watchdog import Health, WatchdogPinger

log = structlog.get_logger(__name__)

#: How long SIGTERM lets the publisher hand the last records to the broker (systemd waits 20 s).
PUBLISH_ON_STOP_S = 5.0
STATUS_EVERY_S = 30.0
MAX_LABEL = 200


def kernel_boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return f"boot-{int(time.time())}"


class Service:
    """``busagent run``: :meth:`run` returns the process exit code."""

    def __init__(
        self,
        config: AgentConfig,
        config_path: str,
        *,
        clock: Clock | None = None,
        boot_id: str | None = None,
        notifier: Notifier | None = None,
        credentials_dir: str | None = None,
        ntp_synchronized: Callable[[], bool] = timesync.ntp_synchronized,
    ) -> None:
        self.config = config
        self.config_path = config_path
        self.clock = clock or SystemClock()
        self.boot_id = boot_id or kernel_boot_id()
        self.notifier = notifier or Notifier()
        self.credentials_dir = credentials_dir
        self.ntp_synchronized = ntp_synchronized
        self.health = Health()
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._wake = threading.Event()

    # -- signals --------------------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGHUP, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        (self._reload if signum == signal.SIGHUP else self._stop).set()
        self._wake.set()

    def request_stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def request_reload(self) -> None:
        self._reload.set()
        self._wake.set()

    # -- life -----------------------------------------------------------------------------------

    def run(self) -> int:
        data_dir = Path(self.config.agent.data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        with _exclusive(data_dir / "busagent.lock"):
            return self._run_locked(data_dir)

    def _run_locked(self, data_dir: Path) -> int:
        self.started_mono = self.clock.monotonic()
        self.outbox = Outbox.open(
            data_dir / "outbox.sqlite",
            vehicle_id=self.config.agent.vehicle_id,
            boot_id=self.boot_id,
            cap_bytes=int(self.config.agent.outbox_cap_mb * 1_000_000),
            # Resends and backlog ages are about the network: real seconds, whatever the agent's clock.
            clock=time.monotonic,
        )
        try:
            return self._run_with_outbox(data_dir)
        finally:
            self.outbox.close()

    def _run_with_outbox(self, data_dir: Path) -> int:
        self.tracker = assemble.tracker_for(self.config, self.boot_id)
        self.recent = RecentStops(data_dir / "recent-stops.json")
        self.sink = RecordSink(self.outbox, self._stamp)
        self.retimer = Retimer(
            boot_id=self.boot_id,
            outbox=self.outbox,
            sink=self.sink,
            clock=self.clock,
            ntp_synchronized=self.ntp_synchronized,
        )
        self.generation = self._build(self.config)
        control = ControlServer(
            socket_path(self.config.agent.runtime_dir),
            self._handle_request,
            gid=resolve_group(self.config.agent.control_group),
        )
        control.start()
        pinger = self._start_watchdog()
        self.generation.start()
        log.info("agent.started", vehicle=self.config.agent.vehicle_id, boot_id=self.boot_id,
                 devices=sorted(self.config.devices()))  # fmt: skip
        self.notifier.ready(self._status_line())
        try:
            self._serve()
        finally:
            self.notifier.stopping()
            log.info("agent.stopping")
            self.generation.stop(PUBLISH_ON_STOP_S)
            left = self.sink.flush()
            control.stop()
            if pinger is not None:
                pinger.stopping.set()
            log.info("agent.stopped", unsaved=left)
        return 0 if left == 0 else 1

    def _serve(self) -> None:
        next_status = 0.0
        while not self._stop.is_set():
            self._wake.wait(1.0)
            self._wake.clear()
            if self._reload.is_set():
                self._reload.clear()
                self._do_reload()
            if not self.generation.thread.is_alive() and not self._stop.is_set():
                log.error("agent.loop_died")  # a bug; exit non-zero so systemd restarts us
                raise RuntimeError("the runtime loop ended unexpectedly")
            if time.monotonic() >= next_status:
                self.notifier.status(self._status_line())
                next_status = time.monotonic() + STATUS_EVERY_S

    def _build(self, config: AgentConfig) -> assemble.Generation:
        return assemble.build_generation(
            config,
            tracker=self.tracker,
            outbox=self.outbox,
            sink=self._record,
            clock=self.clock,
            health=self.health,
            credentials_dir=self.credentials_dir,
            time_version=lambda: self.retimer.version,
        )

    def _start_watchdog(self) -> WatchdogPinger | None:
        period = self.notifier.watchdog_period_s()
        if period is None:
            return None
        pinger = WatchdogPinger(self.health, self.notifier, period, threading.Event())
        pinger.start()
        return pinger

    # -- reload ---------------------------------------------------------------------------------

    def _do_reload(self) -> None:
        self.notifier.reloading()
        try:
            new = load_config(self.config_path)
            problem = _unreloadable(self.config, new)
            if problem:
                raise ConfigError([f"{self.config_path}: {problem}"])
            if new.mqtt is not None:  # the secrets file too, before the running generation is stopped
                publisher_settings(new.mqtt, new.agent.vehicle_id, self.credentials_dir)
            tracker = self.tracker if assemble.same_tracking(self.config, new) else None
            if tracker is None:
                tracker = assemble.tracker_for(new, self.boot_id)
                tracker.keep_time_of(self.tracker)  # true time, once known, stays known
        except ConfigError as exc:
            for line in exc.errors:
                log.error("config.reload_rejected", error=line)
            self.notifier.ready(f"reload rejected, running with the previous config: {exc.errors[0]}")
            return
        self.generation.stop(PUBLISH_ON_STOP_S)
        if tracker is not self.tracker:
            log.warning(
                "config.tracking_reset",
                why="[stops] or [probes] changed; a stop in progress is not summarised",
            )
        self.config, self.tracker = new, tracker
        self.generation = self._build(new)
        self.generation.start()
        log.info("config.reloaded", path=self.config_path)
        self.notifier.ready(self._status_line())

    # -- records --------------------------------------------------------------------------------

    def _stamp(self) -> Any:
        return self.tracker.stamp(self.clock.monotonic(), self.clock.wall())

    def _record(self, stream: str, payload: dict[str, Any]) -> None:
        """The runtime's sink (loop thread): re-time this boot's records once true time is known."""
        self.retimer.before_record(self.tracker)
        self.sink(stream, payload)
        if stream == "stops/visit":
            self.recent.add(payload)

    # -- control socket -------------------------------------------------------------------------

    def _handle_request(self, request: dict[str, Any]) -> Any:
        handlers: dict[str, Callable[[dict[str, Any]], Any]] = {
            "status": lambda _: self.status(),
            "stops": self._stops,
            "test": self._test,
        }
        cmd = request.get("cmd")
        handler = handlers.get(cmd) if isinstance(cmd, str) else None
        if handler is None:
            raise ControlError(f"unknown cmd {str(cmd)[:40]!r}; known: {', '.join(handlers)}")
        return handler(request)

    def status(self) -> dict[str, Any]:
        return build_status(
            StatusSources(
                vehicle_id=self.config.agent.vehicle_id,
                started_mono=self.started_mono,
                runtime=self.generation.runtime,
                publisher=self.generation.publisher,
                outbox=self.outbox,
                sink=self.sink,
                health=self.health,
            )
        )

    def _stops(self, request: dict[str, Any]) -> dict[str, Any]:
        limit = request.get("limit", 10)
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 1000:
            raise ControlError(f"limit must be an integer 1..1000, got {str(limit)[:40]}")
        return {"visits": self.recent.latest(limit)}

    def _test(self, request: dict[str, Any]) -> dict[str, Any]:
        label = request.get("label")
        if label is not None and (not isinstance(label, str) or len(label) > MAX_LABEL):
            raise ControlError(f"label must be a string of at most {MAX_LABEL} characters")
        future = self.generation.runtime.request_probe(label)
        try:
            return future.result(timeout=assemble.PROBE_LIMIT_S)
        except TimeoutError:
            raise ControlError("the probe suite did not finish in time") from None
        except RuntimeError as exc:
            raise ControlError(str(exc)) from None

    def _status_line(self) -> str:
        tracker = self.tracker
        where: str = tracker.state
        stop = tracker.stop
        if tracker.state == "parked" and stop is not None:
            where = f"parked at {stop.site.name if stop.site is not None else 'an unlisted place'}"
        publisher = self.generation.publisher
        link = (
            "no broker configured"
            if publisher is None
            else ("mqtt connected" if publisher.status().connected else "mqtt offline")
        )
        return (
            f"{where}; {link}; {self.sink.held} records held in memory"
            if self.sink.held
            else f"{where}; {link}"
        )


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """One daemon per data directory: two writing one outbox would send every record twice."""
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ControlSetupError(f"{path.parent}: another busagent daemon is already using it") from None
        yield


def _unreloadable(old: AgentConfig, new: AgentConfig) -> str | None:
    """Settings a running daemon cannot change under its own feet."""
    for key in ("vehicle_id", "data_dir", "runtime_dir", "control_group"):
        if getattr(old.agent, key) != getattr(new.agent, key):
            return f"agent.{key} changed; it takes effect only on a restart (systemctl restart busagent)"
    return None
