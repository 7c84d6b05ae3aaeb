"""The publisher: drains the outbox to the broker and deletes records only when the collector has them.

Life of a record here: read from the outbox into staging -> published at QoS 1 (at most ``window``
messages in flight, which is also paho's max_inflight and max_queued) -> PUBACK: ``mark_sent`` ->
the collector's retained ``busagent/<vehicle>/ack`` covers its seq: ``acknowledge`` deletes it.
Unacknowledged after ``ack_timeout_s``: sent again (a PUBACK is not a disk write). Seq ranges the
outbox dropped are announced on ``busagent/<vehicle>/dropped``; the collector does not wait for them.
One thread does everything, driving paho's loop itself (see session.py). It never wedges: a
connection that fails, stalls (no PUBACK for ``inflight_timeout_s``) or is refused ends, what it
had in flight goes back to staging, and a new connection is tried after a jittered backoff.
"""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Self

import paho.mqtt.client as mqtt
import structlog

from agent.mqtt import connection, topics, wire
from agent.mqtt.session import Session
from agent.mqtt.staging import BatchPolicy, Message, Staging, TimeHold
from agent.mqtt.transit import Transit
from agent.outbox import Outbox, OutboxError, Record

log = structlog.get_logger(__name__)

#: How long a clean stop waits for the "offline" status to be acknowledged.
GOODBYE_S = 1.0


@dataclasses.dataclass(frozen=True)
class PublisherSettings:
    """How the publisher talks to the broker; times in seconds (``ack_timeout_s`` on the outbox clock)."""

    link: connection.LinkSettings
    window: int = 20
    batch: BatchPolicy = dataclasses.field(default_factory=BatchPolicy)
    read_ahead: int = 2400
    ack_timeout_s: float = 120.0
    inflight_timeout_s: float = 30.0
    backoff_min_s: float = 1.0
    backoff_max_s: float = 120.0
    announce_every_s: float = 30.0
    ranges_per_message: int = 2000
    tick_s: float = 0.05
    #: Messages at most between the broker's PUBACK and the collector's ack, never fewer than
    #: ``window`` (see transit.py).
    collector_window: int = 100
    #: This boot's records wait this long (real seconds) for GPS or NTP time (see staging.TimeHold).
    unsynced_hold_s: float = 900.0

    def __post_init__(self) -> None:
        if not 1 <= self.window <= 65535:
            raise ValueError(f"window must be 1..65535 messages, got {self.window}")
        if self.read_ahead < self.window * self.batch.max_records:
            raise ValueError("read_ahead must hold at least window * batch.max_records records")


@dataclasses.dataclass(frozen=True)
class PublisherStatus:
    """What ``agentctl status`` shows about the link: connected?, backlog, last acknowledgement."""

    connected: bool
    broker: str
    protocol: str | None
    in_flight: int
    staged: int
    connections: int
    records_sent: int
    records_acknowledged: int
    records_resent: int
    last_ack_wall: float | None
    last_error: str | None
    #: False once started and its thread has ended (stopped, or died): nothing is being delivered.
    running: bool = False
    #: Unexpected failures the thread survived (each ended the session and backed off).
    internal_errors: int = 0


