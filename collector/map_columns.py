"""What the planners read of a site, worded once: the columns of stops.csv, stops.geojson and the
HTML table, and the lines of a site's popup.

A :class:`Column` gives a site's value in the units its name says (GeoJSON properties and the CSV
use it) and the text a person reads (table cells). Per-operator signal columns are made from the
operators present, so a fleet on two networks gets both side by side.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from agent.core.grading import GRADE_MEANING, ONLINE_PROCEDURES
from collector.aggregate import SHORE_WORDS, SignalFigures, SiteFigures

Value = float | int | str | None
_K = TypeVar("_K", bound=str)

#: Names of the French networks by MCC-MNC (Arcep's allocations), for operators no radio snapshot
#: named; a name the modem reported wins.
KNOWN_OPERATORS = {"20801": "Orange", "20810": "SFR", "20815": "Free Mobile", "20820": "Bouygues Telecom"}

KIND_WORDS = {
    "planned": "planned site",
    "discovered": "place not in the plan",
    "candidate": "candidate site (surveyed)",
}


def plain(value: Value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return num(value)
    return str(value)


@dataclasses.dataclass(frozen=True)
class Column:
    key: str  # GeoJSON property name
    header: str  # CSV and table header, with the unit
    value: Callable[[SiteFigures], Value]
    text: Callable[[Value], str] = plain


def num(value: float) -> str:
    """3 significant figures, no exponent: 0.8, 12.3, 125, -112."""
    if not math.isfinite(value):
        return str(value)
    text = f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"
    return "0" if text == "-0" else text


def rounded(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def mbps(bps: float | None) -> float | None:
    return None if bps is None else round(bps / 1e6, 2)


def pct(share: float | None) -> float | None:
    return None if share is None else round(share * 100, 1)


def local_time(iso: str | None) -> str:
    """ "2026-03-02 13:30" in the local time of the machine writing the maps (planners' time)."""
    if not iso:
        return ""
    try:
        moment = datetime.datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return iso
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.astimezone().strftime("%Y-%m-%d %H:%M")


def operator_label(code: str | None, names: dict[str, str]) -> str:
    if code is None:
        return "unknown operator"
    name = names.get(code) or KNOWN_OPERATORS.get(code)
    return f"{code} {name}" if name else code


def _key_part(text: str | None) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text or "unknown").strip("_") or "unknown"


# -- columns -------------------------------------------------------------------------------------------


def columns(sites: Sequence[SiteFigures], names: dict[str, str]) -> list[Column]:
    """Every column of stops.csv and stops.geojson, per-operator signal columns included."""
    fixed = [
        Column("id", "site id", lambda s: s.site_id or s.key),
        Column("name", "name", lambda s: s.name),
        Column("kind", "kind", lambda s: KIND_WORDS[s.kind]),
        Column("grade", "connectivity grade", lambda s: s.grade),
        Column("grade_reason", "why this grade", lambda s: s.grade_reason),
        Column("visits", "visits", lambda s: s.visits),
        Column("last_visit", "last visit", lambda s: local_time(s.last_visit)),
        Column("first_visit", "first visit", lambda s: local_time(s.first_visit)),
        Column("vehicles", "vehicles", lambda s: ", ".join(s.vehicles)),
        Column("visit_grades", "grades of the visits", lambda s: counts_text(s.visit_grades)),
        Column("probe_runs", "probe runs", lambda s: s.runs),
        Column("usable_pct", f"runs usable for {ONLINE_PROCEDURES.name} (%)", lambda s: pct(s.usable_share)),
        Column("latency_ms", "median latency (ms)", lambda s: rounded(s.rtt_ms)),
        Column("loss_pct", "median loss (%)", lambda s: pct(s.loss)),
        Column("dns_ms", "median DNS time (ms)", lambda s: rounded(s.dns_ms)),
        Column("portal_fetch_ms", "median portal fetch (ms)", lambda s: rounded(s.fetch_ms)),
        Column("down_mbps", "median download (Mbit/s)", lambda s: mbps(s.down_bps)),
        Column("up_mbps", "median upload (Mbit/s)", lambda s: mbps(s.up_bps)),
        Column("main_operator", "main operator", lambda s: operator_label(s.main_operator, names)),
    ]
    fixed += _signal_columns(sites, names)
    fixed += [
        Column(f"shore_{_key_part(w)}", f"shore power {w} (visits)", _shore(w)) for w in SHORE_WORDS.values()
    ]
    fixed += [
        Column("shore_off_min", "shore power off while parked (min)", lambda s: round(s.shore_off_s / 60)),
        Column("printer_visits", "visits with a printer incident", lambda s: s.printer_visits),
        Column("printer_incidents", "printer incidents", lambda s: counts_text(s.printer)),
        Column("surveys", "survey runs (agentctl test --label)", lambda s: s.surveys),
        Column("labels", "survey labels", lambda s: " | ".join(s.labels)),
        Column("lat", "latitude", lambda s: None if s.lat is None else round(s.lat, 6)),
        Column("lon", "longitude", lambda s: None if s.lon is None else round(s.lon, 6)),
    ]
    return fixed


def _shore(word: str) -> Callable[[SiteFigures], Value]:
    return lambda site: site.shore.get(word, 0)


def _signal_columns(sites: Sequence[SiteFigures], names: dict[str, str]) -> list[Column]:
    groups = sorted(
        {(s.operator, s.rat) for site in sites for s in site.signal}, key=lambda g: (g[0] or "", g[1] or "")
    )
    found: list[Column] = []
    for operator, rat in groups:
        suffix = f"{_key_part(operator)}_{_key_part(rat)}"
        label = f"{operator_label(operator, names)} {rat or ''}".strip()
        for figure, unit in (("rsrp", "dBm"), ("rsrq", "dB"), ("sinr", "dB")):
            for which, word in (("", "median"), ("_min", "min")):
                attr = f"{figure}{which}_{unit.lower()}"
                found.append(
                    Column(
                        f"{figure}{which}_{unit.lower()}_{suffix}",
                        f"{label} {figure.upper()} {word} ({unit})",
                        _signal_value(operator, rat, attr),
                    )
                )
    return found


