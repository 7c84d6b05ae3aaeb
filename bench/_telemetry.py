"""The records one bus makes in the benchmark's service day, as the daemon would append them.

The day is the Monday of ``simulators/scenarios/tdc-s13-lundi.toml`` (the scenario says it is the
day the benchmarks replay): depot, La Poste of Saint-Aignan, Fajolles with weak 4G and a printer
out of paper, depot again, about 10 h. Polls are those of ``systemd/agent.example.toml``: GPS
1 s, modem 10 s, power 5 s, printer 30 s, system 60 s. Payloads have exactly the keys of the
drivers' snapshots (``drivers.snapshots.to_dict``) and numbers shaped as the real sources give
them: gpsd's 9-decimal degrees from NMEA minutes, integer LTE figures, VE.Direct millivolts,
nanosecond monotonic read times, load averages in 1/2048ths. Deterministic for a given seed.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json
import math
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _common import ROOT

from agent.outbox import Priority
from agent.runtime.sink import priority_of
from drivers.modem.quality import grade
from drivers.snapshots import (
    GpsSnapshot,
    ModemSnapshot,
    NetInterfaceCounters,
    PowerSnapshot,
    PrinterMarker,
    PrinterSnapshot,
    SystemSnapshot,
    to_dict,
)
from simulators.itinerary import Itinerary
from simulators.scenario import load_scenario

DAY = ROOT / "simulators" / "scenarios" / "tdc-s13-lundi.toml"
#: A real probe-suite record captured from the simulated backend: the shape of ``probes/result``.
PROBE_TEMPLATE = Path(__file__).resolve().parent / "data" / "probe_result.json"
POLLS_S = {"gps": 1, "modem": 10, "power": 5, "printer": 30, "system": 60}
BOOT_MONO = 812.0  # the daemon started a quarter of an hour after boot
PROBE_EVERY_S = 30 * 60
KNOT_MPS = 0.514444
BOOT_ID = "3f0c9a52-5b1e-4c1f-9d7e-2b8f0a6c1d44"


@dataclasses.dataclass(frozen=True)
class Reading:
    """One record as the runtime hands it to the outbox."""

    stream: str
    payload: dict[str, Any]
    mono: float
    wall: float
    wall_source: str = "gps"

    @property
    def priority(self) -> Priority:
        return priority_of(self.stream)


def service_day(seed: int = 1, streams: tuple[str, ...] = tuple(POLLS_S)) -> list[Reading]:
    """Every record of the day in the order the daemon appends them."""
    itinerary = Itinerary(load_scenario(DAY))
    rng = random.Random(seed)
    sources = _Sources(itinerary, rng)
    readings: list[Reading] = []
    start, end = itinerary.start, itinerary.end
    for second in range(int(end - start)):
        t = start + second
        for stream in streams:
            if second % POLLS_S[stream] == 0:
                payload = sources.read(stream, t, second)
                readings.append(_stamped(f"telemetry/{stream}", payload, second, rng))
        readings.extend(
            _stamped(stream, payload, second, rng) for stream, payload in sources.events(t, second)
        )
    return readings


def _stamped(stream: str, payload: dict[str, Any], second: int, rng: random.Random) -> Reading:
    """Stamped by the loop a fraction of a millisecond after the poller's read (or the event)."""
    read = payload.get("read_mono_s") or BOOT_MONO + second + rng.uniform(0.0005, 0.004)
    mono = read + rng.uniform(0.00005, 0.0006)
    return Reading(stream, payload, round(mono, 9), round(_WALL_OFFSET + mono, 6))


#: Wall minus monotonic: the day's start (2026-03-02 08:00 +01:00) at BOOT_MONO.
_WALL_OFFSET = dt.datetime(2026, 3, 2, 7, 0, tzinfo=dt.UTC).timestamp() - BOOT_MONO


def read_mono(second: int, rng: random.Random) -> float:
    """time.monotonic() at a read: the poll's second plus a few ms of scheduling, to the ns."""
    return round(BOOT_MONO + second + rng.uniform(0.0005, 0.004), 9)