class Publisher:
    """Drains one outbox to one broker in a background thread: ``start()``, ``stop()``, ``status()``."""

    def __init__(
        self,
        outbox: Outbox,
        settings: PublisherSettings,
        *,
        wall: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        heartbeat: Callable[[], None] | None = None,
        time_version: Callable[[], int] | None = None,
    ) -> None:
        self.outbox = outbox
        # Called once per turn of the thread: the daemon's watchdog sees a wedged publisher.
        self._heartbeat = heartbeat or (lambda: None)
        self.settings = settings
        self.vehicle = topics.check_vehicle(outbox.vehicle_id)
        self._wall = wall
        self._staging = Staging(outbox, settings.batch, read_ahead=settings.read_ahead, clock=time.monotonic)
        self._transit = Transit(
            max(settings.collector_window, settings.window),
            probe_s=settings.inflight_timeout_s / 2,
            clock=time.monotonic,
        )
        self._hold = TimeHold(outbox.boot_id, time_version, settings.unsynced_hold_s, time.monotonic)
        self._backoff = connection.Backoff(settings.backoff_min_s, settings.backoff_max_s, rng)
        self._protocol = connection.paho_protocol(settings.link.protocol)
        self._session: Session | None = None
        self._control: list[Message] = []
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._stop_deadline = 0.0
        self._next_attempt = 0.0
        self._next_resend = 0.0
        self._next_announce = 0.0
        self._resend_factor = 1
        self._heard_collector = False
        self._ack_views: dict[str, wire.AckView] = {}
        self._reported_unroutable: set[str] = set()
        self._counters = {"connections": 0, "sent": 0, "acknowledged": 0, "resent": 0, "errors": 0}
        self._last_ack_wall: float | None = None
        self._last_error: str | None = None

    # -- public ---------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("publisher already started")
        self._thread = threading.Thread(target=self._run, name="busagent-mqtt", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Publish what is staged (partial batches too) and "offline", for at most ``timeout_s``."""
        self._stop_deadline = time.monotonic() + timeout_s
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout_s + GOODBYE_S + 2 * self.settings.link.connect_timeout_s)
            self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def status(self) -> PublisherStatus:
        session = self._session
        connected = session is not None and session.connected
        return PublisherStatus(
            connected=connected,
            broker=str(self.settings.link.url),
            protocol=None if not connected else "5" if self._protocol == mqtt.MQTTv5 else "3.1.1",
            in_flight=0 if session is None else len(session.inflight),
            staged=self._staging.staged,
            connections=self._counters["connections"],
            records_sent=self._counters["sent"],
            records_acknowledged=self._counters["acknowledged"],
            records_resent=self._counters["resent"],
            last_ack_wall=self._last_ack_wall,
            last_error=self._last_error,
            running=self._thread is not None and self._thread.is_alive(),
            internal_errors=self._counters["errors"],
        )

    # -- the thread -----------------------------------------------------------------------------

    def _run(self) -> None:
        while not (self._stopping.is_set() and self._stopped()):
            self._heartbeat()
            try:
                self._turn()
            except OutboxError as exc:
                # The outbox is the one thing we cannot work around; say so and keep trying.
                self._last_error = str(exc)
                log.error("mqtt.outbox_error", error=str(exc))
                self._end_session("outbox error")
                self._stopping.wait(self.settings.backoff_min_s)
            except Exception as exc:  # a bug must not silently end all delivery
                # Whatever broke, the thread is the only way records leave the bus: log it loudly,
                # start over on a fresh connection after the backoff, and count it for status().
                self._counters["errors"] += 1
                self._last_error = f"internal error: {type(exc).__name__}: {exc}"
                log.exception("mqtt.publisher_error", error=self._last_error)
                self._end_session(self._last_error)
        self._goodbye()

    def _turn(self) -> None:
        session = self._session
        if session is None:
            if time.monotonic() < self._next_attempt or self._stopping.is_set():
                self._stopping.wait(self.settings.tick_s)
                return
            self._open()
            return
        session.loop(self.settings.tick_s)
        if session.just_connected:
            self._connected(session)
        self._completions(session)
        self._acks(session)
        if session.ended is None and not session.connected:
            if time.monotonic() - session.started > self.settings.link.connect_timeout_s:
                session.ended = f"no CONNACK within {self.settings.link.connect_timeout_s} s"
        elif session.ended is None and session.oldest_inflight_age() > self.settings.inflight_timeout_s:
            session.ended = f"no PUBACK within {self.settings.inflight_timeout_s} s"
        if session.ended is not None:
            self._end_session(session.ended)
            return
        if session.connected:
            self._periodic()
            if self._hold.retimed():
                self._staging.reread()
            self._staging.refill(hold_boot=self._hold.boot())
            self._fill(session)

    def _stopped(self) -> bool:
        """During stop: done once everything staged is acknowledged by the broker, or time is up."""
        session = self._session
        if time.monotonic() >= self._stop_deadline or session is None or not session.connected:
            return True
        return not session.inflight and not self._control and self._staging.staged == 0

    def _open(self) -> None:
        session = Session(self.settings.link, self._protocol, self.vehicle, self.settings.window)
        self._session = session
        session.set_will(self._status("offline", "connection lost"))
        try:
            connection.connect(session.client, self.settings.link)
        except (OSError, connection.LinkError) as exc:
            session.ended = f"cannot connect to {self.settings.link.url}: {exc}"
            self._end_session(session.ended)

    def _connected(self, session: Session) -> None:
        session.just_connected = False
        self._backoff.reset()
        self._transit.clear()
        self._counters["connections"] += 1
        session.client.subscribe(topics.ack(self.vehicle), qos=1)
        self._control.insert(
            0, Message(topics.status(self.vehicle), self._status("online", "connected"), retain=True)
        )
        self._next_announce = 0.0
        log.info("mqtt.connected", broker=str(self.settings.link.url), mqtt5=session.mqtt5)

    def _end_session(self, reason: str) -> None:
        session, self._session = self._session, None
        if session is None:
            return
        for item in session.inflight.values():
            self._staging.restore(item.message.records)
        session.inflight.clear()
        self._control = [m for m in self._control if m.topic != topics.status(self.vehicle)]
        session.close()
        self._last_error = reason
        if session.refused_protocol and session.mqtt5 and self.settings.link.protocol == "auto":
            self._protocol = mqtt.MQTTv311  # an MQTT 3.1.1 broker: speak its language from now on
            delay = 0.0
        else:
            delay = self._backoff.next_delay()
        self._next_attempt = time.monotonic() + delay
        log.warning("mqtt.disconnected", reason=reason, retry_in_s=round(delay, 2))

    def _goodbye(self) -> None:
        """Clean stop: retained "offline" (so the fleet view does not wait for the keepalive), bye."""
        session = self._session
        if session is not None and session.connected:
            session.publish(
                Message(topics.status(self.vehicle), self._status("offline", "agent stopped"), retain=True)
            )
            until = time.monotonic() + GOODBYE_S
            while session.inflight and session.ended is None and time.monotonic() < until:
                session.loop(self.settings.tick_s)
                self._completions(session)
        self._end_session("agent stopped")

    # -- what happens on the connection ---------------------------------------------------------

    def _fill(self, session: Session) -> None:
        """Publish until ``window`` messages are in flight: control messages first, then records."""
        flush = self._stopping.is_set()
        while len(session.inflight) < self.settings.window:
            message = (
                self._control[0]
                if self._control
                else self._staging.take(self.vehicle, self.outbox.epoch, flush=flush)
                if self._transit.room(len(session.inflight))
                else None  # the collector is behind: records wait for its ack (transit.py)
            )
            if message is None:
                break
            if self._control and message is self._control[0]:
                self._control.pop(0)
            refused = session.publish(message)
            if refused is not None:
                self._staging.restore(message.records)
                session.ended = f"paho refused a publish: {refused}"
                break
        self._report_unroutable()

    def _completions(self, session: Session) -> None:
        """PUBACKs: the records are on the broker, marked sent (still kept until the collector acks)."""
        done: list[Record] = []
        for mid, ok, reason in session.completed:
            item = session.inflight.pop(mid, None)
            if item is None:
                continue
            if ok:
                done.extend(item.message.records)
                self._transit.add(item.message.records)
            else:
                log.error("mqtt.publish_refused", topic=item.message.topic, reason=reason)
                self._staging.restore(item.message.records)
                session.ended = f"broker refused a publish on {item.message.topic}: {reason}"
        session.completed.clear()
        if done:
            try:
                self.outbox.mark_sent(done)
            except OutboxError:
                self._staging.restore(done)  # still pending in the outbox: publish them again
                raise
            self._staging.release(done)
            self._counters["sent"] += len(done)

    def _acks(self, session: Session) -> None:
        """The collector's retained ack: delete what it has stored."""
        for payload in session.messages:
            ack = wire.parse_ack(payload)
            if ack is None:
                log.warning("mqtt.ack_unreadable", bytes=len(payload))
                continue
            epoch, views = ack
            if epoch != self.outbox.epoch:
                log.info("mqtt.ack_other_epoch", epoch=epoch, ours=self.outbox.epoch)
                continue
            self._counters["acknowledged"] += sum(
                self.outbox.acknowledge(stream, view.upto, epoch=epoch) for stream, view in views.items()
            )
            self._ack_views = views
            self._transit.confirmed(views)
            self._last_ack_wall = self._wall()
            self._heard_collector = True  # it is alive, even if a hole keeps its ack from moving
        session.messages.clear()

    def _periodic(self) -> None:
        now = time.monotonic()
        if now >= self._next_resend:
            self._resend()
            self._next_resend = now + max(self.settings.ack_timeout_s / 4, self.settings.tick_s)
        if now >= self._next_announce:
            self._announce_dropped()
            self._next_announce = now + self.settings.announce_every_s

    def _resend(self) -> None:
        """Sent long ago and still not acknowledged: the broker may have lost it, send it again.

        Only what the last ack does not show as held is resent. While no ack arrives at all
        (collector down), the wait doubles up to 16x, so a dead collector does not make the bus
        resend its whole backlog over 4G every few minutes.
        """
        timeout = self.settings.ack_timeout_s * self._resend_factor
        candidates = [
            r
            for r in self.outbox.resend_candidates(timeout, limit=self.settings.read_ahead // 2)
            if r.id not in self._staging.held and not self._collector_has(r)
        ]
        if not candidates:
            return
        self._resend_factor = 1 if self._heard_collector else min(self._resend_factor * 2, 16)
        self._heard_collector = False
        self.outbox.mark_pending(candidates)
        self._transit.forget(candidates)
        self._staging.rewind(candidates)
        self._counters["resent"] += len(candidates)
        log.warning("mqtt.resending", records=len(candidates), streams=sorted({r.stream for r in candidates}))

    def _collector_has(self, record: Record) -> bool:
        """The last ack shows the collector holds it above a hole: resending it would only cost data."""
        view = self._ack_views.get(record.stream)
        return view is not None and view.has(record.seq)

    def _announce_dropped(self) -> None:
        """Queue one ``dropped`` message per stream (and per ``ranges_per_message`` ranges) with drops."""
        self._control = [m for m in self._control if not m.topic.endswith(f"/{topics.DROPPED}")]
        for stream, stats in self.outbox.stats().streams.items():
            if not stats.dropped:
                continue
            ranges = self.outbox.dropped_ranges(stream)
            step = self.settings.ranges_per_message
            for start in range(0, len(ranges), step):
                doc = wire.dropped_doc(
                    self.vehicle,
                    boot_id=self.outbox.boot_id,
                    epoch=self.outbox.epoch,
                    stream=stream,
                    ranges=ranges[start : start + step],
                )
                self._control.append(Message(topics.dropped(self.vehicle), wire.dumps(doc)))

    def _status(self, state: str, reason: str) -> bytes:
        doc = wire.status_doc(
            self.vehicle,
            state=state,
            reason=reason,
            boot_id=self.outbox.boot_id,
            epoch=self.outbox.epoch,
            at=self._wall(),
            serial=self._counters["connections"],
        )
        return wire.dumps(doc)

    def _report_unroutable(self) -> None:
        for stream in self._staging.unroutable - self._reported_unroutable:
            self._reported_unroutable.add(stream)
            log.error(
                "mqtt.stream_not_publishable", stream=stream, reason="not a valid topic; kept in the outbox"
            )