def _signal_value(operator: str | None, rat: str | None, attr: str) -> Callable[[SiteFigures], Value]:
    def value(site: SiteFigures) -> Value:
        group = next((s for s in site.signal if (s.operator, s.rat) == (operator, rat)), None)
        return None if group is None else rounded(getattr(group, attr))

    return value


def table_columns(names: dict[str, str]) -> list[Column]:
    """The HTML table: what a planner compares sites by; everything else is in the popup and files."""
    return [
        Column("name", "site", lambda s: s.name or s.site_id or "(unnamed place)"),
        Column("kind", "kind", lambda s: KIND_WORDS[s.kind]),
        Column("grade", "grade", lambda s: s.grade),
        Column(
            "usable_pct",
            "usable runs",
            lambda s: pct(s.usable_share),
            lambda v: "" if v is None else f"{plain(v)} %",
        ),
        Column("visits", "visits", lambda s: s.visits),
        Column("last_visit", "last visit", lambda s: local_time(s.last_visit)),
        Column("latency_ms", "latency", lambda s: rounded(s.rtt_ms), _unit("ms")),
        Column("down_mbps", "down", lambda s: mbps(s.down_bps), _unit("Mbit/s")),
        Column("up_mbps", "up", lambda s: mbps(s.up_bps), _unit("Mbit/s")),
        Column("signal", "signal (main operator)", lambda s: _main_signal_text(s, names)),
        Column("shore", "shore power", shore_text),
        Column("printer", "printer incidents", lambda s: counts_text(s.printer)),
    ]


def _unit(unit: str) -> Callable[[Value], str]:
    return lambda value: "" if value is None else f"{plain(value)} {unit}"


def _main_signal_text(site: SiteFigures, names: dict[str, str]) -> str:
    group = next(
        (s for s in site.signal if s.operator == site.main_operator and s.rsrp_dbm is not None), None
    )
    if group is None:
        return ""
    return f"{operator_label(group.operator, names)}: RSRP {num(group.rsrp_dbm or 0.0)} dBm ({group.quality})"


def counts_text(counts: Mapping[_K, int]) -> str:
    return ", ".join(f"{word} {count}" for word, count in counts.items() if count)


def shore_text(site: SiteFigures) -> str:
    text = counts_text(site.shore)
    if site.shore.get("failed") and site.shore_off_s > 0:
        text += f" (off {num(site.shore_off_s / 60)} min in all)"
    return text


# -- the popup -----------------------------------------------------------------------------------------


def popup_lines(site: SiteFigures, names: dict[str, str]) -> list[tuple[str, str]]:
    """(label, text) pairs shown in a site's popup, all figures of the site."""
    lines = [
        ("Grade", f"{site.grade}: {site.grade_reason}"),
        ("Means", GRADE_MEANING[site.grade]),
        ("Site", f"{site.site_id or site.key} ({KIND_WORDS[site.kind]})"),
        ("Visits", _visits_text(site)),
    ]
    if site.visit_grades:
        lines.append(("Visit grades", counts_text(site.visit_grades)))
    if site.runs:
        lines.append(
            (
                "Probe runs",
                f"{site.runs}, {plain(pct(site.usable_share))} % usable for {ONLINE_PROCEDURES.name}",
            )
        )
    for label, value, unit in (
        ("Latency", rounded(site.rtt_ms), "ms"),
        ("Loss", pct(site.loss), "%"),
        ("DNS", rounded(site.dns_ms), "ms"),
        ("Portal fetch", rounded(site.fetch_ms), "ms"),
        ("Download", mbps(site.down_bps), "Mbit/s"),
        ("Upload", mbps(site.up_bps), "Mbit/s"),
    ):
        if value is not None:
            lines.append((label, f"{plain(value)} {unit} (median)"))
    lines += [
        (f"Signal {operator_label(s.operator, names)} {s.rat or ''}".strip(), signal_text(s))
        for s in site.signal
    ]
    lines += [
        (
            f"Portal {p.url}",
            f"{plain(rounded(p.fetch_ms))} ms median, {p.failures} of {p.fetches} fetches failed",
        )
        for p in site.portals
    ]
    lines.append(("Shore power", shore_text(site) or "no visit"))
    lines.append(("Printer", counts_text(site.printer) or "no incident"))
    if site.labels:
        lines.append(("Surveyed as", " | ".join(site.labels)))
    return lines


def _visits_text(site: SiteFigures) -> str:
    if not site.visits:
        return "none" + (f" ({site.surveys} survey runs)" if site.surveys else "")
    text = f"{site.visits}, last {local_time(site.last_visit) or 'unknown'}"
    if site.first_visit:
        text += f", first {local_time(site.first_visit)}"
    return f"{text}; by {', '.join(site.vehicles)}"


def signal_text(group: SignalFigures) -> str:
    parts = []
    for name, median, low, unit in (
        ("RSRP", group.rsrp_dbm, group.rsrp_min_dbm, "dBm"),
        ("RSRQ", group.rsrq_db, group.rsrq_min_db, "dB"),
        ("SINR", group.sinr_db, group.sinr_min_db, "dB"),
    ):
        if median is not None:
            parts.append(f"{name} {num(median)} {unit} (min {num(low if low is not None else median)})")
    return f"{', '.join(parts) or 'no LTE figures'}: {group.quality}, {group.samples} readings"
