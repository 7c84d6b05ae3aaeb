"""One MQTT connection of the publisher: a fresh paho client, its callbacks, and what is in flight.

Every connection gets its own paho client with a clean session. paho keeps its queue in memory
only and its resend-on-reconnect has sharp edges (protocols.md 8, reliability.md), so the
publisher never relies on it: when a connection ends, whatever it had in flight goes back to the
staging area and is published again on the next connection.

paho's network loop is driven from the publisher's own thread (``client.loop``), so every callback
runs in that thread: the callbacks only record what happened, and the publisher acts on it after
``loop`` returns. No lock is needed, and an ``on_publish`` that paho delivers for a ``mid`` is
always handled after ``publish()`` returned that ``mid`` (paho #361, #482).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from agent.mqtt import connection, topics
from agent.mqtt.staging import Message


@dataclasses.dataclass
class InFlight:
    message: Message
    since: float  # time.monotonic() when handed to paho


class Session:
    """A paho client for one connection attempt; ``connected`` once the broker said yes."""

    def __init__(
        self, link: connection.LinkSettings, protocol: MQTTProtocolVersion, vehicle: str, window: int
    ) -> None:
        self.vehicle = vehicle
        self.client = connection.make_client(link, protocol)
        # The publisher fills at most ``window`` messages, as many as paho sends at once; paho's
        # queue holds one more, for the "offline" goodbye: a full queue refuses the newest message
        # (paho #856), and a stop with the window full would leave the retained status "online".
        self.client.max_inflight_messages_set(window)
        self.client.max_queued_messages_set(window + 1)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message
        self.started = time.monotonic()
        self.connected = False
        self.ended: str | None = None  # why the connection is over, once it is
        self.refused_protocol = False
        self.just_connected = False
        self.inflight: dict[int, InFlight] = {}
        self.completed: list[tuple[int, bool, str]] = []  # (mid, ok, reason)
        self.messages: list[bytes] = []

    @property
    def mqtt5(self) -> bool:
        return self.client.protocol == mqtt.MQTTv5

    def set_will(self, payload: bytes) -> None:
        self.client.will_set(topics.status(self.vehicle), payload, qos=1, retain=True)

    def publish(self, message: Message) -> str | None:
        """Hand one message to paho; the reason when paho refused it (it then stays with the caller)."""
        info = self.client.publish(message.topic, message.payload, qos=1, retain=message.retain)
        # NO_CONN: paho queued it in memory and the connection is going; it is tracked like any
        # other in-flight message and comes back to staging when this session ends.
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            return mqtt.error_string(info.rc)
        self.inflight[info.mid] = InFlight(message, time.monotonic())
        return None

    def oldest_inflight_age(self) -> float:
        if not self.inflight:
            return 0.0
        return time.monotonic() - min(item.since for item in self.inflight.values())

    def loop(self, timeout_s: float) -> None:
        """Run paho's network loop once; a failure ends the session."""
        if self.ended is not None:
            return
        rc = self.client.loop(timeout=timeout_s)
        if rc != mqtt.MQTT_ERR_SUCCESS and self.ended is None:
            self.ended = f"network loop: {mqtt.error_string(rc)}"

    def close(self) -> None:
        """Say goodbye if the socket is still there, then let the client go."""
        if self.ended is None:
            self.ended = "closed by the agent"
        try:
            self.client.disconnect()
            self.client.loop(timeout=0.05)
        except (OSError, ValueError):
            pass  # the socket was already gone: nothing to say goodbye on

    # -- paho callbacks (run inside client.loop, in the publisher's thread) ---------------------

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: ReasonCode, properties: Any
    ) -> None:
        del client, userdata, flags, properties
        if reason_code == 0:
            self.connected = True
            self.just_connected = True
            return
        self.refused_protocol = connection.unsupported_protocol(reason_code)
        self.ended = f"broker refused the connection: {reason_code}"

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: ReasonCode, properties: Any
    ) -> None:
        del client, userdata, flags, properties
        if self.ended is None:
            self.ended = f"disconnected: {reason_code}"
        self.connected = False

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason_code: ReasonCode, properties: Any
    ) -> None:
        del client, userdata, properties
        # MQTT 5 PUBACK reason codes below 0x80 are successes (0x10: nobody subscribed yet).
        self.completed.append((mid, not reason_code.is_failure, str(reason_code)))

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        del client, userdata
        if message.topic == topics.ack(self.vehicle):
            self.messages.append(bytes(message.payload))
