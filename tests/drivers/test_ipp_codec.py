"""The stdlib IPP codec: hand-built RFC 8010 byte strings, round trips, and garbage that must not crash."""

from __future__ import annotations

import datetime as dt
import struct
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.printer import ipp
from drivers.printer.ipp import Attribute, AttributeGroup, IppDecodeError, IppMessage, Value


def field(tag: int, name: str, value: bytes) -> bytes:
    """One attribute-with-one-value (RFC 8010 3.1.4): tag, name-length, name, value-length, value."""
    raw_name = name.encode()
    return bytes([tag]) + struct.pack(">H", len(raw_name)) + raw_name + struct.pack(">H", len(value)) + value


def i32(value: int) -> bytes:
    return struct.pack(">i", value)


# A Get-Printer-Attributes response as a printer would send it, built byte by byte.
RESPONSE = b"".join(
    [
        b"\x02\x00",  # version 2.0
        b"\x00\x00",  # successful-ok
        i32(42),  # request-id
        b"\x01",  # operation-attributes-tag
        field(0x47, "attributes-charset", b"utf-8"),
        field(0x48, "attributes-natural-language", b"en"),
        b"\x04",  # printer-attributes-tag
        field(0x23, "printer-state", i32(5)),
        field(0x44, "printer-state-reasons", b"media-empty-error"),
        field(0x44, "", b"toner-low-warning"),  # additional value of the 1setOf: empty name
        field(0x22, "printer-is-accepting-jobs", b"\x01"),
        field(0x41, "printer-state-message", b"Out of paper"),
        field(0x42, "marker-names", b"Black"),
        field(0x42, "", b"Cyan"),
        field(0x21, "marker-levels", i32(30)),
        field(0x21, "", i32(-1)),
        field(0x31, "printer-current-time", b"\x07\xea\x03\x02\x08\x00\x00\x00+\x01\x00"),
        field(0x32, "printer-resolution-default", i32(600) + i32(600) + b"\x03"),
        field(0x33, "copies-supported", i32(1) + i32(999)),
        field(0x30, "printer-device-id", b"MFG:Acme;MDL:LaserBus;"),
        field(0x36, "printer-info", b"\x00\x02fr\x00\x05Bus 1"),
        field(0x13, "printer-geo-location", b""),  # out-of-band no-value
        field(0x49, "document-format-default", b"application/pdf"),
        field(0x45, "printer-uri-supported", b"ipp://bus.local/ipp/print"),
        field(0x34, "media-col-default", b""),
        field(0x4A, "", b"media-size"),
        field(0x34, "", b""),
        field(0x4A, "", b"x-dimension"),
        field(0x21, "", i32(21000)),
        field(0x4A, "", b"y-dimension"),
        field(0x21, "", i32(29700)),
        field(0x37, "", b""),
        field(0x4A, "", b"media-type"),
        field(0x44, "", b"stationery"),
        field(0x37, "", b""),
        b"\x03",  # end-of-attributes-tag
    ]
)


def test_decodes_the_header_and_the_groups_of_a_hand_built_response() -> None:
    message = ipp.decode(RESPONSE)
    assert (message.version, message.code, message.request_id) == ((2, 0), 0x0000, 42)
    assert [g.tag for g in message.groups] == [ipp.OPERATION_GROUP, ipp.PRINTER_GROUP]
    assert message.find("attributes-charset", ipp.OPERATION_GROUP) == Attribute.of(
        "attributes-charset", ipp.CHARSET, "utf-8"
    )
    assert message.find("attributes-charset", ipp.PRINTER_GROUP) is None
    assert message.document == b""


def test_additional_values_with_an_empty_name_join_the_previous_attribute() -> None:
    message = ipp.decode(RESPONSE)
    reasons = message.find("printer-state-reasons")
    assert reasons is not None
    assert reasons.data == ("media-empty-error", "toner-low-warning")
    levels = message.find("marker-levels")
    assert levels is not None and levels.data == (30, -1)
    assert ipp.keywords(message.find("marker-names")) == ("Black", "Cyan")


