"""Hostile input builders for the network devices: gpsd JSON, HiLink XML, HTTP answers, binary IPP.

Each starts from a real answer (gpsd 3.22's POLL, a HiLink signal document, a CUPS
Get-Printer-Attributes answer) and damages it where its parser must not trust it: wrong types
and absurd numbers in JSON, entities, encodings and nesting in XML, lying Content-Length and
chunk sizes in HTTP, length fields and tags in IPP.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import struct
from typing import Any

from drivers.printer import ipp
from tests.reliability.fuzz_mutate import Mutator

# -- gpsd -------------------------------------------------------------------------------------------

POLL = json.loads(
    '{"class":"POLL","time":"2026-11-22T00:28:41.242Z","active":1,"tpv":[{"class":"TPV","device":"/dev/ttyACM0",'
    '"mode":3,"time":"2026-11-22T00:28:40.740Z","ept":0.005,"lat":44.039627500,"lon":1.107077333,'
    '"altHAE":144.0,"altMSL":95.0,"alt":95.0,"track":45.0,"speed":10.0,"climb":0.0,"eps":116.91}],'
    '"sky":[{"class":"SKY","device":"/dev/ttyACM0","hdop":0.90,"nSat":3,"uSat":2,"satellites":['
    '{"PRN":5,"el":60.0,"az":55.0,"ss":43.0,"used":true},{"PRN":29,"el":38.0,"az":247.0,"ss":21.0,"used":false}]}]}'
)
TPV_KEYS = ["mode", "time", "lat", "lon", "alt", "altMSL", "speed", "track", "climb", "ept", "eps", "device"]
SKY_KEYS = ["hdop", "nSat", "uSat", "satellites"]


def odd_time(m: Mutator) -> Any:
    """ISO times a receiver or gpsd could send: any year, any offset, fractions, Z or not."""
    day = dt.date(m.rng.randint(1, 9999), m.rng.randint(1, 12), m.rng.randint(1, 28))
    when = dt.datetime.combine(day, dt.time(m.rng.randrange(24), m.rng.randrange(60), m.rng.randrange(60)))
    when = when.replace(microsecond=m.rng.randrange(1_000_000))
    minutes = m.pick([0, 1, -1, 60, -60, 23 * 60 + 59, -(23 * 60 + 59), m.rng.randint(-1439, 1439)])
    text = when.replace(tzinfo=dt.timezone(dt.timedelta(minutes=minutes))).isoformat(
        timespec=m.pick(["seconds", "milliseconds", "microseconds"])
    )
    return text.replace("+00:00", "Z") if m.chance(0.5) else m.pick([text, text[:-6], text + "Z", m.word()])


def poll_packet(seed: int) -> dict[str, Any]:
    """A POLL reply with keys of its TPV, SKY and satellites given wrong types or absurd values."""
    m = Mutator(seed)
    packet: dict[str, Any] = copy.deepcopy(POLL)
    tpv, sky = packet["tpv"][0], packet["sky"][0]
    for _ in range(m.rng.randint(1, 4)):
        target, keys = m.pick([(tpv, TPV_KEYS), (sky, SKY_KEYS), (packet, ["active", "tpv", "sky", "class"])])
        key = m.pick(keys)
        roll = m.rng.random()
        if roll < 0.15:
            target.pop(key, None)
        elif roll < 0.3 and key == "time":
            target[key] = odd_time(m)
        elif roll < 0.4 and key == "mode":
            target[key] = m.pick([0, 1, 2, 3, 4, -1, 2.0, True, "3", 10**30])
        elif roll < 0.5:
            sats = sky.get("satellites")
            if isinstance(sats, list) and sats:
                keep = sats[0] if isinstance(sats[0], dict) else {}
                sats[0] = (
                    m.json_value() if m.chance(0.5) else {**keep, m.pick(["used", "PRN"]): m.json_value()}
                )
        else:
            target[key] = m.json_value()
    if m.chance(0.1):
        packet["tpv"] = [m.json_value() for _ in range(m.rng.randrange(3))] + [tpv]
    return packet


def poll_line(seed: int) -> bytes:
    """One line as gpsd would send it (JSON with NaN allowed), sometimes damaged at the byte level."""
    m = Mutator(seed ^ 0x5A5A)
    try:
        line = json.dumps(poll_packet(seed), separators=(",", ":")).encode()
    except (RecursionError, ValueError):  # a value nested too deep for the encoder itself
        line = b'{"class":"POLL","active":1,"tpv":' + b"[" * 5000
    return m.mutate_bytes(line) if m.chance(0.2) else line


# -- HiLink XML -------------------------------------------------------------------------------------

HILINK_ELEMENTS = ["rsrp", "rsrq", "sinr", "rssi", "cell_id", "pci", "band", "earfcn", "mode", "plmn", "tac",
                   "SesInfo", "TokInfo", "token", "ServiceStatus", "RoamingStatus", "SimStatus",
                   "ConnectionStatus", "CurrentNetworkType", "CurrentNetworkTypeEx", "Numeric", "FullName",
                   "ShortName", "Rat", "code", "message"]  # fmt: skip
ENCODINGS = ["UTF-8", "utf-16", "ISO-8859-1", "us-ascii", "UTF-32", "bogus-8", "utf-7", "cp1252", ""]


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def hilink_body(seed: int) -> bytes:
    """A HiLink document with junk texts, odd structure, declared encodings, DTDs, floods, damage."""
    m = Mutator(seed)
    root = m.pick(["response"] * 16 + ["error", "error", "html", "response xmlns='urn:x'", "a:response"])
    children = []
    for _ in range(m.rng.randrange(12)):
        name = m.pick(HILINK_ELEMENTS)
        text = (
            m.word() if m.chance(0.8) else m.pick(["DL:6300 UL:24300", "-97dBm", ">=-51dBm", "SessionID=x"])
        )
        body = escape(text) if m.chance(0.97) else text  # unescaped & and < now and then
        if m.chance(0.03):
            body = m.pick(
                [f"<![CDATA[{text}]]>", f"<!-- {text} -->", f"<inner>{escape(text)}</inner>", "<?pi x?>"]
            )
        attrs = ' a="1"' if m.chance(0.05) else ""
        children.append(f"<{name}{attrs}>{body}</{name}>")
    tag = root.split()[0]
    doc = f"<{root}>{''.join(children)}</{tag}>"
    if m.chance(0.05):
        doc = f"<{root}>" + "<d>" * m.rng.choice([100, 5000, 20000]) + "</d>" * 100 + f"</{tag}>"
    if m.chance(0.05):
        doc = f"<{root}>" + "<rsrp>-97</rsrp>" * m.rng.choice([1000, 4000, 5000]) + f"</{tag}>"
    if m.chance(0.05):
        doc = m.pick(['<!DOCTYPE r [<!ENTITY a "aaaaaaaa">]>', "<!doctype html>", '<! ENTITY x "y">']) + doc
    encoding = m.pick(ENCODINGS) if m.chance(0.3) else "UTF-8"
    declaration = f'<?xml version="1.0" encoding="{encoding}"?>' if m.chance(0.5) else ""
    try:
        data = (declaration + doc).encode(encoding if encoding.lower() not in ("bogus-8", "") else "utf-8")
    except (LookupError, UnicodeError):
        data = (declaration + doc).encode("utf-8", "surrogatepass")
    return m.mutate_bytes(data) if m.chance(0.15) else data


# -- HTTP answers -----------------------------------------------------------------------------------


def http_answer(seed: int, body: bytes) -> bytes:
    """An HTTP/1.x answer around ``body`` whose status line, headers or framing may lie."""
    m = Mutator(seed)
    if m.chance(0.5):  # half the answers are well framed: the body is what is under test
        if m.chance(0.5):
            return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body
        return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (
            len(body),
            body,
        )
    status = m.pick([b"HTTP/1.1 200 OK", b"HTTP/1.0 200 OK", b"HTTP/1.1 200", b"HTTP/1.1 404 Not Found",
                     b"HTTP/1.1 99999999999999999999 OK", b"HTTP/2 200 OK", b"ICY 200 OK",
                     b"HTTP/1.1 -200 OK",
                     b"HTTP/1.1 200 \xff\xfe", b""])  # fmt: skip
    status = status if m.chance(0.3) else b"HTTP/1.1 200 OK"
    headers = [b"Content-Type: text/xml"]
    framing = m.rng.randrange(6)
    if framing == 0:
        headers.append(b"Content-Length: %d" % len(body))
    elif framing == 1:
        headers.append(
            b"Content-Length: "
            + m.pick([b"-1", b"0", b"99999999999999999999", b"x", b"%d" % (len(body) + 5)])
        )
    elif framing == 2:
        headers.append(b"Transfer-Encoding: chunked")
        sizes = m.pick([b"%x" % len(body), b"-5", b"zz", b"%x" % (len(body) + 10), b"ffffffffffffffffffff"])
        body = sizes + b"\r\n" + body + b"\r\n0\r\n\r\n"
    if m.chance(0.2):
        headers.append(b"Set-Cookie: " + m.pick([b"SessionID=abc; path=/", b'SessionID="', b"=;;",
                                                 b"\xff=\xfe",
                                                 m.word().encode("utf-8", "surrogatepass")]))  # fmt: skip
    if m.chance(0.03):
        headers += [b"X-Flood: %d" % i for i in range(m.pick([99, 101, 1000]))]
    if m.chance(0.03):
        headers.append(b"X-Long: " + b"x" * m.pick([65_536, 70_000]))
    answer = status + b"\r\n" + b"\r\n".join(headers) + b"\r\n\r\n" + body
    return m.mutate_bytes(answer) if m.chance(0.1) else answer


# -- IPP --------------------------------------------------------------------------------------------

IPP_NAMES = ["printer-state", "printer-state-reasons", "printer-state-message", "printer-is-accepting-jobs",
             "printer-make-and-model", "marker-names", "marker-levels", "marker-colors", "marker-types",
             "status-message", "attributes-charset", "media-col-default", "printer-current-time"]  # fmt: skip
IPP_TAGS = [ipp.INTEGER, ipp.ENUM, ipp.BOOLEAN, ipp.KEYWORD, ipp.TEXT, ipp.NAME, ipp.URI, ipp.DATE_TIME,
            ipp.RESOLUTION, ipp.RANGE_OF_INTEGER, ipp.TEXT_WITH_LANGUAGE, ipp.NAME_WITH_LANGUAGE,
            ipp.OCTET_STRING, ipp.NO_VALUE, ipp.UNKNOWN, ipp.BEG_COLLECTION, ipp.END_COLLECTION,
            ipp.MEMBER_ATTR_NAME, 0x00, 0x0F, 0x7F, 0xFF]  # fmt: skip


NAME_TAGS = {
    b"printer-state": [ipp.ENUM], b"printer-is-accepting-jobs": [ipp.BOOLEAN],
    b"marker-levels": [ipp.INTEGER],
    b"printer-state-message": [ipp.TEXT, ipp.TEXT_WITH_LANGUAGE], b"printer-make-and-model": [ipp.TEXT],
    b"media-col-default": [ipp.BEG_COLLECTION], b"printer-current-time": [ipp.DATE_TIME],
}  # fmt: skip


def ipp_value(m: Mutator, tag: int, damage: float) -> bytes:
    """A value of ``tag``'s syntax, malformed (wrong size, impossible date...) with probability ``damage``."""
    good = not m.chance(damage)
    if tag in (ipp.INTEGER, ipp.ENUM):
        return (
            struct.pack(">i", m.pick([3, 4, 5, 0, -1, -3, 101, 2**31 - 1]))
            if good
            else b"\x00" * m.pick([0, 3, 5])
        )
    if tag == ipp.BOOLEAN:
        return bytes(m.pick([b"\x00", b"\x01"]) if good else m.pick([b"\x02", b"", b"\x00\x01"]))
    if tag == ipp.DATE_TIME:
        if good:
            return struct.pack(">HBBBBBBcBB", 2026, 3, 2, 8, 0, 0, 5, m.pick([b"+", b"-"]), 1, 0)
        year, month, day = m.pick([2026, 0, 65535]), m.pick([1, 13, 0]), m.pick([1, 31, 0])
        direction, hours, minutes = m.pick([b"+", b"-", b"x"]), m.pick([0, 14, 255]), m.pick([0, 59, 255])
        return struct.pack(">HBBBBBBcBB", year, month, day, 23, 59, 60, 9, direction, hours, minutes)
    if tag in (ipp.TEXT_WITH_LANGUAGE, ipp.NAME_WITH_LANGUAGE):
        text = m.word().encode("utf-8", "surrogatepass")
        return (
            struct.pack(">H", 2 if good else m.pick([0, 3, 0xFFFF]))
            + b"fr"
            + struct.pack(">H", len(text))
            + text
        )
    if tag == ipp.RESOLUTION:
        return m.rng.randbytes(9 if good else m.pick([8, 0]))
    if tag == ipp.RANGE_OF_INTEGER:
        return m.rng.randbytes(8 if good else 7)
    return m.word().encode("utf-8", "surrogatepass")[:200]


