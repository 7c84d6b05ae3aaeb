"""Binary IPP codec (RFC 8010 section 3): bytes <-> :class:`IppMessage`, on the stdlib only.

Encoding writes the header, each group after its delimiter tag, every attribute as tag, name and
value (the additional values of a 1setOf with an empty name), collections as begCollection /
memberAttrName / endCollection, then end-of-attributes and the document. Decoding never trusts a
length: anything short, overlong or malformed raises :class:`IppDecodeError` and nothing else.
The message model and constants live in :mod:`drivers.printer.ipp_model` and are re-exported here.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import struct
from collections.abc import Iterator

from drivers.printer.ipp_model import (
    BEG_COLLECTION,
    BOOLEAN,
    CHARSET,
    DATE_TIME,
    END_COLLECTION,
    END_OF_ATTRIBUTES,
    ENUM,
    GET_JOB_ATTRIBUTES,
    GET_PRINTER_ATTRIBUTES,
    INTEGER,
    JOB_GROUP,
    KEYWORD,
    MEMBER_ATTR_NAME,
    MIME_MEDIA_TYPE,
    NAME,
    NAME_WITH_LANGUAGE,
    NATURAL_LANGUAGE,
    NO_VALUE,
    OCTET_STRING,
    OPERATION_GROUP,
    PRINT_JOB,
    PRINTER_GROUP,
    RANGE_OF_INTEGER,
    RESOLUTION,
    STATUS_NAMES,
    TEXT,
    TEXT_WITH_LANGUAGE,
    UNKNOWN,
    UNSUPPORTED,
    UNSUPPORTED_GROUP,
    URI,
    URI_SCHEME,
    Attribute,
    AttributeGroup,
    Data,
    IntRange,
    IppDecodeError,
    IppEncodeError,
    IppMessage,
    Resolution,
    TextWithLanguage,
    Value,
    keyword_list,
    keywords,
    operation_attributes,
    status_name,
)

__all__ = [
    "BEG_COLLECTION",
    "BOOLEAN",
    "CHARSET",
    "DATE_TIME",
    "END_COLLECTION",
    "END_OF_ATTRIBUTES",
    "ENUM",
    "GET_JOB_ATTRIBUTES",
    "GET_PRINTER_ATTRIBUTES",
    "INTEGER",
    "JOB_GROUP",
    "KEYWORD",
    "MEMBER_ATTR_NAME",
    "MIME_MEDIA_TYPE",
    "NAME",
    "NAME_WITH_LANGUAGE",
    "NATURAL_LANGUAGE",
    "NO_VALUE",
    "OCTET_STRING",
    "OPERATION_GROUP",
    "PRINTER_GROUP",
    "PRINT_JOB",
    "RANGE_OF_INTEGER",
    "RESOLUTION",
    "STATUS_NAMES",
    "TEXT",
    "TEXT_WITH_LANGUAGE",
    "UNKNOWN",
    "UNSUPPORTED",
    "UNSUPPORTED_GROUP",
    "URI",
    "URI_SCHEME",
    "Attribute",
    "AttributeGroup",
    "Data",
    "IntRange",
    "IppDecodeError",
    "IppEncodeError",
    "IppMessage",
    "Resolution",
    "TextWithLanguage",
    "Value",
    "decode",
    "encode",
    "keyword_list",
    "keywords",
    "operation_attributes",
    "status_name",
]

# Value tags whose payload has a fixed structure; any other tag may carry raw bytes.
_STRUCTURED_TAGS = frozenset(
    {INTEGER, ENUM, BOOLEAN, DATE_TIME, RESOLUTION, RANGE_OF_INTEGER, BEG_COLLECTION, END_COLLECTION}
)
# Text-like tags (RFC 8010: 0x40-0x5F are character-string syntaxes); memberAttrName is structural.
_STRING_TAGS = frozenset(range(0x40, 0x60)) - {MEMBER_ATTR_NAME}
_MAX_FIELD = 0x7FFF  # lengths are signed 16-bit fields on the wire
_MAX_COLLECTION_DEPTH = 16


# --------------------------------------------------------------------------- encoding


def encode(message: IppMessage) -> bytes:
    """The wire form of ``message``; raises IppEncodeError when a value does not fit."""
    major, minor = message.version
    try:
        out = [struct.pack(">BBHi", major, minor, message.code, message.request_id)]
    except struct.error as exc:
        raise IppEncodeError(f"bad header field: {exc}") from exc
    for group in message.groups:
        if not 0x01 <= group.tag <= 0x0F or group.tag == END_OF_ATTRIBUTES:
            raise IppEncodeError(f"0x{group.tag:02x} is not a group delimiter tag")
        out.append(bytes([group.tag]))
        for attribute in group.attributes:
            out.extend(_encode_attribute(attribute))
    out.append(bytes([END_OF_ATTRIBUTES]))
    out.append(message.document)
    return b"".join(out)


def _encode_attribute(attribute: Attribute) -> Iterator[bytes]:
    if not attribute.name or not attribute.values:
        raise IppEncodeError("an attribute needs a name and at least one value")
    for index, value in enumerate(attribute.values):
        # Additional values of a 1setOf repeat the tag with an empty name (RFC 8010 3.1.5).
        yield from _encode_value(attribute.name if index == 0 else "", value)


def _encode_value(name: str, value: Value) -> Iterator[bytes]:
    if value.tag == BEG_COLLECTION:
        yield _field(value.tag, name, b"")
        members = value.data
        if not isinstance(members, tuple):
            raise IppEncodeError("a collection value holds a tuple of member attributes")
        for member in members:
            yield _field(MEMBER_ATTR_NAME, "", member.name.encode())
            for member_value in member.values:
                yield from _encode_value("", member_value)
        yield _field(END_COLLECTION, "", b"")
    else:
        yield _field(value.tag, name, _value_bytes(value))


def _field(tag: int, name: str, raw: bytes) -> bytes:
    name_bytes = name.encode()
    if not 0x10 <= tag <= 0xFF:
        raise IppEncodeError(f"0x{tag:x} is not a value tag")
    if len(name_bytes) > _MAX_FIELD or len(raw) > _MAX_FIELD:
        raise IppEncodeError(f"attribute {name!r}: name or value longer than {_MAX_FIELD} bytes")
    return struct.pack(">BH", tag, len(name_bytes)) + name_bytes + struct.pack(">H", len(raw)) + raw


def _value_bytes(value: Value) -> bytes:  # noqa: PLR0911 - one branch per value syntax
    tag, data = value.tag, value.data
    try:
        if tag in (INTEGER, ENUM) and isinstance(data, int) and not isinstance(data, bool):
            return struct.pack(">i", data)
        if tag == BOOLEAN and isinstance(data, bool):
            return b"\x01" if data else b"\x00"
        if tag == DATE_TIME and isinstance(data, dt.datetime):
            return _date_time_bytes(data)
        if tag == RESOLUTION and isinstance(data, Resolution):
            return struct.pack(">iib", data.cross_feed, data.feed, data.units)
        if tag == RANGE_OF_INTEGER and isinstance(data, IntRange):
            return struct.pack(">ii", data.lower, data.upper)
        if tag in (TEXT_WITH_LANGUAGE, NAME_WITH_LANGUAGE) and isinstance(data, TextWithLanguage):
            lang, text = data.language.encode(), data.text.encode()
            return struct.pack(">H", len(lang)) + lang + struct.pack(">H", len(text)) + text
    except struct.error as exc:
        raise IppEncodeError(f"value {data!r} does not fit tag 0x{tag:02x}: {exc}") from exc
    if 0x10 <= tag <= 0x1F and data is None:
        return b""
    if (tag in _STRING_TAGS or tag == MEMBER_ATTR_NAME) and isinstance(data, str):
        return data.encode()
    if isinstance(data, bytes) and tag not in _STRUCTURED_TAGS:
        return data  # octetString and tags this codec does not interpret
    raise IppEncodeError(f"value {data!r} does not fit tag 0x{tag:02x}")


def _date_time_bytes(when: dt.datetime) -> bytes:
    # RFC 2579 DateAndTime: the UTC offset travels as direction, hours, minutes.
    offset = when.utcoffset() or dt.timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    direction = b"+" if minutes >= 0 else b"-"
    hours, mins = divmod(abs(minutes), 60)
    deci = when.microsecond // 100_000
    head = struct.pack(">HBBBBBB", when.year, when.month, when.day, when.hour, when.minute, when.second, deci)
    return head + direction + bytes([hours, mins])


# --------------------------------------------------------------------------- decoding


class _Reader:
    """A cursor over the input that refuses to read past its end."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.pos = 0

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


