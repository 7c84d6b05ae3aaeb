"""Security: who may talk to the broker as which bus, who may use the control socket, where the MQTT
password may live, and that nothing ships with a default password.

The broker tests run the shipped systemd/mosquitto.example.conf and its ACL (started by
tests/mqtt/test_tls.py's helper, which already checks plaintext, certificate-less and wrong-password
clients) against openssl-made certificates; these add the impostors: a certificate from another
CA, a bus writing or reading under another vehicle's topics by username and by certificate CN.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from agent.runtime.control import ControlServer
from simulators.broker import Mosquitto
from tests.agent.daemon_harness import Daemon, wait_for
from tests.mqtt.test_tls import (
    PASSWORD,
    SecureBroker,
    make_certificates,
    openssl,
    paho_tls,
    start_secure_broker,
    try_connect,
)
from tests.reliability.conftest import report

ROOT = Path(__file__).resolve().parents[2]
BUSAGENT = Path(sys.executable).parent / "busagent"
VICTIM, ROGUE = "bus-tdc-01", "bus-x"
NOBODY = 65534
CONTROL_GID = 4711  # a group only the socket has: membership alone must open it


# -- the broker -------------------------------------------------------------------------------------


def make_stranger_ca(folder: Path) -> None:
    """Another CA, even named like the fleet's ("test-ca"), and a certificate it signed for the victim."""
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    openssl("req", "-x509", *ec, "-keyout", "stranger-ca.key", "-out", "stranger-ca.crt", "-days", "2",
            "-subj", "/CN=test-ca", cwd=folder)  # fmt: skip
    openssl(
        "req", *ec, "-keyout", "stranger.key", "-out", "stranger.csr", "-subj", f"/CN={VICTIM}", cwd=folder
    )
    openssl("x509", "-req", "-in", "stranger.csr", "-CA", "stranger-ca.crt", "-CAkey", "stranger-ca.key",
            "-CAcreateserial", "-out", "stranger.crt", "-days", "2", cwd=folder)  # fmt: skip


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    folder = tmp_path_factory.mktemp("fleet")
    make_certificates(folder)  # fleet CA, server, "bus" (CN bus-tdc-01), "collector", "rogue" (CN bus-x)
    make_stranger_ca(folder)
    broker = start_secure_broker(folder, (VICTIM, "collector", ROGUE))
    yield broker
    broker.broker.stop()


class Client:
    """A connected paho client that records what it receives."""

    def __init__(self, name: str, port: int, tls: dict[str, Any], user: str | None = None) -> None:
        self.received: list[str] = []
        self.connected = threading.Event()
        self.mqtt = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=name, protocol=mqtt.MQTTv5)
        self.mqtt.tls_set(**tls)
        if user is not None:
            self.mqtt.username_pw_set(user, PASSWORD)
        self.mqtt.on_message = lambda c, u, m: self.received.append(m.topic)
        self.mqtt.on_connect = lambda c, u, f, rc, p: self.connected.set() if rc == 0 else None
        self.mqtt.connect("127.0.0.1", port, keepalive=10)
        self.mqtt.loop_start()
        assert self.connected.wait(5), f"{name} did not connect"

    def publish(self, topic: str, retain: bool = False) -> None:
        self.mqtt.publish(topic, b'{"v": 1}', qos=1, retain=retain).wait_for_publish(3)

    def subscribe(self, topic: str) -> None:
        self.mqtt.subscribe(topic, qos=1)
        time.sleep(0.3)  # SUBACK, and retained messages delivered

    def close(self) -> None:
        self.mqtt.loop_stop()
        self.mqtt.disconnect()


def publishes_seen(fleet: SecureBroker, rogue: Client) -> list[str]:
    """The rogue publishes under the victim's topics (data, status, and the ack that would make the victim
    delete records the collector never stored), then under its own; a collector sees what got through."""
    spy = Client("spy", fleet.cert_port, paho_tls(fleet.cert_files("collector")))
    try:
        spy.subscribe("busagent/#")
        for topic in (f"busagent/{VICTIM}/events", f"busagent/{VICTIM}/status", f"busagent/{VICTIM}/ack"):
            rogue.publish(topic)
        rogue.publish(f"busagent/{ROGUE}/events")  # same connection, after the others: a marker
        wait_for(lambda: f"busagent/{ROGUE}/events" in spy.received, 5, "the rogue's own message")
        return spy.received
    finally:
        spy.close()
        rogue.close()


