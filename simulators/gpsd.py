"""Run the real Debian gpsd on simulated receivers (pty paths), on a free 127.0.0.1 port, for tests and demos.

gpsd is not simulated: the point is that the agent's gpsd driver is tested against the program it
meets in the bus. Flags used (gpsd 3.22, see ``gpsd -h``):

- ``-N`` stay in the foreground, so we own the process and can reap it;
- ``-n`` poll the receivers without waiting for a client, as the bus's gpsd does;
- ``-b`` read-only: never write probe or configuration strings to the receiver (our simulators
  are plain NMEA talkers and nobody reads what is written to their pty);
- ``-S PORT`` listen there; without ``-G`` gpsd binds loopback only (127.0.0.1 and ::1).

No control socket (``-F``) is needed. Started as root, gpsd opens the devices first and then drops
privileges to the ``gpsd`` user, which works on a pty in this sandbox without further flags.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import tempfile
import time
from typing import IO

from simulators.base import History
from simulators.process import free_port, terminate

__all__ = ["GpsdProcess", "GpsdStartError", "free_port", "listed_devices"]

GPSD = "/usr/sbin/gpsd"
_BIND_FAILED = "can't bind to IPv4 port"


class GpsdStartError(RuntimeError):
    """gpsd did not come up; the message carries the end of its stderr."""


def listed_devices(port: int, timeout_s: float = 1.0) -> dict[str, dict[str, object]]:
    """The devices gpsd on ``port`` lists in ``?DEVICES;``, by path; OSError/ValueError if it cannot say."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as conn, conn.makefile("rwb") as f:
        if json.loads(f.readline()).get("class") != "VERSION":
            raise ValueError("not gpsd")
        f.write(b"?DEVICES;\n")
        f.flush()
        for _ in range(10):  # skip any notice that comes first
            reply = json.loads(f.readline())
            if reply.get("class") == "DEVICES":
                return {str(d.get("path")): d for d in reply.get("devices", []) if isinstance(d, dict)}
    raise ValueError("no DEVICES reply")


class GpsdProcess:
    """One gpsd process reading ``devices``; ``url`` is what the agent's config points at."""

    def __init__(
        self, devices: list[str], *, port: int = 0, program: str = GPSD, start_timeout_s: float = 10.0
    ):
        self.devices = list(devices)
        self.port = port
        self.program = program
        self.start_timeout_s = start_timeout_s
        self.history = History()
        self._requested_port = port
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"gpsd://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start gpsd and wait until it accepts clients and lists every device, or raise GpsdStartError."""
        if self.running:
            return
        # A port picked by binding port 0 can be grabbed by someone else before gpsd binds it:
        # retry with a new one then. A port the caller chose is not changed behind their back.
        attempts = 5 if self._requested_port == 0 else 1
        for attempt in range(attempts):
            self.port = self._requested_port or free_port()
            self._spawn()
            try:
                self._wait_ready()
            except GpsdStartError as exc:
                stderr = self.stderr_text()
                self.stop()
                if _BIND_FAILED in stderr and attempt + 1 < attempts:
                    continue
                raise GpsdStartError(f"{exc}; gpsd said: {stderr.strip()[-1500:] or '(nothing)'}") from None
            self.history.record("start", port=self.port, devices=self.devices)
            # A restarted gpsd listens where clients expect it, as systemd's gpsd.socket would.
            self._requested_port = self.port
            return

    def _spawn(self) -> None:
        # A file, not a pipe: nobody drains a pipe while gpsd runs, and a full pipe would block it.
        stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop(), or below if gpsd cannot run
        argv = [self.program, "-N", "-n", "-b", "-S", str(self.port), *self.devices]
        try:
            self._process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr
            )
        except BaseException:
            stderr.close()
            raise
        self._stderr = stderr

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        missing: set[str] | None = None  # None until gpsd answers at all
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise GpsdStartError(f"gpsd exited with status {self._process.returncode}")
            # Without 127.0.0.1 gpsd keeps running on ::1 alone, and whoever holds the IPv4 port
            # would answer our probes: stop waiting as soon as gpsd says so.
            if _BIND_FAILED in self.stderr_text():
                raise GpsdStartError(f"port {self.port} on 127.0.0.1 is taken")
            with contextlib.suppress(OSError, ValueError):
                listed = listed_devices(self.port)
                missing = {path for path in self.devices if "activated" not in listed.get(path, {})}
                if not missing:
                    return
            time.sleep(0.05)
        waiting = "it to accept connections" if missing is None else f"it to open {sorted(missing)}"
        raise GpsdStartError(
            f"gpsd on port {self.port} not ready within {self.start_timeout_s} s (waiting for {waiting})"
        )

    def stderr_text(self) -> str:
        """What gpsd wrote on stderr so far (errors and warnings)."""
        if self._stderr is None:
            return ""
        # pread leaves the file offset alone: gpsd shares it and must keep appending at the end.
        fd = self._stderr.fileno()
        return os.pread(fd, os.fstat(fd).st_size, 0).decode(errors="replace")

    def stop(self) -> None:
        """Terminate gpsd and reap it; the port is free again afterwards."""
        process, self._process = self._process, None
        if process is not None:
            terminate(process)
            self.history.record("stop", port=self.port, returncode=process.returncode)
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def __enter__(self) -> GpsdProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