def test_decodes_every_value_syntax_to_its_python_type() -> None:
    message = ipp.decode(RESPONSE)

    def first(name: str) -> ipp.Data:
        attribute = message.find(name)
        assert attribute is not None, name
        return attribute.data[0]

    assert first("printer-state") == 5
    assert first("printer-is-accepting-jobs") is True
    assert first("printer-state-message") == "Out of paper"
    plus_one = dt.timezone(dt.timedelta(hours=1))
    assert first("printer-current-time") == dt.datetime(2026, 3, 2, 8, 0, 0, tzinfo=plus_one)
    assert first("printer-resolution-default") == ipp.Resolution(600, 600, 3)
    assert first("copies-supported") == ipp.IntRange(1, 999)
    assert first("printer-device-id") == b"MFG:Acme;MDL:LaserBus;"
    assert first("printer-info") == ipp.TextWithLanguage("fr", "Bus 1")
    assert first("printer-geo-location") is None
    assert first("document-format-default") == "application/pdf"
    assert first("printer-uri-supported") == "ipp://bus.local/ipp/print"


def test_decodes_nested_collections_into_member_attributes() -> None:
    media_col = ipp.decode(RESPONSE).find("media-col-default")
    assert media_col is not None
    (members,) = media_col.data
    assert isinstance(members, tuple)
    size, media_type = members
    assert media_type == Attribute.of("media-type", ipp.KEYWORD, "stationery")
    assert size.name == "media-size"
    assert size.data == (
        (Attribute.of("x-dimension", ipp.INTEGER, 21000), Attribute.of("y-dimension", ipp.INTEGER, 29700)),
    )


def test_encoding_the_decoded_response_gives_back_the_same_bytes() -> None:
    assert ipp.encode(ipp.decode(RESPONSE)) == RESPONSE


def test_encodes_a_get_printer_attributes_request_byte_for_byte() -> None:
    request = IppMessage(
        ipp.GET_PRINTER_ATTRIBUTES,
        7,
        (
            ipp.operation_attributes(
                "ipp://127.0.0.1:631/ipp/print",
                ipp.keyword_list("requested-attributes", ["printer-state", "marker-levels"]),
            ),
        ),
    )
    expected = b"".join(
        [
            b"\x02\x00\x00\x0b",
            i32(7),
            b"\x01",
            field(0x47, "attributes-charset", b"utf-8"),
            field(0x48, "attributes-natural-language", b"en"),
            field(0x45, "printer-uri", b"ipp://127.0.0.1:631/ipp/print"),
            field(0x44, "requested-attributes", b"printer-state"),
            field(0x44, "", b"marker-levels"),
            b"\x03",
        ]
    )
    assert ipp.encode(request) == expected


def test_document_data_after_end_of_attributes_is_kept() -> None:
    message = ipp.decode(RESPONSE + b"%PDF-1.7 ...")
    assert message.document == b"%PDF-1.7 ..."
    assert ipp.encode(message) == RESPONSE + b"%PDF-1.7 ..."


def test_truncation_at_every_byte_raises_ipp_decode_error() -> None:
    for cut in range(len(RESPONSE)):
        with pytest.raises(IppDecodeError):
            ipp.decode(RESPONSE[:cut])


HEADER = b"\x02\x00\x00\x00" + i32(1)
MONTH_13 = b"\x07\xea\x0d\x02\x08\x00\x00\x00+\x01\x00"


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"\x04" + field(0x44, "", b"none") + b"\x03", "no attribute before it"),
        (field(0x44, "printer-state-reasons", b"none") + b"\x03", "before any group"),
        (b"\x04" + field(0x22, "printer-is-accepting-jobs", b"\x02") + b"\x03", "boolean"),
        (b"\x04" + field(0x23, "printer-state", b"\x00\x03") + b"\x03", "needs 4 bytes"),
        (b"\x04" + field(0x31, "printer-current-time", MONTH_13) + b"\x03", "impossible"),
        (b"\x04" + field(0x37, "", b"") + b"\x03", "outside a collection"),
        (b"\x04" + field(0x34, "col", b"") + field(0x21, "", i32(1)) + b"\x03", "without a member name"),
        (b"\x04" + field(0x34, "col", b"") + b"\x03", "truncated"),
        (b"\x00\x03", "reserved delimiter"),
        (b"\x04" + field(0x35, "printer-info", b"\x00\x09fr") + b"\x03", "truncated"),
    ],
)  # fmt: skip
def test_malformed_bodies_raise_ipp_decode_error_saying_what_is_wrong(body: bytes, words: str) -> None:
    with pytest.raises(IppDecodeError, match=words):
        ipp.decode(HEADER + body)


