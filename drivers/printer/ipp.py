"""Binary IPP codec (RFC 8010 section 3): bytes <-> :class:`IppMessage`, on the stdlib only.

Encoding writes the header, each group after its delimiter tag, every attribute as tag, name and
value (the additional values of a 1setOf with an empty name), collections as begCollection /
memberAttrName / endCollection, then end-of-attributes and the document. Decoding never trusts a
length: anything short, overlong or malformed raises :class:`IppDecodeError` and nothing else,
in linear, capped time. The decoder lives in :mod:`drivers.printer.ipp_decode`, the message model
and constants in :mod:`drivers.printer.ipp_model`; both are re-exported here.
"""

from __future__ import annotations

import datetime as dt
import struct
from collections.abc import Iterator

from drivers.printer.ipp_decode import MAX_ITEMS, MAX_VALUES, decode
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
    STRING_TAGS,
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
    "MAX_ITEMS",
    "MAX_VALUES",
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
    "STRING_TAGS",
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
_MAX_FIELD = 0x7FFF  # lengths are signed 16-bit fields on the wire


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
    if (tag in STRING_TAGS or tag == MEMBER_ATTR_NAME) and isinstance(data, str):
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
