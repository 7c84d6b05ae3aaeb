"""The agent configuration schema: one frozen dataclass per TOML section.

Every device section is optional: a section that is absent means the device is not fitted in
this bus. Endpoints are URLs or paths, as in the rest of busagent ("hardware by URL").
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Literal
from urllib.parse import urlsplit

from agent.config.loader import in_range, setting
from agent.probes import DEFAULT_DNS_NAMES, DEFAULT_LATENCY_TARGETS, DEFAULT_PORTAL_URLS

_VEHICLE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_GROUP_RE = re.compile(r"[a-z_][a-z0-9_-]{0,31}\$?")
SERIAL_SCHEMES = ("socket", "rfc2217", "loop", "spy", "alt", "hwgrep")


def _vehicle_id(value: str) -> str | None:
    if _VEHICLE_RE.fullmatch(value):
        return None
    return (
        f"{value!r} is not a valid vehicle id (letters, digits, '-', '_', '.'; at most 64;"
        " it becomes part of MQTT topics)"
    )


def _group_name(value: str) -> str | None:
    if not value or _GROUP_RE.fullmatch(value):
        return None
    return f"{value!r} is not a valid group name"


def _absolute_path(value: str) -> str | None:
    return None if value.startswith("/") else f"must be an absolute path, got {value!r}"


def _serial_endpoint(value: str) -> str | None:
    """A device path or a pyserial URL (socket://, rfc2217://, ...)."""
    if value.startswith("/"):
        return None
    scheme = urlsplit(value).scheme
    if scheme in SERIAL_SCHEMES:
        return None
    return f"must be a device path like /dev/ttyUSB2 or a pyserial URL like socket://host:port, got {value!r}"


def _host_port(value: str, scheme: str) -> str | None:
    parts = urlsplit(value)
    try:
        port = parts.port
    except ValueError:
        return f"has an invalid port in {value!r}"
    if not parts.hostname:
        return f"needs a host, e.g. {scheme}://127.0.0.1, got {value!r}"
    if port == 0:
        return f"has port 0 in {value!r}"
    return None


def _gps_endpoint(value: str) -> str | None:
    if value.startswith("gpsd://"):
        return _host_port(value, "gpsd")
    if _serial_endpoint(value) is None:
        return None
    return f"must be gpsd://host:port or a serial device path/URL for raw NMEA, got {value!r}"


def _modem_endpoint(value: str) -> str | None:
    scheme = urlsplit(value).scheme
    if scheme in ("http", "https"):
        return _host_port(value, scheme)
    if _serial_endpoint(value) is None:
        return None
    return f"must be a serial device path/URL (AT commands) or http://host (HiLink), got {value!r}"


def _printer_endpoint(value: str) -> str | None:
    scheme = urlsplit(value).scheme
    if scheme not in ("ipp", "ipps", "http", "https"):
        return f"must be an ipp:// or ipps:// URL, e.g. ipp://localhost:631/printers/bus, got {value!r}"
    return _host_port(value, scheme)


def _url_list(schemes: tuple[str, ...]) -> Callable[[tuple[str, ...]], str | None]:
    def check(urls: tuple[str, ...]) -> str | None:
        for url in urls:
            scheme = urlsplit(url).scheme
            if scheme not in schemes:
                return f"{url!r} must start with {' or '.join(s + '://' for s in schemes)}"
            problem = _host_port(url, scheme)
            if problem:
                return problem
        return None

    return check


def _optional_url(schemes: tuple[str, ...]) -> Callable[[str], str | None]:
    return lambda url: _url_list(schemes)((url,)) if url else None


def _host_and_port(value: str) -> str | None:
    return _host_port(f"dns://{value}", "dns") if value else None


POSITIVE_INTERVAL = in_range(0.1, 86400)
TIMEOUT = in_range(0.05, 300)


@dataclasses.dataclass(frozen=True)
class AgentSection:
    """Identity of the vehicle and where the agent keeps its files."""

    vehicle_id: str = setting(check=_vehicle_id, doc="fleet-unique id, used in MQTT topics")
    data_dir: str = setting("/var/lib/busagent", check=_absolute_path)
    runtime_dir: str = setting("/run/busagent", check=_absolute_path)
    log_level: Literal["debug", "info", "warning", "error"] = setting("info")
    control_group: str = setting(
        "", check=_group_name, doc="group that may use the control socket; empty: the daemon's group"
    )
    outbox_cap_mb: float = setting(200.0, check=in_range(1, 100_000), doc="disk the outbox may use")
    watchdog_stall_s: float = setting(
        0.0,
        check=in_range(0, 3600),
        doc="a worker silent this long is stuck; 0: from its interval and timeout",
    )


@dataclasses.dataclass(frozen=True)
class GpsSection:
    """Where positions come from: ``gpsd://host:port`` or a serial NMEA receiver."""

    url: str = setting("gpsd://127.0.0.1:2947", check=_gps_endpoint)
    baudrate: int = setting(9600, check=in_range(300, 4_000_000))
    timeout_s: float = setting(2.0, check=TIMEOUT)
    poll_s: float = setting(1.0, check=POSITIVE_INTERVAL)


@dataclasses.dataclass(frozen=True)
class ModemSection:
    """The 4G modem: AT commands over serial, or a HiLink stick over HTTP."""

    url: str = setting(check=_modem_endpoint)
    model: Literal["auto", "generic", "quectel", "sierra", "huawei"] = setting("auto")
    baudrate: int = setting(115200, check=in_range(300, 4_000_000))
    timeout_s: float = setting(2.0, check=TIMEOUT)
    poll_s: float = setting(10.0, check=POSITIVE_INTERVAL)


@dataclasses.dataclass(frozen=True)
class PowerSection:
    """Shore power and battery; any combination of sources, at least one."""

    sysfs: str | None = setting(None, check=_absolute_path, doc="power_supply class root")
    vedirect: str | None = setting(None, check=_serial_endpoint, doc="Victron VE.Direct port")
    gpio: str | None = setting(None, check=_absolute_path, doc="mains-detect line value file")
    gpio_active_low: bool = setting(True)
    timeout_s: float = setting(3.0, check=TIMEOUT)
    poll_s: float = setting(5.0, check=POSITIVE_INTERVAL)

    def __post_init__(self) -> None:
        if not (self.sysfs or self.vedirect or self.gpio):
            raise ValueError("set at least one of sysfs, vedirect, gpio")


@dataclasses.dataclass(frozen=True)
class PrinterSection:
    """The printer, read with IPP Get-Printer-Attributes."""

    url: str = setting(check=_printer_endpoint)
    timeout_s: float = setting(5.0, check=TIMEOUT)
    poll_s: float = setting(30.0, check=POSITIVE_INTERVAL)


@dataclasses.dataclass(frozen=True)
class SystemSection:
    """The box itself: load, temperature, memory, disk, network counters."""

    disk_path: str | None = setting(None, check=_absolute_path, doc="default: agent.data_dir")
    interfaces: tuple[str, ...] = setting((), doc="empty: every interface but lo")
    poll_s: float = setting(60.0, check=POSITIVE_INTERVAL)


@dataclasses.dataclass(frozen=True)
class StopsSection:
    """Stop detection: the planners' catalog of named sites and the dwell that makes a halt a stop."""

    catalog: str | None = setting(None, check=_absolute_path, doc="TOML or GeoJSON of planned sites")
    dwell_s: float = setting(300.0, check=in_range(60, 3600))


@dataclasses.dataclass(frozen=True)
class ProbesSection:
    """Connectivity tests run at every stop, and what they may spend."""

    latency_targets: tuple[str, ...] = setting(
        DEFAULT_LATENCY_TARGETS, check=_url_list(("http", "https", "tcp", "icmp"))
    )
    latency_tries: int = setting(5, check=in_range(1, 50))
    dns_names: tuple[str, ...] = setting(DEFAULT_DNS_NAMES)
    dns_server: str = setting("", check=_host_and_port, doc="host[:port]; empty: the system resolver")
    http_urls: tuple[str, ...] = setting(DEFAULT_PORTAL_URLS, check=_url_list(("http", "https")))
    speedtest_url: str = setting("", check=_optional_url(("http", "https")), doc="empty: no throughput")
    speedtest_length_s: float = setting(5.0, check=in_range(1, 30))
    settle_s: float = setting(60.0, check=in_range(0, 3600))
    interval_min: float = setting(30.0, check=in_range(1, 24 * 60))
    daily_budget_mb: float = setting(200.0, check=in_range(0, 100_000))


def _mqtt_url(value: str) -> str | None:
    """``mqtt://host[:port]`` or ``mqtts://host[:port]``; checked here so agentctl need not import paho."""
    parts = urlsplit(value)
    if parts.scheme not in ("mqtt", "mqtts"):
        return f"must be mqtts://host[:port] (or mqtt:// for a broker on the loopback), got {value!r}"
    if parts.username or parts.password or parts.path not in ("", "/") or parts.query:
        return f"must be scheme://host[:port] only (credentials go in secrets_file), got {value!r}"
    return _host_port(value, parts.scheme)


def _client_id(value: str) -> str | None:
    return None if not value or _VEHICLE_RE.fullmatch(value) else f"{value!r} is not a valid MQTT client id"


@dataclasses.dataclass(frozen=True)
class MqttSection:
    """The broker the publisher drains the outbox to; the username/password live in secrets_file."""

    url: str = setting(check=_mqtt_url, doc="mqtts://host[:port]")
    client_id: str = setting("", check=_client_id, doc="empty: the vehicle id")
    ca_file: str | None = setting(None, check=_absolute_path, doc="default: the system CA store")
    cert_file: str | None = setting(None, check=_absolute_path, doc="client certificate, with key_file")
    key_file: str | None = setting(None, check=_absolute_path)
    secrets_file: str | None = setting(None, check=_absolute_path, doc="TOML [mqtt] username, password")
    protocol: Literal["auto", "5", "3.1.1"] = setting("auto")
    window: int = setting(20, check=in_range(1, 1000), doc="messages in flight")
    batch_seconds: float = setting(60.0, check=in_range(0, 3600), doc="telemetry batching delay")
    keepalive_s: int = setting(60, check=in_range(5, 3600))

    def __post_init__(self) -> None:
        if (self.cert_file is None) != (self.key_file is None):
            have, missing = ("cert_file", "key_file") if self.cert_file else ("key_file", "cert_file")
            raise ValueError(f"{have} is set but {missing} is not; a client certificate needs both")
        if urlsplit(self.url).scheme != "mqtts" and (self.ca_file or self.cert_file):
            raise ValueError(f"TLS files are set but url {self.url!r} is not mqtts://")


@dataclasses.dataclass(frozen=True)
class AgentConfig:
    """The whole agent configuration file."""

    agent: AgentSection = setting()
    gps: GpsSection | None = setting(None)
    modem: ModemSection | None = setting(None)
    power: PowerSection | None = setting(None)
    printer: PrinterSection | None = setting(None)
    system: SystemSection | None = setting(None)
    stops: StopsSection = setting(StopsSection())
    probes: ProbesSection = setting(ProbesSection())
    mqtt: MqttSection | None = setting(None)

    def devices(self) -> dict[str, object]:
        """Configured device sections by name, in display order."""
        names = ("gps", "modem", "power", "printer", "system")
        return {n: getattr(self, n) for n in names if getattr(self, n) is not None}
