"""The status object served on the control socket (docs/control.md): facts, no verdicts.

Built on the control thread from attributes the workers replace atomically, never by asking the
loop thread: a stuck loop must still be visible in ``agentctl status``.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from agent.core.grading import run_figures, run_usable
from agent.mqtt.publisher import Publisher
from agent.outbox import Outbox
from agent.probes.results import SuiteResult
from agent.runtime.loop import Runtime
from agent.runtime.sink import RecordSink
from agent.runtime.watchdog import Health
from drivers.snapshots import to_dict

VERSION = "0.1.0"


@dataclasses.dataclass(frozen=True)
class StatusSources:
    """Everything the status is read from."""

    vehicle_id: str
    started_mono: float
    runtime: Runtime
    publisher: Publisher | None
    outbox: Outbox
    sink: RecordSink
    health: Health


def build_status(src: StatusSources) -> dict[str, Any]:
    runtime = src.runtime
    now = runtime.clock.monotonic()
    stamp = runtime.tracker.stamp(now, runtime.clock.wall())
    return {
        "v": 1,
        "vehicle_id": src.vehicle_id,
        "version": VERSION,
        "pid": os.getpid(),
        "uptime_s": round(now - src.started_mono, 1),
        "now_wall": stamp.wall,
        "time_source": stamp.source,
        "devices": _devices(runtime, now),
        "mqtt": _mqtt(src.publisher, runtime.clock.wall()),
        "outbox": _outbox(src.outbox, src.sink),
        "stop": _stop(runtime, now),
        "last_probe": _last_probe(runtime, now),
        "workers": src.health.report(),
    }


def _age(now: float, then: float | None) -> float | None:
    return None if then is None else round(max(0.0, now - then), 1)


def _devices(runtime: Runtime, now: float) -> dict[str, Any]:
    devices: dict[str, Any] = {}
    for name, status in runtime.devices.items():
        snap = status.last
        devices[name] = {
            "ok": None if snap is None else snap.ok,
            "reason": None if snap is None else snap.reason,
            "failing_for_s": _age(now, status.failing_since_mono),
            "last_read_age_s": _age(now, status.last_read_mono),
            "reads": status.reads,
            "poll_s": runtime.intervals.get(name),
            "snapshot": None if snap is None else to_dict(snap),
        }
    return devices


def _mqtt(publisher: Publisher | None, wall: float) -> dict[str, Any] | None:
    if publisher is None:
        return None
    st = publisher.status()
    return {
        "connected": st.connected,
        "broker": st.broker,
        "protocol": st.protocol,
        "last_ack_age_s": _age(wall, st.last_ack_wall),
        "last_error": st.last_error,
        "records_sent": st.records_sent,
        "records_acknowledged": st.records_acknowledged,
        "running": st.running,
    }


def _outbox(outbox: Outbox, sink: RecordSink) -> dict[str, Any]:
    stats = outbox.stats()
    return {
        "pending": stats.pending,
        "sent_unacked": stats.sent_unacked,
        "oldest_pending_age_s": None
        if stats.oldest_pending_age_s is None
        else round(stats.oldest_pending_age_s, 1),
        "dropped_total": stats.dropped_total + sink.given_up,
        "bytes_used": stats.bytes_used,
        "cap_bytes": stats.cap_bytes,
        "held_in_memory": sink.held,
        "last_error": sink.last_error,
    }


def _stop(runtime: Runtime, now: float) -> dict[str, Any]:
    tracker = runtime.tracker
    stop = tracker.stop if tracker.state == "parked" else None
    site = stop.site if stop is not None else None
    return {
        "state": tracker.state,
        "site_id": site.id if site is not None else None,
        "site_name": site.name if site is not None else None,
        "arrived_age_s": _age(now, stop.arrived_at) if stop is not None else None,
    }


def _last_probe(runtime: Runtime, now: float) -> dict[str, Any] | None:
    suite: SuiteResult | None = runtime.last_suite
    record = runtime.last_probe
    if suite is None or record is None:
        return None
    figures = run_figures(suite)
    usable, why = run_usable(suite)
    return {
        "age_s": _age(now, suite.finished_mono_s),
        "reason": record.get("reason"),
        "label": record.get("label"),
        "usable": usable,
        "usable_reason": why,
        "rtt_ms": None if figures.rtt_ms is None else round(figures.rtt_ms, 1),
        "loss": figures.loss,
        "down_mbps": None if figures.down_bps is None else round(figures.down_bps / 1e6, 2),
        "up_mbps": None if figures.up_bps is None else round(figures.up_bps / 1e6, 2),
        "failures": [
            f"{type(r).__name__.removesuffix('Result').lower()}: {r.reason}" for r in suite.failures
        ],
    }
