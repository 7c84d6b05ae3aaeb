"""A simulated bus plus its backend, and `busagent run` as a real subprocess, for the daemon tests.

The daemon gets a NOTIFY_SOCKET of our own (a datagram socket in the test's directory), so the
tests read READY/STATUS/WATCHDOG exactly as systemd would.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from simulators.backend import SimulatedBackend
from simulators.devices import SimulatedBus
from simulators.process import terminate

BIN = Path(sys.executable).parent

#: Fast polling so that "within two polls" is a couple of seconds.
FAST_POLLS = {"gps": 1.0, "modem": 1.0, "power": 1.0, "printer": 1.0, "system": 5.0}


def wait_for(predicate: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.1)


def agent_config(
    bus: SimulatedBus, backend: SimulatedBackend | None, extra: dict[str, str] | None = None
) -> str:
    """The simulators' config with fast polls; ``extra`` adds lines per section (created if absent)."""
    text = bus.config_text() + ("\n" + backend.config_text() if backend is not None else "")
    additions = {f"[{name}]": [f"poll_s = {poll}"] for name, poll in FAST_POLLS.items()}
    for section, line in (extra or {}).items():
        additions.setdefault(f"[{section}]", []).append(line)
    for header, lines in additions.items():
        if header in text:
            text = text.replace(header + "\n", header + "\n" + "\n".join(lines) + "\n", 1)
        else:
            text += f"\n{header}\n" + "\n".join(lines) + "\n"
    return text


class NotifyListener:
    """Plays systemd's side of sd_notify: a thread stamps every datagram the moment it arrives."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.messages: list[tuple[float, dict[str, str]]] = []
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._closed.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            self.messages.append((time.monotonic(), fields))

    def collect(self) -> list[tuple[float, dict[str, str]]]:
        return list(self.messages)

    def with_key(self, key: str, since: float = 0.0) -> list[dict[str, str]]:
        return [fields for at, fields in self.collect() if key in fields and at >= since]

    def close(self) -> None:
        self._closed.set()
        self._thread.join(2)
        self.sock.close()


class Daemon:
    """`busagent run --config PATH` in a subprocess, with its own notify socket."""

    def __init__(self, workdir: Path, config_text: str, *, watchdog_usec: int = 2_000_000) -> None:
        self.workdir = workdir
        self.config_path = workdir / "agent.toml"
        self.config_path.write_text(config_text)
        self.notify = NotifyListener(workdir / "notify.sock")
        self.log_path = workdir / "agent.log"
        env = dict(os.environ, NOTIFY_SOCKET=str(self.notify.path), WATCHDOG_USEC=str(watchdog_usec))
        env.pop("WATCHDOG_PID", None)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [str(BIN / "busagent"), "run", "--config", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        wait_for(lambda: self.notify.with_key("READY") or self._died(), 30, "READY=1")

    def _died(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"busagent exited {self.proc.returncode}: {self.log()[-3000:]}")
        return False

    @property
    def socket_path(self) -> Path:
        import tomllib

        runtime_dir = tomllib.loads(self.config_path.read_text())["agent"]["runtime_dir"]
        return Path(runtime_dir) / "control.sock"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def events(self, name: str) -> list[dict[str, Any]]:
        found = []
        for line in self.log().splitlines():
            if line.startswith("{") and f'"{name}"' in line:
                event = json.loads(line)
                if event.get("event") == name:
                    found.append(event)
        return found

    def ask_raw(self, data: bytes, timeout_s: float = 10.0) -> bytes:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout_s)
            sock.connect(str(self.socket_path))
            sock.sendall(data)
            answer = b""
            while not answer.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
            return answer

    def ask(self, request: dict[str, Any], timeout_s: float = 10.0) -> dict[str, Any]:
        answer: dict[str, Any] = json.loads(self.ask_raw(json.dumps(request).encode() + b"\n", timeout_s))
        return answer

    def status(self) -> dict[str, Any]:
        answer = self.ask({"cmd": "status"})
        assert answer["ok"], answer
        result: dict[str, Any] = answer["result"]
        return result

    def signal(self, signum: signal.Signals) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout_s: float = 30.0) -> int:
        return self.proc.wait(timeout_s)

    def stop(self) -> None:
        terminate(self.proc, timeout_s=30)
        self.notify.close()