def test_a_certificate_from_another_ca_is_refused_even_with_a_fleet_vehicle_name(fleet: SecureBroker) -> None:
    folder = fleet.folder
    stranger = {"ca_certs": str(folder / "ca.crt"), "certfile": str(folder / "stranger.crt"),
                "keyfile": str(folder / "stranger.key")}  # fmt: skip
    assert try_connect(fleet.cert_port, tls=stranger) != "connected"
    assert try_connect(fleet.cert_port, tls=paho_tls(fleet.cert_files("bus"))) == "connected"


def test_a_bus_logged_in_by_password_cannot_write_under_another_vehicle(fleet: SecureBroker) -> None:
    tls = {"ca_certs": str(fleet.folder / "ca.crt")}
    seen = publishes_seen(fleet, Client("rogue-pw", fleet.password_port, tls, user=ROGUE))
    assert seen == [f"busagent/{ROGUE}/events"]


def test_the_certificate_cn_is_the_identity_whatever_username_the_client_sends(fleet: SecureBroker) -> None:
    # use_identity_as_username: a bus-x certificate logging in as "bus-tdc-01" is still bus-x.
    rogue = Client("rogue-cert", fleet.cert_port, paho_tls(fleet.cert_files("rogue")), user=VICTIM)
    assert publishes_seen(fleet, rogue) == [f"busagent/{ROGUE}/events"]


def test_a_bus_reads_its_own_ack_and_nothing_of_another_vehicle(fleet: SecureBroker) -> None:
    collector = Client("acker", fleet.cert_port, paho_tls(fleet.cert_files("collector")))
    victim = Client("victim", fleet.cert_port, paho_tls(fleet.cert_files("bus")))
    rogue = Client("rogue-reader", fleet.cert_port, paho_tls(fleet.cert_files("rogue")))
    try:
        rogue.subscribe("busagent/#")
        for bus in (VICTIM, ROGUE):
            collector.publish(f"busagent/{bus}/ack", retain=True)
        victim.publish(f"busagent/{VICTIM}/events")
        wait_for(lambda: f"busagent/{ROGUE}/ack" in rogue.received, 5, "the rogue's own ack")
        rogue.subscribe(f"busagent/{VICTIM}/ack")  # asking by name: still refused, retained or not
        time.sleep(0.3)
    finally:
        for client in (collector, victim, rogue):
            client.close()
    assert rogue.received == [f"busagent/{ROGUE}/ack"]


# -- the control socket -----------------------------------------------------------------------------


def ask_as(path: Path, gid: int, groups: list[int]) -> str:
    """One status request over the socket from a process of uid 65534 with these groups."""
    client = (
        "import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]);"
        's.sendall(b\'{"cmd": "status"}\\n\'); print(s.recv(4096).decode())'
    )
    done = subprocess.run(
        ["/usr/bin/python3", "-c", client, str(path)], capture_output=True, text=True, timeout=20,
        user=NOBODY, group=gid, extra_groups=groups, check=False,
    )  # fmt: skip
    return done.stdout + done.stderr


@pytest.mark.parametrize(
    ("who", "gid", "groups", "allowed"),
    [
        ("in the control group (supplementary)", NOBODY, [CONTROL_GID], True),
        ("in the control group (primary)", CONTROL_GID, [], True),
        ("another user", NOBODY, [], False),
    ],
)
def test_control_socket_opens_to_its_group_and_refuses_other_users(
    who: str, gid: int, groups: list[int], allowed: bool
) -> None:
    # The file mode is opened to everyone on purpose: the daemon's own peer check must decide.
    # (tests/agent/test_daemon.py checks the 0660 mode and the refusal through the real daemon.)
    folder = Path(tempfile.mkdtemp(prefix="ctl-", dir="/tmp"))
    folder.chmod(0o755)
    server = ControlServer(folder / "control.sock", lambda request: {"pong": True}, gid=CONTROL_GID)
    server.start()
    try:
        os.chmod(folder / "control.sock", 0o666)
        answer = ask_as(folder / "control.sock", gid, groups)
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
    if allowed:
        assert json.loads(answer) == {"ok": True, "result": {"pong": True}}, who
    else:
        assert '"ok":false' in answer.replace(" ", "") and "permission denied" in answer, who


# -- the MQTT secrets file --------------------------------------------------------------------------


