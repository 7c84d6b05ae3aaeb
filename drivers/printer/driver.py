"""Read a printer's state over IPP (Get-Printer-Attributes) into a PrinterSnapshot.

The endpoint is the printer's IPP URL (``ipp://host:631/printers/bus`` for a CUPS queue,
``ipp://printer.local/ipp/print`` for an IPP Everywhere printer, ``ipps://`` for TLS). One HTTP
POST per read, no connection kept, so a printer switched off between reads costs nothing;
``timeout_s`` bounds the whole exchange (lookup, connect, TLS, send, every byte of the answer).
Plain words for the state reasons are in drivers.printer.reasons.
"""

from __future__ import annotations

import itertools
import ssl
import urllib.parse

from drivers.base import DeviceReportedError, Driver, ProtocolError
from drivers.deadline import Deadline
from drivers.http_exchange import HttpPeer, exchange
from drivers.printer import ipp
from drivers.snapshots import PrinterMarker, PrinterSnapshot

REQUESTED_ATTRIBUTES = (
    "printer-state",
    "printer-state-reasons",
    "printer-state-message",
    "printer-is-accepting-jobs",
    "printer-make-and-model",
    "marker-names",
    "marker-colors",
    "marker-types",
    "marker-levels",
)
STATE_NAMES = {3: "idle", 4: "printing", 5: "stopped"}  # RFC 8011 printer-state; pyipp's words
MAX_ANSWER_BYTES = 4 * 1024 * 1024  # a full attribute dump is ~100 kB; more is not a printer
_DEFAULT_PORTS = {"ipp": 631, "ipps": 631, "http": 80, "https": 443}
_TLS_SCHEMES = ("ipps", "https")


