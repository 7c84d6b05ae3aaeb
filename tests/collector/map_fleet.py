"""A two-bus, two-day fleet for the map tests, made by the agent's own code and stored through ingest.

Visits come out of ``VisitRecorder`` fed real snapshots and SuiteResults; probe payloads are built
the way ``agent.runtime.loop`` builds them (``results.to_dict`` plus reason, label, stamp); every
record goes through ``wire.record_doc``/``wire.dumps`` and the collector's ``Ingest.handle``.

Day 1, bus-tdc-01 on Orange (20801): La Poste (good link, printer out of paper), the XSS-named
mairie (good), Lizac (poor link, shore power lost for 40 min), a survey at a place not in the plan
(stop detected: labelled run with a generated stop id).
Day 2, bus-tdc-02 on SFR (20810): La Poste (weaker, a labelled survey run inside the visit, printer
jam), a survey before the bus counted as stopped (no stop id, GPS telemetry only) labelled with
script-breaking text, a labelled run near Lizac without stop id, a lunch halt (no probes), one
visit without a place, a labelled run with no GPS fix near it, one unreadable visit.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from agent.core.catalog import Site
from agent.core.geo import offset_m, site_id_for
from agent.core.stops import Arrived, Departed
from agent.core.timebase import TimeStamp
from agent.core.visit import VisitRecorder
from agent.mqtt import wire
from agent.outbox import Record
from agent.probes import results
from agent.probes.results import DnsResult, HttpResult, LatencyResult, SuiteResult, ThroughputResult
from collector.ingest import Ingest
from collector.store import Store
from collector.validate import Schemas
from drivers.snapshots import GpsSnapshot, ModemSnapshot, PowerSnapshot, PrinterSnapshot
from drivers.snapshots import to_dict as snap_dict

EPOCH = "e" * 32
DAY1 = 1_772_434_800.0  # 2026-03-02T07:00:00Z
DAY2 = DAY1 + 86_400.0
HOUR = 3600.0
XSS_NAME = "<img src=x onerror=alert(1)>"
SCRIPT_LABEL = "Stade </script><b>bold</b><!-- Moissac"
CAF = "https://www.caf.fr/"
IMPOTS = "https://www.impots.gouv.fr/"

POSTE = Site("poste-saint-aignan", "La Poste, Saint-Aignan", 44.019167, 1.075278, 100.0)
XSS = Site("mairie-xss", XSS_NAME, 44.096944, 1.014444, 100.0)
LIZAC = Site("mairie-lizac", "Mairie, Lizac", 44.1, 1.18, 100.0)
LABASTIDE_AT = (44.0905, 1.1300)
LABASTIDE = Site(site_id_for(*LABASTIDE_AT), None, *LABASTIDE_AT, 150.0, planned=False)
LUNCH_AT = (44.0620, 1.0500)
LUNCH = Site(site_id_for(*LUNCH_AT), None, *LUNCH_AT, 150.0, planned=False)
MOISSAC_AT = (44.1050, 1.0900)
LABASTIDE_LABEL = "Place de l'église, Labastide"
POSTE_LABEL = "Saint-Aignan after the antenna work"
LIZAC_LABEL = "Lizac, parking de la mairie"
UNLOCATED_LABEL = "Hameau de Lunel"


def modem(operator: str, rsrp: float, rsrq: float, sinr: float, name: str) -> ModemSnapshot:
    return ModemSnapshot(
        registration="home", operator_code=operator, operator_name=name, rat="LTE",
        rsrp_dbm=rsrp, rsrq_db=rsrq, sinr_db=sinr,
    )  # fmt: skip


ORANGE = "20801"
SFR = "20810"


def orange(rsrp: float, rsrq: float = -11.0, sinr: float = 9.0) -> ModemSnapshot:
    return modem(ORANGE, rsrp, rsrq, sinr, "Orange F")


def sfr(rsrp: float, rsrq: float = -13.0, sinr: float = 3.0) -> ModemSnapshot:
    return modem(SFR, rsrp, rsrq, sinr, "SFR")


def suite(at: float, down_mbps: float, up_mbps: float, rtt: float, *, fetch_ms: float = 400.0) -> SuiteResult:
    """One run: 3 TCP tries around ``rtt``, one DNS name, two portals, a speed test."""
    rtts = (rtt - 5, rtt, rtt + 5)
    return SuiteResult(
        started_mono_s=at,
        finished_mono_s=at + 40,
        latency=(
            LatencyResult(target="caf.fr:443", method="tcp", tries=3, answered=3, loss=0.0, rtt_ms=rtts),
        ),
        dns=(DnsResult(name="www.caf.fr", server="system", resolve_ms=20.0, addresses=("192.0.2.1",)),),
        http=(
            HttpResult(url=CAF, status=200, ttfb_ms=fetch_ms / 2, fetch_ms=fetch_ms, bytes_used=50_000),
            HttpResult(
                url=IMPOTS, status=200, ttfb_ms=fetch_ms / 2, fetch_ms=fetch_ms + 100, bytes_used=40_000
            ),
        ),
        throughput=ThroughputResult(
            server_url="http://127.0.0.1/mini/",
            down_bps=down_mbps * 1e6,
            up_bps=up_mbps * 1e6,
            bytes_used=9_000_000,
        ),
    )


class Bus:
    """One vehicle and boot: stamps, seqs, and records handed to the collector's ingest."""

    def __init__(self, ingest: Ingest, vehicle: str, boot: str, wall0: float, mono0: float = 1000.0) -> None:
        self.ingest, self.vehicle, self.boot = ingest, vehicle, boot
        self.wall0, self.mono0 = wall0, mono0
        self.seqs: defaultdict[str, int] = defaultdict(int)

    def stamp(self, mono: float) -> TimeStamp:
        return TimeStamp(self.boot, mono, self.wall0 + (mono - self.mono0), "gps")

    def send(self, stream: str, payload: dict[str, Any], mono: float) -> None:
        self.seqs[stream] += 1
        seq = self.seqs[stream]
        record = Record(
            stream=stream, seq=seq, msg_id=wire.record_msg_id(self.vehicle, self.boot, stream, seq),
            priority="normal", payload=payload, mono=mono, wall=self.stamp(mono).wall, wall_source="gps",
            boot_id=self.boot, state="pending", sent_at=None, id=seq,
        )  # fmt: skip
        topic = f"busagent/{self.vehicle}/{stream}"
        outcome = self.ingest.handle(topic, wire.dumps(wire.record_doc(record, EPOCH)))
        assert outcome == "stored", (stream, outcome)

    def probe(
        self, run: SuiteResult, radio: ModemSnapshot, stop_id: str | None, label: str | None = None
    ) -> SuiteResult:
        """Publish a run as the agent's loop does; returns it with radio and stop attached."""
        attached = dataclasses.replace(run, radio=snap_dict(radio), stop_id=stop_id)
        payload = results.to_dict(attached)
        payload["reason"] = "manual" if label is not None else "interval"
        payload["label"] = label
        payload["stamp"] = self.stamp(attached.started_mono_s).to_dict()
        self.send("probes/result", payload, attached.finished_mono_s)
        return attached

    def gps(self, mono: float, lat: float, lon: float) -> None:
        fix = GpsSnapshot(fix_mode=3, lat_deg=lat, lon_deg=lon, speed_mps=0.0, read_mono_s=mono)
        self.send("telemetry/gps", snap_dict(fix), mono)

    def visit(
        self,
        site: Site | None,
        start: float,
        hours: float,
        *,
        readings: Sequence[ModemSnapshot] = (),
        runs: Sequence[tuple[SuiteResult, str | None]] = (),
        shore: Sequence[tuple[float, bool]] = (),
        printer: Sequence[tuple[float, tuple[str, ...]]] = (),
    ) -> float:
        """A whole stop: readings spread over it, runs published and recorded, then the visit.

        ``runs``: (suite, label); ``shore``/``printer``: (hours after arrival, state). Returns departure.
        """
        end = start + hours * HOUR
        lat, lon = (site.lat, site.lon) if site is not None else (None, None)
        recorder = VisitRecorder(Arrived(start, lat, lon, site, "dwell"), self.stamp(start + 300))
        for i, snap in enumerate(readings):
            recorder.add_modem(start + (i + 1) * (end - start) / (len(readings) + 1), snap)
        radio = readings[0] if readings else orange(-100.0)
        for run, label in runs:
            recorder.add_suite(self.probe(run, radio, site.id if site else None, label))
        for at, plugged in shore:
            recorder.add_power(start + at * HOUR, PowerSnapshot(shore_connected=plugged, shore_source="gpio"))
        for at, reasons in printer:
            recorder.add_printer(start + at * HOUR, PrinterSnapshot(state="stopped", reasons=reasons))
        visit = recorder.finish(Departed(end, start, lat, lon, site), self.stamp(end + 10))
        self.send("stops/visit", visit.to_dict(), end + 10)
        return end


