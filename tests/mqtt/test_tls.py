"""The shipped broker config (systemd/mosquitto.example.conf) refuses plaintext and unauthenticated
clients, and the publisher and collector get through it with certificates or passwords."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agent.mqtt import BrokerUrl, Publisher, PublisherSettings
from agent.outbox import Outbox
from collector.ingest import Collector
from simulators.process import free_port
from tests.mqtt.conftest import (
    OPENSSL,
    Mosquitto,
    append_events,
    fast_settings,
    fully_acknowledged,
    open_outbox,
    wait_until,
)

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "systemd" / "mosquitto.example.conf"
EXAMPLE_ACL = REPO / "systemd" / "mosquitto.example.acl"  # the file the example config names "acl"
PASSWORD = "correct horse battery staple"


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run([OPENSSL, *args], cwd=cwd, check=True, capture_output=True)


def make_certificates(folder: Path) -> None:
    """A fleet CA, the broker's certificate for 127.0.0.1, and client certificates (CN = username)."""
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    openssl(
        "req",
        "-x509",
        *ec,
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=test-ca",
        cwd=folder,
    )
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    for name, cn in (
        ("server", "127.0.0.1"),
        ("bus", "bus-tdc-01"),
        ("collector", "collector"),
        ("rogue", "bus-x"),
    ):
        openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}", cwd=folder)
        extra = ("-extfile", "san.ext") if name == "server" else ()
        openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{name}.crt", "-days", "2", *extra, cwd=folder,
        )  # fmt: skip


class SecureBroker:
    def __init__(self, broker: Mosquitto, folder: Path, cert_port: int, password_port: int) -> None:
        self.broker, self.folder = broker, folder
        self.cert_port, self.password_port = cert_port, password_port

    def url(self, port: int) -> BrokerUrl:
        return BrokerUrl("127.0.0.1", port, tls=True)

    def cert_files(self, name: str) -> dict[str, Path]:
        return {
            "ca_file": self.folder / "ca.crt",
            "cert_file": self.folder / f"{name}.crt",
            "key_file": self.folder / f"{name}.key",
        }


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    folder = tmp_path_factory.mktemp("tls")
    make_certificates(folder)
    broker = start_secure_broker(folder, ("bus-tdc-01", "collector"))
    yield broker
    broker.broker.stop()


def start_secure_broker(folder: Path, users: tuple[str, ...]) -> SecureBroker:
    """mosquitto running the shipped example config and ACL, with ``folder``'s certificates and a
    password file giving each of ``users`` the password PASSWORD."""
    (folder / "acl").write_text(EXAMPLE_ACL.read_text())
    for index, user in enumerate(users):
        create = ("-c",) if index == 0 else ()
        subprocess.run(
            ["/usr/bin/mosquitto_passwd", *create, "-b", str(folder / "passwd"), user, PASSWORD], check=True
        )
    cert_port, password_port = free_port(), free_port()
    config = (
        EXAMPLE.read_text()
        .replace("/etc/mosquitto/busagent/", f"{folder}/")
        .replace("/var/lib/mosquitto/", f"{folder}/")
        .replace("listener 8883", f"listener {cert_port} 127.0.0.1")
        .replace("listener 8884", f"listener {password_port} 127.0.0.1")
    )
    assert f"listener {cert_port}" in config and f"{folder}/acl" in config  # the file still looks as expected
    broker = Mosquitto(folder, config=config, port=cert_port)
    broker.start(ports=(cert_port, password_port))
    return SecureBroker(broker, folder, cert_port, password_port)


def try_connect(
    port: int, *, tls: dict[str, Any] | None = None, user: str | None = None, password: str | None = None
) -> str:
    """'connected', or how the broker (or TLS) said no, within 3 s."""
    outcome: list[str] = []
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"probe-{time.monotonic_ns()}", protocol=mqtt.MQTTv5
    )
    client.on_connect = lambda c, u, f, rc, p: outcome.append("connected" if rc == 0 else f"refused: {rc}")
    client.on_disconnect = lambda c, u, f, rc, p: outcome.append(f"disconnected: {rc}")
    if tls is not None:
        client.tls_set(**tls)
    if user is not None:
        client.username_pw_set(user, password)
    try:
        client.connect("127.0.0.1", port, keepalive=5)
        deadline = time.monotonic() + 3
        while not outcome and time.monotonic() < deadline:
            if client.loop(0.05) != mqtt.MQTT_ERR_SUCCESS:
                outcome.append("connection lost")
    except OSError as exc:
        outcome.append(f"error: {exc}")
    finally:
        client.disconnect()
    return outcome[0] if outcome else "no answer"


