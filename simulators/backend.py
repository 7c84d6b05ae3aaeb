"""Everything beyond the bus's 4G link, simulated: the internet services the probes measure, the
fleet's MQTT broker (the real mosquitto) and the central collector (SQLite, acknowledging).

``busagent-sim devices`` and ``busagent-sim day`` start one; :meth:`config_text` is the agent's
``[mqtt]`` and ``[probes]`` sections pointing at it.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from agent.mqtt.connection import BrokerUrl, LinkSettings
from collector.ingest import Collector
from collector.store import Store
from simulators.broker import Mosquitto
from simulators.network import SimulatedNetwork


class SimulatedBackend:
    """The simulated network services, the broker and the collector; ``start()`` then ``stop()``."""

    def __init__(self, workdir: Path, *, speedtest_length_s: float = 1.5, settle_s: float = 60.0) -> None:
        self.workdir = workdir
        self.speedtest_length_s = speedtest_length_s
        self.settle_s = settle_s
        self.network = SimulatedNetwork()
        self.broker = Mosquitto(self._dir("broker"))
        self.db_path = workdir / "collector.sqlite"
        self.collector: Collector | None = None
        self.store: Store | None = None
        self._stack = contextlib.ExitStack()

    def _dir(self, name: str) -> Path:
        path = self.workdir / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def start(self) -> SimulatedBackend:
        try:
            self.network.start()
            self._stack.callback(self.network.stop)
            self.broker.start()
            self._stack.callback(self.broker.stop)
            self.store = Store(self.db_path)
            self._stack.callback(self.store.close)
            url = BrokerUrl("127.0.0.1", self.broker.port, tls=False)
            link = LinkSettings(url=url, client_id="collector")
            self.collector = Collector(link, self.store)
            self.collector.start()
            self._stack.callback(self.collector.stop)
        except BaseException:
            self._stack.close()
            raise
        return self

    def stop(self) -> None:
        self._stack.close()

    def __enter__(self) -> SimulatedBackend:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def config_text(self) -> str:
        """The agent's [mqtt] and [probes] sections for this backend."""
        probes = self.network.probes_toml(speedtest_length_s=self.speedtest_length_s, settle_s=self.settle_s)
        return f'[mqtt]\nurl = "{self.broker.url}"\nbatch_seconds = 5.0\n\n{probes}'
