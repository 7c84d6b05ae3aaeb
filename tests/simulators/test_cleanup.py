"""Simulators give back what they opened when starting fails, and child programs always end.

File descriptors are counted in /proc/self/fd: a leak shows as a pty or a temporary file still
open after the failed start.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from simulators.gpsd import GpsdProcess
from simulators.gpsd import free_port as gpsd_free_port
from simulators.process import free_port, terminate
from simulators.pty import PtyPort


def open_fds_to(prefix: str) -> list[str]:
    """Where this process's open descriptors point, for those under ``prefix``."""
    targets = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # the descriptor listdir itself used, closed by now
            continue
        if target.startswith(prefix):
            targets.append(target)
    return targets


def pty_fds() -> int:
    return len(open_fds_to("/dev/pts/")) + len(open_fds_to("/dev/ptmx"))


def test_pty_whose_link_cannot_be_made_closes_both_ends(tmp_path: Path) -> None:
    before = pty_fds()
    with pytest.raises(FileNotFoundError):
        PtyPort(tmp_path / "no-such-folder" / "ttyUSB2")
    assert pty_fds() == before


def test_pty_that_cannot_reappear_stays_absent_without_leaking(tmp_path: Path) -> None:
    folder = tmp_path / "dev"
    folder.mkdir()
    port = PtyPort(folder / "ttyUSB2")
    port.vanish()
    before = pty_fds()
    folder.rmdir()  # udev would have made it; here the path cannot come back
    with pytest.raises(FileNotFoundError):
        port.reappear()
    assert pty_fds() == before
    assert not port.present and port.read(0.01) == b"" and port.write(b"AT\r") == 0


def test_gpsd_that_cannot_be_run_leaves_no_stderr_file_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The stderr capture is a TemporaryFile: put it where we can see it (stdlib setting, not ours).
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    gpsd = GpsdProcess(["/dev/null"], program=str(tmp_path / "no-gpsd"))
    with pytest.raises(FileNotFoundError):
        gpsd.start()
    assert open_fds_to(str(tmp_path)) == []
    assert not gpsd.running
    gpsd.stop()  # still safe afterwards


def test_terminate_kills_a_child_that_ignores_sigterm_and_closes_its_pipes() -> None:
    child = subprocess.Popen(
        ["/bin/sh", "-c", "trap '' TERM; echo ready; sleep 30"],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    assert child.stdout is not None
    assert child.stdout.readline() == b"ready\n"  # the trap is set
    started = time.monotonic()
    terminate(child, timeout_s=0.3)
    assert child.returncode == -9
    assert time.monotonic() - started < 3.0
    assert child.stdout.closed


def test_terminate_reaps_a_child_that_already_exited() -> None:
    child = subprocess.Popen(["/bin/true"])
    child.wait()
    terminate(child)
    assert child.returncode == 0


def test_free_port_is_bindable_on_loopback_and_still_importable_from_gpsd() -> None:
    assert gpsd_free_port is free_port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", free_port()))
