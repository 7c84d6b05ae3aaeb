"""MQTT payloads, version 1: the JSON documents of docs/mqtt.md, their bytes, and decoding them back.

Every document has ``"v": 1``, a ``kind`` and a ``msg_id``. Payload bytes are compact JSON, or the
same JSON compressed with zlib when that saves at least a tenth (a reader tells them apart by the
first byte: ``{`` or ``0x78``). High-rate telemetry goes as a ``batch``: up to a minute of records
of one stream in columns (see columns.py), which is what makes a 1 Hz GPS day cheap on 4G. The
collector decodes hostile bytes with :func:`loads` and the ``*_of_*`` functions: every problem
is a :class:`WireError` whose ``reason`` is one short word for the counters.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

from agent.mqtt import columns, shape
from agent.mqtt.limits import (
    MAX_INFLATED_BYTES,
    MAX_JSON_DEPTH,
    MAX_MSG_ID_CHARS,
    MAX_PAYLOAD_BYTES,
    MAX_PAYLOAD_KEYS,
    MAX_SEQ,
    MAX_WALL_SOURCE_CHARS,
)
from agent.outbox import Record

VERSION = 1
#: Below this a document is sent as plain JSON: zlib's header and checksum would eat the gain.
COMPRESS_FROM_BYTES = 160
ZLIB_FIRST_BYTE = 0x78
#: Batch times are carried to the microsecond (what makes them exact decimals for columns.py).
TIME_DECIMALS = 6


class Unsendable(ValueError):
    """A document the collector would refuse (too large, too many keys): it can never be delivered."""


class WireError(ValueError):
    """A payload that cannot be read; ``reason`` is a counter name such as ``not-json``."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclasses.dataclass(frozen=True)
class Received:
    """One outbox record as the collector gets it back, from a ``record`` or a ``batch``."""

    stream: str
    seq: int
    msg_id: str
    boot_id: str
    priority: str
    payload: dict[str, Any]
    mono: float
    wall: float
    wall_source: str


def record_msg_id(vehicle: str, boot_id: str, stream: str, seq: int) -> str:
    return f"{vehicle}/{boot_id}/{stream}/{seq}"


def batch_msg_id(vehicle: str, boot_id: str, stream: str, first: int, last: int) -> str:
    return f"{vehicle}/{boot_id}/{stream}/{first}-{last}"


# -- documents the agent publishes ----------------------------------------------------------------


def record_doc(record: Record, epoch: str) -> dict[str, Any]:
    """One record as one message (stop visits, probe results, events)."""
    return {
        "v": VERSION,
        "kind": "record",
        "msg_id": record.msg_id,
        "epoch": epoch,
        "stream": record.stream,
        "seq": record.seq,
        "boot_id": record.boot_id,
        "priority": record.priority,
        "mono": record.mono,
        "wall": record.wall,
        "wall_source": record.wall_source,
        "payload": record.payload,
    }


def batch_doc(vehicle: str, epoch: str, records: Sequence[Record]) -> dict[str, Any]:
    """Records of one stream and boot whose payloads have the same keys, in columns."""
    first = records[0]
    keys = list(first.payload)
    if any(
        r.stream != first.stream or r.boot_id != first.boot_id or list(r.payload) != keys for r in records
    ):
        raise ValueError("a batch holds one stream and boot, and payloads with the same keys")
    return {
        "v": VERSION,
        "kind": "batch",
        "msg_id": batch_msg_id(vehicle, first.boot_id, first.stream, first.seq, records[-1].seq),
        "epoch": epoch,
        "stream": first.stream,
        "boot_id": first.boot_id,
        "count": len(records),
        "first_seq": first.seq,
        "last_seq": records[-1].seq,
        "meta": {
            "seq": columns.encode([r.seq for r in records]),
            "mono": columns.encode([round(r.mono, TIME_DECIMALS) for r in records]),
            "wall": columns.encode([round(r.wall, TIME_DECIMALS) for r in records]),
            "wall_source": columns.encode([r.wall_source for r in records]),
            "priority": columns.encode([r.priority for r in records]),
        },
        "cols": {key: columns.encode([r.payload[key] for r in records]) for key in keys},
    }


