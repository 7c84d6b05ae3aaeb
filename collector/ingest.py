"""The collector's ingest: subscribe to the fleet, validate, store idempotently, publish retained acks.

Every message goes through :meth:`Ingest.handle`, which never raises for bad input: a payload
that is not ours (bad topic, not JSON, too big, wrong schema, a msg_id naming another vehicle or
stream than its topic) is logged and counted in the store's ``rejects`` and dropped. Acks are
published from the caller's thread at most every ``ack_interval_s`` per vehicle, after the records
they cover are committed, so an agent never deletes a record the collector could still lose.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
import structlog
from paho.mqtt.reasoncodes import ReasonCode

from agent.mqtt import connection, topics, wire
from collector.store_api import CollectorStore, StoreError
from collector.validate import Schemas

log = structlog.get_logger(__name__)

#: The document kinds each kind of topic may carry.
KINDS_BY_TOPIC = {
    "status": ("status",),
    "ack": ("ack",),
    "dropped": ("dropped",),
    "data": ("record", "batch"),
}


class Rejected(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


class Ingest:
    """Turns (topic, payload) into stored records and pending acks; no network of its own."""

    def __init__(
        self, store: CollectorStore, schemas: Schemas, *, wall: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.schemas = schemas
        self._wall = wall
        self._lock = threading.Lock()
        self._dirty: set[str] = set()  # vehicles whose ack may have changed

    def handle(self, topic: str, payload: bytes) -> str:
        """Store one message; returns what happened ("stored", "ignored" or the reject reason)."""
        now = self._wall()
        try:
            return self._handle(topic, payload, now)
        except (OverflowError, sqlite3.Error, StoreError) as exc:
            # Whatever slipped past the checks must not escape into paho's thread: count it.
            return self._reject(Rejected("store-error", f"{type(exc).__name__}: {exc}"), topic, now)
        except Rejected as exc:
            return self._reject(exc, topic, now)

    def _reject(self, exc: Rejected, topic: str, now: float) -> str:
        log.warning("collector.rejected", reason=exc.reason, topic=topic[:120], detail=exc.detail[:200])
        self.store.reject(exc.reason, topic, exc.detail, now)
        return exc.reason

    def take_acks(self) -> list[str]:
        """The vehicles heard from since the last call (whose ack may have changed); the caller
        publishes each ack and hands back with :meth:`ack_failed` any it could not."""
        with self._lock:
            dirty, self._dirty = self._dirty, set()
        return sorted(dirty)

    def ack_failed(self, vehicle: str) -> None:
        """Publishing this vehicle's ack failed: try it again at the next round."""
        self._queue_ack(vehicle)

    @property
    def acks_due(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._dirty)

    def _handle(self, topic: str, payload: bytes, now: float) -> str:
        where = topics.parse(topic)
        if where is None:
            raise Rejected("bad-topic", "not busagent/<vehicle>/<known topic>")
        try:
            doc: Any = wire.loads(payload)
        except wire.WireError as exc:
            raise Rejected(exc.reason, exc.detail) from exc
        kind = doc.get("kind") if isinstance(doc, dict) else None
        if kind not in KINDS_BY_TOPIC[where.kind]:
            raise Rejected("wrong-kind", f"a {kind!r} document on a {where.kind} topic")
        problem = self.schemas.problem(str(kind), doc)
        if problem is not None:
            raise Rejected("schema", problem)
        if kind == "ack":
            return "ignored"  # our own retained acks come back through busagent/+/#
        if kind == "status":
            if doc["vehicle"] != where.vehicle:
                raise Rejected("vehicle-mismatch", f"status of {doc['vehicle']!r} on {topic}")
            self.store.store_status(where.vehicle, doc, now)
            return "stored"
        if kind == "dropped":
            if not doc["msg_id"].startswith(f"{where.vehicle}/"):
                raise Rejected("msg-id-mismatch", f"msg_id {doc['msg_id']!r} on {topic}")
            self.store.store_dropped(where.vehicle, doc["epoch"], doc["stream"], doc["ranges"], now)
        else:
            self._store_data(where, doc, now)
        self._queue_ack(where.vehicle)
        return "stored"

    def _store_data(self, where: topics.Topic, doc: dict[str, Any], now: float) -> None:
        if doc["stream"] != where.stream:
            raise Rejected("stream-mismatch", f"stream {doc['stream']!r} on the {where.stream!r} topic")
        try:
            if doc["kind"] == "batch":
                records = wire.records_of_batch(doc, where.vehicle)
            else:
                records = [wire.record_of_doc(doc, where.vehicle)]
        except wire.WireError as exc:
            raise Rejected(exc.reason, exc.detail) from exc
        stored, duplicates = self.store.store_records(where.vehicle, doc["epoch"], records, now)
        if duplicates:
            log.info("collector.duplicates", msg_id=doc["msg_id"], stored=stored, duplicates=duplicates)

    def _queue_ack(self, vehicle: str) -> None:
        with self._lock:
            self._dirty.add(vehicle)


