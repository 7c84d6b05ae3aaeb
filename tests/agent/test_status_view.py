"""`agentctl status` checks and screen: realistic status objects in, levels, words and exit codes out."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from agent import status_view
from agent.status_view import RULES, Check, evaluate, render, verdict
from tests.agent.control_peer import CannedDaemon, healthy_status, ok_line, short_dir


def problems(status: dict[str, Any]) -> list[Check]:
    return [check for check in evaluate(status) if check.level != "ok"]


def only_problem(status: dict[str, Any]) -> Check:
    found = problems(status)
    assert len(found) == 1, found
    return found[0]


def snap(status: dict[str, Any], device: str) -> dict[str, Any]:
    snapshot: dict[str, Any] = status["devices"][device]["snapshot"]
    return snapshot


def test_a_healthy_parked_bus_is_ok_with_exit_0() -> None:
    checks = evaluate(healthy_status())
    assert {check.level for check in checks} == {"ok"}
    assert {check.subject for check in checks} >= {
        "gps",
        "modem",
        "power",
        "printer",
        "mqtt",
        "outbox",
        "workers",
    }
    result = verdict(checks)
    assert (result.level, result.exit_code, result.text) == ("ok", 0, "OK: all systems normal")


@pytest.mark.parametrize("state", ["parked", "halted"])
def test_standing_without_shore_power_is_a_warning(state: str) -> None:
    status = healthy_status()
    status["stop"] = {"state": state, "site_id": None, "site_name": None, "arrived_age_s": None}
    snap(status, "power")["shore_connected"] = False
    check = only_problem(status)
    assert (check.level, check.subject, check.rule) == ("warning", "power", "shore-missing")
    assert "shore power NOT connected" in check.text
    assert verdict(evaluate(status)).exit_code == 1


def test_moving_without_shore_power_is_normal() -> None:
    status = healthy_status()
    status["stop"] = {"state": "moving", "site_id": None, "site_name": None, "arrived_age_s": None}
    snap(status, "power")["shore_connected"] = False
    snap(status, "gps")["speed_mps"] = 13.9
    assert problems(status) == []


@pytest.mark.parametrize(
    ("reasons", "words"),
    [
        (["media-empty-error"], "out of paper"),
        (["media-empty"], "out of paper"),
        (["media-empty-report"], "out of paper"),  # some printers report it, it still stops printing
        (["media-needed-warning"], "out of paper"),
        (["media-jam-error"], "paper jam"),
        (["offline-report"], "offline"),
        (["cover-open-error", "toner-low-warning"], "cover open, toner low"),
    ],
)
def test_printer_problems_are_warnings_in_plain_words(reasons: list[str], words: str) -> None:
    status = healthy_status()
    snap(status, "printer").update(state="stopped", reasons=reasons)
    check = only_problem(status)
    assert (check.level, check.subject, check.text) == ("warning", "printer", words)


def test_a_printer_report_that_needs_nobody_is_not_a_problem() -> None:
    status = healthy_status()
    snap(status, "printer")["reasons"] = ["media-low-report", "none"]
    assert problems(status) == []


def test_a_printer_refusing_jobs_is_a_warning() -> None:
    status = healthy_status()
    snap(status, "printer")["accepting_jobs"] = False
    assert only_problem(status).text == "not accepting jobs"


def test_a_failing_device_read_is_a_warning_with_its_reason_and_duration() -> None:
    status = healthy_status()
    status["devices"]["printer"].update(
        ok=False, reason="printer: connection refused by 192.168.1.40:631", failing_for_s=200.0
    )
    check = only_problem(status)
    assert (check.level, check.subject, check.rule) == ("warning", "printer", "device-failing")
    assert check.text == "read failing for 3m 20s: printer: connection refused by 192.168.1.40:631"


def test_a_modem_read_failure_is_a_warning_not_a_registration_verdict() -> None:
    status = healthy_status()
    status["devices"]["modem"].update(ok=False, reason="modem: no answer within 2.0 s", failing_for_s=45.0)
    check = only_problem(status)
    assert (check.level, check.text) == ("warning", "read failing for 45 s: modem: no answer within 2.0 s")


def test_a_device_never_read_long_after_start_is_a_warning_but_not_just_after_start() -> None:
    status = healthy_status()
    status["devices"]["power"].update(ok=None, snapshot=None, reads=0)
    assert only_problem(status).rule == "device-silent"
    status["uptime_s"] = 5.0
    assert problems(status) == []


@pytest.mark.parametrize("registration", ["searching", "not-registered", "denied", "emergency-only"])
def test_a_modem_not_registered_is_critical(registration: str) -> None:
    status = healthy_status()
    snap(status, "modem").update(
        registration=registration, rsrp_dbm=None, rsrq_db=None, sinr_db=None, quality="none"
    )
    check = only_problem(status)
    assert (check.level, check.subject) == ("critical", "modem")
    assert registration in check.text
    assert verdict(evaluate(status)).exit_code == 2


def test_a_stalled_worker_is_critical_and_named() -> None:
    status = healthy_status()
    status["workers"]["poll-gps"] = {"progress_age_s": 95.0, "stalled": True}
    check = only_problem(status)
    assert (check.level, check.subject, check.text) == (
        "critical",
        "workers",
        "poll-gps stalled: no progress for 1m 35s",
    )


def test_a_publisher_not_running_is_critical() -> None:
    status = healthy_status()
    status["mqtt"].update(running=False, connected=False)
    check = only_problem(status)
    assert (check.level, check.subject, check.rule) == ("critical", "mqtt", "publisher-down")


def test_no_mqtt_section_is_a_warning_that_records_stay_on_the_box() -> None:
    status = healthy_status()
    status["mqtt"] = None
    check = only_problem(status)
    assert (check.level, check.text) == ("warning", "not configured: records stay on the box")


def test_a_lost_broker_is_a_warning_with_the_last_error() -> None:
    status = healthy_status()
    status["mqtt"].update(connected=False, last_error="connection refused")
    assert only_problem(status).text == "not connected to the broker: connection refused"


def test_a_backlog_not_draining_while_connected_is_a_warning() -> None:
    status = healthy_status()
    status["outbox"]["oldest_pending_age_s"] = 3 * 3600.0
    assert only_problem(status).rule == "backlog-stuck"


def test_dropped_records_are_a_warning_and_a_nearly_full_outbox_critical() -> None:
    status = healthy_status()
    status["outbox"]["dropped_total"] = 120
    assert only_problem(status).text == "120 records dropped under the disk cap"
    status["outbox"].update(dropped_total=0, bytes_used=190_000_000)
    check = only_problem(status)
    assert (check.level, check.text) == ("critical", "95 % of its disk cap used")


def test_an_unusable_last_probe_is_a_warning_with_its_reason() -> None:
    status = healthy_status()
    reason = "download 0.8 Mbit/s under the 2 Mbit/s floor for online procedures"
    status["last_probe"].update(usable=False, usable_reason=reason, down_mbps=0.8)
    check = only_problem(status)
    assert (check.level, check.text) == ("warning", f"last run not usable: {reason}")


def test_the_verdict_names_the_worst_problem_and_counts_the_rest() -> None:
    status = healthy_status()
    status["mqtt"] = None
    snap(status, "printer")["reasons"] = ["media-jam-error"]
    snap(status, "modem")["registration"] = "searching"
    checks = evaluate(status)
    assert [check.level for check in checks[:3]] == ["critical", "warning", "warning"]
    result = verdict(checks)
    assert result.exit_code == 2
    assert result.text == "CRITICAL: modem: not registered to a network (searching) (+2 warning)"


def test_every_rule_is_warning_or_critical_with_a_reason() -> None:
    assert all(rule.level in ("warning", "critical") and len(rule.why) > 20 for rule in RULES.values())


def test_odd_fields_from_another_daemon_do_not_break_the_screen() -> None:
    status = healthy_status()
    status["v"] = 2
    status["devices"]["gps"]["snapshot"] = "garbage"
    status["outbox"]["pending"] = "many"
    status["workers"] = None
    checks = evaluate(status)
    assert checks[0].rule == "status-version"
    screen = render(status, checks, colour=False)
    assert screen.splitlines()[-1].startswith("WARNING: status:")


def test_the_screen_shows_every_area_in_plain_words_and_the_verdict_last() -> None:
    status = healthy_status()
    snap(status, "printer").update(state="stopped", reasons=["media-empty-error"])
    screen = render(status, evaluate(status), colour=False)
    lines = screen.splitlines()
    assert lines[0].startswith("busagent bus-tdc-01  version 0.1.0  pid 812  up 1h 30m")
    for expected in [
        "GPS      3D fix, 44.06120, 1.18230, 0.0 km/h, 9/12 satellites",
        "Modem    LTE, Orange F (20801), -88 dBm RSRP, -9.0 dB RSRQ, 14.0 dB SINR, signal good",
        "Power    shore power connected (gpio), 13.21 V battery, 93 %, charging",
        "Printer  stopped, out of paper",
        "MQTT     connected to mqtts://broker.example.org:8883 (MQTT 5); last ack 12 s ago",
        "Backlog  33 records waiting, oldest 41 s, 0 dropped",
        "Stop     parked at Salle des fêtes, Fajolles (fajolles-sdf) for 1h 00m",
        "Probe    5m 00s ago (interval): usable; rtt 48 ms, loss 0 %, down 11.2 Mbit/s, up 2.9 Mbit/s",
        "  WARNING  printer: out of paper",
    ]:
        assert any(line.startswith(expected) for line in lines), (expected, screen)
    assert lines[-1] == "WARNING: printer: out of paper"
    assert "\x1b[" not in screen


def test_colour_marks_problems_and_the_verdict_only_when_asked() -> None:
    status = healthy_status()
    status["workers"]["loop"]["stalled"] = True
    screen = render(status, evaluate(status), colour=True)
    assert screen.splitlines()[-1] == "\x1b[31;1mCRITICAL: workers: loop stalled: no progress for 0 s\x1b[0m"
    assert "\x1b[31;1mWorkers  \x1b[0m" in screen
    assert "\x1b[31;1mGPS" not in screen  # areas without a problem stay plain
    healthy = render(healthy_status(), evaluate(healthy_status()), colour=True)
    assert healthy.splitlines()[-1] == "\x1b[32mOK: all systems normal\x1b[0m"


def test_the_exit_codes_follow_the_nagios_convention() -> None:
    assert status_view.EXIT_CODES == {"ok": 0, "warning": 1, "critical": 2}
    assert status_view.EXIT_UNREACHABLE == 3


LEAN_RUN = """
import json, sys
from agent.ctl import main
code = main(["status", "--socket", sys.argv[1]])
print(json.dumps({"code": code, "modules": sorted(sys.modules)}), file=sys.stderr)
"""
HEAVY = (
    "paho",
    "serial",
    "structlog",
    "psutil",
    "jsonschema",
    "speedtest",
    "gpsd",
    "sqlite3",
    "agent.config",
)
WORD_TABLES = {"drivers", "drivers.printer", "drivers.printer.reasons"}


def test_agentctl_status_imports_no_driver_mqtt_or_logging_module() -> None:
    with short_dir() as directory:
        daemon = CannedDaemon(directory / "control.sock", lambda request: ok_line(healthy_status()))
        try:
            run = subprocess.run(
                [sys.executable, "-c", LEAN_RUN, str(daemon.path)],
                capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip
        finally:
            daemon.close()
    report = json.loads(run.stderr.strip().splitlines()[-1])
    assert report["code"] == 0, run.stdout + run.stderr
    assert "OK: all systems normal" in run.stdout
    modules: list[str] = report["modules"]
    heavy = [m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY)]
    assert heavy == []
    assert {m for m in modules if m.split(".")[0] == "drivers"} <= WORD_TABLES