def shore_ok(hours: float) -> list[tuple[float, bool]]:
    return [(h / 4, True) for h in range(int(hours * 4) + 1)]


def build_fleet(store: Store) -> None:
    """Store the whole two-day fleet (module docstring) in ``store``."""
    ingest = Ingest(store, Schemas())
    a = Bus(ingest, "bus-tdc-01", "boot-a1", DAY1)
    t = 1000.0 + 2 * HOUR  # 09:00Z
    t = a.visit(
        POSTE, t, 3,
        readings=[orange(-95), orange(-97), orange(-99)],
        runs=[(suite(t + 600 + i * 3000, 12, 3, 45), None) for i in range(3)],
        shore=shore_ok(3), printer=[(1.25, ("media-empty-error",)), (1.5, ())],
    )  # fmt: skip
    t += 0.5 * HOUR
    t = a.visit(
        XSS, t, 2,
        readings=[orange(-85, -9, 15)] * 2,
        runs=[(suite(t + 600 + i * 3000, 20, 5, 30), None) for i in range(2)],
        shore=shore_ok(2),
    )  # fmt: skip
    t += 0.5 * HOUR
    lost = [(0.0, True), (0.5, False), (0.5 + 40 / 60, True), (3.0, True)]
    t = a.visit(
        LIZAC, t, 3,
        readings=[orange(-108, -16, -2)] * 3,
        runs=[(suite(t + 600 + i * 3000, 1.0, 0.3, 120), None) for i in range(2)],
        shore=lost,
    )  # fmt: skip
    t += 0.5 * HOUR
    a.visit(
        LABASTIDE, t, 1,
        readings=[orange(-92)] * 2,
        runs=[(suite(t + 600, 6, 1.5, 60), LABASTIDE_LABEL)],
        shore=[(0.0, False), (1.0, False)],
    )  # fmt: skip

    b = Bus(ingest, "bus-tdc-02", "boot-b1", DAY2)
    t = 1000.0 + 2 * HOUR
    t = b.visit(
        POSTE, t, 3,
        readings=[sfr(-104), sfr(-106)],
        runs=[(suite(t + 600, 3, 1, 90), None), (suite(t + 3600, 3, 1, 90), POSTE_LABEL)],
        shore=shore_ok(3), printer=[(2.0, ("media-jam-error",))],
    )  # fmt: skip
    # A survey run before the bus counted as stopped: no stop id, the GPS says where.
    t += 0.5 * HOUR
    for i in range(-3, 4):
        b.gps(t + i * 30, *offset_m(*MOISSAC_AT, i * 2.0, 0.0))
    b.probe(suite(t, 5, 1, 70), sfr(-96), None, SCRIPT_LABEL)
    # Another one, inside Lizac's radius: a survey of a planned site.
    t += 0.5 * HOUR
    b.gps(t, *offset_m(LIZAC.lat, LIZAC.lon, 30.0, 0.0))
    b.probe(suite(t, 1.0, 0.3, 120), sfr(-109, -16, -2), None, LIZAC_LABEL)
    t += 0.5 * HOUR
    t = b.visit(LUNCH, t, 0.75, shore=[(0.0, False)])
    b.visit(None, t + HOUR, 0.5)  # confirmed by shore power, no position: no place
    b.probe(suite(t + 2 * HOUR, 8, 2, 50), sfr(-90), None, UNLOCATED_LABEL)  # no GPS fix near it
    b.send("stops/visit", {"site_id": 5, "probes": "broken"}, t + 3 * HOUR)
