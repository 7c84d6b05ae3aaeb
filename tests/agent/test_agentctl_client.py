"""`agentctl status`, `stops` and `test` run as a technician runs them, against a real Unix socket.

The peer is tests.agent.control_peer.CannedDaemon: a real socket answering canned JSON lines,
standing in for the daemon so that every answer (and every way of not answering) can be chosen.
"""

from __future__ import annotations

import contextlib
import grp
import json
import os
import pty
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent import control_client
from agent.config import DEFAULT_PATH
from agent.control_client import ControlError, request
from agent.probes.results import DnsResult, HttpResult, LatencyResult, SuiteResult, ThroughputResult, to_dict
from tests.agent.control_peer import Answer, CannedDaemon, error_line, healthy_status, ok_line, short_dir

AGENTCTL = str(Path(sys.executable).parent / "agentctl")


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    with short_dir() as directory:
        yield directory


@pytest.fixture
def serve(socket_dir: Path) -> Iterator[Any]:
    """``serve(answer)`` starts a CannedDaemon at socket_dir/control.sock; all are closed at the end."""
    daemons: list[CannedDaemon] = []

    def start(answer: Answer, delay_s: float = 0.0) -> CannedDaemon:
        daemon = CannedDaemon(socket_dir / "control.sock", answer, delay_s)
        daemons.append(daemon)
        return daemon

    yield start
    for daemon in daemons:
        daemon.close()


