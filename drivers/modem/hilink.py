"""Read the radio state of a Huawei HiLink 4G stick (E3372h) through its XML web API.

Three layers, each usable on its own: :func:`parse_reply` turns any body into fields or an error
code without ever raising; :func:`snapshot_from` maps the three documents to a
:class:`ModemSnapshot`; :class:`HiLinkDriver` speaks HTTP (stdlib only), keeps the session cookie
and translates every failure into a :class:`DriverError`. Wire format: docs/protocols.md section 2.
"""

from __future__ import annotations

import dataclasses
import math
import re
import ssl
import urllib.parse
import xml.etree.ElementTree as ET
from http.cookies import CookieError, SimpleCookie

from drivers.base import DeviceReportedError, Driver, ProtocolError
from drivers.deadline import Deadline
from drivers.http_exchange import HttpPeer, exchange
from drivers.modem.quality import grade
from drivers.snapshots import ModemSnapshot, Registration

#: A real reply is well under 2 KiB; anything this large is not the stick talking.
MAX_BODY_BYTES = 64 * 1024

#: Error codes from huawei-lte-api (``enums/client.py``), as shown to technicians.
ERROR_MEANINGS = {
    100001: "unknown error",
    100002: "not supported by this firmware",
    100003: "no rights, login needed",
    100004: "system busy",
    100005: "format error",
    100006: "parameter error",
    125001: "wrong token",
    125002: "session or CSRF error",
    125003: "wrong session token",
}
#: Codes that mean "your session is stale": a fresh SessionID usually cures them.
SESSION_ERRORS = frozenset({125002, 125003, 100003})

# Radio access technology codes. current-plmn ``Rat`` and device/signal ``mode`` share 0/2/7;
# 12 is NR (seen on a 5G CPE).
_RAT_CODES = {0: "GSM", 2: "UMTS", 7: "LTE", 12: "NR"}
# monitoring/status ``CurrentNetworkType`` / ``CurrentNetworkTypeEx`` (huawei NetworkType enum).
_NETWORK_TYPES = {
    **dict.fromkeys((1, 2, 3), "GSM"),
    **dict.fromkeys((4, 5, 6, 7, 8, 9, 17, 18, 41, 42, 43, 44, 45, 46, 61, 62, 63, 64, 65), "UMTS"),
    19: "LTE",
    101: "LTE",
}
_SERVICE_AVAILABLE = 2
_SIM_OK = 1
_CONNECTED, _CONNECTING = 901, 900

# At most 15 digits each side of the point (exact in a float; a 5G cell id has 11), never a piece
# of a longer run: thousands of digits (garbage) read as unknown, not as infinity or a huge int.
_NUMBER = re.compile(r"(?<!\d)-?\d{1,15}(?:\.\d{1,15})?(?![\d.])", re.ASCII)
_DL_VALUE = re.compile(r"DL\s*:?\s*(\d{1,9})(?!\d)", re.IGNORECASE | re.ASCII)
# Entity declarations live in a DTD; without one, expat cannot expand anything (billion laughs).
_DTD = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


# --------------------------------------------------------------------------- parsing (pure)


@dataclasses.dataclass(frozen=True)
class Reply:
    """One HiLink body: the ``<response>`` children, or the ``<error>`` code, or why it is neither."""

    fields: dict[str, str] = dataclasses.field(default_factory=dict)
    error_code: int | None = None
    problem: str | None = None


def parse_reply(body: bytes) -> Reply:
    """Classify one body; never raises, whatever the bytes."""
    root = _load(body)
    if isinstance(root, Reply):
        return root
    if root.tag == "error":
        code = _integer(root.findtext("code"))
        if code is None:
            return Reply(problem=f"error body without a numeric code: {_preview(body)}")
        return Reply(error_code=code)
    if root.tag != "response":
        return Reply(problem=f"unexpected root element <{root.tag[:40]}>")
    return Reply(fields={child.tag: (child.text or "").strip() for child in root})


def _load(body: bytes) -> ET.Element | Reply:
    """The root element, or a Reply saying why the body was refused."""
    if len(body) > MAX_BODY_BYTES:
        return Reply(problem=f"body of {len(body)} bytes is too large for a HiLink reply")
    if _DTD.search(body):
        return Reply(problem="body declares a DTD (refused: entity expansion)")
    try:
        # defusedxml is not available; refusing DTDs and capping the size is what it would add.
        return ET.fromstring(body)  # noqa: S314
    except (ET.ParseError, ValueError, LookupError) as exc:
        # LookupError/ValueError: an XML declaration naming an unknown or unusable encoding.
        return Reply(problem=f"not XML ({exc}): {_preview(body)}")


