"""A whole simulated bus: every device simulator started together, plus the config that reads them.

GPS NMEA on a pty read by the real gpsd, an AT modem on a pty, shore power as a GPIO value file,
a power_supply sysfs tree and a VE.Direct SmartShunt on a pty, and an IPP printer on HTTP. The
agent reads them exactly as it reads real hardware: only the endpoints in the config differ.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from agent.runtime.clock import ScaledClock
from simulators.gps import GpsSimulator
from simulators.gpsd import GpsdProcess
from simulators.modem_at import AtModemSimulator
from simulators.power import ShorePowerSim
from simulators.printer import IppPrinterSimulator
from simulators.pty import PtyPort

# The depot of the example fleet (Tarn-et-Garonne); any place works.
DEPOT = (44.0395, 1.1069)
MAX_GPS_RATE_HZ = 50.0


@dataclass(frozen=True)
class Action:
    """A control verb: what it does, its arguments, and the function that does it."""

    help: str
    args: str
    run: Callable[[list[str]], None]


class SimulatedBus:
    """Starts, reconfigures and stops every device simulator of one bus."""

    def __init__(
        self,
        workdir: Path,
        *,
        vehicle_id: str = "bus-sim-01",
        modem_variant: str = "quectel",
        clock: ScaledClock | None = None,
    ) -> None:
        self.workdir = workdir
        self.vehicle_id = vehicle_id
        self.modem_variant = modem_variant
        self.clock = clock  # None: real time; else the GPS follows (and stamps) simulated time
        self._stack = contextlib.ExitStack()
        self.gps: GpsSimulator | None = None
        self.gpsd: GpsdProcess | None = None
        self.modem: AtModemSimulator | None = None
        self.power: ShorePowerSim | None = None
        self.printer: IppPrinterSimulator | None = None

    def start(self) -> None:
        """Start every simulator; on any failure, stop what was started and re-raise."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self._start_all()
        except BaseException:
            self._stack.close()
            raise

    def _start_all(self) -> None:
        stack = self._stack
        gps_port = stack.enter_context(PtyPort(self.workdir / "ttyGPS0"))
        self.gps = self._gps_simulator(gps_port)
        self.gps.set_position(*DEPOT, alt_m=95.0)
        self.gps.start()
        stack.callback(self.gps.stop)
        self.gpsd = GpsdProcess([gps_port.path])
        self.gpsd.start()
        stack.callback(self.gpsd.stop)

        modem_port = stack.enter_context(PtyPort(self.workdir / "ttyUSB2"))
        self.modem = AtModemSimulator(modem_port, variant=self.modem_variant)
        self.modem.start()
        stack.callback(self.modem.stop)

        vedirect_port = stack.enter_context(PtyPort(self.workdir / "ttyVE0"))
        self.power = ShorePowerSim(self.workdir / "power", vedirect_port)
        self.power.start()
        stack.callback(self.power.stop)

        self.printer = IppPrinterSimulator()
        self.printer.start()
        stack.callback(self.printer.stop)

    def _gps_simulator(self, port: PtyPort) -> GpsSimulator:
        clock = self.clock
        if clock is None:
            return GpsSimulator(port)
        # One epoch per simulated second, up to what gpsd comfortably decodes in real time.
        return GpsSimulator(
            port,
            clock=clock.monotonic,
            utc_now=lambda: dt.datetime.fromtimestamp(clock.wall(), dt.UTC),
            rate_hz=min(clock.speedup, MAX_GPS_RATE_HZ),
        )

    def stop(self) -> None:
        self._stack.close()

    def __enter__(self) -> SimulatedBus:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def config_text(self, *, vedirect: bool = True) -> str:
        """An agent config that reads every simulator through its real endpoint.

        ``vedirect=False`` leaves the SmartShunt out: its blocks come once a second of real time,
        too slow for a day on a fast clock (shore power then comes from the GPIO line and sysfs).
        """
        assert self.gpsd and self.power and self.printer, "start() first"
        data_dir = self.workdir / "data"
        data_dir.mkdir(exist_ok=True)
        return f"""# Written by busagent-sim devices: every endpoint below is a simulator.
[agent]
vehicle_id = "{self.vehicle_id}"
data_dir = "{data_dir}"
runtime_dir = "{self.workdir / "run"}"

[gps]
url = "{self.gpsd.url}"

[modem]
url = "{self.workdir / "ttyUSB2"}"

[power]
gpio = "{self.power.gpio_path}"
sysfs = "{self.power.sysfs_root}"
{f'vedirect = "{self.workdir / "ttyVE0"}"' if vedirect else ""}

[printer]
url = "{self.printer.url}"

[system]
disk_path = "{data_dir}"
"""

    def actions(self) -> dict[str, Action]:
        """Every verb a tester can apply to the running bus (see `busagent-sim do --help`)."""
        assert self.gps and self.modem and self.power and self.printer, "start() first"
        gps, modem, power, printer = self.gps, self.modem, self.power, self.printer

        def no_args(fn: Callable[[], object]) -> Callable[[list[str]], None]:
            def run(args: list[str]) -> None:
                _expect(args, 0)
                fn()

            return run

        return {
            "unplug-shore": Action("shore power socket dead or unplugged", "", no_args(power.unplug)),
            "plug-shore": Action("shore power plugged in", "", no_args(power.plug)),
            "battery": _numeric("set battery voltage and charge", "VOLTS SOC%", power.set_battery),
            "paper-out": Action("printer out of paper", "", no_args(printer.media_empty)),
            "paper-jam": Action("printer paper jam", "", no_args(printer.jam)),
            "toner-low": Action("printer toner low", "", no_args(printer.toner_low)),
            "printer-ok": Action("printer problems cleared", "", no_args(printer.clear)),
            "printer-off": Action("printer switched off", "", no_args(printer.offline)),
            "printer-on": Action("printer switched on again", "", no_args(printer.online)),
            "modem-unplug": Action("4G modem unplugged", "", no_args(modem.unplug)),
            "modem-replug": Action("4G modem plugged back", "", no_args(modem.replug)),
            "modem-silent": Action("modem stops answering", "", no_args(modem.go_silent)),
            "modem-resume": Action("modem answers again", "", no_args(modem.resume)),
            "signal": _numeric("set LTE signal", "RSRP_DBM RSRQ_DB SINR_DB", modem.set_signal),
            "gps-lose": Action("GPS loses its fix", "", no_args(gps.lose_fix)),
            "gps-regain": Action("GPS fix back", "", no_args(gps.regain_fix)),
            "move": _numeric("put the bus at a place", "LAT LON", gps.set_position),
            "speed": _numeric(
                "set speed and heading", "KMH TRACK_DEG", lambda kmh, track: gps.set_motion(kmh / 3.6, track)
            ),
        }

    def apply(self, line: str) -> str:
        """Run one control line such as ``signal -105 -14 2``; returns what was done."""
        words = shlex.split(line)
        if not words:
            raise ValueError("empty command")
        actions = self.actions()
        action = actions.get(words[0])
        if action is None:
            raise ValueError(f"unknown action {words[0]!r}; known: {', '.join(actions)}")
        action.run(words[1:])
        return f"{words[0]}: {action.help}"


def _expect(args: list[str], count: int) -> None:
    if len(args) != count:
        raise ValueError(f"expected {count} argument(s), got {len(args)}")


def _numeric(help: str, args: str, verb: Callable[..., object]) -> Action:
    """An action taking the numbers named in ``args`` (space-separated), checked before ``verb`` runs."""
    names = args.split()

    def run(words: list[str]) -> None:
        verb(*_floats(words, len(names), names))

    return Action(help, args, run)


def _floats(args: list[str], count: int, names: Sequence[str] = ()) -> list[float]:
    """``count`` finite numbers; ValueError naming the first argument that is not one."""
    _expect(args, count)
    numbers = []
    for index, word in enumerate(args):
        name = names[index] if index < len(names) else f"argument {index + 1}"
        try:
            number = float(word)
        except ValueError:
            number = math.nan
        # float() takes "nan" and "inf": they would reach a simulator's model and kill its thread.
        if not math.isfinite(number):
            raise ValueError(f"{name} must be a finite number, not {word!r}")
        numbers.append(number)
    return numbers