class _Sources:
    """Each device's state through the day, read at its poll times."""

    def __init__(self, itinerary: Itinerary, rng: random.Random) -> None:
        self.itinerary = itinerary
        self.rng = rng
        self.wander = (0.0, 0.0)
        self.satellites = 9
        self.battery_v = 12.85
        self.toner = 80
        self.net = [1_371_803, 590_473_754]
        self.disk_free = 41_513_560_576
        self.load = 0.35
        self.cell = 27_440_068
        self.was_parked: int | None = None
        self.last_probe = -1e9
        self.printer: tuple[str, tuple[str, ...]] = ("idle", ())
        self.probe = json.loads(PROBE_TEMPLATE.read_text())

    def read(self, stream: str, t: float, second: int) -> dict[str, Any]:
        reader = getattr(self, f"_{stream}")
        payload: dict[str, Any] = reader(t, second)
        return payload

    # -- devices --------------------------------------------------------------------------------

    def _gps(self, t: float, second: int) -> dict[str, Any]:
        fix, rng = self.itinerary.position(t), self.rng
        lat, lon, speed = fix.lat, fix.lon, fix.speed_mps
        if speed == 0.0:  # parked: the reported fix wanders a few metres, and so does its speed
            north = max(-3.0, min(3.0, self.wander[0] + rng.gauss(0, 0.4)))
            east = max(-3.0, min(3.0, self.wander[1] + rng.gauss(0, 0.4)))
            self.wander = (north, east)
            lat += north / 111_195.0
            lon += east / (111_195.0 * math.cos(math.radians(lat)))
            speed = abs(rng.gauss(0, 0.05))
        else:
            speed = max(0.0, speed + rng.gauss(0, 0.6))
        if second % 97 == 0:
            self.satellites = max(6, min(12, self.satellites + rng.choice((-1, 0, 1))))
        hdop = round(max(0.6, 7.2 / self.satellites + rng.choice((-0.1, 0.0, 0.0, 0.1))), 1)
        when = dt.datetime.fromtimestamp(t, dt.UTC)
        snap = GpsSnapshot(
            read_mono_s=read_mono(second, rng),
            source="gpsd",
            fix_mode=3,
            lat_deg=_nmea_degrees(lat),
            lon_deg=_nmea_degrees(lon),
            speed_mps=round(round(speed / KNOT_MPS, 3) * KNOT_MPS, 3),  # RMC knots, gpsd's m/s
            track_deg=round(fix.track_deg + (rng.gauss(0, 1.5) if fix.speed_mps else 0.0), 2) % 360,
            altitude_m=round(112.0 + 20 * math.sin(lat * 900) + rng.gauss(0, 0.8), 1),
            satellites_used=self.satellites,
            satellites_seen=self.satellites + 4,
            hdop=hdop,
            gps_time_utc=when.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        )
        return to_dict(snap)

    def _modem(self, t: float, second: int) -> dict[str, Any]:
        signal, rng = self.itinerary.signal_at(t), self.rng
        parked = self.itinerary.stop_index_at(t)
        if parked is None and second % 420 == 0:  # handovers while driving
            self.cell += rng.randint(1, 40) * 256
        elif parked is not None:
            self.cell = 27_440_068 + 4096 * parked
        rsrp = float(round(signal.rsrp_dbm + rng.gauss(0, 2)))
        rsrq = float(round(signal.rsrq_db + rng.gauss(0, 1)))
        sinr = float(round(signal.sinr_db + rng.gauss(0, 2)))
        snap = ModemSnapshot(
            read_mono_s=read_mono(second, rng),
            source="at",
            model="Quectel EC25",
            registration="home",
            operator_code=signal.operator,
            operator_name={"20801": "Orange", "20815": "Free"}.get(signal.operator, "Orange"),
            rat=signal.rat,
            rsrp_dbm=rsrp,
            rsrq_db=rsrq,
            sinr_db=sinr,
            rssi_dbm=float(round(rsrp + 28 + rng.gauss(0, 1))),
            cell_id=self.cell,
            tac=40001,
            pci=self.cell % 504,
            band=20 if self.cell % 3 else 3,
            earfcn=6300 if self.cell % 3 else 1300,
            quality=grade(rsrp, rsrq, sinr),
            imei="867698041234567",
            iccid="89330123456789012345",
        )
        return to_dict(snap)

    def _power(self, t: float, second: int) -> dict[str, Any]:
        shore, rng = self.itinerary.shore_at(t), self.rng
        target = 13.8 if shore else 12.55
        self.battery_v += (target - self.battery_v) * 0.002 + rng.gauss(0, 0.004)
        current = (4.5 if shore else -6.0) + rng.gauss(0, 0.3)
        snap = PowerSnapshot(
            read_mono_s=read_mono(second, rng),
            shore_connected=shore,
            shore_source="gpio",
            battery_v=round(self.battery_v, 3),  # VE.Direct: millivolts
            battery_current_a=round(current, 3),  # milliamps
            battery_soc_pct=round(min(100.0, max(0.0, (self.battery_v - 11.8) * 50)), 1),  # per mille
            charging_state="charging" if shore else "discharging",
        )
        return to_dict(snap)

    def _printer(self, t: float, second: int) -> dict[str, Any]:
        state = self.itinerary.printer_state_at(t)
        if self.itinerary.stop_index_at(t) is not None and second % 2400 == 0:
            self.toner = max(1, self.toner - 1)
        snap = PrinterSnapshot(
            read_mono_s=read_mono(second, self.rng),
            state=state.state,
            reasons=state.reasons,
            accepting_jobs=True,
            make_and_model="BusOffice LaserJet 100",
            markers=(PrinterMarker("Black Toner", "#000000", "toner", self.toner),),
        )
        return to_dict(snap)

    def _system(self, t: float, second: int) -> dict[str, Any]:
        rng = self.rng
        self.load = max(0.0, self.load * 0.8 + rng.uniform(0.0, 0.2))
        loads = [round(self.load * f * 2048) / 2048 for f in (1.0, 0.9, 0.8)]  # the kernel's fixed point
        self.net[0] += rng.randint(20_000, 400_000)
        self.net[1] += rng.randint(100_000, 4_000_000)
        self.disk_free -= rng.randint(0, 40) * 4096
        snap = SystemSnapshot(
            read_mono_s=read_mono(second, rng),
            load_1m=loads[0],
            load_5m=loads[1],
            load_15m=loads[2],
            cpu_temp_c=round(48.0 + rng.uniform(0, 6), 3),
            mem_total_bytes=3_978_911_744,
            mem_available_bytes=3_300_000_000 - rng.randint(0, 50_000) * 4096,
            disk_path="/var/lib/busagent",
            disk_total_bytes=62_226_370_560,
            disk_free_bytes=self.disk_free,
            uptime_s=read_mono(second, rng),
            net=(NetInterfaceCounters("wwan0", self.net[0], self.net[1]),),
        )
        return to_dict(snap)

    # -- what happens at stops: events and probe runs -------------------------------------------

    def events(self, t: float, second: int) -> Iterator[tuple[str, dict[str, Any]]]:
        parked = self.itinerary.stop_index_at(t)
        if parked != self.was_parked:
            kind = "arrived" if parked is not None else "departed"
            stop = self.itinerary.scenario.stops[parked if parked is not None else self.was_parked or 0]
            yield "events", self._event(kind, stop.lat, stop.lon, stop.name, second)
            if parked is not None:
                self.last_probe = -1e9
            self.was_parked = parked
        if parked is not None and second - self.last_probe >= PROBE_EVERY_S:
            self.last_probe = second
            yield "probes/result", self._probe(second)
        state = self.itinerary.printer_state_at(t)
        if (state.state, state.reasons) != self.printer:
            self.printer = (state.state, state.reasons)
            yield "events", {"type": "printer", "state": state.state, "reasons": list(state.reasons)}

    def _event(self, kind: str, lat: float, lon: float, name: str, second: int) -> dict[str, Any]:
        mono = read_mono(second, self.rng)
        site = {
            "id": name,
            "name": name,
            "lat": lat,
            "lon": lon,
            "radius_m": 150.0,
            "commune": None,
            "notes": None,
            "planned": True,
        }
        stamp = {"boot_id": BOOT_ID, "mono": mono, "wall": round(_WALL_OFFSET + mono, 6), "source": "gps"}
        return {
            "type": kind,
            "at": mono,
            "lat": lat,
            "lon": lon,
            "site": site,
            "confirmed_by": "shore",
            "stamp": stamp,
        }

    def _probe(self, second: int) -> dict[str, Any]:
        """The captured probe record, with this run's times and a little jitter on every figure."""
        doc = copy.deepcopy(self.probe)
        shift = BOOT_MONO + second - doc["started_mono_s"]
        jittered: dict[str, Any] = _jitter(doc, shift, self.rng)
        return jittered


