"""`agentctl status`: the checks, the verdict and the one screen derived from the daemon's status object.

Pure functions over the status dict of docs/control.md: no I/O, no clock. Every rule is in
:data:`RULES` with the reason for its level; the evaluation below only decides which apply.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, NamedTuple

from agent.json_words import age, figure, number, plural, share, table
from agent.render import device_line, format_duration
from drivers.printer.reasons import describe_reasons, problem_keyword, split_reason

Level = Literal["ok", "warning", "critical"]

# NamedTuples rather than dataclasses: importing dataclasses (and inspect behind it) was a fifth of
# the CPU `agentctl status` spent before its first request (bench/agentctl_status.py).


class Rule(NamedTuple):
    level: Level
    why: str


#: Every rule, with the reason for its level. Critical: the box has stopped doing its job and
#: needs a technician now. Warning: something is missing or degraded, the rest keeps working.
_RULE_TABLE: tuple[tuple[str, Level, str], ...] = (
    # rule                        level       why this level
    ("worker-stalled",             "critical", "a stalled worker no longer reads its device, detects stops "
                                               "or runs the loop, and only a restart brings it back"),
    ("publisher-down",             "critical", "with the publisher stopped nothing leaves the box until "
                                               "busagent restarts"),
    ("modem-unregistered",         "critical", "without a network nothing is uploaded, no probe can run and "
                                               "the agents in the bus have no internet"),
    ("outbox-near-cap",            "critical", "at its disk cap the outbox deletes telemetry to make room: "
                                               "data is being lost or is about to be"),
    ("mqtt-not-configured",        "warning",  "nothing is lost, but records stay on the box and planners "
                                               "see nothing"),
    ("mqtt-disconnected",          "warning",  "records wait in the outbox until the broker is reachable; "
                                               "normal in a dead zone"),
    ("backlog-stuck",              "warning",  "connected, yet records are not confirmed: the collector may "
                                               "be down; records are kept and resent, but arrive late"),
    ("outbox-dropped",             "warning",  "records were deleted under the disk cap: the maps have gaps, "
                                               "newer data still flows"),
    ("device-failing",             "warning",  "a failing device never stops the daemon, but its readings "
                                               "are missing"),
    ("device-silent",              "warning",  "a configured device still unread long after start: its "
                                               "worker may be stuck"),
    ("modem-registration-unknown", "warning",  "the modem does not say whether it is on a network"),
    ("gps-no-fix",                 "warning",  "without a fix stops are neither detected nor located; "
                                               "normal under a roof"),
    ("shore-missing",              "warning",  "standing without shore power runs the PCs and printer from "
                                               "the house battery; normal while moving, so not checked then"),
    ("printer-problem",            "warning",  "the public waits at the desk for its prints; the crew can "
                                               "usually fix paper, jams and covers"),
    ("probe-unusable",             "warning",  "online procedures cannot be done reliably on this link; the "
                                               "link is at fault, not the box"),
    ("status-version",             "warning",  "this agentctl may misread another version of the status"),
)  # fmt: skip
RULES: dict[str, Rule] = {key: Rule(level, why) for key, level, why in _RULE_TABLE}

STATUS_VERSION = 1
#: Share of the outbox cap past which thinning is imminent (the outbox thins at the cap itself).
NEAR_CAP_SHARE = 0.9
#: A device gets a few poll periods after start before its silence counts.
NO_READING_GRACE_S = 120.0
#: How long a connected link may leave a record unconfirmed: the agent resends after 120 s and the
#: collector acks in seconds, so half an hour means the loop is broken, not slow.
BACKLOG_STUCK_S = 30 * 60.0
#: IPP keywords that stop printing whatever their severity suffix (some printers send media-empty-report).
STOPS_PRINTING = frozenset({"media-empty", "media-needed", "media-jam"})
REGISTERED = frozenset({"home", "roaming"})
STANDING = frozenset({"halted", "parked"})

LEVEL_ORDER: tuple[Level, ...] = ("ok", "warning", "critical")
EXIT_CODES: dict[Level, int] = {"ok": 0, "warning": 1, "critical": 2}
#: The daemon could not be asked: agentctl's own code (Nagios "unknown").
EXIT_UNREACHABLE = 3


class Check(NamedTuple):
    level: Level
    subject: str
    text: str
    rule: str | None = None  # key in RULES; None for an ok check


class Verdict(NamedTuple):
    level: Level
    exit_code: int
    text: str


def _hit(rule: str, subject: str, text: str) -> Check:
    return Check(RULES[rule].level, subject, text, rule)


# -- evaluation -------------------------------------------------------------------------------------


def evaluate(status: Mapping[str, Any]) -> list[Check]:
    """Every check, worst first; an area without a problem gives one ok check."""
    checks: list[Check] = []
    if status.get("v") != STATUS_VERSION:
        checks.append(_hit("status-version", "status", f"status version {status.get('v')!r}, expected 1"))
    uptime = number(status.get("uptime_s")) or 0.0
    for name, entry in table(status.get("devices")).items():
        checks += _or_ok(name, _device_checks(name, table(entry), status, uptime), "reading normally")
    checks += _or_ok("mqtt", _mqtt_checks(status.get("mqtt"), table(status.get("outbox"))), "publishing")
    if status.get("outbox") is not None:
        checks += _or_ok(
            "outbox", _outbox_checks(table(status.get("outbox"))), "within its cap, nothing dropped"
        )
    checks += _or_ok("workers", _worker_checks(table(status.get("workers"))), "all progressing")
    if isinstance(status.get("last_probe"), dict):
        checks += _or_ok("probe", _probe_checks(status["last_probe"]), "last run usable")
    return sorted(checks, key=lambda check: -LEVEL_ORDER.index(check.level))


def _or_ok(subject: str, found: list[Check], ok_text: str) -> list[Check]:
    return found or [Check("ok", subject, ok_text)]


def _device_checks(
    name: str, entry: Mapping[str, Any], status: Mapping[str, Any], uptime: float
) -> list[Check]:
    ok = entry.get("ok")
    snap = table(entry.get("snapshot"))
    if ok is None:
        if uptime > NO_READING_GRACE_S:
            return [_hit("device-silent", name, f"not read yet, {age(uptime)} after start")]
        return []
    if not ok:
        since = number(entry.get("failing_for_s"))
        when = f" for {age(since)}" if since is not None else ""
        return [
            _hit("device-failing", name, f"read failing{when}: {entry.get('reason') or 'no reason given'}")
        ]
    found = [_hit("device-failing", name, f"partly read: {entry['reason']}")] if entry.get("reason") else []
    specific = _SPECIFIC.get(name)
    return found + (specific(snap, status) if specific else [])


def _modem_checks(snap: Mapping[str, Any], status: Mapping[str, Any]) -> list[Check]:
    registration = snap.get("registration") or "unknown"
    if registration in REGISTERED:
        return []
    if registration == "unknown":
        return [_hit("modem-registration-unknown", "modem", "registration unknown")]
    return [_hit("modem-unregistered", "modem", f"not registered to a network ({registration})")]


def _gps_checks(snap: Mapping[str, Any], status: Mapping[str, Any]) -> list[Check]:
    if (number(snap.get("fix_mode")) or 0) >= 2:
        return []
    return [_hit("gps-no-fix", "gps", "no position fix")]


def _power_checks(snap: Mapping[str, Any], status: Mapping[str, Any]) -> list[Check]:
    state = table(status.get("stop")).get("state")
    if snap.get("shore_connected") is False and state in STANDING:
        where = "parked" if state == "parked" else "standing still"
        return [_hit("shore-missing", "power", f"shore power NOT connected while {where}")]
    return []


def _printer_checks(snap: Mapping[str, Any], status: Mapping[str, Any]) -> list[Check]:
    reasons = [str(r) for r in snap.get("reasons") or []]
    wanted = [r for r in reasons if problem_keyword(r) or split_reason(r)[0] in STOPS_PRINTING]
    words = describe_reasons(wanted)
    if snap.get("state") == "stopped" and not words:
        words.append("stopped")
    if snap.get("accepting_jobs") is False:
        words.append("not accepting jobs")
    return [_hit("printer-problem", "printer", ", ".join(words))] if words else []


_SPECIFIC: dict[str, Callable[[Mapping[str, Any], Mapping[str, Any]], list[Check]]] = {
    "modem": _modem_checks,
    "gps": _gps_checks,
    "power": _power_checks,
    "printer": _printer_checks,
}


def _mqtt_checks(mqtt: Any, outbox: Mapping[str, Any]) -> list[Check]:
    if mqtt is None:
        return [_hit("mqtt-not-configured", "mqtt", "not configured: records stay on the box")]
    mqtt = table(mqtt)
    if mqtt.get("running") is False:
        return [_hit("publisher-down", "mqtt", "publisher not running")]
    if not mqtt.get("connected"):
        error = mqtt.get("last_error")
        return [
            _hit("mqtt-disconnected", "mqtt", "not connected to the broker" + (f": {error}" if error else ""))
        ]
    oldest = number(outbox.get("oldest_pending_age_s"))
    if oldest is not None and oldest > BACKLOG_STUCK_S:
        return [_hit("backlog-stuck", "mqtt", f"connected, but the oldest record has waited {age(oldest)}")]
    return []


def _outbox_checks(outbox: Mapping[str, Any]) -> list[Check]:
    found = []
    used, cap = number(outbox.get("bytes_used")), number(outbox.get("cap_bytes"))
    if used is not None and cap and used >= NEAR_CAP_SHARE * cap:
        found.append(_hit("outbox-near-cap", "outbox", f"{share(used, cap)} of its disk cap used"))
    dropped = number(outbox.get("dropped_total")) or 0
    if dropped > 0:
        found.append(_hit("outbox-dropped", "outbox", f"{dropped:.0f} records dropped under the disk cap"))
    return found


def _worker_checks(workers: Mapping[str, Any]) -> list[Check]:
    stalled = {name: table(w) for name, w in workers.items() if table(w).get("stalled")}
    return [
        _hit(
            "worker-stalled",
            "workers",
            f"{name} stalled: no progress for {age(number(w.get('progress_age_s')))}",
        )
        for name, w in stalled.items()
    ]


def _probe_checks(probe: Mapping[str, Any]) -> list[Check]:
    if probe.get("usable") is False:
        reason = probe.get("usable_reason") or "no reason given"
        return [_hit("probe-unusable", "probe", f"last run not usable: {reason}")]
    return []


def verdict(checks: Iterable[Check]) -> Verdict:
    """The worst level, its exit code and one line: the worst problem and how many more there are."""
    problems = [check for check in checks if check.level != "ok"]
    if not problems:
        return Verdict("ok", EXIT_CODES["ok"], "OK: all systems normal")
    worst = max(problems, key=lambda check: LEVEL_ORDER.index(check.level))
    text = f"{worst.level.upper()}: {worst.subject}: {worst.text}"
    others = [check.level for check in problems if check is not worst]
    counts = [f"+{others.count(level)} {level}" for level in ("critical", "warning") if level in others]
    if counts:
        text += f" ({', '.join(counts)})"
    return Verdict(worst.level, EXIT_CODES[worst.level], text)


# -- the screen ---------------------------------------------------------------------------------------

_COLOURS: dict[Level, str] = {"ok": "\x1b[32m", "warning": "\x1b[33;1m", "critical": "\x1b[31;1m"}
_RESET = "\x1b[0m"
_DEVICE_ORDER = ("gps", "modem", "power", "printer", "system")


def render(status: Mapping[str, Any], checks: list[Check], colour: bool) -> str:
    """The one screen: header, one line per area, the problems, and the verdict last."""
    worst: dict[str, Level] = {}
    for check in checks:
        if LEVEL_ORDER.index(check.level) > LEVEL_ORDER.index(worst.get(check.subject, "ok")):
            worst[check.subject] = check.level

    def row(label: str, subject: str, text: str) -> str:
        head = f"{label:<9}"
        level = worst.get(subject, "ok")
        return f"{_paint(head, level, colour and level != 'ok')}{text}"

    lines = [_header(status)]
    devices = table(status.get("devices"))
    for name in sorted(devices, key=lambda n: (*_DEVICE_ORDER, n).index(n)):
        lines.append(
            row(name.capitalize() if name != "gps" else "GPS", name, _device_text(name, devices[name]))
        )
    lines.append(row("MQTT", "mqtt", _mqtt_text(status.get("mqtt"))))
    if status.get("outbox") is not None:
        lines.append(row("Backlog", "outbox", _outbox_text(table(status.get("outbox")))))
    lines.append(row("Stop", "stop", _stop_text(table(status.get("stop")))))
    lines.append(row("Probe", "probe", _probe_text(status.get("last_probe"))))
    lines.append(row("Workers", "workers", _workers_text(table(status.get("workers")))))
    problems = [check for check in checks if check.level != "ok"]
    if problems:
        lines.append("")
        lines += [
            f"  {_paint(f'{c.level.upper():<8}', c.level, colour)} {c.subject}: {c.text}" for c in problems
        ]
    result = verdict(checks)
    lines += ["", _paint(result.text, result.level, colour)]
    return "\n".join(lines)


def _paint(text: str, level: Level, colour: bool) -> str:
    return f"{_COLOURS[level]}{text}{_RESET}" if colour else text


def _header(status: Mapping[str, Any]) -> str:
    parts = [f"busagent {status.get('vehicle_id') or '(no vehicle id)'}"]
    if status.get("version"):
        parts.append(f"version {status['version']}")
    if status.get("pid") is not None:
        parts.append(f"pid {status['pid']}")
    uptime = number(status.get("uptime_s"))
    if uptime is not None:
        parts.append(f"up {format_duration(uptime)}")
    wall = number(status.get("now_wall"))
    if wall is not None:
        clock = datetime.datetime.fromtimestamp(wall).astimezone().strftime("%Y-%m-%d %H:%M %Z")
        parts.append(f"clock {clock} ({status.get('time_source') or 'source unknown'})")
    return "  ".join(parts)


def _device_text(name: str, entry: Any) -> str:
    entry = table(entry)
    if entry.get("ok") is None:
        return "no reading yet"
    if not entry.get("ok"):
        since = number(entry.get("failing_for_s"))
        when = f" for {age(since)}" if since is not None else ""
        return f"FAILED{when}: {entry.get('reason') or 'no reason given'}"
    snap = dict(table(entry.get("snapshot")))
    snap.setdefault("ok", True)
    return device_line(name, snap)


def _mqtt_text(mqtt: Any) -> str:
    if mqtt is None:
        return "not configured: records stay on the box"
    mqtt = table(mqtt)
    broker = mqtt.get("broker") or "the broker"
    protocol = f" (MQTT {mqtt['protocol']})" if mqtt.get("protocol") else ""
    if mqtt.get("running") is False:
        head = f"publisher NOT running ({broker})"
    elif mqtt.get("connected"):
        head = f"connected to {broker}{protocol}"
    else:
        error = mqtt.get("last_error")
        head = f"NOT connected to {broker}" + (f": {error}" if error else "")
    ack = number(mqtt.get("last_ack_age_s"))
    tail = f"last ack {age(ack)} ago" if ack is not None else "no ack yet in this run"
    return f"{head}; {tail}"


def _outbox_text(outbox: Mapping[str, Any]) -> str:
    pending = int(number(outbox.get("pending")) or 0)
    parts = [f"{plural(pending, 'record')} waiting"]
    unacked = int(number(outbox.get("sent_unacked")) or 0)
    if unacked:
        parts[0] += f" + {unacked} sent, not yet confirmed"
    oldest = number(outbox.get("oldest_pending_age_s"))
    if oldest is not None and pending:
        parts.append(f"oldest {age(oldest)}")
    parts.append(f"{int(number(outbox.get('dropped_total')) or 0)} dropped")
    used, cap = number(outbox.get("bytes_used")), number(outbox.get("cap_bytes"))
    if used is not None and cap:
        parts.append(f"{used / 1e6:.1f} of {cap / 1e6:.0f} MB ({share(used, cap)})")
    return ", ".join(parts)


def _stop_text(stop: Mapping[str, Any]) -> str:
    state = stop.get("state")
    if state == "moving":
        return "moving"
    if state == "halted":
        return "standing still (not a stop yet)"
    if state != "parked":
        return "unknown"
    place = stop.get("site_name") or "an unlisted place"
    if stop.get("site_id"):
        place += f" ({stop['site_id']})"
    arrived = number(stop.get("arrived_age_s"))
    return f"parked at {place}" + (f" for {age(arrived)}" if arrived is not None else "")


def _probe_text(probe: Any) -> str:
    if not isinstance(probe, dict):
        return "none yet in this run"
    why = ", ".join(str(p) for p in (probe.get("reason"), probe.get("label")) if p)
    head = f"{age(number(probe.get('age_s')))} ago" + (f" ({why})" if why else "")
    usable = {True: "usable", False: "NOT usable"}.get(probe["usable"], "?") if "usable" in probe else "?"
    figures = [
        figure(probe.get("rtt_ms"), "rtt {:.0f} ms"),
        figure(probe.get("loss"), "loss {:.0f} %", 100),
        figure(probe.get("down_mbps"), "down {:.1f} Mbit/s"),
        figure(probe.get("up_mbps"), "up {:.1f} Mbit/s"),
    ]
    text = f"{head}: {usable}; " + (", ".join(f for f in figures if f) or "no figures")
    failures = [str(f) for f in probe.get("failures") or []]
    if failures:
        text += f"; {plural(len(failures), 'failure')}: {failures[0]}"
    return text


def _workers_text(workers: Mapping[str, Any]) -> str:
    stalled = [name for name, w in workers.items() if table(w).get("stalled")]
    if stalled:
        return f"{len(workers)} workers, STALLED: {', '.join(stalled)}"
    return f"{len(workers)} workers, all progressing" if workers else "none reported"
