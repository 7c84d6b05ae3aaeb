"""MQTT for the agent: the topic tree, the v1 payloads, and the publisher that drains the outbox."""

from agent.mqtt.connection import BrokerUrl, LinkError, LinkSettings
from agent.mqtt.publisher import Publisher, PublisherSettings, PublisherStatus
from agent.mqtt.staging import BatchPolicy

__all__ = [
    "BatchPolicy",
    "BrokerUrl",
    "LinkError",
    "LinkSettings",
    "Publisher",
    "PublisherSettings",
    "PublisherStatus",
]