def batch_groups(records: Sequence[Record], batch_max: int) -> list[list[Record]]:
    """Consecutive records cut into batchable groups of at most ``batch_max`` (order kept)."""
    groups: list[list[Record]] = []
    for record in records:
        current = groups[-1] if groups else None
        if current is not None and len(current) < batch_max and _same_shape(current[0], record):
            current.append(record)
        else:
            groups.append([record])
    return groups


def _same_shape(a: Record, b: Record) -> bool:
    return a.stream == b.stream and a.boot_id == b.boot_id and list(a.payload) == list(b.payload)


def status_doc(
    vehicle: str, *, state: str, reason: str, boot_id: str, epoch: str, at: float, serial: int
) -> dict[str, Any]:
    """The retained ``status``: birth (``online``), last will or clean stop (``offline``)."""
    return {
        "v": VERSION,
        "kind": "status",
        "msg_id": f"{vehicle}/{boot_id}/status/{state}-{serial}",
        "vehicle": vehicle,
        "state": state,
        "reason": reason,
        "boot_id": boot_id,
        "epoch": epoch,
        "at": at,
    }


def dropped_doc(
    vehicle: str, *, boot_id: str, epoch: str, stream: str, ranges: Sequence[tuple[int, int]]
) -> dict[str, Any]:
    """Inclusive seq ranges of ``stream`` that the outbox cap dropped: the collector stops waiting."""
    return {
        "v": VERSION,
        "kind": "dropped",
        "msg_id": f"{vehicle}/{boot_id}/{stream}/dropped-{ranges[0][0]}-{ranges[-1][1]}",
        "epoch": epoch,
        "stream": stream,
        "ranges": [[first, last] for first, last in ranges],
    }


@dataclasses.dataclass(frozen=True)
class AckView:
    """What the collector holds of one stream: every seq <= ``upto``; above it, up to ``top``, all
    but the ``missing`` ranges. Seqs above ``top`` are unknown to it."""

    upto: int
    top: int = 0
    missing: tuple[tuple[int, int], ...] = ()

    def has(self, seq: int) -> bool:
        if seq <= self.upto:
            return True
        return seq <= self.top and not any(first <= seq <= last for first, last in self.missing)


def ack_doc(
    vehicle: str, *, epoch: str, views: Mapping[str, AckView], at: float, serial: int
) -> dict[str, Any]:
    """The collector's retained ack: per stream ``upto`` (what the agent may delete), and for streams
    with holes, ``top`` and the ``missing`` ranges (what the agent should resend, nothing more)."""
    holed = {stream: view for stream, view in views.items() if view.top > view.upto}
    return {
        "v": VERSION,
        "kind": "ack",
        "msg_id": f"{vehicle}/{epoch}/ack/{serial}",
        "vehicle": vehicle,
        "epoch": epoch,
        "streams": {stream: view.upto for stream, view in views.items()},
        "top": {stream: view.top for stream, view in holed.items()},
        "missing": {stream: [list(r) for r in view.missing] for stream, view in holed.items()},
        "at": at,
    }


def parse_ack(payload: bytes) -> tuple[str, dict[str, AckView]] | None:
    """(epoch, {stream: view}) from an ack payload, or None when it is not a readable v1 ack."""
    try:
        doc: Any = loads(payload)
    except WireError:
        return None
    if not isinstance(doc, dict) or doc.get("v") != VERSION or doc.get("kind") != "ack":
        return None
    epoch, streams = doc.get("epoch"), doc.get("streams")
    tops, missing = doc.get("top", {}), doc.get("missing", {})
    if not (isinstance(epoch, str) and isinstance(streams, dict) and isinstance(tops, dict)):
        return None
    if not isinstance(missing, dict) or not all(_count(q) for q in (*streams.values(), *tops.values())):
        return None
    views = {}
    for stream, upto in streams.items():
        ranges = missing.get(stream, [])
        if not isinstance(ranges, list) or not all(_pair(r) for r in ranges):
            return None
        views[str(stream)] = AckView(upto, max(upto, tops.get(stream, 0)), tuple((a, b) for a, b in ranges))
    return epoch, views