class Collector:
    """An MQTT subscriber feeding :class:`Ingest`; paho's thread receives, ``run`` publishes acks."""

    def __init__(
        self,
        link: connection.LinkSettings,
        store: CollectorStore,
        *,
        schemas: Schemas | None = None,
        group: str | None = None,
        ack_interval_s: float = 1.0,
        reconnect_max_s: int = 30,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.ingest = Ingest(store, schemas or Schemas(), wall=wall)
        self.link = link
        self.subscription = topics.subscription(group)
        self.ack_interval_s = ack_interval_s
        self._wall = wall
        self._serial = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.subscribed = threading.Event()  # set once the broker confirmed the subscription
        protocol = connection.paho_protocol(link.protocol)
        if group is not None and protocol != mqtt.MQTTv5:
            raise connection.LinkError("shared subscriptions (--group) need MQTT 5")
        self.client = connection.make_client(link, protocol, auto_reconnect=True)
        self.client.reconnect_delay_set(min_delay=1, max_delay=max(1, reconnect_max_s))
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *args: self.subscribed.set()

    def start(self) -> None:
        """Connect in the background (paho retries by itself) and publish acks from a thread."""
        connection.connect(self.client, self.link, blocking=False)
        self.client.loop_start()
        self._thread = threading.Thread(target=self.run, name="collector-acks", daemon=True)
        self._thread.start()

    def run(self) -> None:
        """Publish pending acks every ``ack_interval_s`` until :meth:`stop`."""
        while not self._stop.wait(self.ack_interval_s):
            self.flush_acks()
        self.flush_acks()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        self.client.disconnect()
        self.client.loop_stop()

    def flush_acks(self) -> None:
        """Publish each due ack; one vehicle failing (store or paho error) neither stops the others
        nor the ack thread, and its ack stays due."""
        for vehicle in self.ingest.take_acks():
            try:
                self._publish_ack(vehicle)
            except Exception as exc:
                self.ingest.ack_failed(vehicle)
                log.exception("collector.ack_failed", vehicle=vehicle, error=f"{type(exc).__name__}: {exc}")

    def _publish_ack(self, vehicle: str) -> None:
        state = self.ingest.store.ack_state(vehicle)
        if state is None:
            return
        epoch, views = state
        self._serial += 1
        doc = wire.ack_doc(vehicle, epoch=epoch, views=views, at=self._wall(), serial=self._serial)
        self.client.publish(topics.ack(vehicle), wire.dumps(doc), qos=1, retain=True)

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: ReasonCode, properties: Any
    ) -> None:
        del userdata, flags, properties
        if reason_code == 0:
            client.subscribe(self.subscription, qos=1)
            log.info("collector.connected", broker=str(self.link.url), subscription=self.subscription)
        else:
            log.error("collector.refused", broker=str(self.link.url), reason=str(reason_code))

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        del client, userdata
        try:
            self.ingest.handle(message.topic, bytes(message.payload))
        except Exception as exc:
            log.exception("collector.message_failed", error=str(exc))
