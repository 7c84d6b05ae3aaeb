"""Child programs behind simulators (the real gpsd, ippeveprinter, dbus-daemon): ports and clean ends."""

from __future__ import annotations

import socket
import subprocess

STOP_TIMEOUT_S = 5.0


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (it may be taken again before the program binds it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def terminate(proc: subprocess.Popen[bytes], timeout_s: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM, then SIGKILL if it is still there after ``timeout_s``; always reaped, pipes closed."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout_s)
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()