def _count(value: object) -> bool:
    return type(value) is int and value >= 0


def _pair(value: object) -> bool:
    return isinstance(value, list) and len(value) == 2 and all(_count(v) for v in value)


# -- bytes ----------------------------------------------------------------------------------------


def dumps(doc: Mapping[str, Any]) -> bytes:
    """Compact JSON, zlib-compressed when that saves at least a tenth."""
    return _pack(json.dumps(doc, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode())


def _pack(text: bytes) -> bytes:
    if len(text) < COMPRESS_FROM_BYTES:
        return text
    packed = zlib.compress(text, 9)
    return packed if len(packed) * 10 < len(text) * 9 else text


def record_problem(record: Record) -> str | None:
    """Why the collector's schema would refuse this record whatever it is sent in, or None."""
    if len(record.msg_id) > MAX_MSG_ID_CHARS:
        return f"msg_id of {len(record.msg_id)} characters, limit {MAX_MSG_ID_CHARS}"
    if len(record.payload) > MAX_PAYLOAD_KEYS:
        return f"payload with {len(record.payload)} keys, limit {MAX_PAYLOAD_KEYS}"
    if len(record.wall_source) > MAX_WALL_SOURCE_CHARS:
        return f"wall_source of {len(record.wall_source)} characters, limit {MAX_WALL_SOURCE_CHARS}"
    return None


def dumps_checked(doc: Mapping[str, Any]) -> bytes:
    """``dumps``, but Unsendable when the collector's :func:`loads` would refuse the bytes as too large."""
    text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
    if len(text) > MAX_INFLATED_BYTES:  # checked first: no point compressing what will be refused
        raise Unsendable(f"{len(text)} bytes of JSON, limit {MAX_INFLATED_BYTES}")
    if shape.too_deep(doc, text):
        raise Unsendable(f"arrays and objects nested deeper than {MAX_JSON_DEPTH} levels")
    if (expanded := shape.constant_expansion(doc)) > MAX_INFLATED_BYTES:
        raise Unsendable(f"batch expands to {expanded} bytes of constants, limit {MAX_INFLATED_BYTES}")
    data = _pack(text)
    if len(data) > MAX_PAYLOAD_BYTES:
        raise Unsendable(f"{len(data)} bytes on the wire, limit {MAX_PAYLOAD_BYTES}")
    return data


def loads(data: bytes) -> Any:
    """The JSON value in ``data`` (plain or zlib); WireError for anything oversized or unreadable."""
    if len(data) > MAX_PAYLOAD_BYTES:
        raise WireError("too-large", f"{len(data)} bytes, limit {MAX_PAYLOAD_BYTES}")
    if data[:1] == bytes([ZLIB_FIRST_BYTE]):
        data = _inflate(data)
    try:
        value = json.loads(data, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError included
        raise WireError("not-json", str(exc)[:120]) from exc
    if shape.too_deep(value, data):
        raise WireError("too-deep", f"arrays and objects nested deeper than {MAX_JSON_DEPTH} levels")
    return value


def _inflate(data: bytes) -> bytes:
    inflater = zlib.decompressobj()
    try:
        text = inflater.decompress(data, MAX_INFLATED_BYTES)
    except zlib.error as exc:
        raise WireError("bad-zlib", str(exc)) from exc
    if inflater.unconsumed_tail:
        raise WireError("too-large", f"inflates past {MAX_INFLATED_BYTES} bytes")
    if not inflater.eof or inflater.unused_data:
        raise WireError("bad-zlib", "truncated or trailing bytes")
    return text


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def publish_packet_bytes(topic: str, payload_len: int, *, mqtt5: bool) -> int:
    """Bytes of one QoS 1 PUBLISH on the wire (fixed header, topic, packet id, properties, payload)."""
    remaining = 2 + len(topic.encode()) + 2 + (1 if mqtt5 else 0) + payload_len
    length_bytes = 1
    while remaining >= 128**length_bytes:
        length_bytes += 1
    return 1 + length_bytes + remaining


# -- reading documents back (collector side; the document is already schema-valid) ---------------


def record_of_doc(doc: Mapping[str, Any], vehicle: str) -> Received:
    """The record in a ``record`` document; its msg_id must name this vehicle, stream and seq."""
    try:
        mono, wall = _finite(doc["mono"]), _finite(doc["wall"])
    except (TypeError, ValueError) as exc:
        raise WireError("bad-record", f"mono/wall: {exc}") from exc
    received = Received(
        stream=doc["stream"],
        seq=doc["seq"],
        msg_id=doc["msg_id"],
        boot_id=doc["boot_id"],
        priority=doc["priority"],
        payload=doc["payload"],
        mono=mono,
        wall=wall,
        wall_source=doc["wall_source"],
    )
    if not 1 <= received.seq <= MAX_SEQ:
        raise WireError("bad-seq", f"seq {received.seq} outside 1..{MAX_SEQ}")
    expected = record_msg_id(vehicle, received.boot_id, received.stream, received.seq)
    if received.msg_id != expected:
        raise WireError("msg-id-mismatch", f"msg_id {received.msg_id!r} is not {expected!r}")
    return received


def records_of_batch(doc: Mapping[str, Any], vehicle: str) -> list[Received]:
    """The records of a ``batch`` document, in order; WireError when its columns do not add up."""
    count, stream, boot_id = doc["count"], doc["stream"], doc["boot_id"]
    expected = batch_msg_id(vehicle, boot_id, stream, doc["first_seq"], doc["last_seq"])
    if doc["msg_id"] != expected:
        raise WireError("msg-id-mismatch", f"msg_id {doc['msg_id']!r} is not {expected!r}")
    if (expanded := shape.constant_expansion(doc)) > MAX_INFLATED_BYTES:
        raise WireError(
            "too-large", f"constant columns expand to {expanded} bytes, limit {MAX_INFLATED_BYTES}"
        )
    try:
        meta = {name: columns.decode(col, count) for name, col in doc["meta"].items()}
        cols = {key: columns.decode(col, count) for key, col in doc["cols"].items()}
    except ValueError as exc:
        raise WireError("bad-batch", str(exc)) from exc
    seqs = meta["seq"]
    if seqs[0] != doc["first_seq"] or seqs[-1] != doc["last_seq"] or _not_increasing(seqs):
        raise WireError("bad-batch", "seq column does not run from first_seq to last_seq upwards")
    try:
        return [_batch_record(vehicle, stream, boot_id, meta=meta, cols=cols, i=i) for i in range(count)]
    except (TypeError, ValueError) as exc:  # _finite's OverflowError too: huge ints, 1e400 = inf
        raise WireError("bad-batch", f"column of the wrong type: {exc}") from exc


def _batch_record(
    vehicle: str, stream: str, boot_id: str, *, meta: dict[str, list[Any]], cols: dict[str, list[Any]], i: int
) -> Received:
    seq = meta["seq"][i]
    if not isinstance(seq, int) or isinstance(seq, bool) or not 1 <= seq <= MAX_SEQ:
        raise TypeError(f"seq {seq!r}")
    for name in ("wall_source", "priority"):
        if not isinstance(meta[name][i], str):
            raise TypeError(f"{name} {meta[name][i]!r}")
    return Received(
        stream=stream,
        seq=seq,
        msg_id=record_msg_id(vehicle, boot_id, stream, seq),
        boot_id=boot_id,
        priority=meta["priority"][i],
        payload={key: values[i] for key, values in cols.items()},
        mono=_finite(meta["mono"][i]),
        wall=_finite(meta["wall"][i]),
        wall_source=meta["wall_source"][i],
    )


def _finite(value: Any) -> float:
    """A JSON number as a finite float; a string ("nan"), bool, 1e400 or 10**400 is refused."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{value!r} is not a number")
    try:
        number = float(value)
    except OverflowError as exc:
        raise ValueError(f"{str(value)[:20]}... is too large") from exc
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not finite")
    return number


def _not_increasing(seqs: list[Any]) -> bool:
    try:
        return any(b <= a for a, b in itertools.pairwise(seqs))
    except TypeError:
        return True
