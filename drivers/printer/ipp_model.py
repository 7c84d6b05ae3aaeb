"""The IPP message model (RFC 8010/8011): tags, status names and the frozen message dataclasses.

A message is a version, an operation-id (request) or status-code (response), a request-id,
attribute groups opened by delimiter tags, and optional document data. Each attribute is a name
and one or more :class:`Value`, each value carrying its own tag. The wire codec is in
:mod:`drivers.printer.ipp`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable
from typing import TypeAlias

# Delimiter tags (RFC 8010 3.5.1).
OPERATION_GROUP = 0x01
JOB_GROUP = 0x02
END_OF_ATTRIBUTES = 0x03
PRINTER_GROUP = 0x04
UNSUPPORTED_GROUP = 0x05

# Value tags (RFC 8010 3.5.2). 0x10-0x1F are out-of-band values that carry no data.
UNSUPPORTED = 0x10
UNKNOWN = 0x12
NO_VALUE = 0x13
INTEGER = 0x21
BOOLEAN = 0x22
ENUM = 0x23
OCTET_STRING = 0x30
DATE_TIME = 0x31
RESOLUTION = 0x32
RANGE_OF_INTEGER = 0x33
BEG_COLLECTION = 0x34
TEXT_WITH_LANGUAGE = 0x35
NAME_WITH_LANGUAGE = 0x36
END_COLLECTION = 0x37
TEXT = 0x41
NAME = 0x42
KEYWORD = 0x44
URI = 0x45
URI_SCHEME = 0x46
CHARSET = 0x47
NATURAL_LANGUAGE = 0x48
MIME_MEDIA_TYPE = 0x49
MEMBER_ATTR_NAME = 0x4A
#: Text-like tags (RFC 8010: 0x40-0x5F are character-string syntaxes); memberAttrName is structural.
STRING_TAGS = frozenset(range(0x40, 0x60)) - {MEMBER_ATTR_NAME}


# Operations and status codes this project uses or may see (RFC 8011 5.4.15, 13.1).
PRINT_JOB = 0x0002
GET_JOB_ATTRIBUTES = 0x0009
GET_PRINTER_ATTRIBUTES = 0x000B

STATUS_NAMES = {
    0x0000: "successful-ok",
    0x0001: "successful-ok-ignored-or-substituted-attributes",
    0x0002: "successful-ok-conflicting-attributes",
    0x0400: "client-error-bad-request",
    0x0401: "client-error-forbidden",
    0x0402: "client-error-not-authenticated",
    0x0403: "client-error-not-authorized",
    0x0404: "client-error-not-possible",
    0x0405: "client-error-timeout",
    0x0406: "client-error-not-found",
    0x0407: "client-error-gone",
    0x0408: "client-error-request-entity-too-large",
    0x0409: "client-error-request-value-too-long",
    0x040A: "client-error-document-format-not-supported",
    0x040B: "client-error-attributes-or-values-not-supported",
    0x040C: "client-error-uri-scheme-not-supported",
    0x040D: "client-error-charset-not-supported",
    0x040E: "client-error-conflicting-attributes",
    0x0500: "server-error-internal-error",
    0x0501: "server-error-operation-not-supported",
    0x0502: "server-error-service-unavailable",
    0x0503: "server-error-version-not-supported",
    0x0504: "server-error-device-error",
    0x0505: "server-error-temporary-error",
    0x0506: "server-error-not-accepting-jobs",
    0x0507: "server-error-busy",
    0x0508: "server-error-job-canceled",
}


def status_name(code: int) -> str:
    """The RFC keyword of a status code, or its hex form when unknown."""
    return STATUS_NAMES.get(code, f"status-0x{code:04x}")


class IppDecodeError(ValueError):
    """The bytes are not a well-formed IPP message."""


class IppEncodeError(ValueError):
    """A message cannot be encoded (a value does not fit its tag or a field is too long)."""


@dataclasses.dataclass(frozen=True)
class Resolution:
    """``resolution``: cross-feed and feed resolution; units 3 = dots per inch, 4 = per cm."""

    cross_feed: int
    feed: int
    units: int = 3


@dataclasses.dataclass(frozen=True)
class IntRange:
    """``rangeOfInteger``: inclusive bounds."""

    lower: int
    upper: int


@dataclasses.dataclass(frozen=True)
class TextWithLanguage:
    """``textWithLanguage`` / ``nameWithLanguage``: a string plus its natural language."""

    language: str
    text: str


Data: TypeAlias = (
    int
    | bool
    | str
    | bytes
    | dt.datetime
    | Resolution
    | IntRange
    | TextWithLanguage
    | tuple["Attribute", ...]  # a collection's member attributes
    | None  # out-of-band values (unknown, no-value, unsupported) carry no data
)


@dataclasses.dataclass(frozen=True)
class Value:
    """One value with its own tag: the values of a 1setOf may differ (e.g. name vs no-value)."""

    tag: int
    data: Data


@dataclasses.dataclass(frozen=True)
class Attribute:
    """A named attribute with one value, or several for a 1setOf."""

    name: str
    values: tuple[Value, ...]

    @classmethod
    def of(cls, name: str, tag: int, *data: Data) -> Attribute:
        """An attribute whose values all share ``tag``."""
        return cls(name, tuple(Value(tag, d) for d in data))

    @property
    def data(self) -> tuple[Data, ...]:
        return tuple(v.data for v in self.values)


@dataclasses.dataclass(frozen=True)
class AttributeGroup:
    """The attributes after one delimiter tag (operation, job, printer, unsupported)."""

    tag: int
    attributes: tuple[Attribute, ...]


@dataclasses.dataclass(frozen=True)
class IppMessage:
    """A request (``code`` = operation-id) or response (``code`` = status-code)."""

    code: int
    request_id: int
    groups: tuple[AttributeGroup, ...] = ()
    version: tuple[int, int] = (2, 0)
    document: bytes = b""

    def find(self, name: str, group_tag: int | None = None) -> Attribute | None:
        """The first attribute called ``name`` (in groups of ``group_tag`` when given)."""
        for group in self.groups:
            if group_tag is not None and group.tag != group_tag:
                continue
            for attribute in group.attributes:
                if attribute.name == name:
                    return attribute
        return None


def keywords(attribute: Attribute | None) -> tuple[str, ...]:
    """The string values of an attribute (empty when it is missing)."""
    if attribute is None:
        return ()
    return tuple(d for d in attribute.data if isinstance(d, str))


def operation_attributes(
    printer_uri: str, *extra: Attribute, language: str = "en", charset: str = "utf-8"
) -> AttributeGroup:
    """The operation group every request starts with (RFC 8011 4.1.4: charset, language first)."""
    head = (
        Attribute.of("attributes-charset", CHARSET, charset),
        Attribute.of("attributes-natural-language", NATURAL_LANGUAGE, language),
        Attribute.of("printer-uri", URI, printer_uri),
    )
    return AttributeGroup(OPERATION_GROUP, head + tuple(extra))


def keyword_list(name: str, values: Iterable[str]) -> Attribute:
    """A 1setOf keyword attribute, e.g. requested-attributes."""
    return Attribute.of(name, KEYWORD, *values)
