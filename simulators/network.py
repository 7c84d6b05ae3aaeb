"""The simulated network behind the bus's 4G link: portals, a DNS server and the fleet's speed test.

All three share one :class:`Link`, set to the current stop's ``link`` (down/up Mbit/s, RTT,
loss), so that the probes measure what the link really delivers. :meth:`suite_config` is the probe
configuration that points the agent at them.
"""

from __future__ import annotations

import contextlib

from agent.probes.dns import DnsConfig
from agent.probes.http import HttpConfig
from agent.probes.latency import LatencyConfig
from agent.probes.suite import SuiteConfig
from agent.probes.throughput import ThroughputConfig
from simulators.netsvc.dns_server import DnsServer
from simulators.netsvc.http_portal import HttpPortal
from simulators.netsvc.link import Link, LinkProfile
from simulators.netsvc.speedtest_mini import SpeedtestMini

#: The portals the bus agents use, each served as a page of the simulated portal server.
PORTALS = ("caf", "impots", "ants", "francetravail", "ameli")
DNS_NAMES = ("www.caf.fr", "www.impots.gouv.fr", "ants.gouv.fr")
#: Where the bus parks before it reaches a stop: a plain, decent 4G link.
DEFAULT_LINK = LinkProfile(down_mbps=20.0, up_mbps=5.0, rtt_ms=40.0, loss=0.0)


class SimulatedNetwork:
    """Starts the services on 127.0.0.1 (port 0) and changes their link while they run."""

    def __init__(
        self, profile: LinkProfile = DEFAULT_LINK, *, seed: int = 0, page_bytes: int = 60_000
    ) -> None:
        self.link = Link(profile, seed=seed)
        self.portal = HttpPortal(self.link, page_bytes=page_bytes, hold_s=5.0)
        self.dns = DnsServer(self.link, {name: ["127.0.0.1"] for name in DNS_NAMES})
        self.speedtest = SpeedtestMini(self.link)
        self._stack = contextlib.ExitStack()

    def start(self) -> SimulatedNetwork:
        try:
            for service in (self.portal, self.dns, self.speedtest):
                service.start()
                self._stack.callback(service.stop)
        except BaseException:
            self._stack.close()
            raise
        return self

    def stop(self) -> None:
        self._stack.close()

    def __enter__(self) -> SimulatedNetwork:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def set_link(self, profile: LinkProfile) -> None:
        """The bus moved: from now on the services deliver ``profile``."""
        self.link.set_profile(profile)

    def suite_config(self, *, throughput_length_s: float = 1.5, latency_tries: int = 5) -> SuiteConfig:
        """Probe settings that measure this network (short tests: the link is real, the day is not)."""
        return SuiteConfig(
            latency=LatencyConfig(targets=(self.portal.url + "/",), tries=latency_tries, interval_s=0.05),
            dns=DnsConfig(names=DNS_NAMES, server=self.dns.address, timeout_s=2.0),
            http=HttpConfig(urls=tuple(f"{self.portal.url}/{name}" for name in PORTALS), timeout_s=10.0),
            throughput=ThroughputConfig(server_url=self.speedtest.url + "/", length_s=throughput_length_s),
        )

    def probes_toml(self, *, speedtest_length_s: float = 1.5, settle_s: float = 60.0) -> str:
        """The agent's ``[probes]`` section measuring this network (the same targets as suite_config)."""
        suite = self.suite_config(throughput_length_s=speedtest_length_s)
        assert suite.throughput is not None and suite.dns.server is not None
        return f"""[probes]
latency_targets = {_toml_list(suite.latency.targets)}
dns_names = {_toml_list(suite.dns.names)}
dns_server = "{suite.dns.server}"
http_urls = {_toml_list(suite.http.urls)}
speedtest_url = "{suite.throughput.server_url}"
speedtest_length_s = {max(1.0, speedtest_length_s)}
settle_s = {settle_s}
"""


def _toml_list(items: tuple[str, ...]) -> str:
    return "[" + ", ".join(f'"{item}"' for item in items) + "]"
