"""Run the whole probe suite once: latency, DNS, HTTP, then (when asked) throughput.

This is the boundary the scheduler calls: each target is probed in turn, one at a time (the box
is a Raspberry Pi on a shared 4G link), and nothing raises out of it; a probe that breaks becomes
a result with ``ok=False`` and the reason. When and whether to run, and the data budget, are the
scheduler's business, not this module's.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import structlog

from agent.probes import dns, http, latency, throughput
from agent.probes.results import (
    DnsResult,
    HttpResult,
    LatencyResult,
    ProbeResult,
    SuiteResult,
    ThroughputResult,
)

log = structlog.get_logger(__name__)
R = TypeVar("R", bound=ProbeResult)


@dataclasses.dataclass(frozen=True)
class SuiteConfig:
    """Every probe's settings; ``throughput`` None means no speed-test server is configured."""

    latency: latency.LatencyConfig = dataclasses.field(default_factory=latency.LatencyConfig)
    dns: dns.DnsConfig = dataclasses.field(default_factory=dns.DnsConfig)
    http: http.HttpConfig = dataclasses.field(default_factory=http.HttpConfig)
    throughput: throughput.ThroughputConfig | None = None


def _guarded(probe: Callable[[], R], failed: Callable[..., R], what: str) -> R:
    """Run one probe; a bug in it becomes ``failed(reason=...)`` instead of stopping the suite."""
    try:
        return probe()
    except Exception as exc:  # the suite is the boundary: one broken probe must not stop the rest
        log.exception("probe.bug", probe=what)
        return failed(reason=f"internal error in the {what} probe: {type(exc).__name__}: {exc}")


def _latency(config: latency.LatencyConfig) -> tuple[LatencyResult, ...]:
    results = []
    for target in config.targets:
        probe = functools.partial(
            latency.measure,
            target,
            tries=config.tries,
            timeout_s=config.timeout_s,
            interval_s=config.interval_s,
        )
        failed = functools.partial(LatencyResult, ok=False, target=target, method="tcp")
        results.append(_guarded(probe, failed, "latency"))
    return tuple(results)


def _dns(config: dns.DnsConfig) -> tuple[DnsResult, ...]:
    results = []
    for name in config.names:
        probe = functools.partial(
            dns.resolve, name, server=config.server, timeout_s=config.timeout_s, retries=config.retries
        )
        failed = functools.partial(DnsResult, ok=False, name=name, server=config.server or dns.SYSTEM)
        results.append(_guarded(probe, failed, "dns"))
    return tuple(results)


def _http(config: http.HttpConfig) -> tuple[HttpResult, ...]:
    results = []
    for url in config.urls:
        probe = functools.partial(
            http.fetch, url, timeout_s=config.timeout_s, max_redirects=config.max_redirects,
            max_body_bytes=config.max_body_bytes,
        )  # fmt: skip
        failed = functools.partial(HttpResult, ok=False, url=url)
        results.append(_guarded(probe, failed, "http"))
    return tuple(results)


def _throughput(config: throughput.ThroughputConfig, cancel: threading.Event | None) -> ThroughputResult:
    probe = functools.partial(throughput.run, config, cancel=cancel)
    failed = functools.partial(ThroughputResult, ok=False, server_url=config.server_url, mode=config.mode)
    return _guarded(probe, failed, "throughput")


def run_suite(
    config: SuiteConfig, *, include_throughput: bool, cancel: threading.Event | None = None
) -> SuiteResult:
    """Every configured probe in turn; ``cancel`` cuts a running speed test short. Never raises."""
    started = time.monotonic()
    latency_results = _latency(config.latency)
    dns_results = _dns(config.dns)
    http_results = _http(config.http)
    speed = None
    if include_throughput and config.throughput is not None:
        speed = _throughput(config.throughput, cancel)
    result = SuiteResult(
        started_mono_s=started, finished_mono_s=time.monotonic(), latency=latency_results,
        dns=dns_results, http=http_results, throughput=speed,
    )  # fmt: skip
    log.info(
        "probes.suite_done", failures=len(result.failures), bytes_used=result.bytes_used,
        duration_s=round(result.finished_mono_s - started, 3),
    )  # fmt: skip
    return result