def paho_tls(files: dict[str, Path], *, with_cert: bool = True) -> dict[str, Any]:
    tls: dict[str, Any] = {"ca_certs": str(files["ca_file"])}
    if with_cert:
        tls |= {"certfile": str(files["cert_file"]), "keyfile": str(files["key_file"])}
    return tls


def test_plaintext_client_is_refused_on_both_listeners(secure_broker: SecureBroker) -> None:
    for port in (secure_broker.cert_port, secure_broker.password_port):
        assert try_connect(port, user="bus-tdc-01", password=PASSWORD) != "connected"


def test_tls_client_without_a_certificate_is_refused_by_the_certificate_listener(
    secure_broker: SecureBroker,
) -> None:
    files = secure_broker.cert_files("bus")
    assert try_connect(secure_broker.cert_port, tls=paho_tls(files, with_cert=False)) != "connected"
    assert try_connect(secure_broker.cert_port, tls=paho_tls(files)) == "connected"


def test_password_listener_refuses_anonymous_and_wrong_passwords(secure_broker: SecureBroker) -> None:
    tls = paho_tls(secure_broker.cert_files("bus"), with_cert=False)
    port = secure_broker.password_port
    assert try_connect(port, tls=tls).startswith("refused")
    assert try_connect(port, tls=tls, user="bus-tdc-01", password="guess").startswith("refused")
    assert try_connect(port, tls=tls, user="bus-tdc-01", password=PASSWORD) == "connected"


def run_until_acknowledged(
    tmp_path: Path, settings: PublisherSettings, collector_link: dict[str, Any], url: BrokerUrl,
    collectors: Callable[..., Collector],
) -> Outbox:  # fmt: skip
    outbox = open_outbox(tmp_path / "outbox.db")
    collector = collectors(url, link_options=collector_link)
    wait_until(collector.subscribed.is_set, 5, "the collector's subscription")
    append_events(outbox, 5)
    publisher = Publisher(outbox, settings)
    publisher.start()
    try:
        wait_until(lambda: fully_acknowledged(outbox), 15, "the outbox to be acknowledged over TLS")
    finally:
        publisher.stop(timeout_s=0.5)
    assert {row.stream: row.received for row in collector.ingest.store.stream_rows()} == {"events": 5}
    return outbox


def test_publisher_and_collector_with_client_certificates_deliver_end_to_end(
    tmp_path: Path, secure_broker: SecureBroker, collectors: Callable[..., Collector]
) -> None:
    url = secure_broker.url(secure_broker.cert_port)
    settings = fast_settings(url, link_options=secure_broker.cert_files("bus"))
    run_until_acknowledged(tmp_path, settings, secure_broker.cert_files("collector"), url, collectors)


def test_publisher_and_collector_with_passwords_from_secrets_files_deliver_end_to_end(
    tmp_path: Path, secure_broker: SecureBroker, collectors: Callable[..., Collector]
) -> None:
    url = secure_broker.url(secure_broker.password_port)
    ca = secure_broker.folder / "ca.crt"
    for user in ("bus-tdc-01", "collector"):
        secrets = tmp_path / f"{user}.secrets.toml"
        secrets.write_text(f'[mqtt]\nusername = "{user}"\npassword = "{PASSWORD}"\n')
        secrets.chmod(0o600)
    settings = fast_settings(
        url, link_options={"ca_file": ca, "secrets_file": tmp_path / "bus-tdc-01.secrets.toml"}
    )
    collector_link = {"ca_file": ca, "secrets_file": tmp_path / "collector.secrets.toml"}
    run_until_acknowledged(tmp_path, settings, collector_link, url, collectors)


def test_acl_keeps_a_bus_from_publishing_under_another_vehicle_id(secure_broker: SecureBroker) -> None:
    received: list[str] = []
    spy = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="acl-spy", protocol=mqtt.MQTTv5)
    spy.tls_set(**paho_tls(secure_broker.cert_files("collector")))
    spy.on_message = lambda c, u, m: received.append(m.topic)
    spy.connect("127.0.0.1", secure_broker.cert_port)
    spy.subscribe("busagent/#", qos=1)
    spy.loop_start()
    rogue = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="rogue", protocol=mqtt.MQTTv5)
    rogue.tls_set(**paho_tls(secure_broker.cert_files("rogue")))  # certificate CN: bus-x
    rogue.connect("127.0.0.1", secure_broker.cert_port)
    rogue.loop_start()
    try:
        time.sleep(0.3)
        rogue.publish("busagent/bus-tdc-01/events", b"{}", qos=1).wait_for_publish(3)
        rogue.publish("busagent/bus-x/events", b"{}", qos=1).wait_for_publish(3)
        wait_until(lambda: "busagent/bus-x/events" in received, 5, "the rogue's own message")
    finally:
        for client in (rogue, spy):
            client.loop_stop()
            client.disconnect()
    assert "busagent/bus-tdc-01/events" not in received