def ipp_field(m: Mutator, tag: int, name: bytes, value: bytes, damage: float = 0.02) -> bytes:
    """tag, name-length, name, value-length, value; now and then with a length that lies."""
    name_len, value_len = len(name), len(value)
    if m.chance(damage):
        name_len = m.pick([0, name_len + 1, max(0, name_len - 1), 0xFFFF, 0x8000])
    if m.chance(damage):
        value_len = m.pick([0, value_len + 1, max(0, value_len - 1), 0xFFFF, 0x8000])
    return bytes([tag]) + struct.pack(">H", name_len) + name + struct.pack(">H", value_len) + value


def ipp_answer(seed: int, request_id: int = 1) -> bytes:
    """A Get-Printer-Attributes answer: real attribute names, values of any tag, collections, lies.

    Half the answers are well formed (they must decode), the other half carry some damage.
    """
    m = Mutator(seed)
    damage = m.pick([0.0, 0.01, 0.05, 0.3]) if m.chance(0.5) else 0.0
    status = 0 if m.chance(0.8) else m.pick([1, 0x0406, 0x0500, 0xFFFF])
    parts = [struct.pack(">BBHi", 2, m.pick([0, 1]), status, request_id)]
    for group in range(m.rng.randint(1, 3)):
        odd_group = group > 0 or m.chance(0.2)
        parts.append(
            bytes([m.pick([ipp.OPERATION_GROUP, ipp.PRINTER_GROUP, 0x02, 0x0A]) if odd_group else 4])
        )
        for index in range(m.rng.randrange(10)):
            # A printer always sends printer-state; most answers start with it.
            first = group == 0 and index == 0 and m.chance(0.8)
            name = b"printer-state" if first else m.pick(IPP_NAMES).encode()
            tag = (
                m.pick(IPP_TAGS) if m.chance(damage) else m.pick(NAME_TAGS.get(name, [ipp.KEYWORD, ipp.TEXT]))
            )
            parts.append(ipp_field(m, tag, name, ipp_value(m, tag, damage), damage))
            if tag == ipp.BEG_COLLECTION:
                parts.append(collection_members(m, m.rng.choice([1, 2, 18]), damage))
            for _ in range(m.rng.choice([0, 0, 1, 3, 50])):  # additional values of a 1setOf
                extra = m.pick(IPP_TAGS) if m.chance(damage) else tag
                parts.append(ipp_field(m, extra, b"", ipp_value(m, extra, damage), damage))
                if extra == ipp.BEG_COLLECTION:
                    parts.append(collection_members(m, 1, damage))
    parts.append(bytes([ipp.END_OF_ATTRIBUTES]) if not m.chance(damage) else b"")
    data = b"".join(parts) + (m.rng.randbytes(m.rng.randrange(20)) if m.chance(0.1) else b"")
    return m.mutate_bytes(data) if m.chance(damage) else data