def agentctl(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    return subprocess.run(
        [AGENTCTL, *args], capture_output=True, text=True, timeout=timeout, check=False, env=env
    )


def status_answer(status: dict[str, Any]) -> Answer:
    return lambda request: ok_line(status)


# -- status ------------------------------------------------------------------------------------------


def test_status_of_a_healthy_bus_exits_0_with_the_screen(serve: Any, socket_dir: Path) -> None:
    daemon = serve(status_answer(healthy_status()))
    result = agentctl("status", "--socket", str(daemon.path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.rstrip().splitlines()[-1] == "OK: all systems normal"
    assert "Salle des fêtes, Fajolles" in result.stdout
    assert "\x1b[" not in result.stdout  # not a terminal: no colour
    assert daemon.requests == [{"cmd": "status"}]


def test_status_exits_1_on_a_warning_and_2_on_a_critical(serve: Any) -> None:
    status = healthy_status()
    status["devices"]["printer"]["snapshot"]["reasons"] = ["media-empty-error"]
    daemon = serve(lambda request: ok_line(status))
    result = agentctl("status", "--socket", str(daemon.path))
    assert result.returncode == 1
    assert "WARNING: printer: out of paper" in result.stdout
    status["devices"]["modem"]["snapshot"]["registration"] = "denied"
    result = agentctl("status", "--socket", str(daemon.path))
    assert result.returncode == 2
    assert result.stdout.rstrip().splitlines()[-1].startswith("CRITICAL: modem: not registered")


def status_on_a_terminal(path: Path, no_color: str | None) -> str:
    """What `agentctl status` writes when its stdout is a terminal (a real pty)."""
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    if no_color is not None:
        env["NO_COLOR"] = no_color
    main, tty = pty.openpty()
    try:
        proc = subprocess.run(
            [AGENTCTL, "status", "--socket", str(path)], stdout=tty, env=env, timeout=60, check=False
        )
        os.close(tty)
        tty = -1
        chunks = []
        with contextlib.suppress(OSError):  # EIO once the terminal has no writer left
            while chunk := os.read(main, 65536):
                chunks.append(chunk)
    finally:
        os.close(main)
        if tty >= 0:
            os.close(tty)
    assert proc.returncode == 0
    return b"".join(chunks).decode()


def test_status_is_coloured_on_a_terminal_unless_no_color_is_set(serve: Any) -> None:
    daemon = serve(status_answer(healthy_status()))
    assert "\x1b[32mOK: all systems normal\x1b[0m" in status_on_a_terminal(daemon.path, None)
    plain = status_on_a_terminal(daemon.path, "1")
    assert "OK: all systems normal" in plain
    assert "\x1b[" not in plain


def test_status_json_is_the_status_object_with_checks_and_verdict(serve: Any) -> None:
    status = healthy_status()
    status["mqtt"] = None
    daemon = serve(status_answer(status))
    result = agentctl("status", "--json", "--socket", str(daemon.path))
    assert result.returncode == 1
    printed = json.loads(result.stdout)
    assert {k: v for k, v in printed.items() if k not in ("checks", "verdict")} == status
    assert printed["verdict"] == {
        "level": "warning",
        "exit_code": 1,
        "text": "WARNING: mqtt: not configured: records stay on the box",
    }
    assert {"level": "warning", "subject": "mqtt", "text": "not configured: records stay on the box",
            "rule": "mqtt-not-configured"} in printed["checks"]  # fmt: skip


def test_the_socket_comes_from_the_runtime_dir_of_the_config(serve: Any, socket_dir: Path) -> None:
    serve(status_answer(healthy_status()))
    config = socket_dir / "agent.toml"
    config.write_text(f'[agent]\nvehicle_id = "bus-tdc-01"\nruntime_dir = "{socket_dir}"\n')
    assert agentctl("status", "--config", str(config)).returncode == 0


def test_a_config_naming_a_bad_runtime_dir_is_reported_with_file_and_key(socket_dir: Path) -> None:
    config = socket_dir / "agent.toml"
    config.write_text('[agent]\nruntime_dir = "run/busagent"\n')
    result = agentctl("status", "--config", str(config))
    assert result.returncode == 3
    assert (
        f"{config}:agent.runtime_dir: expected an absolute directory path, got 'run/busagent'"
        in result.stderr
    )


def test_the_default_config_path_is_the_daemons() -> None:
    assert control_client.DEFAULT_CONFIG_PATH == DEFAULT_PATH


# -- the daemon cannot be asked: exit 3 and what to do -----------------------------------------------


@pytest.mark.parametrize("command", [["status"], ["stops"], ["test", "--label", "Mairie"]])
def test_no_daemon_exits_3_saying_how_to_start_it(socket_dir: Path, command: list[str]) -> None:
    result = agentctl(*command, "--socket", str(socket_dir / "control.sock"))
    assert result.returncode == 3
    assert f"busagent is not running (no control socket at {socket_dir}/control.sock)" in result.stderr
    assert "systemctl start busagent" in result.stderr
    assert "busagent run --config PATH" in result.stderr
    assert result.stdout == ""


def test_a_stale_socket_with_no_listener_exits_3(socket_dir: Path) -> None:
    path = socket_dir / "control.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stale:
        stale.bind(str(path))  # bound, never listening: what a killed daemon leaves behind
    result = agentctl("status", "--socket", str(path))
    assert result.returncode == 3
    assert f"{path} is a stale socket with nobody listening" in result.stderr


DROP_TO_NOBODY = """
import os, sys
import agent.ctl, agent.status_view  # loaded as root: the interpreter's own files are root-only here
agent.ctl.build_parser().parse_args(["status"])  # argparse loads its translations lazily
os.setgroups([])
os.setgid(65534)
os.setuid(65534)
sys.exit(agent.ctl.main(["status", "--socket", sys.argv[1]]))
"""


def test_a_socket_the_user_may_not_open_names_the_group_to_join(serve: Any, socket_dir: Path) -> None:
    daemon = serve(status_answer(healthy_status()))
    gid = grp.getgrnam("daemon").gr_gid
    os.chown(daemon.path, 0, gid)
    os.chmod(daemon.path, 0o660)
    os.chmod(socket_dir, 0o711)
    result = subprocess.run(
        [sys.executable, "-c", DROP_TO_NOBODY, str(daemon.path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 3, result.stderr
    assert f"permission denied on {daemon.path}: add your account to the group 'daemon'" in result.stderr
    assert "usermod -aG daemon" in result.stderr
    assert daemon.requests == []


def test_the_daemons_permission_refusal_also_names_the_group(serve: Any) -> None:
    daemon = serve(lambda request: error_line("permission denied: uid 1001 is not in group busagent"))
    group = grp.getgrgid(daemon.path.stat().st_gid).gr_name
    result = agentctl("status", "--socket", str(daemon.path))
    assert result.returncode == 3
    assert "busagent refused: permission denied: uid 1001 is not in group busagent" in result.stderr
    assert f"add your account to the group '{group}'" in result.stderr


def test_an_error_answer_exits_3_with_the_daemons_words(serve: Any) -> None:
    daemon = serve(lambda request: error_line("unknown cmd 'stops'"))
    result = agentctl("stops", "--socket", str(daemon.path))
    assert result.returncode == 3
    assert result.stderr.strip() == "agentctl stops: busagent refused: unknown cmd 'stops'"


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b"HTTP/1.1 400 Bad Request\r\n\r\n", "is not JSON: 'HTTP/1.1 400 Bad Request'"),
        (b'["ok", true]\n', "is not a control answer"),
        (b'{"ok": true}\n', "has no result"),
        (b'{"ok": true, "result": {"v": 1', "closed the connection in the middle of its answer"),
        (None, "closed the connection without answering"),
        (b'{"ok": true, "result": "up and running"}\n', "the status answer is not an object"),
    ],
)
def test_garbage_answers_exit_3_and_say_what_was_wrong(
    serve: Any, answer: bytes | None, message: str
) -> None:
    daemon = serve(lambda request: answer)
    result = agentctl("status", "--socket", str(daemon.path))
    assert result.returncode == 3
    assert message in result.stderr
    assert result.stdout == ""


def test_a_daemon_that_does_not_answer_in_time_is_a_timeout(serve: Any) -> None:
    daemon = serve(status_answer(healthy_status()), delay_s=3.0)
    with pytest.raises(ControlError, match=r"did not answer within 0.5 s") as caught:
        request(str(daemon.path), {"cmd": "status"}, timeout_s=0.5)
    assert caught.value.kind == "timeout"


def test_an_answer_without_end_is_cut_at_the_size_cap(socket_dir: Path) -> None:
    path = socket_dir / "flood.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)

    def flood() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(4096)
            chunk = b"x" * 65536
            try:
                while True:
                    conn.sendall(chunk)
            except OSError:
                return  # the client hung up, as it should

    thread = threading.Thread(target=flood, daemon=True)
    thread.start()
    try:
        with pytest.raises(ControlError, match="exceeds 16777216 bytes"):
            request(str(path), {"cmd": "status"}, timeout_s=30)
    finally:
        thread.join(timeout=10)
        server.close()
    assert not thread.is_alive()


# -- stops -------------------------------------------------------------------------------------------


def visit(site_name: str | None, site_id: str, arrival: str, departure: str, **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "site_id": site_id, "site_name": site_name, "planned": site_name is not None,
        "lat": 44.06, "lon": 1.18,
        "confirmed_by": "shore", "duration_s": 12600.0, "departure_foreseen": None,
        "arrival": {"boot_id": "b1", "mono": 100.0, "wall": arrival, "wall_source": "gps"},
        "departure": {"boot_id": "b1", "mono": 12700.0, "wall": departure, "wall_source": "gps"},
        "shore": {"state": "seen", "off_s": 0.0, "outages": 0, "first_off_mono": None},
        "battery_min_v": 12.9, "modem_readings": 1260, "registered_readings": 1260, "signal": [],
        "probes": {"runs": 8, "usable_runs": 8, "rtt_ms": 45.0, "loss": 0.0, "dns_ms": 30.0,
                   "down_bps": 12e6, "up_bps": 3e6, "http": [], "bytes_used": 90_000_000},
        "printer_problems": [], "printer_read_failures": 0, "grade": "good", "grade_reason": "medians ...",
    }  # fmt: skip
    base.update(extra)
    return base


def test_stops_prints_a_table_newest_first_with_shore_grade_and_printer(serve: Any) -> None:
    visits = [
        visit(None, "u-44.0612-1.1823", "2026-03-02T13:00:00Z", "2026-03-02T16:30:00Z",
              shore={"state": "lost", "off_s": 1500.0, "outages": 1, "first_off_mono": 2000.0},
              grade="poor", printer_problems=[{"keyword": "media-empty", "first_seen_mono": 5000.0,
                                               "first_seen_wall": "2026-03-02T14:20:00Z"}]),
        visit("La Poste, Saint-Agnan", "st-agnan-poste", "2026-03-02T08:00:00Z", "2026-03-02T11:30:00Z",
              shore={"state": "never", "off_s": 0.0, "outages": 0, "first_off_mono": None}),
    ]  # fmt: skip
    daemon = serve(lambda request: ok_line({"visits": visits}))
    result = subprocess.run(
        [AGENTCTL, "stops", "--limit", "2", "--socket", str(daemon.path)],
        capture_output=True, text=True, timeout=60, check=False, env={**os.environ, "TZ": "Europe/Paris"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert daemon.requests == [{"cmd": "stops", "limit": 2}]
    header, newest, oldest = result.stdout.splitlines()
    assert header.split() == ["Site", "Arrived", "Departed", "Duration", "Shore", "power", "Grade", "Printer"]
    assert newest.split() == ["u-44.0612-1.1823", "02/03", "14:00", "17:30", "3h", "30m", "LOST", "25m",
                              "00s", "poor", "out", "of", "paper"]  # fmt: skip
    assert oldest.split() == ["La", "Poste,", "Saint-Agnan", "02/03", "09:00", "12:30", "3h", "30m", "NO",
                              "good", "-"]  # fmt: skip


def test_stops_json_is_the_daemons_visit_list(serve: Any) -> None:
    visits = [visit("Mairie, Lavit", "lavit-mairie", "2026-03-02T08:00:00Z", "2026-03-02T09:00:00Z")]
    daemon = serve(lambda request: ok_line({"visits": visits}))
    result = agentctl("stops", "--json", "--socket", str(daemon.path))
    assert result.returncode == 0
    assert json.loads(result.stdout) == {"visits": visits}


def test_stops_with_no_visit_says_so(serve: Any) -> None:
    daemon = serve(lambda request: ok_line({"visits": []}))
    result = agentctl("stops", "--socket", str(daemon.path))
    assert (result.returncode, result.stdout.strip()) == (0, "no stop visits recorded yet")


# -- test --------------------------------------------------------------------------------------------


def probe_record(down_bps: float, rtt_ms: float) -> dict[str, Any]:
    """A probes/result document as the daemon publishes it (to_dict of a suite plus its stamp)."""
    suite = SuiteResult(
        started_mono_s=1000.0,
        finished_mono_s=1062.0,
        latency=(LatencyResult(target="https://www.caf.fr/", method="http", tries=5, answered=5, loss=0.0,
                               rtt_ms=(rtt_ms,) * 5, rtt_median_ms=rtt_ms),),
        dns=(DnsResult(name="www.caf.fr", server="system", resolve_ms=21.0),),
        http=(HttpResult(url="https://www.caf.fr/", status=200, ttfb_ms=180.0, fetch_ms=820.0),
              HttpResult(url="https://ants.gouv.fr/", ok=False, reason="timed out after 15 s")),
        throughput=ThroughputResult(server_url="http://speed.example.org/", down_bps=down_bps, up_bps=2.5e6),
        stop_id="lavit-mairie",
    )  # fmt: skip
    return {**to_dict(suite), "stamp": {"boot_id": "b1", "mono": 1000.0, "wall": 1.77e9, "source": "gps"}}


def test_test_runs_the_suite_and_prints_the_figures_and_verdict(serve: Any) -> None:
    daemon = serve(lambda request: ok_line(probe_record(down_bps=11.2e6, rtt_ms=48.0)))
    result = agentctl("test", "--label", "Salle des fêtes, Fajolles", "--socket", str(daemon.path))
    assert daemon.requests == [{"cmd": "test", "label": "Salle des fêtes, Fajolles"}]
    assert result.stderr.strip() == "running the probe suite..."
    out = result.stdout
    assert out.startswith("Probe suite at Salle des fêtes, Fajolles, 1m 02s\n")
    for expected in [
        "Latency  https://www.caf.fr/ (http): median 48 ms, loss 0 %",
        "DNS      www.caf.fr: 21 ms",
        "Portals  https://www.caf.fr/: HTTP 200, fetched in 820 ms",
        "         https://ants.gouv.fr/: FAILED: timed out after 15 s",
        "Speed    down 11.2 Mbit/s, up 2.5 Mbit/s",
    ]:
        assert expected in out.splitlines(), (expected, out)
    # The failed portal fetch decides, as it does for the daemon (agent.core.grading.run_usable).
    assert out.splitlines()[-1].startswith("NOT USABLE for online procedures: fetch of https://ants.gouv.fr/")
    assert result.returncode == 1


def test_test_exits_0_when_the_link_is_usable_and_prints_json_on_request(serve: Any) -> None:
    record = probe_record(down_bps=11.2e6, rtt_ms=48.0)
    record["http"] = record["http"][:1]
    daemon = serve(lambda request: ok_line(record))
    result = agentctl("test", "--json", "--socket", str(daemon.path))
    assert result.returncode == 0, result.stdout
    printed = json.loads(result.stdout)
    assert printed["usable"] is True
    assert printed["usable_reason"].endswith("meets the floors for online procedures")
    assert printed["throughput"]["down_bps"] == 11.2e6
    assert daemon.requests == [{"cmd": "test"}]


def test_a_label_longer_than_the_daemon_accepts_is_refused_before_asking(socket_dir: Path) -> None:
    result = agentctl("test", "--label", "x" * 201, "--socket", str(socket_dir / "control.sock"))
    assert result.returncode == 2
    assert "at most 200 characters, got 201" in result.stderr
