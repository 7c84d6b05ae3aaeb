"""The real mosquitto broker on a free 127.0.0.1 port, for the simulated bus, the day runner and tests.

Persistence is off unless a config says otherwise; stop/kill/start again on the same port to play
a broker outage or crash. As root mosquitto would switch to the "mosquitto" user, who cannot read
a temporary directory, so the generated config keeps it root.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

from simulators.process import free_port, terminate

MOSQUITTO = "/usr/sbin/mosquitto"


class BrokerError(RuntimeError):
    """mosquitto is missing or did not start; the message carries the end of its log."""


class Mosquitto:
    """The real broker with a generated config; stop/kill/start again on the same port."""

    def __init__(self, workdir: Path, config: str | None = None, port: int | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.config_path = workdir / "mosquitto.conf"
        self.config_path.write_text(
            config
            if config is not None
            else f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        )
        if os.geteuid() == 0:
            with self.config_path.open("a") as handle:
                handle.write("user root\n")
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "mosquitto.log"

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, ports: tuple[int, ...] | None = None, timeout_s: float = 10.0) -> None:
        if not os.access(MOSQUITTO, os.X_OK):
            raise BrokerError(f"{MOSQUITTO} not found: install the Debian package mosquitto")
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [MOSQUITTO, "-c", str(self.config_path)], stdout=log, stderr=subprocess.STDOUT
            )
        for port in ports or (self.port,):
            deadline = time.monotonic() + timeout_s
            while not self._listening(port):
                if time.monotonic() > deadline:
                    raise BrokerError(f"mosquitto not listening on port {port} after {timeout_s} s")
                time.sleep(0.02)

    def _listening(self, port: int) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise BrokerError(f"mosquitto exited: {self.log_path.read_text()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        except OSError:
            return False
        return True

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc)
            self.proc = None

    def kill(self) -> None:
        """SIGKILL: no goodbye to clients, and (persistence off) every queued message gone."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(5)
            self.proc = None