def _preview(body: bytes) -> str:
    return repr(body[:60])


def _number(text: str | None) -> float | None:
    """``-11.0dB``, ``-97dBm``, ``>=-51dBm`` -> the number; empty or unit-only -> None."""
    match = _NUMBER.search(text or "")
    value = float(match.group()) if match else None
    return value if value is not None and math.isfinite(value) else None


def _integer(text: str | None) -> int | None:
    value = _number(text)
    return int(value) if value is not None and value.is_integer() else None


def _earfcn(text: str | None) -> int | None:
    """``DL:6300 UL:24300`` -> 6300 (the downlink channel); a bare number is taken as it is."""
    match = _DL_VALUE.search(text or "")
    return int(match.group(1)) if match else _integer(text)


def rat_from(signal: dict[str, str], status: dict[str, str], plmn: dict[str, str]) -> str | None:
    """The access technology: operator ``Rat`` first, then signal ``mode``, then the status codes."""
    for code in (_integer(plmn.get("Rat")), _integer(signal.get("mode"))):
        if code in _RAT_CODES:
            return _RAT_CODES[code]
    for key in ("CurrentNetworkTypeEx", "CurrentNetworkType"):
        code = _integer(status.get(key))
        if code in _NETWORK_TYPES:
            return _NETWORK_TYPES[code]
    return None


def registration_from(status: dict[str, str]) -> Registration:
    """Registration from ServiceStatus/RoamingStatus, falling back to ConnectionStatus.

    ConnectionStatus describes the *data* call (902 "disconnected" is also a registered stick
    whose dial-up is off), so it is only used when the firmware gives no ServiceStatus.
    """
    roaming = _integer(status.get("RoamingStatus")) == 1
    service = _integer(status.get("ServiceStatus"))
    if service == _SERVICE_AVAILABLE:
        return "roaming" if roaming else "home"
    sim = _integer(status.get("SimStatus"))
    if sim is not None and sim != _SIM_OK:
        return "not-registered"  # without a usable SIM the stick does not even try
    if service is not None:
        return "searching"  # a stick without service keeps scanning, like CEREG stat 2
    connection = _integer(status.get("ConnectionStatus"))
    if connection == _CONNECTED:
        return "roaming" if roaming else "home"
    if connection == _CONNECTING:
        return "searching"
    return "unknown"


def snapshot_from(signal: dict[str, str], status: dict[str, str], plmn: dict[str, str]) -> ModemSnapshot:
    """Map the three HiLink documents to a snapshot; absent or empty elements become None."""
    rsrp, rsrq, sinr = _number(signal.get("rsrp")), _number(signal.get("rsrq")), _number(signal.get("sinr"))
    return ModemSnapshot(
        source="hilink",
        registration=registration_from(status),
        operator_code=plmn.get("Numeric") or signal.get("plmn") or None,
        operator_name=plmn.get("FullName") or plmn.get("ShortName") or None,
        rat=rat_from(signal, status, plmn),
        rsrp_dbm=rsrp,
        rsrq_db=rsrq,
        sinr_db=sinr,
        rssi_dbm=_number(signal.get("rssi")),
        cell_id=_integer(signal.get("cell_id")),
        tac=_integer(signal.get("tac")),
        pci=_integer(signal.get("pci")),
        band=_integer(signal.get("band")),
        earfcn=_earfcn(signal.get("earfcn")),
        quality=grade(rsrp, rsrq, sinr),
    )


def describe_error(code: int) -> str:
    return f"HiLink error {code} ({ERROR_MEANINGS.get(code, 'unknown code')})"


# --------------------------------------------------------------------------- transport + driver


@dataclasses.dataclass(frozen=True)
class _Answer:
    status: int
    body: bytes
    session_cookie: str | None  # "SessionID=..." when the stick set one


@dataclasses.dataclass(frozen=True)
class _Session:
    cookie: str | None  # None: firmware that answers GETs without a session
    token: str | None  # kept for POSTs (__RequestVerificationToken); GETs do not need it