class IppTarget:
    """Where to POST: host, port, path and whether TLS is used, from an ipp/ipps/http(s) URL."""

    def __init__(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise ValueError(f"printer endpoint must be ipp://host[:port]/path or ipps://..., got {url!r}")
        try:
            self.port = parts.port or _DEFAULT_PORTS[parts.scheme]
        except ValueError as exc:
            raise ValueError(f"printer endpoint {url!r}: {exc}") from exc
        self.url = url
        self.host = parts.hostname
        self.tls = parts.scheme in _TLS_SCHEMES
        self.path = parts.path or "/"
        # The printer-uri operation attribute names the printer in IPP terms, whatever the transport.
        scheme = "ipps" if self.tls else "ipp"
        self.printer_uri = urllib.parse.urlunsplit((scheme, parts.netloc, self.path, "", ""))
        tls = _tls_context() if self.tls else None
        self.peer = HttpPeer(label="printer", url=url, host=self.host, port=self.port, tls=tls)


def ipp_call(target: IppTarget, request: ipp.IppMessage, timeout_s: float) -> ipp.IppMessage:
    """POST one IPP request and decode the answer, all within ``timeout_s``; failures are DriverErrors.

    IPP error statuses are returned, not raised: callers decide what an error means to them.
    """
    answer = exchange(
        target.peer,
        "POST",
        target.path,
        Deadline(timeout_s),
        max_body=MAX_ANSWER_BYTES,
        body=ipp.encode(request),
        headers={"Content-Type": "application/ipp"},
    )
    if answer.status != 200:
        raise DeviceReportedError(
            f"printer at {target.url} answered HTTP {answer.status} {answer.reason}".rstrip()
        )
    try:
        decoded = ipp.decode(answer.body)
    except ipp.IppDecodeError as exc:
        raise ProtocolError(f"printer at {target.url} sent something that is not IPP: {exc}") from exc
    if decoded.request_id != request.request_id:
        raise ProtocolError(
            f"printer at {target.url} answered request {decoded.request_id}, not {request.request_id}"
        )
    return decoded


def _tls_context() -> ssl.SSLContext:
    # Printers ship self-signed certificates almost without exception (pyipp's default is
    # verify_ssl=False for the same reason); TLS here protects the link, not the identity.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class IppPrinterDriver(Driver[PrinterSnapshot]):
    """One Get-Printer-Attributes per read, against an ipp:// or ipps:// endpoint."""

    kind = "printer"

    def __init__(self, endpoint: str, timeout_s: float = 5.0) -> None:
        super().__init__(endpoint)
        self.target = IppTarget(endpoint)
        self.timeout_s = timeout_s
        self._request_ids = itertools.count(1)

    def _read(self) -> PrinterSnapshot:
        request = ipp.IppMessage(
            ipp.GET_PRINTER_ATTRIBUTES,
            next(self._request_ids),
            (
                ipp.operation_attributes(
                    self.target.printer_uri, ipp.keyword_list("requested-attributes", REQUESTED_ATTRIBUTES)
                ),
            ),
        )
        answer = ipp_call(self.target, request, self.timeout_s)
        if answer.code >= 0x0400:
            raise DeviceReportedError(describe_status(answer))
        if answer.find("printer-state", ipp.PRINTER_GROUP) is None:
            # Every IPP printer must send it (RFC 8011 5.4.11); an answer without it is not a printer's.
            raise ProtocolError(f"answer from {self.endpoint} has no printer-state")
        return snapshot_from_answer(answer)

    def _failed(self, reason: str) -> PrinterSnapshot:
        return PrinterSnapshot(ok=False, reason=reason)


def describe_status(answer: ipp.IppMessage) -> str:
    """``printer answered client-error-not-found (0x0406): <status-message>``."""
    text = f"printer answered {ipp.status_name(answer.code)} (0x{answer.code:04x})"
    message = _first_text(answer.find("status-message", ipp.OPERATION_GROUP))
    return f"{text}: {message}" if message else text


def snapshot_from_answer(answer: ipp.IppMessage) -> PrinterSnapshot:
    """The snapshot described by a Get-Printer-Attributes answer (pure; tolerant of gaps)."""

    def find(name: str) -> ipp.Attribute | None:
        return answer.find(name, ipp.PRINTER_GROUP)

    state = find("printer-state")
    state_code = state.data[0] if state is not None else None
    accepting = find("printer-is-accepting-jobs")
    accepting_value = accepting.data[0] if accepting is not None else None
    return PrinterSnapshot(
        state=STATE_NAMES.get(state_code) if isinstance(state_code, int) else None,
        reasons=tuple(r for r in ipp.keywords(find("printer-state-reasons")) if r != "none"),
        accepting_jobs=accepting_value if isinstance(accepting_value, bool) else None,
        message=_first_text(find("printer-state-message")) or None,
        make_and_model=_first_text(find("printer-make-and-model")) or None,
        markers=_markers(answer),
    )


def _strings(attribute: ipp.Attribute | None) -> list[str | None]:
    """Text values as str, whatever their text/name/keyword flavour; None for anything else."""
    if attribute is None:
        return []
    out: list[str | None] = []
    for data in attribute.data:
        text = data.text if isinstance(data, ipp.TextWithLanguage) else data
        out.append(text if isinstance(text, str) and text else None)
    return out


def _first_text(attribute: ipp.Attribute | None) -> str | None:
    values = _strings(attribute)
    return values[0] if values else None


def _markers(answer: ipp.IppMessage) -> tuple[PrinterMarker, ...]:
    # marker-* are parallel lists; printers do send them with different lengths, so index safely.
    names = _strings(answer.find("marker-names", ipp.PRINTER_GROUP))
    colors = _strings(answer.find("marker-colors", ipp.PRINTER_GROUP))
    types = _strings(answer.find("marker-types", ipp.PRINTER_GROUP))
    levels_attr = answer.find("marker-levels", ipp.PRINTER_GROUP)
    levels = list(levels_attr.data) if levels_attr is not None else []
    markers = []
    for index, name in enumerate(names):
        level = levels[index] if index < len(levels) else None
        markers.append(
            PrinterMarker(
                name=name or f"marker {index + 1}",
                color=colors[index] if index < len(colors) else None,
                type=types[index] if index < len(types) else None,
                level_pct=_level(level),
            )
        )
    return tuple(markers)


def _level(level: ipp.Data) -> int | None:
    # CUPS: -1 unavailable, -2 unknown, -3 "some left"; none of them is a percentage.
    if isinstance(level, int) and not isinstance(level, bool) and 0 <= level <= 100:
        return level
    return None
