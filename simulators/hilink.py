"""A Huawei HiLink stick on 127.0.0.1: the same session dance and XML documents as an E3372h.

It serves ``/api/webserver/SesTokInfo`` (and the newer ``/api/webserver/token``), answers error
125002 to any data request without a valid ``SessionID`` cookie, and serves ``device/signal``,
``monitoring/status`` and ``net/current-plmn`` from state that tests change with verbs
(``set_signal``, ``expire_sessions``, ``fail_next``, ``serve_garbage``, ...). Every request and
every verb is recorded in :attr:`HiLinkSimulator.history`.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import Callable
from http.cookies import CookieError, SimpleCookie
from types import TracebackType
from xml.sax.saxutils import escape

from simulators.base import Clock, History, finite
from simulators.serving import REQUEST_TIMEOUT_S, HttpEndpoint, QuietHandler, QuietHTTPServer

# The elements that older E3372 firmware returns in device/signal (docs/protocols.md section 2).
OLD_FIRMWARE_SIGNAL = ("pci", "sc", "cell_id", "rsrq", "rsrp", "rssi", "sinr", "rscp", "ecio", "mode")
# signal ``mode`` / plmn ``Rat`` and status CurrentNetworkType(Ex) for each technology.
_RAT_CODES = {"GSM": "0", "UMTS": "2", "LTE": "7", "NR": "12"}
_NETWORK_TYPES = {"GSM": ("3", "3"), "UMTS": ("4", "41"), "LTE": ("19", "101"), "NR": ("", "")}
_DATA_PATHS = ("/api/device/signal", "/api/monitoring/status", "/api/net/current-plmn")
GARBAGE = b"\x00\xffHTTP/1.1 ??? <html><body>Bad gateway</bo"


def _counter_ids() -> Callable[[], str]:
    counter = itertools.count(1)
    return lambda: f"sim{next(counter):060d}"


def _unit(value: float | None, unit: str) -> str:
    """-97.0 -> "-97dBm", -11.5 -> "-11.5dB", None -> "" (the stick leaves unknowns empty)."""
    return "" if value is None else f"{value:g}{unit}"


def _document(fields: dict[str, str]) -> bytes:
    inner = "".join(f"<{tag}>{escape(value)}</{tag}>" for tag, value in fields.items())
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<response>\n{inner}\n</response>\n'.encode()


def _error(code: int) -> bytes:
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<error><code>{code}</code><message/></error>'.encode()


class HiLinkSimulator:
    """One simulated stick; ``url`` is what a :class:`HiLinkDriver` is built with."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Clock = time.monotonic,
        session_ids: Callable[[], str] | None = None,
        request_timeout_s: float = REQUEST_TIMEOUT_S,
    ) -> None:
        self.history = History(clock)
        self._http = HttpEndpoint(
            self, _Handler, (host, port), name="hilink-sim", request_timeout_s=request_timeout_s
        )
        self._new_id = session_ids or _counter_ids()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._sessions: set[str] = set()
        self._fail_codes: list[int] = []
        self._garbage = False
        self._delay_s = 0.0
        self._old_firmware = False
        self._no_sestokinfo = False
        self._signal: dict[str, str] = {}
        self._status: dict[str, str] = {}
        self._plmn: dict[str, str] = {}
        self._reset_state()

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        if not self._http.running:
            raise RuntimeError("simulator not started")
        host, port = self._http.address
        return f"http://{host}:{port}"

    def start(self) -> HiLinkSimulator:
        self._stopping.clear()
        with self._lock:
            self._sessions.clear()  # a stick coming back (replug, reboot) has forgotten every session
        self._http.start()  # on the same port as before, as a replugged stick
        return self

    def stop(self) -> None:
        """Stop serving; requests still sleeping in ``set_delay`` are dropped unanswered and open
        connections are cut."""
        self._stopping.set()
        self._http.stop()

    def __enter__(self) -> HiLinkSimulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ test verbs

    def set_signal(
        self,
        rsrp_dbm: float | None,
        rsrq_db: float | None,
        sinr_db: float | None,
        rssi_dbm: float | None = None,
    ) -> None:
        """New measurements; None leaves the element empty, as an unregistered stick does.

        ValueError, with nothing changed, when a value is given and is not a finite number."""
        given = {"rsrp_dbm": rsrp_dbm, "rsrq_db": rsrq_db, "sinr_db": sinr_db, "rssi_dbm": rssi_dbm}
        for name, value in given.items():
            if value is not None:
                finite(name, value)
        self.history.record(
            "set_signal", rsrp_dbm=rsrp_dbm, rsrq_db=rsrq_db, sinr_db=sinr_db, rssi_dbm=rssi_dbm
        )
        with self._lock:
            self._signal["rsrp"] = _unit(rsrp_dbm, "dBm")
            self._signal["rsrq"] = _unit(rsrq_db, "dB")
            self._signal["sinr"] = _unit(sinr_db, "dB")
            self._signal["rssi"] = _unit(rssi_dbm, "dBm")

    def set_operator(self, code: str | None, name: str | None, rat: str = "LTE") -> None:
        """Registered operator (MCC+MNC and name) and technology: "GSM", "UMTS", "LTE" or "NR"."""
        self.history.record("set_operator", code=code, operator_name=name, rat=rat)
        network_type, network_type_ex = _NETWORK_TYPES[rat]
        with self._lock:
            self._plmn.update(
                FullName=name or "", ShortName=name or "", Numeric=code or "", Rat=_RAT_CODES[rat]
            )
            self._signal.update(mode=_RAT_CODES[rat], plmn=code or "")
            self._status.update(CurrentNetworkType=network_type, CurrentNetworkTypeEx=network_type_ex)

    def set_cell(
        self, *, cell_id: int, tac: int, pci: int, band: int, earfcn_dl: int, earfcn_ul: int | None = None
    ) -> None:
        """Serving cell identity, as the newer firmware reports it (decimal ids, ``DL:x UL:y``)."""
        self.history.record("set_cell", cell_id=cell_id, tac=tac, pci=pci, band=band, earfcn_dl=earfcn_dl)
        earfcn = f"DL:{earfcn_dl}" + (f" UL:{earfcn_ul}" if earfcn_ul is not None else "")
        with self._lock:
            self._signal.update(
                cell_id=str(cell_id), tac=str(tac), pci=str(pci), band=str(band), earfcn=earfcn
            )

    def set_connection(self, status: int, *, service: int = 2, roaming: bool = False, sim: int = 1) -> None:
        """ConnectionStatus (900 connecting, 901 connected, 902 disconnected, 903 disconnecting),
        ServiceStatus (2 = service available), RoamingStatus and SimStatus (1 = SIM ok)."""
        self.history.record("set_connection", status=status, service=service, roaming=roaming, sim=sim)
        with self._lock:
            self._status["ConnectionStatus"] = str(status)
            self._status["ServiceStatus"] = str(service)
            self._status["RoamingStatus"] = "1" if roaming else "0"
            self._status["SimStatus"] = str(sim)

    def expire_sessions(self) -> None:
        """Forget every SessionID, as the stick does after a reboot or an idle timeout."""
        self.history.record("expire_sessions")
        with self._lock:
            self._sessions.clear()

    def fail_next(self, code: int) -> None:
        """Answer the next data request (signal/status/plmn) with ``<error><code>code</code>``."""
        self.history.record("fail_next", code=code)
        with self._lock:
            self._fail_codes.append(code)

    def serve_garbage(self, on: bool) -> None:
        """Answer every request with bytes that are not XML (a captive portal, a broken proxy)."""
        self.history.record("serve_garbage", on=on)
        with self._lock:
            self._garbage = on

    def set_delay(self, seconds: float) -> None:
        """Wait this long before answering each request."""
        seconds = finite("seconds", seconds, 0.0, 3600.0)
        self.history.record("set_delay", seconds=seconds)
        with self._lock:
            self._delay_s = seconds

    def old_firmware(self, on: bool) -> None:
        """Serve only the device/signal elements that older E3372 firmware has."""
        self.history.record("old_firmware", on=on)
        with self._lock:
            self._old_firmware = on

    def sestokinfo_missing(self, on: bool) -> None:
        """Newer firmware: SesTokInfo is 404; /api/webserver/token plus a Set-Cookie instead."""
        self.history.record("sestokinfo_missing", on=on)
        with self._lock:
            self._no_sestokinfo = on

    # ------------------------------------------------------------------ serving

    def _reset_state(self) -> None:
        """The example documents of docs/protocols.md section 2: Orange F, LTE band 20, fair signal."""
        self._signal = {
            "pci": "318", "sc": "", "cell_id": "27439044", "rsrq": "-11dB", "rsrp": "-97dBm",
            "rssi": "-68dBm", "sinr": "9dB", "rscp": "", "ecio": "", "mode": "7",
            "ulbandwidth": "10MHz", "dlbandwidth": "10MHz", "band": "20",
            "earfcn": "DL:6300 UL:24300", "tac": "40001", "plmn": "20801",
        }  # fmt: skip
        self._status = {
            "ConnectionStatus": "901", "SignalIcon": "3", "maxsignal": "5", "CurrentNetworkType": "19",
            "CurrentNetworkTypeEx": "101", "SimStatus": "1", "ServiceStatus": "2", "RoamingStatus": "0",
            "WanIPAddress": "10.64.12.7", "PrimaryDns": "80.10.246.2", "SecondaryDns": "81.253.149.10",
            "flymode": "0", "classify": "hilink",
        }  # fmt: skip
        self._plmn = {
            "State": "0",
            "FullName": "Orange F",
            "ShortName": "Orange F",
            "Numeric": "20801",
            "Rat": "7",
        }

    def _answer(self, path: str, cookie_header: str | None) -> tuple[int, bytes, str | None]:
        """(HTTP status, body, Set-Cookie) for one GET; called from the handler threads."""
        with self._lock:
            if self._garbage:
                return 200, GARBAGE, None
            if path in ("/api/webserver/SesTokInfo", "/api/webserver/token"):
                return self._session_answer(path)
            if path not in _DATA_PATHS:
                return 404, b"<html><body>404 Not Found</body></html>", None
            if _session_of(cookie_header) not in self._sessions:
                return 200, _error(125002), None
            if self._fail_codes:
                return 200, _error(self._fail_codes.pop(0)), None
            return 200, _document(self._data(path)), None

    def _session_answer(self, path: str) -> tuple[int, bytes, str | None]:
        if path == "/api/webserver/token":
            session = self._issue_session()
            return 200, _document({"token": self._new_id()}), f"SessionID={session}; path=/; HttpOnly"
        if self._no_sestokinfo:
            return 404, b"<html><body>404 Not Found</body></html>", None
        session = self._issue_session()
        return 200, _document({"SesInfo": f"SessionID={session}", "TokInfo": self._new_id()}), None

    def _issue_session(self) -> str:
        session = self._new_id()
        self._sessions.add(session)
        return session

    def _data(self, path: str) -> dict[str, str]:
        if path == "/api/device/signal":
            if self._old_firmware:
                return {tag: self._signal[tag] for tag in OLD_FIRMWARE_SIGNAL}
            return dict(self._signal)
        return dict(self._status if path == "/api/monitoring/status" else self._plmn)

    def _serve(self, handler: _Handler) -> None:
        cookie = handler.headers.get("Cookie")
        with self._lock:
            delay = self._delay_s
        if delay > 0 and self._stopping.wait(delay):
            return  # stopped while we were being slow: drop the request like a dead stick
        status, body, set_cookie = self._answer(handler.path, cookie)
        self.history.record("request", path=handler.path, cookie=cookie, status=status, body=body)
        handler.send_response(status)
        handler.send_header("Content-Type", "text/xml; charset=UTF-8" if status == 200 else "text/html")
        handler.send_header("Content-Length", str(len(body)))
        if set_cookie:
            handler.send_header("Set-Cookie", set_cookie)
        handler.end_headers()
        handler.wfile.write(body)


def _session_of(cookie_header: str | None) -> str | None:
    if not cookie_header:
        return None
    cookie: SimpleCookie = SimpleCookie()
    try:
        cookie.load(cookie_header)
    except CookieError:
        return None
    morsel = cookie.get("SessionID")
    return morsel.value if morsel is not None else None


class _Handler(QuietHandler):
    server: QuietHTTPServer[HiLinkSimulator]

    def do_GET(self) -> None:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.server.simulator._serve(self)
