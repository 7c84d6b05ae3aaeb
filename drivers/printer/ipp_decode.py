"""Decoding of binary IPP (RFC 8010 section 3): bytes -> :class:`IppMessage`, raising only IppDecodeError.

No length is trusted, and the work is linear and capped: values are collected in lists and
frozen into tuples once per attribute (rebuilding a tuple per additional value made a 4 MB answer
of empty values cost over an hour of CPU), with at most ``MAX_VALUES`` values per attribute and
``MAX_ITEMS`` groups and values per message. Imported through :mod:`drivers.printer.ipp`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import struct

from drivers.printer.ipp_model import (
    BEG_COLLECTION,
    BOOLEAN,
    DATE_TIME,
    END_COLLECTION,
    END_OF_ATTRIBUTES,
    ENUM,
    INTEGER,
    MEMBER_ATTR_NAME,
    NAME_WITH_LANGUAGE,
    RANGE_OF_INTEGER,
    RESOLUTION,
    STRING_TAGS,
    TEXT_WITH_LANGUAGE,
    Attribute,
    AttributeGroup,
    Data,
    IntRange,
    IppDecodeError,
    IppMessage,
    Resolution,
    TextWithLanguage,
    Value,
)

_MAX_COLLECTION_DEPTH = 16
#: Values one attribute may carry. CUPS's longest lists (media-supported, a few hundred names)
#: are far below it; more is an answer built to exhaust the decoder.
MAX_VALUES = 10_000
#: Groups plus values in one message. A full CUPS attribute dump is a few thousand; decoding
#: costs about 10 us each, so this bounds any answer to about half a second of CPU.
MAX_ITEMS = 50_000


class _Reader:
    """A cursor over the input that refuses to read past its end."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.pos = 0
        self.items = 0  # groups and fields read so far

    def count_item(self) -> None:
        self.items += 1
        if self.items > MAX_ITEMS:
            raise IppDecodeError(f"more than {MAX_ITEMS} groups and attribute values")

    def take(self, count: int, what: str) -> bytes:
        end = self.pos + count
        if end > len(self.raw):
            raise IppDecodeError(f"truncated at byte {self.pos}: {what} needs {count} bytes")
        chunk = self.raw[self.pos : end]
        self.pos = end
        return chunk

    def u8(self, what: str) -> int:
        return self.take(1, what)[0]

    def u16(self, what: str) -> int:
        value: int = struct.unpack(">H", self.take(2, what))[0]
        return value

    def peek(self) -> int | None:
        return self.raw[self.pos] if self.pos < len(self.raw) else None


@dataclasses.dataclass
class _Field:
    tag: int
    name: str
    raw: bytes


class _Building:
    """Attributes under construction: values go into lists and are frozen into tuples once.

    Rebuilding an attribute's tuple for every additional value made decoding quadratic: a 4 MB
    answer of empty additional values is ~800 000 of them, over an hour of CPU.
    """

    def __init__(self) -> None:
        self.named: list[tuple[str, list[Value]]] = []

    def start(self, name: str, first: Value | None) -> None:
        self.named.append((name, [] if first is None else [first]))

    def add(self, value: Value, where: int) -> None:
        if not self.named:
            raise IppDecodeError(f"additional value with no attribute before it at byte {where}")
        name, values = self.named[-1]
        if len(values) >= MAX_VALUES:
            raise IppDecodeError(f"attribute {name!r} has more than {MAX_VALUES} values")
        values.append(value)

    def freeze(self) -> tuple[Attribute, ...]:
        return tuple(Attribute(name, tuple(values)) for name, values in self.named)


def decode(raw: bytes) -> IppMessage:
    """Parse one IPP message; raises IppDecodeError (only) when ``raw`` is not one."""
    reader = _Reader(bytes(raw))
    major, minor = reader.take(2, "version")
    code = reader.u16("operation/status code")
    (request_id,) = struct.unpack(">i", reader.take(4, "request-id"))
    groups: list[AttributeGroup] = []
    current: tuple[int, _Building] | None = None
    while True:
        tag = reader.u8("tag")
        if tag <= 0x0F:
            if current is not None:
                groups.append(AttributeGroup(current[0], current[1].freeze()))
            if tag == END_OF_ATTRIBUTES:
                document = reader.raw[reader.pos :]
                return IppMessage(code, request_id, tuple(groups), (major, minor), document)
            if tag == 0x00:
                raise IppDecodeError(f"reserved delimiter tag 0x00 at byte {reader.pos - 1}")
            reader.count_item()
            current = (tag, _Building())
            continue
        if current is None:
            raise IppDecodeError(f"value tag 0x{tag:02x} before any group at byte {reader.pos - 1}")
        _read_attribute(reader, _read_field(reader, tag), current[1])


