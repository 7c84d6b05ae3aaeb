"""A pseudo-terminal that stands in for a serial device, reachable under a stable path.

The driver side opens ``port.path`` exactly as it would open ``/dev/ttyUSB2``; the simulator side
reads and writes the master. ``vanish()`` and ``reappear()`` mimic a USB device being unplugged
and plugged back (the path disappears, open handles see EIO, a new tty appears under the same
path), which is what udev does with a real modem.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import tty
from pathlib import Path


class PtyPort:
    """One pty pair; the slave is published under ``link`` (a symlink) when one is given."""

    def __init__(self, link: str | Path | None = None) -> None:
        self.link = Path(link) if link is not None else None
        self.master_fd = -1
        self._slave_fd = -1
        self.slave_name = ""
        self.dropped_bytes = 0
        self._open()

    @property
    def path(self) -> str:
        """The path a driver opens."""
        return str(self.link) if self.link is not None else self.slave_name

    @property
    def present(self) -> bool:
        return self.master_fd >= 0

    def _open(self) -> None:
        master_fd, slave_fd = os.openpty()
        try:
            # Raw mode: no echo, no CR/LF translation, so bytes pass exactly as on a UART. We keep our
            # own slave handle open so the master never sees EIO while no driver has the port open.
            tty.setraw(slave_fd)
            os.set_blocking(master_fd, False)
            slave_name = os.ttyname(slave_fd)
            if self.link is not None:
                with contextlib.suppress(FileNotFoundError):
                    self.link.unlink()
                self.link.symlink_to(slave_name)
        except BaseException:
            # No link (missing folder, a directory in the way): the port is absent, not half-open.
            os.close(master_fd)
            os.close(slave_fd)
            raise
        self.master_fd, self._slave_fd, self.slave_name = master_fd, slave_fd, slave_name

    def write(self, data: bytes) -> int:
        """Write to the line; bytes that no reader takes are dropped, as on a real UART."""
        if not self.present:
            return 0
        try:
            written = os.write(self.master_fd, data)
        except BlockingIOError:
            written = 0
        except OSError as exc:
            if exc.errno != errno.EIO:
                raise
            written = 0
        self.dropped_bytes += len(data) - written
        return written

    def read(self, timeout_s: float) -> bytes:
        """Bytes the driver sent, waiting at most ``timeout_s``; b"" when none came."""
        if not self.present:
            return b""
        ready, _, _ = select.select([self.master_fd], [], [], timeout_s)
        if not ready:
            return b""
        try:
            return os.read(self.master_fd, 4096)
        except (BlockingIOError, InterruptedError):
            return b""
        except OSError as exc:
            if exc.errno == errno.EIO:
                return b""
            raise

    def vanish(self) -> None:
        """Unplug: the path disappears and the tty is hung up."""
        if self.link is not None:
            with contextlib.suppress(FileNotFoundError):
                self.link.unlink()
        for fd in (self.master_fd, self._slave_fd):
            if fd >= 0:
                os.close(fd)
        self.master_fd = self._slave_fd = -1

    def reappear(self) -> None:
        """Plug back in: a new tty under the same path."""
        if not self.present:
            self._open()

    def close(self) -> None:
        self.vanish()

    def __enter__(self) -> PtyPort:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
