"""An IPP printer on 127.0.0.1: real binary IPP over HTTP, with verbs for paper, jams and toner.

It answers Get-Printer-Attributes (and a minimal Print-Job that keeps the printer "printing" for
a moment) at ``/ipp/print``, encoded with :mod:`drivers.printer.ipp`, from state that tests change
with verbs (``media_empty``, ``jam``, ``toner_low``, ``cover_open``, ``offline``, ``clear``, ...).
Malformed requests get an IPP error status, never a crash. Every verb and request is recorded in
:attr:`IppPrinterSimulator.history`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import threading
import time
from types import TracebackType

from drivers.printer import ipp
from drivers.snapshots import PrinterMarker
from simulators.base import Clock, History, finite
from simulators.serving import REQUEST_TIMEOUT_S, HttpEndpoint, QuietHandler, QuietHTTPServer, read_body

PATH = "/ipp/print"
MAX_REQUEST_BYTES = 8 * 1024 * 1024  # the whole body, Content-Length or the sum of its chunks
GARBAGE = b"<html><body>502 Bad Gateway</body></html>\x00\xff"
_STATE_CODES = {"idle": 3, "printing": 4, "stopped": 5}
_DEFAULT_MARKERS = (PrinterMarker("Black Toner", "#000000", "toner", 80),)


class IppPrinterSimulator:
    """One simulated printer; ``url`` is what an :class:`IppPrinterDriver` is built with."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        name: str = "bus-printer",
        make_and_model: str = "BusOffice LaserJet 100",
        print_time_s: float = 0.5,
        clock: Clock = time.monotonic,
        request_timeout_s: float = REQUEST_TIMEOUT_S,
    ) -> None:
        self.history = History(clock)
        self.name = name
        self.make_and_model = make_and_model
        self.print_time_s = print_time_s
        self._clock = clock
        self._http = HttpEndpoint(
            self, _Handler, (host, port), name="ipp-printer-sim", request_timeout_s=request_timeout_s
        )
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._job_ids = itertools.count(1)
        self._state = "idle"
        self._reasons: list[str] = []
        self._message = ""
        self._accepting = True
        self._markers = list(_DEFAULT_MARKERS)
        self._busy_until = float("-inf")
        self._garbage = False
        self._http_status = 200
        self._delay_s = 0.0
        self._omitted: set[str] = set()

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        host, port = self._http.address
        if port == 0:
            raise RuntimeError("simulator not started")
        return f"ipp://{host}:{port}{PATH}"

    def start(self) -> IppPrinterSimulator:
        self._stopping.clear()
        # On the port of the previous run: offline()/online() and stop()/start() keep the URL.
        self._http.start()
        return self

    def stop(self) -> None:
        """Close the listening socket and cut open connections: refused until start() again."""
        self._stopping.set()
        self._http.stop()

    def __enter__(self) -> IppPrinterSimulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ test verbs

    def media_empty(self) -> None:
        """Paper tray empty: the printer stops, as a real one does mid-job."""
        self._fault("media_empty", ("media-empty-error", "media-needed-error"), "Out of paper.")

    def jam(self) -> None:
        """Paper jam: stopped until cleared."""
        self._fault("jam", ("media-jam-error",), "Paper jam.")

    def cover_open(self) -> None:
        """Front cover open: stopped until cleared."""
        self._fault("cover_open", ("cover-open-error",), "Cover open.")

    def media_low(self) -> None:
        """A few sheets left: a warning, the printer keeps working."""
        self.history.record("media_low")
        with self._lock:
            self._add_reasons(("media-low-warning",))

    def toner_low(self, level_pct: int = 4) -> None:
        """Black toner nearly empty: a warning reason and the marker level drop."""
        _check_level(level_pct)
        self.history.record("toner_low", level_pct=level_pct)
        with self._lock:
            self._add_reasons(("toner-low-warning",))
            self._markers[0] = dataclasses.replace(self._markers[0], level_pct=level_pct)

    def clear(self) -> None:
        """A technician fixed everything: idle, no reasons, accepting jobs, supplies as new."""
        self.history.record("clear")
        with self._lock:
            self._state, self._reasons, self._message = "idle", [], ""
            self._accepting = True
            self._markers = list(_DEFAULT_MARKERS)

    def set_state(self, state: str, reasons: list[str]) -> None:
        """Any state ("idle", "printing", "stopped") with any printer-state-reasons keywords."""
        if state not in _STATE_CODES:
            raise ValueError(f"state must be one of {sorted(_STATE_CODES)}, got {state!r}")
        self.history.record("set_state", state=state, reasons=list(reasons))
        with self._lock:
            self._state, self._reasons = state, [r for r in reasons if r != "none"]

    def set_marker_level(self, pct: int) -> None:
        """Level of the (black toner) marker; -1/-2/-3 are the "not a percentage" values."""
        _check_level(pct)
        self.history.record("set_marker_level", pct=pct)
        with self._lock:
            self._markers[0] = dataclasses.replace(self._markers[0], level_pct=pct)

    def set_accepting(self, accepting: bool) -> None:
        """printer-is-accepting-jobs; Print-Job is refused while False."""
        self.history.record("set_accepting", accepting=accepting)
        with self._lock:
            self._accepting = accepting

    def offline(self) -> None:
        """Switched off: the listening socket closes, so connections are refused."""
        self.history.record("offline")
        self.stop()

    def online(self) -> None:
        """Switched on again, on the same port."""
        self.history.record("online")
        if not self._http.running:
            self.start()

    def serve_garbage(self, on: bool) -> None:
        """Answer every request with bytes that are not IPP (a proxy's error page)."""
        self.history.record("serve_garbage", on=on)
        with self._lock:
            self._garbage = on

    def omit_attributes(self, *names: str) -> None:
        """Leave these attributes out of every answer, as some firmware does (no marker-*)."""
        self.history.record("omit_attributes", names=list(names))
        with self._lock:
            self._omitted = set(names)

    def fail_http(self, status: int = 200) -> None:
        """Answer every request with this HTTP status (CUPS: 401 needs login, 403 remote denied)."""
        self.history.record("fail_http", status=status)
        with self._lock:
            self._http_status = status

    def set_delay(self, seconds: float) -> None:
        """Wait this long before answering each request."""
        seconds = finite("seconds", seconds, 0.0, 3600.0)
        self.history.record("set_delay", seconds=seconds)
        with self._lock:
            self._delay_s = seconds

    def _fault(self, verb: str, reasons: tuple[str, ...], message: str) -> None:
        self.history.record(verb)
        with self._lock:
            self._state, self._message = "stopped", message
            self._add_reasons(reasons)

    def _add_reasons(self, reasons: tuple[str, ...]) -> None:
        self._reasons.extend(r for r in reasons if r not in self._reasons)

    # ------------------------------------------------------------------ IPP answers

    def answer(self, path: str, body: bytes) -> bytes:
        """The IPP response to one request body; never raises on any input."""
        try:
            request = ipp.decode(body)
        except ipp.IppDecodeError as exc:
            request_id = int.from_bytes(body[4:8], "big", signed=True) if len(body) >= 8 else 0
            self.history.record("request", path=path, operation=None, status=0x0400, error=str(exc))
            return _error_answer(request_id, 0x0400, f"Bad request: {exc}")
        status, result = self._dispatch(path, request)
        self.history.record("request", path=path, operation=request.code, status=status)
        if isinstance(result, str):
            return _error_answer(request.request_id, status, result)
        return ipp.encode(ipp.IppMessage(status, request.request_id, (_operation_group(None), result)))

    def _dispatch(self, path: str, request: ipp.IppMessage) -> tuple[int, str | ipp.AttributeGroup]:
        """(status, the group to answer with, or the status-message of an error)."""
        if request.version[0] not in (1, 2):
            return 0x0503, f"IPP version {request.version[0]}.{request.version[1]} not supported."
        if path != PATH:
            return 0x0406, f"No printer at {path}."
        first = request.groups[0].attributes if request.groups else ()
        names = [a.name for a in first[:2]]
        # RFC 8011 4.1.4: charset then language come first; CUPS and ippeveprinter insist too.
        if names != ["attributes-charset", "attributes-natural-language"] or not request.find(
            "printer-uri", ipp.OPERATION_GROUP
        ):
            return 0x0400, "Missing required operation attributes."
        if request.code == ipp.GET_PRINTER_ATTRIBUTES:
            requested = ipp.keywords(request.find("requested-attributes", ipp.OPERATION_GROUP))
            return 0x0000, self._printer_group(set(requested))
        if request.code == ipp.PRINT_JOB:
            return self._print_job(request)
        return 0x0501, f"Operation 0x{request.code:04x} not supported."

    def _print_job(self, request: ipp.IppMessage) -> tuple[int, str | ipp.AttributeGroup]:
        with self._lock:
            if not self._accepting:
                return 0x0506, "Not accepting jobs."
            job_id = next(self._job_ids)
            self._busy_until = self._clock() + self.print_time_s
            stopped = self._state == "stopped"
        self.history.record("print_job", job_id=job_id, document_bytes=len(request.document))
        return 0x0000, ipp.AttributeGroup(
            ipp.JOB_GROUP,
            (
                ipp.Attribute.of("job-id", ipp.INTEGER, job_id),
                ipp.Attribute.of("job-uri", ipp.URI, f"{self.url}/{job_id}"),
                ipp.Attribute.of("job-state", ipp.ENUM, 3 if stopped else 5),  # pending / processing
            ),
        )

    def _printer_group(self, requested: set[str]) -> ipp.AttributeGroup:
        with self._lock:
            state = self._state
            if state == "idle" and self._clock() < self._busy_until:
                state = "printing"
            markers = list(self._markers)
            attributes = [
                ipp.Attribute.of("printer-state", ipp.ENUM, _STATE_CODES[state]),
                ipp.Attribute.of("printer-state-reasons", ipp.KEYWORD, *(self._reasons or ["none"])),
                ipp.Attribute.of("printer-state-message", ipp.TEXT, self._message),
                ipp.Attribute.of("printer-is-accepting-jobs", ipp.BOOLEAN, self._accepting),
                ipp.Attribute.of("printer-make-and-model", ipp.TEXT, self.make_and_model),
                ipp.Attribute.of("printer-name", ipp.NAME, self.name),
                ipp.Attribute.of("printer-uri-supported", ipp.URI, self.url),
                ipp.Attribute.of("printer-up-time", ipp.INTEGER, int(self._clock()) % 2**31),
            ]
        if markers:
            attributes += [
                ipp.Attribute.of("marker-names", ipp.NAME, *(m.name for m in markers)),
                ipp.Attribute.of("marker-colors", ipp.NAME, *(m.color or "none" for m in markers)),
                ipp.Attribute.of("marker-types", ipp.KEYWORD, *(m.type or "unknown" for m in markers)),
                ipp.Attribute.of("marker-levels", ipp.INTEGER, *(_level(m.level_pct) for m in markers)),
            ]
        if requested and "all" not in requested:
            attributes = [a for a in attributes if a.name in requested]
        with self._lock:
            attributes = [a for a in attributes if a.name not in self._omitted]
        return ipp.AttributeGroup(ipp.PRINTER_GROUP, tuple(attributes))

    # ------------------------------------------------------------------ HTTP side

    def _serve(self, handler: _Handler) -> None:
        with self._lock:
            delay, garbage, http_status = self._delay_s, self._garbage, self._http_status
        if delay > 0 and self._stopping.wait(delay):
            return  # switched off while being slow: drop the request like a dead printer
        body = read_body(handler, MAX_REQUEST_BYTES)
        if body is None or http_status != 200:
            status = 400 if body is None else http_status
            self.history.record("request", path=handler.path, operation=None, status=f"http-{status}")
            _reply(handler, status, b"<html><body>request refused</body></html>", "text/html")
        elif garbage:
            self.history.record("request", path=handler.path, operation=None, status="garbage")
            _reply(handler, 200, GARBAGE, "application/ipp")
        else:
            _reply(handler, 200, self.answer(handler.path, body), "application/ipp")