def secrets_config(work: Path, secrets: Path, broker_url: str = "mqtt://127.0.0.1:1") -> str:
    return (
        f'[agent]\nvehicle_id = "{VICTIM}"\ndata_dir = "{work / "data"}"\nruntime_dir = "{work / "run"}"\n\n'
        f'[mqtt]\nurl = "{broker_url}"\nsecrets_file = "{secrets}"\n'
    )


def write_secrets(path: Path, mode: int, password: str = PASSWORD) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'[mqtt]\nusername = "{VICTIM}"\npassword = "{password}"\n')
    path.chmod(mode)
    return path


def run_busagent(config: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BUSAGENT), "run", "--config", str(config)], capture_output=True, text=True, timeout=30,
        check=False, env={**os.environ, **(env or {})},
    )  # fmt: skip


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o602])
def test_busagent_run_refuses_a_secrets_file_others_can_read_or_change(tmp_path: Path, mode: int) -> None:
    secrets = write_secrets(tmp_path / "secrets.toml", mode)
    config = tmp_path / "agent.toml"
    config.write_text(secrets_config(tmp_path, secrets))
    result = run_busagent(config)
    assert result.returncode == 78, result.stderr
    assert f"secrets file {secrets}: mode {mode:04o}" in result.stderr
    assert f"chmod 600 {secrets}" in result.stderr


def test_busagent_run_refuses_a_secrets_file_owned_by_another_user(tmp_path: Path) -> None:
    secrets = write_secrets(tmp_path / "secrets.toml", 0o600)
    os.chown(secrets, NOBODY, NOBODY)
    config = tmp_path / "agent.toml"
    config.write_text(secrets_config(tmp_path, secrets))
    result = run_busagent(config)
    assert result.returncode == 78, result.stderr
    assert f"secrets file {secrets}: owned by uid {NOBODY}" in result.stderr
    assert f"chown root:root {secrets}" in result.stderr


def test_a_loose_original_is_refused_even_when_systemd_hands_a_private_copy(tmp_path: Path) -> None:
    secrets = write_secrets(tmp_path / "etc" / "secrets.toml", 0o644)
    write_secrets(tmp_path / "credentials" / "mqtt-secrets", 0o400)
    config = tmp_path / "agent.toml"
    config.write_text(secrets_config(tmp_path, secrets))
    result = run_busagent(config, {"CREDENTIALS_DIRECTORY": str(tmp_path / "credentials")})
    assert result.returncode == 78 and f"chmod 600 {secrets}" in result.stderr, result.stderr


