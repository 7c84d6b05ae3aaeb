"""The control socket of `busagent-sim devices`: every request is answered, no client can hold it.

Requests travel over a real Unix socket; the bus test drives a whole SimulatedBus (real gpsd
included) and reads the devices back through their own endpoints.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from drivers.modem.at_driver import AtModemDriver
from simulators.control import MAX_REQUEST, ControlServer, send
from simulators.devices import SimulatedBus


def overflowing(line: str) -> str:
    """A verb with a bug the server cannot foresee: float('inf') reaching an int conversion."""
    if line == "inf":
        return str(round(float("inf")))
    return f"did {line}"


@pytest.fixture
def control(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "c.sock"
    server = ControlServer(path, overflowing, request_timeout_s=0.3)
    server.start()
    yield path
    server.stop()


def connect(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(3.0)
    sock.connect(str(path))
    return sock


def test_a_verb_raising_overflow_error_is_answered_with_its_message(control: Path) -> None:
    answer = send(control, "inf", timeout_s=3.0)
    assert answer == {"ok": False, "error": "OverflowError: cannot convert float infinity to integer"}
    assert send(control, "x", timeout_s=3.0) == {"ok": True, "done": "did x"}


def test_a_request_nested_3000_deep_is_a_bad_request_and_the_next_one_is_served(control: Path) -> None:
    with connect(control) as sock:
        sock.sendall(b"[" * 3000 + b"\n")
        answer = sock.makefile("rb").readline()
    assert answer.startswith(b'{"ok": false, "error": "bad request: RecursionError')
    assert send(control, "x", timeout_s=3.0)["ok"] is True


def test_an_overlong_line_is_refused_at_once_without_waiting_for_its_end(control: Path) -> None:
    with connect(control) as sock:
        sock.sendall(b"x" * (MAX_REQUEST * 16))  # no newline: the server must not wait for one
        answer = sock.makefile("rb").readline()
    assert b"request too long" in answer


def test_a_silent_client_is_hung_up_on_after_the_request_timeout(control: Path) -> None:
    with connect(control) as sock:
        started = time.monotonic()
        assert sock.recv(100) == b""
    assert time.monotonic() - started < 2.0


def test_stop_hangs_up_on_connected_clients(tmp_path: Path) -> None:
    path = tmp_path / "c.sock"
    server = ControlServer(path, overflowing)  # default timeout: far longer than this test
    server.start()
    with connect(path) as sock:
        sock.sendall(b'{"action": "half a req')
        time.sleep(0.1)  # let the handler start reading
        started = time.monotonic()
        server.stop()
        assert sock.recv(100) == b""
        assert time.monotonic() - started < 2.0
    assert not path.exists()


@pytest.fixture(scope="module")
def bus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SimulatedBus, Path]]:
    workdir = tmp_path_factory.mktemp("bus")
    with SimulatedBus(workdir) as simulated:
        server = ControlServer(workdir / "bus.sock", simulated.apply)
        server.start()
        yield simulated, workdir / "bus.sock"
        server.stop()


@pytest.mark.parametrize(
    ("action", "named"),
    [
        ("signal nan -11 9", "RSRP_DBM"),
        ("signal -97 -11 inf", "SINR_DB"),
        ("move nan 1", "LAT"),
        ("move 44 -inf", "LON"),
        ("speed 30 nan", "TRACK_DEG"),
        ("battery nan 50", "VOLTS"),
        ("battery inf 50", "VOLTS"),
        ("battery 12.5 lots", "SOC%"),
    ],
)
def test_bus_refuses_non_finite_numbers_naming_the_argument(
    bus: tuple[SimulatedBus, Path], action: str, named: str
) -> None:
    answer = send(bus[1], action, timeout_s=5.0)
    assert answer["ok"] is False
    assert str(answer["error"]).startswith(f"{named} must be a finite number")


def test_bus_devices_keep_serving_after_refused_numbers(bus: tuple[SimulatedBus, Path]) -> None:
    simulated, sock = bus
    assert simulated.modem and simulated.gps and simulated.power and simulated.power.vedirect
    for action in ("signal nan -11 9", "move nan 1", "battery nan 50", "battery inf 50"):
        assert send(sock, action, timeout_s=5.0)["ok"] is False
    assert send(sock, "unplug-shore", timeout_s=5.0)["ok"] is True
    epochs, blocks = simulated.gps.epochs, simulated.power.vedirect.history.count("block")
    driver = AtModemDriver(simulated.modem.port.path, timeout_s=1.0)
    snap = driver.read()
    driver.close()
    assert snap.ok, snap.reason
    deadline = time.monotonic() + 5.0
    while simulated.gps.epochs <= epochs or simulated.power.vedirect.history.count("block") <= blocks:
        assert time.monotonic() < deadline, "the GPS or VE.Direct thread stopped"
        time.sleep(0.05)
    for sim in (simulated.modem, simulated.gps, simulated.power.vedirect):
        assert sim.history.count("error") == 0
