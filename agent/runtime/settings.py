"""Turn the [stops] and [probes] config sections into the core's parameters and the probe settings."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from agent.config import ConfigError
from agent.config.schema import ProbesSection, StopsSection
from agent.core.catalog import Catalog, parse_catalog
from agent.core.scheduler import ProbeParams
from agent.core.stops import StopParams
from agent.probes.dns import DnsConfig
from agent.probes.http import HttpConfig
from agent.probes.latency import LatencyConfig
from agent.probes.suite import SuiteConfig
from agent.probes.throughput import ThroughputConfig


def suite_config(section: ProbesSection) -> SuiteConfig:
    """What each probe measures; no speed-test URL means no throughput test at all."""
    throughput = None
    if section.speedtest_url:
        throughput = ThroughputConfig(server_url=section.speedtest_url, length_s=section.speedtest_length_s)
    return SuiteConfig(
        latency=LatencyConfig(targets=section.latency_targets, tries=section.latency_tries),
        dns=DnsConfig(names=section.dns_names, server=section.dns_server or None),
        http=HttpConfig(urls=section.http_urls),
        throughput=throughput,
    )


def probe_params(section: ProbesSection) -> ProbeParams:
    return dataclasses.replace(
        ProbeParams(),
        settle_s=section.settle_s,
        interval_s=section.interval_min * 60.0,
        daily_budget_bytes=int(section.daily_budget_mb * 1_000_000),
    )


def stop_params(section: StopsSection) -> StopParams:
    return dataclasses.replace(StopParams(), dwell_s=section.dwell_s)


def load_catalog(section: StopsSection) -> Catalog:
    """The planners' catalog, or an empty one; an unreadable or invalid file is a ConfigError."""
    if section.catalog is None:
        return Catalog()
    try:
        text = Path(section.catalog).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{section.catalog}: cannot read the stop catalog: {exc}"]) from exc
    return parse_catalog(text, section.catalog)