def collection_members(m: Mutator, depth: int, damage: float) -> bytes:
    """Members of a collection (maybe nested ``depth`` deep), closed by endCollection unless it is lost."""
    parts = []
    for _ in range(m.rng.randrange(3)):
        name = m.pick([b"media-size", b"x-dimension"]) if not m.chance(damage) else b""
        parts.append(ipp_field(m, ipp.MEMBER_ATTR_NAME, b"", name, damage))
        if depth > 1 and m.chance(0.5):
            parts.append(
                ipp_field(m, ipp.BEG_COLLECTION, b"", b"", damage) + collection_members(m, depth - 1, damage)
            )
        else:
            parts.append(ipp_field(m, ipp.INTEGER, b"", struct.pack(">i", 21000), damage))
    if not m.chance(damage):
        parts.append(ipp_field(m, ipp.END_COLLECTION, b"", b"", damage))
    return b"".join(parts)


def ipp_flood(size: int) -> bytes:
    """An answer of ``size`` bytes: many short attributes, the decoder's cost per item (capped)."""
    field = b"\x44\x00\x0dmarker-colors\x00\x07#FF00FF"
    body = field * max(1, (size - 9) // len(field))
    return struct.pack(">BBHi", 2, 0, 0, 1) + b"\x04" + body + b"\x03"