class HiLinkDriver(Driver[ModemSnapshot]):
    """Polls ``/api/device/signal``, ``/api/monitoring/status`` and ``/api/net/current-plmn``.

    ``timeout_s`` bounds one whole :meth:`read` (session plus three GETs), not each request, so
    a stick that answers slowly everywhere still fails within the time the technician was told.
    """

    kind = "modem"

    def __init__(self, endpoint: str, timeout_s: float = 5.0) -> None:
        super().__init__(endpoint)
        self.timeout_s = timeout_s
        url = urllib.parse.urlsplit(endpoint)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"HiLink endpoint must be http://host[:port], not {endpoint!r}")
        https = url.scheme == "https"
        self._peer = HttpPeer(
            label="HiLink",
            url=endpoint,
            host=url.hostname,
            port=url.port or (443 if https else 80),
            tls=ssl.create_default_context() if https else None,
        )
        self._session: _Session | None = None
        self._deadline = Deadline(timeout_s)

    def _failed(self, reason: str) -> ModemSnapshot:
        return ModemSnapshot(ok=False, reason=reason, source="hilink")

    def _after_failure(self) -> None:
        # A stick that was replugged or rebooted forgets its sessions; start the next read clean.
        self._session = None

    def _read(self) -> ModemSnapshot:
        self._deadline = Deadline(self.timeout_s)
        signal = self._get_fields("/api/device/signal")
        status = self._get_fields("/api/monitoring/status")
        plmn = self._get_fields("/api/net/current-plmn")
        return snapshot_from(signal, status, plmn)

    def _get_fields(self, path: str) -> dict[str, str]:
        """GET one document; a stale session is renewed once and the request repeated."""
        if self._session is None:
            self._session = self._open_session()
        reply = self._reply(path, self._session.cookie)
        if reply.error_code in SESSION_ERRORS:
            self._session = self._open_session()
            reply = self._reply(path, self._session.cookie)
        return self._fields_or_raise(path, reply)

    def _open_session(self) -> _Session:
        """SesTokInfo on most firmware; newer firmware only has /api/webserver/token."""
        reply = self._reply("/api/webserver/SesTokInfo", None)
        ses_info = reply.fields.get("SesInfo", "")
        if ses_info:
            cookie = ses_info if ses_info.startswith("SessionID=") else f"SessionID={ses_info}"
            return _Session(cookie, reply.fields.get("TokInfo") or None)
        if reply.problem is not None and not reply.problem.startswith("HTTP "):
            # Garbage is a broken or foreign device, not an older firmware: say so, do not retry.
            self._fields_or_raise("/api/webserver/SesTokInfo", reply)
        answer = self._request("/api/webserver/token", None)
        fields = self._fields_or_raise("/api/webserver/token", _classify(answer))
        return _Session(answer.session_cookie, fields.get("token") or None)

    def _reply(self, path: str, cookie: str | None) -> Reply:
        return _classify(self._request(path, cookie))

    def _fields_or_raise(self, path: str, reply: Reply) -> dict[str, str]:
        if reply.error_code is not None:
            raise DeviceReportedError(f"{describe_error(reply.error_code)} on {path}")
        if reply.problem is not None:
            raise ProtocolError(f"bad answer from {self.endpoint}{path}: {reply.problem}")
        return reply.fields

    def _request(self, path: str, cookie: str | None) -> _Answer:
        headers = {"Cookie": cookie} if cookie else {}
        answer = exchange(self._peer, "GET", path, self._deadline, max_body=MAX_BODY_BYTES, headers=headers)
        return _Answer(answer.status, answer.body, _session_cookie(answer.headers.get("Set-Cookie")))


def _classify(answer: _Answer) -> Reply:
    """Only a 200 carries a HiLink document (errors too come back as 200 with an error body)."""
    if answer.status != 200:
        return Reply(problem=f"HTTP {answer.status}")
    return parse_reply(answer.body)


def _session_cookie(header: str | None) -> str | None:
    """``SessionID=abc; path=/; HttpOnly`` -> ``SessionID=abc`` (newer firmware's token flow)."""
    if not header:
        return None
    cookie: SimpleCookie = SimpleCookie()
    try:
        cookie.load(header)
    except CookieError:
        return None
    morsel = cookie.get("SessionID")
    return f"SessionID={morsel.value}" if morsel is not None and morsel.value else None