def test_absurdly_deep_collections_are_a_decode_error_not_a_recursion_error() -> None:
    deep = b"\x04" + field(0x34, "col", b"") + (field(0x4A, "", b"m") + field(0x34, "", b"")) * 5000
    with pytest.raises(IppDecodeError, match="nested deeper"):
        ipp.decode(HEADER + deep)


def test_invalid_utf8_in_text_is_replaced_not_fatal() -> None:
    message = ipp.decode(HEADER + b"\x04" + field(0x41, "printer-state-message", b"Bac \xff vide") + b"\x03")
    attribute = message.find("printer-state-message")
    assert attribute is not None and attribute.data == ("Bac \ufffd vide",)


def test_encode_refuses_values_that_do_not_fit_their_tag() -> None:
    with pytest.raises(ipp.IppEncodeError):
        ipp.encode(IppMessage(0, 1, (AttributeGroup(4, (Attribute.of("printer-state", ipp.ENUM, "idle"),)),)))
    with pytest.raises(ipp.IppEncodeError):
        ipp.encode(IppMessage(0, 1, (AttributeGroup(4, (Attribute.of("n", ipp.INTEGER, 2**31),)),)))
    with pytest.raises(ipp.IppEncodeError, match="longer than"):
        ipp.encode(IppMessage(0, 1, (AttributeGroup(4, (Attribute.of("n", ipp.TEXT, "x" * 40000),)),)))
    with pytest.raises(ipp.IppEncodeError, match="delimiter"):
        ipp.encode(IppMessage(0, 1, (AttributeGroup(ipp.END_OF_ATTRIBUTES, ()),)))


def test_status_names_are_the_rfc_keywords() -> None:
    assert ipp.status_name(0x0406) == "client-error-not-found"
    assert ipp.status_name(0x0000) == "successful-ok"
    assert ipp.status_name(0x0BAD) == "status-0x0bad"


# --------------------------------------------------------------------------- properties

_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=20)
_texts = st.text(max_size=30)
_ints = st.integers(-(2**31), 2**31 - 1)
_times = st.builds(
    lambda when, deci, offset: when.replace(microsecond=deci * 100_000, tzinfo=dt.timezone(offset)),
    st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31)),
    st.integers(0, 9),
    st.integers(-(23 * 60 + 59), 23 * 60 + 59).map(lambda m: dt.timedelta(minutes=m)),
)
_simple_values = st.one_of(
    st.builds(Value, st.sampled_from([ipp.INTEGER, ipp.ENUM]), _ints),
    st.builds(Value, st.just(ipp.BOOLEAN), st.booleans()),
    st.builds(Value, st.sampled_from([ipp.TEXT, ipp.NAME, ipp.KEYWORD, ipp.URI, ipp.CHARSET]), _texts),
    st.builds(Value, st.sampled_from([ipp.NATURAL_LANGUAGE, ipp.MIME_MEDIA_TYPE, ipp.URI_SCHEME]), _texts),
    st.builds(Value, st.just(ipp.OCTET_STRING), st.binary(max_size=30)),
    st.builds(Value, st.just(ipp.DATE_TIME), _times),
    st.builds(
        Value, st.just(ipp.RESOLUTION), st.builds(ipp.Resolution, _ints, _ints, st.sampled_from([3, 4]))
    ),
    st.builds(Value, st.just(ipp.RANGE_OF_INTEGER), st.builds(ipp.IntRange, _ints, _ints)),
    st.builds(
        Value,
        st.sampled_from([ipp.TEXT_WITH_LANGUAGE, ipp.NAME_WITH_LANGUAGE]),
        st.builds(ipp.TextWithLanguage, _texts, _texts),
    ),
    st.builds(Value, st.sampled_from([ipp.UNSUPPORTED, ipp.UNKNOWN, ipp.NO_VALUE]), st.none()),
)
_simple_attributes = st.builds(Attribute, _names, st.lists(_simple_values, min_size=1, max_size=3).map(tuple))
_collections = st.builds(
    Value, st.just(ipp.BEG_COLLECTION), st.lists(_simple_attributes, max_size=3).map(tuple)
)
_attributes = st.builds(
    Attribute, _names, st.lists(st.one_of(_simple_values, _collections), min_size=1, max_size=3).map(tuple)
)
_messages = st.builds(
    IppMessage,
    code=st.integers(0, 0xFFFF),
    request_id=st.integers(1, 2**31 - 1),
    groups=st.lists(
        st.builds(
            AttributeGroup, st.sampled_from([1, 2, 4, 5]), st.lists(_attributes, max_size=4).map(tuple)
        ),
        max_size=3,
    ).map(tuple),
    version=st.sampled_from([(1, 1), (2, 0)]),
    document=st.binary(max_size=20),
)