def _jitter(value: Any, shift: float, rng: random.Random, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _jitter(v, shift, rng, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_jitter(v, shift, rng, key) for v in value]
    if isinstance(value, float) and ("mono" in key or key == "wall"):
        return round(value + shift, 9)
    if isinstance(value, float):
        return value * rng.uniform(0.9, 1.1)
    return value


def _nmea_degrees(value: float) -> float:
    """What gpsd reports for a receiver giving 5 decimals of minutes: degrees printed with %.9f."""
    minutes = round(abs(value) * 60, 5)
    return math.copysign(round(minutes / 60, 9), value)


def backlog(count: int, batch: int = 60) -> list[Reading]:
    """The first ``count`` records of back-to-back service days: what waits after a long outage.

    Each telemetry stream is cut to a multiple of ``batch`` records, so that no stream ends on a
    part-filled batch (which the publisher would rightly hold for ``batch_seconds``), and the
    count is made up with the day's events and probe records.
    """
    day = service_day()
    days = [_later(day, n) for n in range(count // len(day) + 1)]
    head = [r for d in days for r in d][:count]
    kept: dict[str, int] = {}
    for r in head:
        kept[r.stream] = kept.get(r.stream, 0) + 1
    for stream, n in kept.items():
        if stream.startswith("telemetry/"):
            kept[stream] = n - n % batch
    out: list[Reading] = []
    for r in head:
        if kept[r.stream] > 0:
            out.append(r)
            kept[r.stream] -= 1
    singles = [r for r in day if not r.stream.startswith("telemetry/")]
    extra = [_later([singles[i % len(singles)]], 1 + i // len(singles))[0] for i in range(count - len(out))]
    return out + extra


def _later(readings: list[Reading], days: int) -> list[Reading]:
    """The same readings ``days`` days later (the daemon kept running: monotonic time goes on)."""
    shift = days * 86_400.0
    return [dataclasses.replace(r, mono=r.mono + shift, wall=r.wall + shift) for r in readings]
