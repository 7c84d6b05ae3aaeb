"""Build the daemon's working parts from a configuration: drivers, tracker, runtime, publisher.

One :class:`Generation` per configuration: a reload (SIGHUP) builds a new one and retires the
old. The outbox and the recent-stops file outlive generations; so does the tracker when the
stop and probe settings did not change, so a reload in the middle of a stop does not end it.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Mapping
from typing import Any

from agent.config.schema import AgentConfig
from agent.core.scheduler import ProbeRequest
from agent.core.tracker import StopTracker
from agent.mqtt.publisher import Publisher
from agent.outbox import Outbox
from agent.probes.results import SuiteResult
from agent.probes.suite import run_suite
from agent.runtime.clock import Clock
from agent.runtime.loop import Runtime, Sink
from agent.runtime.mqtt_settings import publisher_settings
from agent.runtime.settings import load_catalog, probe_params, stop_params, suite_config
from agent.runtime.watchdog import Health
from drivers.base import Driver
from drivers.factory import build_drivers

#: Real seconds a worker may be silent beyond its own schedule before it counts as stuck.
MARGIN_S = 30.0
LOOP_LIMIT_S = 60.0
PUBLISHER_LIMIT_S = 120.0
#: A probe suite is bounded by its own timeouts; this only catches one that never returns.
PROBE_LIMIT_S = 900.0


@dataclasses.dataclass
class Generation:
    """The parts built from one configuration, running until :meth:`stop`."""

    config: AgentConfig
    runtime: Runtime
    publisher: Publisher | None
    thread: threading.Thread

    def start(self) -> None:
        if self.publisher is not None:
            self.publisher.start()
        self.thread.start()

    def stop(self, publish_timeout_s: float) -> None:
        """Stop polling (the loop drains what was read), then let the publisher send what it can."""
        self.runtime.stop()
        self.thread.join(timeout=180)
        if self.publisher is not None:
            self.publisher.stop(timeout_s=publish_timeout_s)


def tracker_for(config: AgentConfig, boot_id: str) -> StopTracker:
    """A fresh tracker; raises ConfigError when the stop catalog cannot be read."""
    return StopTracker(
        boot_id,
        catalog=load_catalog(config.stops),
        stop_params=stop_params(config.stops),
        probe_params=probe_params(config.probes),
    )


def same_tracking(old: AgentConfig, new: AgentConfig) -> bool:
    """True when a reload may keep the tracker (and the stop it may be in)."""
    return old.stops == new.stops and old.probes == new.probes


def intervals(config: AgentConfig) -> dict[str, float]:
    sections: Mapping[str, Any] = config.devices()
    return {name: float(section.poll_s) for name, section in sections.items()}


def register_workers(health: Health, config: AgentConfig, clock: Clock) -> None:
    """Each worker's stall limit: its own schedule plus the configured allowance, or its read budget."""
    fixed = config.agent.watchdog_stall_s
    for name, section in config.devices().items():
        # An AT modem may spend up to three timeouts on one read (drivers/modem/at_driver.py).
        budget = 3 * float(getattr(section, "timeout_s", 10.0)) + MARGIN_S
        health.register(
            f"poll-{name}", clock.to_real(float(getattr(section, "poll_s", 1.0))) + (fixed or budget)
        )
    tick = clock.to_real(1.0)
    health.register("loop", tick + (fixed or LOOP_LIMIT_S))
    if config.mqtt is not None:
        health.register("publisher", fixed or PUBLISHER_LIMIT_S)
    health.register("probe", PROBE_LIMIT_S)
    health.idle("probe", True)


def build_generation(
    config: AgentConfig,
    *,
    tracker: StopTracker,
    outbox: Outbox,
    sink: Sink,
    clock: Clock,
    health: Health,
    credentials_dir: str | None,
    drivers: Mapping[str, Driver[Any]] | None = None,
    time_version: Callable[[], int] | None = None,
) -> Generation:
    """Everything one configuration runs; raises ConfigError/ValueError for what the schema let through."""
    suite = suite_config(config.probes)

    def probe(request: ProbeRequest) -> SuiteResult:
        return run_suite(suite, include_throughput=request.throughput)

    for name in list(health.report()):
        health.unregister(name)
    register_workers(health, config, clock)
    runtime = Runtime(
        drivers=drivers if drivers is not None else build_drivers(config),
        intervals=intervals(config),
        tracker=tracker,
        run_suite=probe,
        sink=sink,
        clock=clock,
        health=health,
    )
    publisher = None
    if config.mqtt is not None:
        settings = publisher_settings(config.mqtt, config.agent.vehicle_id, credentials_dir)
        publisher = Publisher(
            outbox,
            settings,
            wall=clock.wall,
            heartbeat=lambda: health.beat("publisher"),
            time_version=time_version,  # this boot's records wait for true time (see TimeHold)
        )
    thread = threading.Thread(target=runtime.run, name="loop", daemon=True)
    return Generation(config, runtime, publisher, thread)
