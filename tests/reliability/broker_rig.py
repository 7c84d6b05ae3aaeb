"""The central side of the MQTT reliability tests: the real mosquitto and collector, and the bus's link.

The collector connects to the broker directly; the bus connects through a :class:`TcpRelay` that
the tests cut, stall, blackhole or make drop connections. Checks read the collector's own store,
as ``busagent-collector stats`` does.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agent.mqtt import BrokerUrl
from collector.ingest import Collector
from collector.store import Store, StreamRow
from simulators.relay import TcpRelay
from tests.mqtt.conftest import VEHICLE, Mosquitto, link, wait_until


class Central:
    """mosquitto (persistence off), a collector storing into ``collector.db``, and a relay in front."""

    def __init__(self, workdir: Path, *, ack_interval_s: float) -> None:
        (workdir / "broker").mkdir()
        self.broker = Mosquitto(workdir / "broker")
        self.broker.start()
        self.store = Store(workdir / "collector.db")
        self.collector = Collector(
            link(self.broker.url, client_id="collector-0"),
            self.store,
            ack_interval_s=ack_interval_s,
            reconnect_max_s=1,
        )
        self.collector.start()
        wait_until(self.collector.subscribed.is_set, 10, "the collector's subscription")
        self.relay = TcpRelay(self.broker.port).start()

    @property
    def bus_url(self) -> BrokerUrl:
        """Where the bus connects: the relay."""
        return BrokerUrl("127.0.0.1", self.relay.port, tls=False)

    def close(self) -> None:
        self.relay.stop()
        self.collector.stop()
        self.store.close()
        self.broker.stop()

    def rows(self) -> dict[str, StreamRow]:
        return {row.stream: row for row in self.store.stream_rows()}

    def received(self) -> int:
        return sum(row.received for row in self.rows().values())

    def payloads(self, stream: str) -> list[tuple[int, dict[str, Any]]]:
        return self.store.payloads(VEHICLE, stream)

    def assert_complete(self, expected: dict[str, int]) -> None:
        """Every stream holds seqs 1..n exactly (none missing), as the collector's stats say too."""
        rows = self.rows()
        assert {stream: row.received for stream, row in rows.items()} == expected
        assert all(row.missing == 0 and row.dropped == 0 for row in rows.values()), rows
        for stream, count in expected.items():
            assert sorted(seq for seq, _ in self.payloads(stream)) == list(range(1, count + 1)), stream


@contextlib.contextmanager
def central(workdir: Path, *, ack_interval_s: float = 0.1) -> Iterator[Central]:
    rig = Central(workdir, ack_interval_s=ack_interval_s)
    try:
        yield rig
    finally:
        rig.close()
