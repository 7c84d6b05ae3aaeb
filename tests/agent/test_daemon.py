"""`busagent run` as a real process against the device simulators, the real gpsd and a real mosquitto."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from simulators.backend import SimulatedBackend
from simulators.devices import SimulatedBus
from tests.agent.daemon_harness import Daemon, agent_config, wait_for

FAST_MODEM = {"modem": "timeout_s = 1.0"}


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SimulatedBus, Daemon]]:
    work = tmp_path_factory.mktemp("daemon")
    with SimulatedBus(work / "bus") as bus, SimulatedBackend(work / "backend", settle_s=0.0) as backend:
        daemon = Daemon(work, agent_config(bus, backend, FAST_MODEM))
        try:
            yield bus, daemon
        finally:
            daemon.stop()


def all_read(daemon: Daemon) -> dict[str, Any] | None:
    status = daemon.status()
    return status if all(d["ok"] is not None for d in status["devices"].values()) else None


def test_status_shows_every_device_and_the_broker(running: tuple[SimulatedBus, Daemon]) -> None:
    _, daemon = running
    status = wait_for(lambda: all_read(daemon), 20, "a first read of every device")
    assert set(status["devices"]) == {"gps", "modem", "power", "printer", "system"}
    assert {name: d["ok"] for name, d in status["devices"].items()} == dict.fromkeys(status["devices"], True)
    assert status["devices"]["modem"]["snapshot"]["operator_code"] == "20801"
    assert status["devices"]["power"]["snapshot"]["shore_connected"] is True
    connected = wait_for(lambda: daemon.status()["mqtt"]["connected"], 20, "the broker connection")
    assert connected
    assert not any(w["stalled"] for w in daemon.status()["workers"].values())
    assert daemon.notify.with_key("STATUS"), "systemd gets STATUS lines"


def test_unplugged_modem_is_reported_within_two_polls_and_recovers(
    running: tuple[SimulatedBus, Daemon],
) -> None:
    bus, daemon = running
    wait_for(lambda: all_read(daemon), 20, "a first read of every device")
    gps_reads = daemon.status()["devices"]["gps"]["reads"]
    bus.apply("modem-unplug")
    unplugged = time.monotonic()
    failing = wait_for(
        lambda: (m := daemon.status()["devices"]["modem"])["ok"] is False and m, 10, "modem failing"
    )
    # Two polls of 1 s plus one read's budget (3 x timeout_s of 1 s).
    assert time.monotonic() - unplugged < 2 * 1.0 + 3 * 1.0 + 1.0
    assert failing["reason"]
    assert daemon.status()["devices"]["gps"]["reads"] > gps_reads, "the GPS kept being read"
    bus.apply("modem-replug")
    replugged = time.monotonic()
    wait_for(lambda: daemon.status()["devices"]["modem"]["ok"] is True, 10, "modem back")
    assert time.monotonic() - replugged < 2 * 1.0 + 3 * 1.0 + 1.0
    assert daemon.status()["devices"]["modem"]["failing_for_s"] is None


def test_gpsd_restart_degrades_gps_only(running: tuple[SimulatedBus, Daemon]) -> None:
    bus, daemon = running
    wait_for(lambda: all_read(daemon), 20, "a first read of every device")
    assert bus.gpsd is not None
    bus.gpsd.stop()
    try:
        wait_for(lambda: daemon.status()["devices"]["gps"]["ok"] is False, 10, "GPS failing")
        before = daemon.status()["devices"]
        time.sleep(3)
        status = daemon.status()
        for device in ("modem", "printer", "power"):
            assert status["devices"][device]["reads"] > before[device]["reads"], f"{device} kept being read"
        assert all(status["devices"][d]["ok"] for d in ("modem", "power", "printer", "system"))
    finally:
        bus.gpsd.start()
    wait_for(lambda: daemon.status()["devices"]["gps"]["ok"] is True, 15, "GPS back after gpsd restart")


@pytest.mark.parametrize(
    ("line", "error"),
    [
        (b"hello\n", "not JSON"),
        (b"[1, 2]\n", "must be a JSON object"),
        (b'{"cmd": "reboot"}\n', "unknown cmd"),
        (b'{"cmd": "stops", "limit": "ten"}\n', "limit must be an integer"),
        (b'{"cmd": "test", "label": ' + b'"' + b"x" * 300 + b'"}\n', "at most 200"),
        (b"\xff\xfe\n", "not JSON"),
        (b"x" * 10_000 + b"\n", "longer than 4096"),
        (b'{"cmd": "status"' + b" " * 5000, "longer than 4096"),
    ],
)
def test_control_socket_answers_bad_requests_with_errors(
    running: tuple[SimulatedBus, Daemon], line: bytes, error: str
) -> None:
    _, daemon = running
    import json

    answer = json.loads(daemon.ask_raw(line))
    assert answer["ok"] is False
    assert error in answer["error"]
    assert daemon.status()["vehicle_id"] == "bus-sim-01", "the daemon still answers"


def test_control_socket_is_0660_and_refuses_other_users(running: tuple[SimulatedBus, Daemon]) -> None:
    _, daemon = running
    path = daemon.socket_path
    assert path.stat().st_mode & 0o777 == 0o660
    # Open the file (and the test's directories) to everyone for a moment, so that only the daemon's
    # own peer check stands between another user and the daemon.
    opened = [p for p in path.parents if p.stat().st_mode & 0o001 == 0]
    modes = {p: p.stat().st_mode & 0o7777 for p in opened}
    for parent in opened:
        os.chmod(parent, modes[parent] | 0o001)
    os.chmod(path, 0o666)
    try:
        # The daemon answers a refused peer as soon as it connects, then closes: read, do not send.
        client = (
            "import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); data=b''\n"
            "while chunk := s.recv(4096): data += chunk\n"
            "print(data.decode())"
        )
        out = subprocess.run(
            ["/usr/bin/python3", "-c", client, str(path)],
            capture_output=True,
            text=True,
            timeout=20,
            user=65534,
            group=65534,
            extra_groups=[],
            check=True,
        ).stdout
    finally:
        os.chmod(path, 0o660)
        for parent, mode in modes.items():
            os.chmod(parent, mode)
    assert '"ok":false' in out and "permission denied" in out


def test_probe_suite_on_demand_carries_the_label(running: tuple[SimulatedBus, Daemon]) -> None:
    _, daemon = running
    answer = daemon.ask({"cmd": "test", "label": "Salle des fêtes, Fajolles"}, timeout_s=120)
    assert answer["ok"], answer
    record = answer["result"]
    assert record["label"] == "Salle des fêtes, Fajolles" and record["reason"] == "manual"
    assert record["latency"][0]["ok"] and record["throughput"]["down_bps"] > 1e6
    last = daemon.status()["last_probe"]
    assert last["label"] == "Salle des fêtes, Fajolles" and last["usable"] is True


def test_bad_config_at_start_exits_78_naming_file_and_key(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text('[agent]\nvehicle_id = "bus 1"\n')
    busagent = Path(sys.executable).parent / "busagent"
    result = subprocess.run(
        [str(busagent), "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 78
    assert f"{config}:agent.vehicle_id:" in result.stderr


def test_second_daemon_on_the_same_data_dir_is_refused(running: tuple[SimulatedBus, Daemon]) -> None:
    _, daemon = running
    busagent = Path(sys.executable).parent / "busagent"
    result = subprocess.run(
        [str(busagent), "run", "--config", str(daemon.config_path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 78
    assert "another busagent daemon" in result.stderr
    assert daemon.status()["vehicle_id"] == "bus-sim-01"


def test_sighup_rejects_a_bad_config_and_applies_a_good_one(tmp_path: Path) -> None:
    with SimulatedBus(tmp_path / "bus") as bus:
        text = agent_config(bus, None)
        daemon = Daemon(tmp_path, text)
        try:
            wait_for(lambda: all_read(daemon), 20, "a first read of every device")
            daemon.config_path.write_text(text.replace("[printer]\n", "[printer]\ncolour = 'red'\n", 1))
            since = time.monotonic()
            daemon.signal(signal.SIGHUP)
            wait_for(lambda: daemon.events("config.reload_rejected"), 30, "the reload to be rejected")
            assert "printer.colour" in daemon.events("config.reload_rejected")[0]["error"]
            rejected = [
                m for m in daemon.notify.with_key("STATUS", since) if "reload rejected" in m["STATUS"]
            ]
            assert rejected
            assert daemon.status()["devices"]["printer"]["poll_s"] == 1.0
            daemon.config_path.write_text(
                text.replace("[printer]\npoll_s = 1.0", "[printer]\npoll_s = 7.0", 1)
            )
            daemon.signal(signal.SIGHUP)
            wait_for(lambda: daemon.events("config.reloaded"), 30, "the reload")
            wait_for(
                lambda: daemon.status()["devices"]["printer"]["poll_s"] == 7.0, 30, "the new poll interval"
            )
        finally:
            daemon.stop()


def test_sigterm_loses_no_record(tmp_path: Path) -> None:
    import sqlite3

    with SimulatedBus(tmp_path / "bus") as bus, SimulatedBackend(tmp_path / "backend") as backend:
        daemon = Daemon(tmp_path, agent_config(bus, backend))
        wait_for(lambda: all_read(daemon), 20, "a first read of every device")
        # Long enough for a first batch to reach the collector, short of draining everything.
        time.sleep(7)
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(30) == 0
        assert daemon.notify.with_key("STOPPING")
        daemon.notify.close()
        assert daemon.events("agent.stopped")[0]["unsaved"] == 0
        data_dir = Path(daemon.config_path.read_text().split('data_dir = "')[1].split('"')[0])
        with sqlite3.connect(data_dir / "outbox.sqlite") as outbox:
            streams = dict(outbox.execute("SELECT stream, next_seq FROM streams").fetchall())
            kept = set(outbox.execute("SELECT stream, seq FROM records").fetchall())
        with sqlite3.connect(backend.db_path) as db:
            received = set(db.execute("SELECT stream, seq FROM messages").fetchall())
    assert streams["telemetry/gps"] > 4
    assert received, "some records reached the collector before the stop"
    for stream, next_seq in streams.items():
        expected = {(stream, seq) for seq in range(1, next_seq)}
        assert expected <= received | kept, f"{stream}: lost {sorted(expected - received - kept)[:10]}"
