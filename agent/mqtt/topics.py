"""The MQTT topic tree: ``busagent/<vehicle>/...``, built for publishing and parsed for the collector.

    busagent/<vehicle>/status            retained birth ("online") and last will ("offline")
    busagent/<vehicle>/telemetry/<dev>   device snapshots, batched (one topic per outbox stream)
    busagent/<vehicle>/stops/visit       one StopVisit summary per message
    busagent/<vehicle>/probes/result     one probe suite result per message
    busagent/<vehicle>/events            stop arrivals/departures, printer incidents, ...
    busagent/<vehicle>/dropped           seq ranges the outbox cap dropped (so nobody waits for them)
    busagent/<vehicle>/ack               retained, written by the collector: stored seq per stream

An outbox stream name *is* the topic below the vehicle, so any stream maps to a topic, except the
reserved control names above.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Literal

ROOT = "busagent"
STATUS = "status"
ACK = "ack"
DROPPED = "dropped"
RESERVED = frozenset({STATUS, ACK, DROPPED})

#: Same rule as the agent's config for vehicle ids: they become one topic level.
VEHICLE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
#: A stream is one or more plain levels (no wildcards, no empty level, no "$").
_LEVEL_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
MAX_STREAM_LEVELS = 4

Kind = Literal["status", "ack", "dropped", "data"]


@dataclasses.dataclass(frozen=True)
class Topic:
    """A parsed topic: whose it is, what kind, and for data topics the outbox stream."""

    vehicle: str
    kind: Kind
    stream: str | None = None


def check_vehicle(vehicle: str) -> str:
    if not VEHICLE_RE.fullmatch(vehicle):
        raise ValueError(f"bad vehicle id {vehicle!r}: letters, digits, '-', '_', '.'; at most 64")
    return vehicle


def valid_stream(stream: str) -> bool:
    levels = stream.split("/")
    return (
        0 < len(levels) <= MAX_STREAM_LEVELS
        and all(_LEVEL_RE.fullmatch(level) for level in levels)
        and levels[0] not in RESERVED
    )


def status(vehicle: str) -> str:
    return f"{ROOT}/{check_vehicle(vehicle)}/{STATUS}"


def ack(vehicle: str) -> str:
    return f"{ROOT}/{check_vehicle(vehicle)}/{ACK}"


def dropped(vehicle: str) -> str:
    return f"{ROOT}/{check_vehicle(vehicle)}/{DROPPED}"


def data(vehicle: str, stream: str) -> str:
    """The topic of an outbox stream; ValueError for a stream the tree cannot carry."""
    if not valid_stream(stream):
        raise ValueError(
            f"stream {stream!r} cannot be a topic: plain levels only, not starting with {sorted(RESERVED)}"
        )
    return f"{ROOT}/{check_vehicle(vehicle)}/{stream}"


def subscription(group: str | None = None) -> str:
    """What a collector subscribes to; with a group, an MQTT 5 shared subscription."""
    everything = f"{ROOT}/+/#"
    if group is None:
        return everything
    if not _LEVEL_RE.fullmatch(group):
        raise ValueError(f"bad shared-subscription group {group!r}")
    return f"$share/{group}/{everything}"


def parse(topic: str) -> Topic | None:
    """The parsed topic, or None when it is not one of ours (wrong root, bad vehicle or stream)."""
    levels = topic.split("/")
    if len(levels) < 3 or levels[0] != ROOT or not VEHICLE_RE.fullmatch(levels[1]):
        return None
    vehicle, rest = levels[1], levels[2:]
    if len(rest) == 1 and rest[0] in RESERVED:
        kind: Kind = "status" if rest[0] == STATUS else "ack" if rest[0] == ACK else "dropped"
        return Topic(vehicle, kind)
    stream = "/".join(rest)
    return Topic(vehicle, "data", stream) if valid_stream(stream) else None
