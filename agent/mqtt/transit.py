"""The end-to-end window: messages the broker took (PUBACK) that the collector has not acknowledged yet.

Between the broker and the collector sits the broker's queue for the collector's session; mosquitto
keeps ``max_queued_messages`` (default 1000) there and silently drops the rest. A publisher paced by
PUBACKs alone outruns a collector slower than the broker: the broker drops, the collector's ack
lags past ``ack_timeout_s``, and records still queued are sent again (measured with 20,000 records
sent one per message: 2.1 to 3.4 times the records sent, the drain 1.6 to 3.3 times as long).
Like a TCP window, the publisher publishes records only while fewer than ``limit`` messages are
between the two; the collector's ack (or the resend of a message it lost) makes room.

While the window is full nothing is in flight, so a link that stalls then would go unnoticed
until ``ack_timeout_s`` (no PUBACK can be late when nothing waits for one). Like TCP's persist
timer, one message goes anyway when nothing was heard from the broker for ``probe_s``: its PUBACK
shows the link alive, its absence ends the connection after ``inflight_timeout_s``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from agent.mqtt.wire import AckView
from agent.outbox import Record


class Transit:
    """Per message the (stream, seq) of its records, from the broker's PUBACK to the collector's ack."""

    def __init__(self, limit: int, *, probe_s: float, clock: Callable[[], float]) -> None:
        self.limit = limit
        self.probe_s = probe_s
        self._clock = clock
        self._messages: list[tuple[tuple[str, int], ...]] = []
        self._heard = clock()  # the last PUBACK or ack, or the last probe sent

    def __len__(self) -> int:
        return len(self._messages)

    def room(self, in_flight: int) -> bool:
        """May one more record message go, with ``in_flight`` messages not yet PUBACKed?

        Yes while the window has room; when full, once per ``probe_s`` of silence (the probe).
        """
        if len(self._messages) + in_flight < self.limit:
            return True
        now = self._clock()
        if in_flight or now - self._heard < self.probe_s:
            return False
        self._heard = now
        return True

    def add(self, records: Iterable[Record]) -> None:
        """The broker acknowledged a message carrying these records."""
        self._heard = self._clock()
        keys = tuple((record.stream, record.seq) for record in records)
        if keys:
            self._messages.append(keys)

    def confirmed(self, views: Mapping[str, AckView]) -> None:
        """The collector's ack: a message it holds whole has arrived."""
        self._heard = self._clock()

        def held(stream: str, seq: int) -> bool:
            view = views.get(stream)
            return view is not None and view.has(seq)

        self._messages = [keys for keys in self._messages if not all(held(*key) for key in keys)]

    def forget(self, records: Iterable[Record]) -> None:
        """These go back to the queue to be sent again: the messages that carried them are lost."""
        lost = {(record.stream, record.seq) for record in records}
        self._messages = [keys for keys in self._messages if lost.isdisjoint(keys)]

    def clear(self) -> None:
        """A new connection: what the old one left with the broker may be gone (a broker restart), or
        still queued; waiting ``ack_timeout_s`` to know would stop the drain meanwhile. Each
        reconnection may so leave one window more queued for the collector."""
        self._messages.clear()
        self._heard = self._clock()
