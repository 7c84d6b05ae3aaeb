"""Device faults under the running daemon: degraded within two polls, recovered within two polls.

One `busagent run` process reads the simulated bus (real gpsd, AT modem on a pty, GPIO and sysfs
power, IPP printer) every second; each case breaks one device, times how long the daemon's status
takes to say so, repairs it and times the recovery. The daemon must answer throughout, and the
other devices must keep being read.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from simulators.devices import SimulatedBus
from tests.agent.daemon_harness import Daemon, agent_config, wait_for
from tests.reliability.conftest import report, scale

POLL_S = 1.0
TIMEOUT_S = 1.0
#: Two polls plus one read's budget (an AT read may spend three timeouts) and a little scheduling.
WITHIN_S = 2 * POLL_S + 3 * TIMEOUT_S + 1.0


@dataclass(frozen=True)
class Fault:
    device: str
    breaks: Callable[[SimulatedBus], Callable[[], None]]  # returns the repair
    degraded: Callable[[dict[str, Any]], bool]


def failing(device: dict[str, Any]) -> bool:
    return device["ok"] is False


def partly_failing(device: dict[str, Any]) -> bool:
    return device["ok"] is False or bool(device["reason"])


def unplug_modem(bus: SimulatedBus) -> Callable[[], None]:
    assert bus.modem is not None
    bus.modem.unplug()
    return bus.modem.replug


def silence_modem(bus: SimulatedBus) -> Callable[[], None]:
    assert bus.modem is not None
    bus.modem.go_silent()
    return bus.modem.resume


def noisy_modem(data: bytes, every_s: float) -> Callable[[SimulatedBus], Callable[[], None]]:
    """A modem that stops answering and writes ``data`` every ``every_s`` instead, until repaired."""

    def breaks(bus: SimulatedBus) -> Callable[[], None]:
        assert bus.modem is not None
        modem = bus.modem
        modem.go_silent()
        stop = threading.Event()

        def noise() -> None:
            while not stop.wait(every_s):
                modem.inject_garbage(data)

        thread = threading.Thread(target=noise, daemon=True)
        thread.start()

        def repair() -> None:
            stop.set()
            thread.join(2)
            modem.resume()

        return repair

    return breaks


#: A URC storm: the modem talks and talks and never ends an answer with OK.
endless_modem = noisy_modem(b"+CSQ: 99,99\r\n", 0.005)
garbage_modem = noisy_modem(bytes(range(256)) + b"\xff\xfe\r\n", 0.05)


def printer_off(bus: SimulatedBus) -> Callable[[], None]:
    assert bus.printer is not None
    bus.printer.offline()
    return bus.printer.online


def sysfs_gone(bus: SimulatedBus) -> Callable[[], None]:
    assert bus.power is not None
    root = bus.power.sysfs_root
    aside = root.with_name(root.name + ".away")
    shutil.move(root, aside)

    def repair() -> None:
        shutil.move(aside, root)

    return repair


def gpsd_restart(bus: SimulatedBus) -> Callable[[], None]:
    assert bus.gpsd is not None
    bus.gpsd.stop()
    return bus.gpsd.start


FAULTS = {
    "modem unplugged": Fault("modem", unplug_modem, failing),
    "modem silent": Fault("modem", silence_modem, failing),
    "modem endless answer without OK": Fault("modem", endless_modem, failing),
    "modem garbage bytes": Fault("modem", garbage_modem, failing),
    "printer off": Fault("printer", printer_off, failing),
    "power sysfs tree missing": Fault("power", sysfs_gone, partly_failing),
    "gpsd restarted": Fault("gps", gpsd_restart, failing),
}


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SimulatedBus, Daemon]]:
    work = tmp_path_factory.mktemp("faults")
    with SimulatedBus(work / "bus") as bus:
        extra = {"modem": f"timeout_s = {TIMEOUT_S}", "printer": f"timeout_s = {TIMEOUT_S}"}
        daemon = Daemon(work, agent_config(bus, None, extra))
        try:
            wait_for(
                lambda: all(d["ok"] for d in daemon.status()["devices"].values()), 30, "every device read"
            )
            yield bus, daemon
        finally:
            daemon.stop()


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", list(FAULTS))
def test_fault_is_reported_within_two_polls_and_recovers(
    running: tuple[SimulatedBus, Daemon], name: str
) -> None:
    bus, daemon = running
    fault = FAULTS[name]
    degrade_s: list[float] = []
    recover_s: list[float] = []
    for _ in range(scale(1, 5)):
        wait_for(
            lambda: daemon.status()["devices"][fault.device]["ok"] is True, 30, f"{fault.device} healthy"
        )
        others = {k: d["reads"] for k, d in daemon.status()["devices"].items() if k != fault.device}
        started = time.monotonic()
        repair = fault.breaks(bus)
        try:
            wait_for(lambda: fault.degraded(daemon.status()["devices"][fault.device]), 30, f"{name} reported")
            degrade_s.append(time.monotonic() - started)
            status = daemon.status()
            assert status["devices"][fault.device]["reason"], "the status says what is wrong"
            assert any(status["devices"][k]["reads"] > n for k, n in others.items()), "others still read"
        finally:
            repaired = time.monotonic()
            repair()
        wait_for(
            lambda: not partly_failing(daemon.status()["devices"][fault.device]), 30, f"{name} recovered"
        )
        recover_s.append(time.monotonic() - repaired)
    assert daemon.proc.poll() is None, "the daemon stayed up"
    report(
        f"device fault: {name}",
        degraded_max_s=round(max(degrade_s), 2),
        recovered_max_s=round(max(recover_s), 2),
    )
    assert max(degrade_s) <= WITHIN_S, f"{name}: reported after {max(degrade_s):.1f} s"
    # gpsd itself takes a moment to start and find the receiver again before the next poll can succeed.
    allowance = 5.0 if fault.device == "gps" else 0.0
    assert max(recover_s) <= WITHIN_S + allowance, f"{name}: recovered after {max(recover_s):.1f} s"
