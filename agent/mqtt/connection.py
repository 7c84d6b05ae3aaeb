"""How to reach the broker: URL, TLS files, credentials from the secrets file, paho client set-up, backoff.

Shared by the agent's publisher and the collector, so that both speak to the broker the same way:
``mqtts://`` means TLS with the CA verified (and the host name checked), a client certificate when
one is configured, and/or a username/password read from a separate secrets file (never from the
main config, which is readable by technicians).
"""

from __future__ import annotations

import dataclasses
import os
import random
import ssl
import stat
import tomllib
import urllib.parse
from pathlib import Path
from typing import Literal

import paho.mqtt.client as mqtt
import structlog
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

log = structlog.get_logger(__name__)

Protocol = Literal["auto", "5", "3.1.1"]
DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}


class LinkError(ValueError):
    """A broker URL, TLS file or secrets file that cannot be used; the message says which and why."""


@dataclasses.dataclass(frozen=True)
class BrokerUrl:
    """``mqtt://host[:port]`` (plain TCP, tests and the loopback only) or ``mqtts://host[:port]``."""

    host: str
    port: int
    tls: bool

    @classmethod
    def parse(cls, url: str) -> BrokerUrl:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in DEFAULT_PORTS:
            raise LinkError(f"broker URL {url!r}: scheme must be mqtt:// or mqtts://")
        try:
            port = parts.port or DEFAULT_PORTS[parts.scheme]
        except ValueError as exc:
            raise LinkError(f"broker URL {url!r}: {exc}") from exc
        if not parts.hostname or parts.path not in ("", "/") or parts.username or parts.query:
            raise LinkError(
                f"broker URL {url!r}: want scheme://host[:port], credentials go in the secrets file"
            )
        return cls(parts.hostname, port, parts.scheme == "mqtts")

    def __str__(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


@dataclasses.dataclass(frozen=True)
class Credentials:
    username: str | None = None
    password: str | None = None


@dataclasses.dataclass(frozen=True)
class LinkSettings:
    """Everything needed to open one MQTT connection."""

    url: BrokerUrl
    client_id: str
    ca_file: Path | None = None  # None with mqtts:// means the system's CA store
    cert_file: Path | None = None
    key_file: Path | None = None
    secrets_file: Path | None = None
    protocol: Protocol = "auto"
    keepalive_s: int = 60
    connect_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if (self.cert_file is None) != (self.key_file is None):
            raise LinkError("cert_file and key_file go together")
        if not self.url.tls and any(f is not None for f in (self.ca_file, self.cert_file)):
            raise LinkError(f"TLS files are set but {self.url} is not mqtts://")


def load_credentials(path: Path | None) -> Credentials:
    """``[mqtt] username = ..., password = ...`` from the secrets file (TOML); nothing when no file.

    The file must be private (see :func:`check_private`): a password others could read is refused.
    """
    if path is None:
        return Credentials()
    try:
        with path.open("rb") as handle:
            check_private(path, os.fstat(handle.fileno()))  # the file read is the file checked
            data = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise LinkError(f"secrets file {path}: {exc}") from exc
    table = data.get("mqtt", {})
    if not isinstance(table, dict) or set(table) - {"username", "password"}:
        raise LinkError(f"secrets file {path}: want an [mqtt] table with username and password only")
    username, password = table.get("username"), table.get("password")
    if not all(value is None or isinstance(value, str) for value in (username, password)):
        raise LinkError(f"secrets file {path}: [mqtt] username and password must be strings")
    return Credentials(username, password)


def check_private(path: Path, info: os.stat_result) -> None:
    """Refuse a secrets file other users could read or change: group or other permission bits, or an
    owner other than root or the user this process runs as. systemd's LoadCredential= copies are
    0400 and owned by the service's user: they pass."""
    mode = stat.S_IMODE(info.st_mode)
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise LinkError(
            f"secrets file {path}: mode {mode:04o} lets other users read or change it;"
            f" make it private: chmod 600 {path}"
        )
    if info.st_uid not in (0, os.geteuid()):
        raise LinkError(
            f"secrets file {path}: owned by uid {info.st_uid}, not by root or by this daemon's user"
            f" (uid {os.geteuid()}); give it to root: chown root:root {path} && chmod 600 {path}"
        )


def paho_protocol(protocol: Protocol) -> MQTTProtocolVersion:
    return mqtt.MQTTv311 if protocol == "3.1.1" else mqtt.MQTTv5


def make_client(
    link: LinkSettings, protocol: MQTTProtocolVersion, *, auto_reconnect: bool = False
) -> mqtt.Client:
    """A fresh paho client with TLS and credentials set; no network I/O yet.

    ``auto_reconnect`` lets paho's own loop thread reconnect (the collector); the publisher
    drives connections itself and wants a client per connection.
    """
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=link.client_id,
        protocol=protocol,
        # Our durable state is the outbox (or the collector's database): a clean session each
        # time, so a broker never replays a stale session into a fresh process.
        clean_session=True if protocol != mqtt.MQTTv5 else None,
        reconnect_on_failure=auto_reconnect,
    )
    client.connect_timeout = link.connect_timeout_s
    if link.url.tls:
        try:
            client.tls_set(
                ca_certs=None if link.ca_file is None else str(link.ca_file),
                certfile=None if link.cert_file is None else str(link.cert_file),
                keyfile=None if link.key_file is None else str(link.key_file),
                cert_reqs=ssl.CERT_REQUIRED,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise LinkError(f"TLS files for {link.url}: {exc}") from exc
    credentials = load_credentials(link.secrets_file)
    if credentials.username is not None:
        client.username_pw_set(credentials.username, credentials.password)
    return client


def connect(client: mqtt.Client, link: LinkSettings, *, blocking: bool = True) -> None:
    """Open the socket (and TLS) and send CONNECT; blocking up to ``connect_timeout_s``.

    Raises OSError (which includes ssl.SSLError) when the broker cannot be reached; the CONNACK
    arrives later through the client's ``on_connect``. ``blocking=False`` only records where to
    connect: paho's loop thread connects (and retries) by itself.
    """
    how = client.connect if blocking else client.connect_async
    if client.protocol == mqtt.MQTTv5:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = 0
        how(link.url.host, link.url.port, keepalive=link.keepalive_s, clean_start=True, properties=properties)
    else:
        how(link.url.host, link.url.port, keepalive=link.keepalive_s)


def unsupported_protocol(reason_code: object) -> bool:
    """A CONNACK saying the broker does not speak MQTT 5 (a 3.1.1 broker answers return code 1)."""
    return str(reason_code) == "Unsupported protocol version"


class Backoff:
    """Exponential backoff with "equal jitter": half the delay fixed, half random.

    The random half spreads a fleet of buses that all lost the broker at once; the fixed half keeps
    one bus from hammering a broker that refuses it.
    """

    def __init__(self, min_s: float, max_s: float, rng: random.Random | None = None) -> None:
        if not 0 < min_s <= max_s:
            raise ValueError(f"backoff wants 0 < min_s <= max_s, got {min_s}, {max_s}")
        self.min_s, self.max_s = min_s, max_s
        self._rng = rng or random.Random()  # noqa: S311 (jitter, not cryptography)
        self._attempt = 0

    def next_delay(self) -> float:
        ceiling = min(self.max_s, self.min_s * 2**self._attempt)
        self._attempt = min(self._attempt + 1, 32)
        return float(ceiling / 2 + self._rng.uniform(0, ceiling / 2))

    def reset(self) -> None:
        self._attempt = 0
