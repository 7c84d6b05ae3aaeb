"""sd_notify: datagrams reach a real notify socket, and nothing happens (or raises) outside systemd."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from agent.runtime import sdnotify
from agent.runtime.sdnotify import Notifier


@pytest.fixture
def listener(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A datagram socket bound in tmp_path, named by NOTIFY_SOCKET as systemd would."""
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2.0)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield sock
    sock.close()


def received(sock: socket.socket) -> list[str]:
    return sock.recv(4096).decode().split("\n")


def test_ready_sends_ready_and_status_in_one_datagram(listener: socket.socket) -> None:
    assert sdnotify.ready("modem ok, gps 3D")
    assert received(listener) == ["READY=1", "STATUS=modem ok, gps 3D"]


def test_each_helper_sends_its_well_known_key(listener: socket.socket) -> None:
    assert sdnotify.status("printer out of paper")
    assert received(listener) == ["STATUS=printer out of paper"]
    assert sdnotify.watchdog()
    assert received(listener) == ["WATCHDOG=1"]
    assert sdnotify.stopping()
    assert received(listener) == ["STOPPING=1"]
    assert sdnotify.reloading()
    reload_fields = received(listener)
    assert reload_fields[0] == "RELOADING=1"
    assert reload_fields[1].startswith("MONOTONIC_USEC=") and int(reload_fields[1].split("=")[1]) > 0


def test_notify_passes_arbitrary_fields(listener: socket.socket) -> None:
    assert sdnotify.notify(EXTEND_TIMEOUT_USEC=5_000_000, ERRNO=5)
    assert received(listener) == ["EXTEND_TIMEOUT_USEC=5000000", "ERRNO=5"]


def test_a_newline_in_status_cannot_inject_another_assignment(listener: socket.socket) -> None:
    assert sdnotify.status("gps lost\nREADY=1")
    assert received(listener) == ["STATUS=gps lost READY=1"]


def test_abstract_namespace_socket_is_reached_through_a_leading_at(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"busagent-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name.encode())
        sock.settimeout(2.0)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert sdnotify.watchdog()
        assert received(sock) == ["WATCHDOG=1"]


def test_outside_systemd_every_call_is_a_silent_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    with capture_logs() as logs:
        assert not Notifier().enabled
        assert not sdnotify.ready("up")
        assert not sdnotify.watchdog()
        assert not sdnotify.stopping()
    assert logs == []


def test_a_vanished_socket_never_raises_and_is_logged_once(listener: socket.socket, tmp_path: Path) -> None:
    listener.close()
    (tmp_path / "notify").unlink()
    with capture_logs() as logs:
        assert not sdnotify.watchdog()
        assert not sdnotify.watchdog()
        assert not sdnotify.status("still here")
    failures = [entry for entry in logs if entry["event"] == "sdnotify.send_failed"]
    assert len(failures) == 1
    assert failures[0]["socket"] == str(tmp_path / "notify")


def test_an_explicit_environment_overrides_the_process_one(tmp_path: Path) -> None:
    path = tmp_path / "other"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(2.0)
        notifier = Notifier({"NOTIFY_SOCKET": str(path)})
        assert notifier.enabled
        assert notifier.ready()
        assert received(sock) == ["READY=1"]


def test_watchdog_period_is_half_of_watchdog_usec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert sdnotify.watchdog_period_s() == 15.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert sdnotify.watchdog_period_s() == 15.0


def test_watchdog_period_is_none_when_unset_or_meant_for_another_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert sdnotify.watchdog_period_s() is None
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert sdnotify.watchdog_period_s() is None


@pytest.mark.parametrize("value", ["", "0", "-5", "thirty", "1e6"])
def test_watchdog_period_ignores_zero_negative_and_garbage(value: str) -> None:
    assert Notifier({"WATCHDOG_USEC": value}).watchdog_period_s() is None