@pytest.fixture
def password_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A broker that lets bus-tdc-01 in with PASSWORD only (no anonymous access)."""
    folder = tmp_path / "broker"
    folder.mkdir()
    subprocess.run(
        ["/usr/bin/mosquitto_passwd", "-c", "-b", str(folder / "passwd"), VICTIM, PASSWORD], check=True
    )
    broker = Mosquitto(folder)
    broker.config_path.write_text(
        f"listener {broker.port} 127.0.0.1\nallow_anonymous false\npassword_file {folder / 'passwd'}\n"
        "persistence false\n" + ("user root\n" if os.geteuid() == 0 else "")
    )
    broker.start()
    yield broker
    broker.stop()


def test_a_systemd_credential_copy_logs_in_and_a_reload_with_a_loosened_file_is_refused(
    tmp_path: Path, password_broker: Mosquitto, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On disk the file is root's, 0600, and holds a stale password; systemd hands the service a 0400
    # copy (LoadCredential=) with the current one: the broker letting the agent in proves it read the copy.
    secrets = write_secrets(tmp_path / "etc" / "secrets.toml", 0o600, password="stale")
    write_secrets(tmp_path / "credentials" / "mqtt-secrets", 0o400)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path / "credentials"))
    work = Path(tempfile.mkdtemp(prefix="sec-", dir="/tmp"))  # a short path for the control socket
    try:
        daemon = Daemon(work, secrets_config(work, secrets, password_broker.url), watchdog_usec=30_000_000)
        try:
            wait_for(lambda: daemon.events("mqtt.connected"), 20, "the agent logged in with the copy")
            secrets.chmod(0o644)
            daemon.signal(signal.SIGHUP)
            rejected = wait_for(
                lambda: daemon.events("config.reload_rejected"), 10, "the reload to be refused"
            )
            assert f"chmod 600 {secrets}" in rejected[0]["error"]
            assert daemon.proc.poll() is None and daemon.status()["mqtt"]["connected"] is True
        finally:
            daemon.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)


# -- no default password ----------------------------------------------------------------------------

#: What is shipped: the code, the configs and docs a fleet installs (tests hold their own fixtures).
SHIPPED = ("agent", "collector", "drivers", "simulators", "systemd", "docs", "bench")
SHIPPED_FILES = ("README.md", "Makefile", "pyproject.toml")
TEXT_SUFFIXES = {".py", ".toml", ".conf", ".acl", ".md", ".sh", ".service", ".rules", ".sysusers", ".html",
                 ".js", ".json", ".yml", ".yaml", ".cfg", ".ini", ".txt", ".geojson", ".csv"}  # fmt: skip
PASSWORD_LIKE = re.compile(
    r"""(?ix) \b (pass(?:word|wd|phrase)? | pwd | secret | api[_-]?key | token ) \b ["']? \s* [:=] \s*
    (?: ["'] (?P<quoted>[^"'\n]*) ["'] | (?P<bare>[^\s#"'\n,;{}()\[\]]+) ) """
)
URL_LOGIN = re.compile(r"\b[a-z][a-z0-9+.-]*://[^/\s:@\"']+:(?P<secret>[^@\s/\"']+)@")
CLIENT_LOGIN = re.compile(r"""username_pw_set\([^,)]*,\s*["'](?P<secret>[^"']+)["']""")
#: Values that say "put yours here", and expressions that are not values at all.
PLACEHOLDER = re.compile(r"""^(|\.\.\.|\*+|<[^>]*>|\$\{?\w+\}?|%\(\w+\)s|none|null|true|false)$""", re.I)
BARE_VALUE_SUFFIXES = {".conf", ".yml", ".yaml", ".ini", ".cfg", ".env"}


def shipped_files(root: Path) -> Iterator[Path]:
    for name in SHIPPED:
        for path in sorted((root / name).rglob("*")):
            if path.is_file() and path.suffix in TEXT_SUFFIXES and "__pycache__" not in path.parts:
                yield path
    for name in SHIPPED_FILES:
        if (root / name).is_file():
            yield root / name


def password_defaults(path: Path) -> list[str]:
    """``file:line: value`` for every credential-looking assignment with a real value in ``path``.

    Quoted values count everywhere; unquoted ones only in config formats that allow them (YAML, INI,
    mosquitto): in code they are expressions, in prose words."""
    bare_allowed = path.suffix in BARE_VALUE_SUFFIXES
    found = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        for match in PASSWORD_LIKE.finditer(line):
            quoted, bare = match.group("quoted"), match.group("bare")
            if quoted is None and not bare_allowed:
                continue
            if PLACEHOLDER.match((quoted if quoted is not None else bare).strip()):
                continue
            found.append(f"{path}:{number}: {match.group(0).strip()}")
        for pattern in (URL_LOGIN, CLIENT_LOGIN):
            for match in pattern.finditer(line):
                if not PLACEHOLDER.match(match.group("secret")):
                    found.append(f"{path}:{number}: {match.group(0).strip()}")
    return found


def test_the_scanner_finds_a_planted_default_password(tmp_path: Path) -> None:
    planted = {
        "a.toml": '[mqtt]\npassword = "hunter2"\n',
        "b.py": 'client.username_pw_set("bus", "changeme")\n',
        "c.md": "collector run --db postgresql://ops:s3cret@db/busagent\n",
        "d.conf": "password: fleet2026\n",
    }
    for name, text in planted.items():
        (tmp_path / name).write_text(text)
    assert all(password_defaults(tmp_path / name) for name in planted)
    clean = tmp_path / "clean.toml"
    clean.write_text(
        '# password = "..."\nsecrets_file = "/etc/busagent/secrets.toml"\npassword = "<yours>"\n'
    )
    assert password_defaults(clean) == []


def test_nothing_shipped_carries_a_default_password(tmp_path: Path) -> None:
    files = list(shipped_files(ROOT))
    found = [hit for path in files for hit in password_defaults(path)]
    assert found == []
    # The installer's secrets template, as install.sh writes it: private, no login until one is typed in.
    subprocess.run(["bash", str(ROOT / "systemd" / "install.sh"), "--root", str(tmp_path)], check=True,
                   capture_output=True, timeout=60)  # fmt: skip
    template = tmp_path / "etc" / "busagent" / "secrets.toml"
    assert template.stat().st_mode & 0o777 == 0o600
    assert password_defaults(template) == []
    assert not [line for line in template.read_text().splitlines() if re.match(r"\s*password\s*=", line)]
    report("security scan", files_scanned=len(files) + 1, default_passwords=len(found))
