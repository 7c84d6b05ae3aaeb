"""System driver: the real machine through psutil, plus the pure sensor and interface selection."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import NamedTuple

import psutil
import pytest

from drivers.snapshots import NetInterfaceCounters
from drivers.system import SystemDriver, cpu_temperature, select_interfaces, uptime_s


class Reading(NamedTuple):
    """Shaped like psutil's shwtemp, so the selection is tested without the board's sensors."""

    label: str
    current: float


def test_real_machine_values_are_plausible(tmp_path: Path) -> None:
    snap = SystemDriver(str(tmp_path)).read()
    assert snap.ok, snap.reason
    assert snap.mem_total_bytes is not None and snap.mem_total_bytes > 0
    assert snap.mem_available_bytes is not None and 0 < snap.mem_available_bytes <= snap.mem_total_bytes
    assert snap.disk_total_bytes is not None and snap.disk_free_bytes is not None
    assert 0 <= snap.disk_free_bytes <= snap.disk_total_bytes
    assert snap.disk_path == str(tmp_path)
    assert snap.uptime_s is not None and snap.uptime_s > 0
    assert snap.load_1m is not None and snap.load_1m >= 0
    assert snap.load_5m is not None and snap.load_15m is not None
    assert snap.cpu_temp_c is None or -40 < snap.cpu_temp_c < 130
    assert snap.read_mono_s > 0


def test_all_interfaces_but_loopback_by_default(tmp_path: Path) -> None:
    snap = SystemDriver(str(tmp_path)).read()
    names = [counters.name for counters in snap.net]
    assert "lo" not in names
    assert set(names) == set(psutil.net_io_counters(pernic=True)) - {"lo"}
    assert all(c.bytes_sent >= 0 and c.bytes_recv >= 0 for c in snap.net)


def test_listed_interfaces_only_and_absent_ones_left_out(tmp_path: Path) -> None:
    snap = SystemDriver(str(tmp_path), interfaces=("lo", "wwan-absent0")).read()
    assert snap.ok, snap.reason
    assert [c.name for c in snap.net] == ["lo"]  # listed, so loopback is counted after all


def test_loopback_counters_grow_with_traffic(tmp_path: Path) -> None:
    driver = SystemDriver(str(tmp_path), interfaces=("lo",))
    before = driver.read().net[0]
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        peer, _ = server.accept()
        client.sendall(b"x" * 200_000)
        received = 0
        while received < 200_000:
            received += len(peer.recv(65536))
        client.close()
        peer.close()
    after = driver.read().net[0]
    assert after.bytes_sent - before.bytes_sent >= 200_000


def test_missing_disk_path_fails_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-mount"
    snap = SystemDriver(str(missing)).read()
    assert not snap.ok
    assert snap.reason == f"disk path {missing} does not exist"
    assert snap.disk_path == str(missing) and snap.mem_total_bytes is None


def test_uptime_matches_the_kernel_boot_time() -> None:
    assert abs(uptime_s() - (time.time() - psutil.boot_time())) < 5.0


@pytest.mark.parametrize(
    ("sensors", "expected"),
    [
        ({"cpu_thermal": [Reading("", 51.5)]}, 51.5),  # Raspberry Pi
        ({"coretemp": [Reading("Core 0", 40.0), Reading("Package id 0", 45.0)]}, 45.0),
        ({"acpitz": [Reading("", 27.8)], "coretemp": [Reading("Core 0", 38.0)]}, 38.0),
        ({"soc": [Reading("", 60.0)], "nvme": [Reading("Composite", 44.9)]}, 60.0),
        ({"cpu_thermal": [Reading("", 70.0)], "coretemp": [Reading("Package id 0", 45.0)]}, 70.0),
        ({"nvme": [Reading("Composite", 44.9)], "iwlwifi_1": [Reading("", 35.0)]}, None),
        ({"cpu_thermal": []}, None),
        ({}, None),
    ],
    ids=[
        "pi",
        "coretemp-package",
        "coretemp-over-acpi",
        "soc",
        "pi-first",
        "no-cpu-sensor",
        "empty-chip",
        "none",
    ],
)
def test_cpu_temperature_prefers_cpu_sensors_and_ignores_others(
    sensors: dict[str, list[Reading]], expected: float | None
) -> None:
    assert cpu_temperature(sensors) == expected


def test_select_interfaces_keeps_the_configured_order() -> None:
    counters = {"lo": (5, 5), "eth0": (1, 2), "wwan0": (3, 4)}
    assert select_interfaces(counters, ("wwan0", "eth0")) == (
        NetInterfaceCounters("wwan0", bytes_sent=3, bytes_recv=4),
        NetInterfaceCounters("eth0", bytes_sent=1, bytes_recv=2),
    )
    assert [c.name for c in select_interfaces(counters, ())] == ["eth0", "wwan0"]
    assert select_interfaces(counters, ("ppp0",)) == ()
