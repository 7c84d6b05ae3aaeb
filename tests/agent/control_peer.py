"""A stand-in for the daemon's control socket, and realistic status objects to serve from it.

:class:`CannedDaemon` listens on a real Unix stream socket, reads one request line per connection
and answers with whatever its ``answer`` function returns for that request (raw bytes, so a test
can also send garbage, half a line, or nothing at all).
"""

from __future__ import annotations

import contextlib
import copy
import json
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

Answer = Callable[[dict[str, Any]], bytes | None]


def ok_line(result: Any) -> bytes:
    return json.dumps({"ok": True, "result": result}, ensure_ascii=False).encode() + b"\n"


def error_line(error: str) -> bytes:
    return json.dumps({"ok": False, "error": error}).encode() + b"\n"


class CannedDaemon:
    """A Unix stream socket at ``path``; each connection gets ``answer(request)`` (None: close unanswered)."""

    def __init__(self, path: Path, answer: Answer, delay_s: float = 0.0) -> None:
        self.path = path
        self.requests: list[dict[str, Any]] = []
        self._answer = answer
        self._delay_s = delay_s
        self._stop = threading.Event()
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(8)
        self.server.settimeout(0.05)  # accept() is not woken by close(): poll the stop flag instead
        self._thread = threading.Thread(target=self._serve, name="canned-daemon", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                self._talk(conn)

    def _talk(self, conn: socket.socket) -> None:
        conn.settimeout(5.0)
        data = b""
        with contextlib.suppress(OSError):
            while not data.endswith(b"\n"):
                chunk = conn.recv(4096)
                if not chunk:
                    return
                data += chunk
        request = json.loads(data)
        self.requests.append(request)
        if self._stop.wait(self._delay_s):
            return
        answer = self._answer(request)
        if answer is not None:
            with contextlib.suppress(OSError):
                conn.sendall(answer)

    def close(self) -> None:
        self._stop.set()
        self.server.close()
        self._thread.join(timeout=5)


@contextlib.contextmanager
def short_dir() -> Iterator[Path]:
    """A directory with a short path: a Unix socket path must fit in 108 bytes, pytest's tmp_path may not."""
    path = Path(tempfile.mkdtemp(prefix="ctl-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def wait_for(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


_HEALTHY: dict[str, Any] = {
    "v": 1,
    "vehicle_id": "bus-tdc-01",
    "version": "0.1.0",
    "pid": 812,
    "uptime_s": 5400.2,
    "now_wall": 1772438400.0,
    "time_source": "gps",
    "devices": {
        "gps": {
            "ok": True, "reason": None, "failing_for_s": None, "last_read_age_s": 0.4, "reads": 5399,
            "poll_s": 1.0,
            "snapshot": {
                "ok": True, "reason": None, "read_mono_s": 5400.0, "source": "gpsd", "fix_mode": 3,
                "lat_deg": 44.0612, "lon_deg": 1.1823, "speed_mps": 0.0, "track_deg": None,
                "altitude_m": 102.0, "satellites_used": 9, "satellites_seen": 12, "hdop": 0.9,
                "gps_time_utc": "2026-03-02T08:00:00.000Z",
            },
        },
        "modem": {
            "ok": True, "reason": None, "failing_for_s": None, "last_read_age_s": 3.1, "reads": 540,
            "poll_s": 10.0,
            "snapshot": {
                "ok": True, "reason": None, "read_mono_s": 5397.0, "source": "at", "model": "EG25",
                "registration": "home", "operator_code": "20801", "operator_name": "Orange F", "rat": "LTE",
                "rsrp_dbm": -88.0, "rsrq_db": -9.0, "sinr_db": 14.0, "rssi_dbm": -61.0, "cell_id": 0x1A2B3C,
                "tac": 0x2F0, "pci": 101, "band": 20, "earfcn": 6300, "quality": "good",
                "imei": None, "iccid": None,
            },
        },
        "power": {
            "ok": True, "reason": None, "failing_for_s": None, "last_read_age_s": 1.0, "reads": 2700,
            "poll_s": 2.0,
            "snapshot": {
                "ok": True, "reason": None, "read_mono_s": 5399.0, "shore_connected": True,
                "shore_source": "gpio", "mains_voltage_v": None, "battery_v": 13.21,
                "battery_current_a": 2.4, "battery_soc_pct": 93.0, "charging_state": "charging",
            },
        },
        "printer": {
            "ok": True, "reason": None, "failing_for_s": None, "last_read_age_s": 12.0, "reads": 180,
            "poll_s": 30.0,
            "snapshot": {
                "ok": True, "reason": None, "read_mono_s": 5388.0, "state": "idle", "reasons": ["none"],
                "accepting_jobs": True, "message": None, "make_and_model": "HP LaserJet Pro M404",
                "markers": [{"name": "black toner", "color": "#000000", "type": "toner", "level_pct": 62}],
            },
        },
    },
    "mqtt": {
        "connected": True, "broker": "mqtts://broker.example.org:8883", "protocol": "5",
        "last_ack_age_s": 12.0, "last_error": None, "records_sent": 10233, "records_acknowledged": 10200,
        "running": True,
    },
    "outbox": {
        "pending": 33, "sent_unacked": 0, "oldest_pending_age_s": 41.0, "dropped_total": 0,
        "bytes_used": 20480, "cap_bytes": 200000000,
    },
    "stop": {
        "state": "parked", "site_id": "fajolles-sdf", "site_name": "Salle des fêtes, Fajolles",
        "arrived_age_s": 3600.0,
    },
    "last_probe": {
        "age_s": 300.0, "reason": "interval", "label": None, "usable": True,
        "usable_reason": "download 11.2 Mbit/s, upload 2.9 Mbit/s, latency 48 ms, loss 0 %: meets the "
        "floors for online procedures",
        "rtt_ms": 48.0, "loss": 0.0, "down_mbps": 11.2, "up_mbps": 2.9, "failures": [],
    },
    "workers": {
        "loop": {"progress_age_s": 0.2, "stalled": False},
        "poll-gps": {"progress_age_s": 0.4, "stalled": False},
        "poll-modem": {"progress_age_s": 3.1, "stalled": False},
        "publisher": {"progress_age_s": 1.0, "stalled": False},
    },
}  # fmt: skip


def healthy_status() -> dict[str, Any]:
    """A parked bus where everything works (a fresh copy each call: tests change it)."""
    return copy.deepcopy(_HEALTHY)
