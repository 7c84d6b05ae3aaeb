"""Frozen results of the connectivity probes, with units in field names.

Plain data only (no I/O), so the core, the outbox and ``agentctl`` can use them without pulling
in socket code. ``bytes_used`` counts application payload (request and response bytes, no TCP/IP
headers): it is what the daily data budget is charged with.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

LatencyMethod = Literal["tcp", "http", "icmp"]
ThroughputMode = Literal["mini", "public"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class ProbeResult:
    """What every probe result carries: success, the reason when not, when it ran and what it cost."""

    ok: bool = True
    reason: str | None = None
    started_mono_s: float = 0.0
    duration_s: float = 0.0
    bytes_used: int = 0


@dataclasses.dataclass(frozen=True, kw_only=True)
class LatencyResult(ProbeResult):
    """N tries to one target. ``rtt_ms`` holds one value per try, None where no answer came in time.

    For ``http`` targets the round trip is the HEAD request on an open connection; ``connect_ms``
    holds the TCP (and TLS) set-up time of each try. For ``tcp`` the connect time is the round trip.
    """

    target: str
    method: LatencyMethod
    tries: int = 0
    answered: int = 0
    loss: float = 1.0  # share of tries without an answer, 0.0 .. 1.0
    rtt_ms: tuple[float | None, ...] = ()
    connect_ms: tuple[float | None, ...] = ()
    rtt_min_ms: float | None = None
    rtt_median_ms: float | None = None
    rtt_max_ms: float | None = None
    rtt_mean_ms: float | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class DnsResult(ProbeResult):
    """One name resolved against ``server`` ("system" for the system resolver, else ``host:port``).

    ``resolve_ms`` runs from the first query to the answer, retries included: what a user waits.
    It is also set for a negative answer (NXDOMAIN), which did arrive, with ``ok`` False.
    """

    name: str
    server: str
    resolve_ms: float | None = None
    addresses: tuple[str, ...] = ()
    rcode: int | None = None  # DNS RCODE for a configured server; None for the system resolver
    attempts: int = 0


@dataclasses.dataclass(frozen=True, kw_only=True)
class HttpResult(ProbeResult):
    """One page fetch. Times run from the first request, redirects included, to the final response's
    first byte (``ttfb_ms``) and last byte (``fetch_ms``)."""

    url: str
    final_url: str | None = None
    status: int | None = None
    redirects: int = 0
    connect_ms: float | None = None  # TCP (and TLS) set-up of the final request
    ttfb_ms: float | None = None
    fetch_ms: float | None = None
    body_bytes: int = 0
    truncated: bool = False  # body longer than the configured cap: reading stopped there


@dataclasses.dataclass(frozen=True, kw_only=True)
class ThroughputResult(ProbeResult):
    """A speed test. ``server_rtt_ms`` is the mean HTTP round trip to the server's latency.txt
    (speedtest-cli's own "ping" figure is half of it)."""

    server_url: str
    mode: ThroughputMode = "mini"
    down_bps: float | None = None
    up_bps: float | None = None
    server_rtt_ms: float | None = None
    bytes_received: int = 0
    bytes_sent: int = 0


@dataclasses.dataclass(frozen=True, kw_only=True)
class SuiteResult:
    """One run of every configured probe. ``throughput`` is None when the caller left it out
    (data budget, schedule); the caller attaches ``radio`` (a modem snapshot dict) and ``stop_id``."""

    started_mono_s: float
    finished_mono_s: float
    latency: tuple[LatencyResult, ...] = ()
    dns: tuple[DnsResult, ...] = ()
    http: tuple[HttpResult, ...] = ()
    throughput: ThroughputResult | None = None
    radio: dict[str, Any] | None = None
    stop_id: str | None = None

    @property
    def results(self) -> tuple[ProbeResult, ...]:
        """Every probe result, throughput last."""
        tail: tuple[ProbeResult, ...] = (self.throughput,) if self.throughput is not None else ()
        return (*self.latency, *self.dns, *self.http, *tail)

    @property
    def bytes_used(self) -> int:
        """Payload bytes of the whole run, for the daily data budget."""
        return sum(result.bytes_used for result in self.results)

    @property
    def failures(self) -> tuple[ProbeResult, ...]:
        return tuple(result for result in self.results if not result.ok)


def to_dict(result: SuiteResult | ProbeResult) -> dict[str, Any]:
    """The JSON-ready form of a result (tuples become lists); a suite also carries its byte total."""
    data = dataclasses.asdict(result)
    if isinstance(result, SuiteResult):
        data["bytes_used"] = result.bytes_used
    return data