def decode(raw: bytes) -> IppMessage:
    """Parse one IPP message; raises IppDecodeError (only) when ``raw`` is not one."""
    reader = _Reader(bytes(raw))
    major, minor = reader.take(2, "version")
    code = reader.u16("operation/status code")
    (request_id,) = struct.unpack(">i", reader.take(4, "request-id"))
    groups: list[AttributeGroup] = []
    current: tuple[int, list[Attribute]] | None = None
    while True:
        tag = reader.u8("tag")
        if tag <= 0x0F:
            if current is not None:
                groups.append(AttributeGroup(current[0], tuple(current[1])))
            if tag == END_OF_ATTRIBUTES:
                document = reader.raw[reader.pos :]
                return IppMessage(code, request_id, tuple(groups), (major, minor), document)
            if tag == 0x00:
                raise IppDecodeError(f"reserved delimiter tag 0x00 at byte {reader.pos - 1}")
            current = (tag, [])
            continue
        if current is None:
            raise IppDecodeError(f"value tag 0x{tag:02x} before any group at byte {reader.pos - 1}")
        _read_attribute(reader, _read_field(reader, tag), current[1])


def _read_field(reader: _Reader, tag: int) -> _Field:
    name = _text(reader.take(reader.u16("name-length"), "name"))
    raw = reader.take(reader.u16("value-length"), f"value of {name or 'additional value'}")
    return _Field(tag, name, raw)


def _read_attribute(reader: _Reader, field: _Field, attributes: list[Attribute]) -> None:
    if field.tag in (END_COLLECTION, MEMBER_ATTR_NAME):
        raise IppDecodeError(f"tag 0x{field.tag:02x} outside a collection at byte {reader.pos}")
    value = _read_value(reader, field)
    if field.name:
        attributes.append(Attribute(field.name, (value,)))
    elif attributes:
        last = attributes[-1]
        attributes[-1] = Attribute(last.name, (*last.values, value))
    else:
        raise IppDecodeError(f"additional value with no attribute before it at byte {reader.pos}")


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
    members: list[Attribute] = []
    while True:
        field = _read_field(reader, reader.u8("tag in collection"))
        if field.tag == END_COLLECTION:
            return tuple(members)
        if field.tag <= 0x0F:
            raise IppDecodeError(f"delimiter tag 0x{field.tag:02x} inside a collection")
        if field.tag == MEMBER_ATTR_NAME:
            members.append(Attribute(_text(field.raw), ()))
        elif members and not field.name:
            last = members[-1]
            members[-1] = Attribute(last.name, (*last.values, _read_value(reader, field, depth)))
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
    if tag in _STRING_TAGS:
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
