"""Readable forms of the daemon's answers to `agentctl stops` (a table of visits) and `agentctl test`.

Pure functions over the JSON documents of docs/mqtt.md (``stops/visit`` and ``probes/result``).
Only :func:`probe_usable` imports the grading rules, which `agentctl test` alone needs.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping, Sequence
from typing import Any

from agent.json_words import age, figure, number, plural, table
from agent.render import device_line
from drivers.printer.reasons import describe_reasons

SITE_WIDTH = 34
_SHORE_WORDS = {"seen": "yes", "never": "NO", "unknown": "-"}


# -- stops ----------------------------------------------------------------------------------------


def stops_table(visits: Sequence[Any]) -> str:
    """One row per visit in the order given (newest first), with a footnote for unsynced clocks."""
    if not visits:
        return "no stop visits recorded yet"
    header = ("Site", "Arrived", "Departed", "Duration", "Shore power", "Grade", "Printer")
    rows = [_visit_row(_visit(v)) for v in visits]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]

    def line(row: Sequence[str]) -> str:
        return "  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[-1]])

    lines = [line(header), *(line(row) for row in rows)]
    if any("?" in row[1] or "?" in row[2] for row in rows):
        lines.append("? the clock was not synchronised yet: the time may be wrong")
    return "\n".join(lines)


def _visit(item: Any) -> Mapping[str, Any]:
    """A visit document; an outbox record around one is unwrapped."""
    item = table(item)
    return table(item["payload"]) if isinstance(item.get("payload"), dict) else item


def _visit_row(visit: Mapping[str, Any]) -> list[str]:
    site = str(visit.get("site_name") or visit.get("site_id") or "unknown place")
    if len(site) > SITE_WIDTH:
        site = site[: SITE_WIDTH - 1] + "…"
    arrived, arrival_day = _local(table(visit.get("arrival")))
    departed, departure_day = _local(table(visit.get("departure")))
    if arrival_day and arrival_day == departure_day:
        departed = departed.split(" ", 1)[-1]  # same day: the hour is enough
    duration = number(visit.get("duration_s"))
    return [
        site,
        arrived,
        departed,
        age(duration) if duration is not None else "-",
        _shore(table(visit.get("shore"))),
        str(visit.get("grade") or "unknown"),
        _printer(visit),
    ]


def _local(stamp: Mapping[str, Any]) -> tuple[str, str]:
    """("02/03 09:00", "02/03") in local time, "?" appended when the clock was unsynced."""
    try:
        moment = datetime.datetime.fromisoformat(str(stamp.get("wall"))).astimezone()
    except ValueError:
        return "-", ""
    mark = "?" if stamp.get("wall_source") == "unsynced" else ""
    day = moment.strftime("%d/%m")
    return f"{day} {moment:%H:%M}{mark}", day


def _shore(shore: Mapping[str, Any]) -> str:
    state = shore.get("state")
    if state == "lost":
        outages = int(number(shore.get("outages")) or 0)
        return f"LOST {age(number(shore.get('off_s')))}" + (f" ({outages}x)" if outages > 1 else "")
    return _SHORE_WORDS.get(str(state), "-")


def _printer(visit: Mapping[str, Any]) -> str:
    problems = [table(p).get("keyword") for p in visit.get("printer_problems") or []]
    words = describe_reasons(str(k) for k in problems if k)
    failures = int(number(visit.get("printer_read_failures")) or 0)
    if failures:
        words.append(f"{plural(failures, 'failed read')}")
    return ", ".join(words) or "-"


# -- test ------------------------------------------------------------------------------------------


def probe_usable(record: Mapping[str, Any]) -> tuple[bool | None, str]:
    """Could online procedures be done, by the same rule as the daemon (agent.core.grading.run_usable)?

    The daemon's own verdict is used when the record carries one; None when the record cannot be
    read back into a suite result.
    """
    if isinstance(record.get("usable"), bool):
        return record["usable"], str(record.get("usable_reason") or "")
    from agent.core.grading import run_usable

    try:
        return run_usable(suite_from_record(record))
    except (TypeError, ValueError) as exc:
        return None, f"the result could not be read back ({exc})"


def suite_from_record(record: Mapping[str, Any]) -> Any:
    """The SuiteResult a ``probes/result`` document was made from (extra keys such as stamp ignored)."""
    from agent.probes.results import DnsResult, HttpResult, LatencyResult, SuiteResult, ThroughputResult

    def build(cls: Any, data: Any) -> Any:
        if not isinstance(data, dict):
            raise TypeError(f"{cls.__name__}: expected an object, got {type(data).__name__}")
        names = {field.name for field in dataclasses.fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in names})

    throughput = record.get("throughput")
    return build(
        SuiteResult,
        {
            "started_mono_s": record.get("started_mono_s", 0.0),
            "finished_mono_s": record.get("finished_mono_s", 0.0),
            "latency": [build(LatencyResult, r) for r in record.get("latency") or []],
            "dns": [build(DnsResult, r) for r in record.get("dns") or []],
            "http": [build(HttpResult, r) for r in record.get("http") or []],
            "throughput": build(ThroughputResult, throughput) if throughput is not None else None,
            "radio": record.get("radio"),
            "stop_id": record.get("stop_id"),
        },
    )


def probe_report(record: Mapping[str, Any], usable: bool | None, reason: str, label: str | None) -> str:
    """The suite result a surveyor reads: each probe family on its own lines, the verdict last."""
    started, finished = number(record.get("started_mono_s")), number(record.get("finished_mono_s"))
    head = "Probe suite" + (f" at {label}" if label else "")
    if started is not None and finished is not None:
        head += f", {age(finished - started)}"
    lines = [head]
    lines += _section("Latency", [_latency(table(r)) for r in record.get("latency") or []])
    lines += _section("DNS", [_dns(table(r)) for r in record.get("dns") or []])
    lines += _section("Portals", [_http(table(r)) for r in record.get("http") or []])
    lines += _section("Speed", [_throughput(record.get("throughput"))])
    if isinstance(record.get("radio"), dict):
        lines += _section("Radio", [device_line("modem", record["radio"])])
    word = "USABLE" if usable else "UNKNOWN" if usable is None else "NOT USABLE"
    lines += ["", f"{word} for online procedures" + (f": {reason}" if reason else "")]
    return "\n".join(lines)


def _section(title: str, rows: list[str]) -> list[str]:
    rows = rows or ["none configured"]
    return [f"{title if i == 0 else '':<9}{row}" for i, row in enumerate(rows)]


def _failed(result: Mapping[str, Any]) -> str:
    return f"FAILED: {result.get('reason') or 'no reason given'}"


def _latency(result: Mapping[str, Any]) -> str:
    target = f"{result.get('target')} ({result.get('method')})"
    figures = [
        figure(result.get("rtt_median_ms"), "median {:.0f} ms"),
        figure(result.get("loss"), "loss {:.0f} %", 100),
    ]
    text = ", ".join(f for f in figures if f)
    if not result.get("ok", True) and result.get("reason"):
        text = ", ".join(p for p in (text, _failed(result)) if p)
    return f"{target}: {text or 'no answer'}"


def _dns(result: Mapping[str, Any]) -> str:
    name = str(result.get("name"))
    if not result.get("ok", True):
        return f"{name}: {_failed(result)}"
    return f"{name}: {figure(result.get('resolve_ms'), '{:.0f} ms') or 'resolved'}"


def _http(result: Mapping[str, Any]) -> str:
    url = str(result.get("url"))
    if not result.get("ok", True):
        status = f"HTTP {result['status']}, " if result.get("status") is not None else ""
        return f"{url}: {status}{_failed(result)}"
    fetched = figure(result.get("fetch_ms"), "fetched in {:.0f} ms")
    return f"{url}: HTTP {result.get('status')}" + (f", {fetched}" if fetched else "")


def _throughput(result: Any) -> str:
    if not isinstance(result, dict):
        return "not run (data budget or schedule)"
    figures = [
        figure(result.get("down_bps"), "down {:.1f} Mbit/s", 1e-6),
        figure(result.get("up_bps"), "up {:.1f} Mbit/s", 1e-6),
    ]
    text = ", ".join(f for f in figures if f)
    if not result.get("ok", True):
        text = ", ".join(p for p in (text, _failed(result)) if p)
    return text or "nothing measured"
