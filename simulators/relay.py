"""A TCP relay on 127.0.0.1 that plays a bad cellular link: cut, stalled, blackholed or dropping.

The agent connects to the relay instead of the broker; the broker and the collector never notice.

- ``cut()`` closes every relayed connection at once and turns new ones away (accepted, then closed,
  as when a cellular link drops behind NAT); ``restore()`` lets them through again.
- ``stall()`` stops forwarding in both directions without closing anything: TCP holds the bytes,
  as on a link that stops passing packets for a while. ``resume()`` delivers what was held.
- ``blackhole()`` is a stall that also accepts new connections and holds them silently (the
  nearest a userspace relay gets to dropped SYNs). ``restore()`` then resets every connection it
  held, as the NAT has forgotten them, and relays normally.
- ``drop_after(n)`` closes each connection once it has carried ``n`` more bytes towards the broker,
  in the middle of a packet; new connections get the same budget until ``restore()``.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

CHUNK = 65536
POLL_S = 0.05


class _Pair:
    """One relayed connection; ``budget`` is how many more bytes it may carry upstream (None: no limit)."""

    def __init__(self, client: socket.socket, upstream: socket.socket, budget: int | None) -> None:
        self.client, self.upstream, self.budget = client, upstream, budget

    @property
    def closed(self) -> bool:
        return self.client.fileno() < 0 or self.upstream.fileno() < 0

    def close(self) -> None:
        _close(self.client, self.upstream)


class TcpRelay:
    """Relays 127.0.0.1:``port`` to 127.0.0.1:``target_port`` until stopped; see the module for the faults."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self._lock = threading.Lock()
        self._pairs: list[_Pair] = []
        self._cut = False
        self._closed = False
        self._blackholed = False
        self._drop_budget: int | None = None
        self._flowing = threading.Event()  # cleared while stalled or blackholed
        self._flowing.set()
        self.cuts = 0
        self.stalls = 0
        self.drops = 0  # connections closed by drop_after
        self.accepted: list[float] = []  # time.monotonic() of every connection accepted
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
            pair.close()

    def stall(self) -> None:
        """Stop forwarding, keep every connection open, until ``resume()``."""
        self.stalls += 1
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def blackhole(self) -> None:
        """Forward nothing and hold new connections silently, until ``restore()`` resets them all."""
        with self._lock:
            self._blackholed = True
        self.stall()

    def drop_after(self, nbytes: int) -> None:
        """Close each connection (current and new) once it has carried ``nbytes`` more bytes upstream."""
        with self._lock:
            self._drop_budget = nbytes
            for pair in self._pairs:
                pair.budget = nbytes

    def restore(self) -> None:
        """End every fault: cut, blackhole (its connections are reset), drop_after, stall."""
        with self._lock:
            self._cut = False
            self._drop_budget = None
            for pair in self._pairs:
                pair.budget = None
            held = self._pairs if self._blackholed else []
            if self._blackholed:
                self._pairs = []
            self._blackholed = False
        for pair in held:
            pair.close()  # before the gate opens, so nothing held is delivered on a forgotten connection
        self._flowing.set()

    def stop(self) -> None:
        self._closed = True
        self.cut()
        self._flowing.set()
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
            self.accepted.append(time.monotonic())
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
                pair = _Pair(client, upstream, self._drop_budget)
                self._pairs.append(pair)
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(pair, source, sink), daemon=True).start()

    def _pump(self, pair: _Pair, source: socket.socket, sink: socket.socket) -> None:
        upward = source is pair.client
        try:
            while data := source.recv(CHUNK):
                if not self._wait_flowing(pair):
                    break
                if upward and not self._forward_within_budget(pair, data):
                    break
                if not upward:
                    sink.sendall(data)
        except OSError:
            pass
        finally:
            pair.close()
            with self._lock:
                self._pairs = [p for p in self._pairs if p is not pair]

    def _wait_flowing(self, pair: _Pair) -> bool:
        """Hold the bytes while stalled; False once the connection was closed meanwhile."""
        while not self._flowing.wait(POLL_S):
            if pair.closed or self._closed:
                return False
        return not pair.closed

    def _forward_within_budget(self, pair: _Pair, data: bytes) -> bool:
        """Send ``data`` upstream, or only the part the drop budget allows; False when the budget is spent."""
        with self._lock:
            budget = pair.budget
            if budget is not None:
                pair.budget = budget - len(data)
                self.drops += len(data) >= budget
        if budget is None or len(data) < budget:
            pair.upstream.sendall(data)
            return True
        pair.upstream.sendall(data[:budget])
        return False


def _close(*socks: socket.socket) -> None:
    for sock in socks:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
