"""A TCP relay on 127.0.0.1 that can be cut: the broker outages of a simulated day.

The agent connects to the relay instead of the broker. ``cut()`` closes every relayed connection
at once and turns new ones away (accepted, then closed, as when a cellular link drops behind
NAT); ``restore()`` lets them through again. The broker and the collector never notice.
"""

from __future__ import annotations

import contextlib
import socket
import threading

CHUNK = 65536


class TcpRelay:
    """Relays 127.0.0.1:``port`` to 127.0.0.1:``target_port`` until stopped; ``cut()`` / ``restore()``."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._cut = False
        self._closed = False
        self.cuts = 0
        self._thread = threading.Thread(target=self._accept, name="relay", daemon=True)

    @property
    def is_cut(self) -> bool:
        return self._cut

    def start(self) -> TcpRelay:
        self._thread.start()
        return self

    def cut(self) -> None:
        with self._lock:
            self._cut = True
            self.cuts += 1
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            _close(*pair)

    def restore(self) -> None:
        with self._lock:
            self._cut = False

    def stop(self) -> None:
        self._closed = True
        self.cut()
        with contextlib.suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)
        self._server.close()
        self._thread.join(5)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if self._cut:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._pairs.append((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(CHUNK):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            _close(source, sink)
            with self._lock:
                self._pairs = [p for p in self._pairs if source not in p]


def _close(*socks: socket.socket) -> None:
    for sock in socks:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