@given(_messages)
@settings(max_examples=200)
def test_any_encodable_message_decodes_back_to_itself(message: IppMessage) -> None:
    assert ipp.decode(ipp.encode(message)) == message


def _decode_or_decode_error(raw: bytes) -> None:
    try:
        message = ipp.decode(raw)
    except IppDecodeError:
        return
    assert isinstance(message, IppMessage)


@given(st.binary(max_size=300))
@settings(max_examples=500)
def test_arbitrary_bytes_only_ever_raise_ipp_decode_error(raw: bytes) -> None:
    _decode_or_decode_error(raw)


@given(st.binary(max_size=300))
@settings(max_examples=500)
def test_arbitrary_bytes_after_a_valid_header_and_group_only_raise_ipp_decode_error(tail: bytes) -> None:
    _decode_or_decode_error(HEADER + b"\x04" + tail)


@given(st.integers(0, len(RESPONSE) - 1), st.integers(0, 255))
@settings(max_examples=500)
def test_any_single_corrupted_byte_only_raises_ipp_decode_error(index: int, byte: int) -> None:
    _decode_or_decode_error(RESPONSE[:index] + bytes([byte]) + RESPONSE[index + 1 :])


# --- bounded decoding: hostile answers cost linear, capped time ---


def many_values(count: int) -> bytes:
    """One keyword attribute followed by ``count - 1`` empty additional values (5 bytes each)."""
    extra = field(0x44, "", b"")
    return HEADER + b"\x04" + field(0x44, "abc", b"x") + extra * (count - 1) + b"\x03"


def test_attribute_with_200k_additional_values_is_rejected_in_well_under_a_second() -> None:
    started = time.monotonic()
    with pytest.raises(IppDecodeError, match=f"more than {ipp.MAX_VALUES} values"):
        ipp.decode(many_values(200_000))
    assert time.monotonic() - started < 0.5


def test_attribute_with_the_most_values_allowed_decodes_in_linear_time() -> None:
    started = time.monotonic()
    message = ipp.decode(many_values(ipp.MAX_VALUES))
    assert time.monotonic() - started < 0.25  # ~0.05 s linear; the quadratic decoder took 0.5 s
    assert len(message.groups[0].attributes[0].values) == ipp.MAX_VALUES


def test_collection_member_values_are_capped_too() -> None:
    extra = field(0x44, "", b"")
    member = field(ipp.MEMBER_ATTR_NAME, "", b"m") + field(0x44, "", b"x") + extra * ipp.MAX_VALUES
    raw = HEADER + b"\x04" + field(ipp.BEG_COLLECTION, "c", b"") + member + field(ipp.END_COLLECTION, "", b"")
    with pytest.raises(IppDecodeError, match=f"attribute 'm' has more than {ipp.MAX_VALUES} values"):
        ipp.decode(raw + b"\x03")


def test_answer_of_a_million_tiny_attributes_is_rejected_at_the_item_cap() -> None:
    started = time.monotonic()
    with pytest.raises(IppDecodeError, match=f"more than {ipp.MAX_ITEMS} groups"):
        ipp.decode(HEADER + b"\x04" + field(0x44, "a", b"") * 1_000_000 + b"\x03")
    assert time.monotonic() - started < 1.0
