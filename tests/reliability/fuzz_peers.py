"""Hostile devices on real endpoints: gpsd and HTTP over TCP on 127.0.0.1, an AT modem on a pty.

Each serves whatever answer the test sets before a read (``peer.answer = ...``), framed just enough
for the driver to get past its handshake, so that the fuzzed bytes reach the parsing code through
the driver's own transport, time limits and error translation.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import threading
from collections.abc import Callable
from typing import Self

from simulators.pty import PtyPort
from tests.drivers.slow_peers import ThreadedTcpPeer

GPSD_VERSION = b'{"class":"VERSION","release":"3.22","rev":"3.22","proto_major":3,"proto_minor":14}\n'
GPSD_WATCH = b'{"class":"WATCH","enable":true,"json":false}\n'
GPSD_DEVICES = b'{"class":"DEVICES","devices":[{"class":"DEVICE","path":"/dev/ttyACM0","activated":"x"}]}\n'
#: Sent after the fuzzed line: a POLL the driver can end its read with when it skipped the fuzzed one.
GPSD_CLOSING_POLL = b'{"class":"POLL","active":1,"tpv":[{"class":"TPV","mode":1}],"sky":[]}\n'


class GpsdPeer(ThreadedTcpPeer):
    """Speaks gpsd's handshake, then answers each ``?POLL;`` with ``answer`` (one or more lines)."""

    def __init__(self) -> None:
        self.answer = GPSD_CLOSING_POLL
        super().__init__(self._talk)

    def _talk(self, conn: socket.socket) -> None:
        conn.sendall(GPSD_VERSION)
        buffer = b""
        while chunk := conn.recv(4096):
            buffer += chunk
            while b"\n" in buffer:
                command, _, buffer = buffer.partition(b"\n")
                if command.startswith(b"?WATCH"):
                    conn.sendall(GPSD_WATCH)
                elif command.startswith(b"?POLL"):
                    conn.sendall(self.answer + b"\n" + GPSD_CLOSING_POLL)
                elif command.startswith(b"?DEVICES"):
                    conn.sendall(GPSD_DEVICES)

    def __enter__(self) -> Self:
        return self


class HttpPeer(ThreadedTcpPeer):
    """Reads one HTTP request per connection, sends ``respond(request body)``, closes."""

    def __init__(self) -> None:
        self.respond: Callable[[bytes], bytes] = lambda body: b"HTTP/1.1 204 No Content\r\n\r\n"
        self.requests = 0
        super().__init__(self._talk)

    def _talk(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        request = b""
        while b"\r\n\r\n" not in request:
            chunk = conn.recv(65_536)
            if not chunk:
                return
            request += chunk
        head, _, body = request.partition(b"\r\n\r\n")
        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)  # fmt: skip
        while len(body) < length and (chunk := conn.recv(65_536)):
            body += chunk
        self.requests += 1
        conn.sendall(self.respond(body))
        with contextlib.suppress(OSError):
            conn.shutdown(socket.SHUT_WR)

    def __enter__(self) -> Self:
        return self


class AtPeer:
    """A modem on a pty that answers every command line (up to its CR) with ``answer``, all of it.

    :meth:`finish` stops the answer in progress (a driver that met an early final result stops
    reading, and the rest would end up in the next input's answer).
    """

    def __init__(self, port: PtyPort) -> None:
        self.port = port
        self.answer = b"\r\nOK\r\n"
        self.commands = 0
        self._stop = threading.Event()
        self._cut = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._thread = threading.Thread(target=self._serve, name="fuzz-modem", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        pending = b""
        while not self._stop.is_set():
            pending += self.port.read(0.05)
            while b"\r" in pending:
                _, _, pending = pending.partition(b"\r")
                self.commands += 1
                self._cut.clear()
                self._idle.clear()
                self._send(self.answer)
                self._idle.set()

    def _send(self, data: bytes) -> None:
        """Write everything: the pty's buffer is small, so wait for the driver to take each piece."""
        view = memoryview(data)
        while view and not self._stop.is_set() and not self._cut.is_set():
            select.select([], [self.port.master_fd], [], 0.05)
            try:
                view = view[os.write(self.port.master_fd, view[:16_384]) :]
            except BlockingIOError:
                continue

    def finish(self) -> None:
        """Stop sending the answer in progress, if any (called between two commands)."""
        self._cut.set()
        self._idle.wait(2)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