def _check_level(pct: int) -> None:
    if isinstance(pct, bool) or not isinstance(pct, int) or not -3 <= pct <= 100:
        raise ValueError(f"a marker level is a whole number from -3 to 100, not {pct!r}")


def _level(level_pct: int | None) -> int:
    return -2 if level_pct is None else level_pct  # -2: "unknown" (CUPS convention)


def _operation_group(message: str | None) -> ipp.AttributeGroup:
    attributes = [
        ipp.Attribute.of("attributes-charset", ipp.CHARSET, "utf-8"),
        ipp.Attribute.of("attributes-natural-language", ipp.NATURAL_LANGUAGE, "en"),
    ]
    if message:
        attributes.append(ipp.Attribute.of("status-message", ipp.TEXT, message))
    return ipp.AttributeGroup(ipp.OPERATION_GROUP, tuple(attributes))


def _error_answer(request_id: int, status: int, message: str) -> bytes:
    return ipp.encode(ipp.IppMessage(status, request_id, (_operation_group(message[:1000]),)))


def _reply(handler: _Handler, status: int, body: bytes, content_type: str) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    # One request per connection: a printer switched off must not keep answering on an old one.
    handler.send_header("Connection", "close")
    handler.end_headers()
    handler.wfile.write(body)


class _Handler(QuietHandler):
    server: QuietHTTPServer[IppPrinterSimulator]
    # HTTP/1.1 so CUPS clients that send "Expect: 100-continue" get their 100 at once.
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.server.simulator._serve(self)
