"""Devices that answer just in time, every time: a threaded TCP peer on 127.0.0.1 and an AT modem on a pty.

They exist to check that a driver's timeout bounds a whole read: each single step of theirs is
answered within the timeout, but all the steps together take several times as long.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable

from simulators.base import History
from simulators.pty import PtyPort


class ThreadedTcpPeer:
    """A TCP server on 127.0.0.1 port 0 running ``talk(conn)`` on its own thread for every client."""

    def __init__(self, talk: Callable[[socket.socket], None]) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.server.getsockname()[1]
        self.history = History()
        self._talk = talk
        self._stop = threading.Event()
        self.server.settimeout(0.05)  # accept() is not woken by close(): poll the stop flag instead
        self._thread = threading.Thread(target=self._serve, name="slow-tcp-peer", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed
            conn.settimeout(None)
            self.history.record("connected")
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            self._talk(conn)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2.0)
        self.server.close()

    def __enter__(self) -> ThreadedTcpPeer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def trickle(conn: socket.socket, data: bytes, every_s: float) -> None:
    """Send ``data`` one byte at a time, ``every_s`` apart (each byte well inside any timeout)."""
    for byte in data:
        conn.sendall(bytes([byte]))
        time.sleep(every_s)


class SlowAtModem:
    """A modem on a pty that answers every command with OK (and a +COPS line to AT+COPS?) after ``delay_s``.

    Test verb: :meth:`set_delay`. ``history`` records every command as ``command``.
    """

    def __init__(self, port: PtyPort, delay_s: float) -> None:
        self.port = port
        self.history = History()
        self._delay_s = delay_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="slow-at-modem", daemon=True)

    def start(self) -> SlowAtModem:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2.0)

    def __enter__(self) -> SlowAtModem:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def set_delay(self, delay_s: float) -> None:
        self._delay_s = delay_s

    def _serve(self) -> None:
        pending = b""
        while not self._stop.is_set():
            pending += self.port.read(0.05)
            while b"\r" in pending:
                line, _, pending = pending.partition(b"\r")
                self._answer(line.strip().decode("ascii", errors="replace").upper())

    def _answer(self, cmd: str) -> None:
        if not cmd:
            return
        self.history.record("command", cmd=cmd)
        time.sleep(self._delay_s)
        info = b'\r\n+COPS: 0,2,"20801",7\r\n' if cmd == "AT+COPS?" else b""
        self.port.write(info + b"\r\nOK\r\n")