def _read_field(reader: _Reader, tag: int) -> _Field:
    reader.count_item()
    name = _text(reader.take(reader.u16("name-length"), "name"))
    raw = reader.take(reader.u16("value-length"), f"value of {name or 'additional value'}")
    return _Field(tag, name, raw)


def _read_attribute(reader: _Reader, field: _Field, attributes: _Building) -> None:
    if field.tag in (END_COLLECTION, MEMBER_ATTR_NAME):
        raise IppDecodeError(f"tag 0x{field.tag:02x} outside a collection at byte {reader.pos}")
    value = _read_value(reader, field)
    if field.name:
        attributes.start(field.name, value)
    else:
        attributes.add(value, reader.pos)


def _read_value(reader: _Reader, field: _Field, depth: int = 0) -> Value:
    if field.tag == BEG_COLLECTION:
        return Value(BEG_COLLECTION, _read_collection(reader, depth + 1))
    return Value(field.tag, _data(field))


def _read_collection(reader: _Reader, depth: int) -> tuple[Attribute, ...]:
    """Members until endCollection: memberAttrName opens a member, empty-named values follow."""
    if depth > _MAX_COLLECTION_DEPTH:
        # Real printers nest two or three levels; bytes nesting deeper are garbage, and recursing
        # on them would end in RecursionError instead of a decode error.
        raise IppDecodeError(f"collections nested deeper than {_MAX_COLLECTION_DEPTH}")
    members = _Building()
    while True:
        field = _read_field(reader, reader.u8("tag in collection"))
        if field.tag == END_COLLECTION:
            return members.freeze()
        if field.tag <= 0x0F:
            raise IppDecodeError(f"delimiter tag 0x{field.tag:02x} inside a collection")
        if field.tag == MEMBER_ATTR_NAME:
            members.start(_text(field.raw), None)
        elif members.named and not field.name:
            members.add(_read_value(reader, field, depth), reader.pos)
        else:
            raise IppDecodeError(f"collection value without a member name at byte {reader.pos}")


def _data(field: _Field) -> Data:  # noqa: PLR0911 - one branch per value syntax
    tag, raw = field.tag, field.raw
    if 0x10 <= tag <= 0x1F:
        return None
    if tag in (INTEGER, ENUM):
        return _fixed(">i", raw, field)[0]
    if tag == BOOLEAN:
        if raw not in (b"\x00", b"\x01"):
            raise IppDecodeError(f"{field.name or 'value'}: boolean must be one byte 0 or 1, got {raw!r}")
        return raw == b"\x01"
    if tag == DATE_TIME:
        return _date_time(field)
    if tag == RESOLUTION:
        return Resolution(*_fixed(">iib", raw, field))
    if tag == RANGE_OF_INTEGER:
        return IntRange(*_fixed(">ii", raw, field))
    if tag in (TEXT_WITH_LANGUAGE, NAME_WITH_LANGUAGE):
        inner = _Reader(raw)
        language = _text(inner.take(inner.u16("language length"), "language"))
        text = _text(inner.take(inner.u16("text length"), "text"))
        if inner.peek() is not None:
            raise IppDecodeError(f"{field.name or 'value'}: bytes after textWithLanguage")
        return TextWithLanguage(language, text)
    if tag in STRING_TAGS:
        return _text(raw)
    return raw  # octetString and any tag this codec does not interpret


def _fixed(fmt: str, raw: bytes, field: _Field) -> tuple[int, ...]:
    size = struct.calcsize(fmt)
    if len(raw) != size:
        what = field.name or "value"
        raise IppDecodeError(f"{what}: tag 0x{field.tag:02x} needs {size} bytes, got {len(raw)}")
    return tuple(struct.unpack(fmt, raw))


def _date_time(field: _Field) -> dt.datetime:
    year, month, day, hour, minute, second, deci, direction, off_h, off_m = _fixed(
        ">HBBBBBBBBB", field.raw, field
    )
    if direction not in (ord("+"), ord("-")):
        raise IppDecodeError(f"{field.name or 'value'}: dateTime UTC direction must be '+' or '-'")
    try:
        sign = 1 if direction == ord("+") else -1
        tz = dt.timezone(sign * dt.timedelta(hours=off_h, minutes=off_m))
        return dt.datetime(year, month, day, hour, minute, second, deci * 100_000, tzinfo=tz)
    except ValueError as exc:
        raise IppDecodeError(f"{field.name or 'value'}: impossible dateTime: {exc}") from exc


def _text(raw: bytes) -> str:
    # Printers do send invalid UTF-8 in names and messages; a replacement character is better
    # than refusing the whole answer.
    return raw.decode("utf-8", errors="replace")
