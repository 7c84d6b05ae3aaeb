"""Run the real CUPS ``ippeveprinter`` (Debian cups-ipp-utils) on 127.0.0.1 as a test printer.

What it takes to start here (measured with CUPS 2.4.2): ``-r off`` stops DNS-SD advertising, but
the program still exits with "Unable to initialize DNS-SD" unless a D-Bus *system* bus answers,
so a private ``dbus-daemon`` is started and named in ``DBUS_SYSTEM_BUS_ADDRESS`` (no avahi needed,
nothing is announced). ``-n localhost`` is required because it listens on IPv4 *and* IPv6 under
that name (``-n 127.0.0.1`` fails with "Unable to create IPv6 listener"). ``-K <dir>`` lets it
make a self-signed certificate, without which every ipps:// connection is reset.

What it lets a test change, honestly (it has no Pause-Printer, so it never reports "stopped"):
- paper per tray through its web form ``/media`` (0 sheets -> ``media-empty-report``, a few ->
  ``media-low-report``), toner through ``/supplies`` (low -> ``toner-low-report``);
- any reason keyword or marker-* value through a print job: every job runs our print command,
  which echoes the document to stderr, and ippeveprinter applies its ``STATE:`` / ``ATTR:`` lines.
Its suffix follows its state (idle -> ``-report``, processing -> ``-warning``), whatever was sent.
A job sent while media is empty waits for paper, holding the printer "processing".
"""

from __future__ import annotations

import contextlib
import http.client
import os
import select
import shutil
import subprocess
import tempfile
import time
import urllib.parse
from pathlib import Path
from types import TracebackType

from drivers.base import DriverError
from drivers.printer import ipp
from drivers.printer.driver import IppTarget, describe_status, ipp_call
from simulators.base import Clock, History
from simulators.process import free_port, terminate

PROGRAM = "/usr/sbin/ippeveprinter"
DBUS_DAEMON = "dbus-daemon"
# Run for every job: hand the document to ippeveprinter on stderr, where its STATE:/ATTR: lines apply.
_PRINT_COMMAND = '#!/bin/sh\nexec cat "$1" >&2\n'
_JOB_DONE = (7, 8, 9)  # canceled, aborted, completed


class IppEvePrinter:
    """The real ippeveprinter on a free 127.0.0.1 port; ``url`` is what the driver reads."""

    def __init__(
        self,
        *,
        port: int = 0,
        name: str = "busprinter",
        state_dir: Path | None = None,
        make: str = "Acme",
        model: str = "LaserBus 100",
        program: str = PROGRAM,
        start_timeout_s: float = 10.0,
        clock: Clock = time.monotonic,
    ) -> None:
        self.history = History(clock)
        self.name, self.make, self.model = name, make, model
        self.program = program
        self.start_timeout_s = start_timeout_s
        self._wanted_port = port
        self._port = 0
        self._own_dir = state_dir is None
        self._state_dir = state_dir
        self._dbus: subprocess.Popen[bytes] | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._request_ids = iter(range(1, 2**31))

    @property
    def url(self) -> str:
        if not self._port:
            raise RuntimeError("ippeveprinter not started")
        return f"ipp://127.0.0.1:{self._port}/ipp/print"

    @property
    def ipps_url(self) -> str:
        """The same printer over TLS (same port; the certificate is self-signed)."""
        return self.url.replace("ipp://", "ipps://", 1)

    @property
    def make_and_model(self) -> str:
        return f"{self.make} {self.model}"  # how ippeveprinter composes printer-make-and-model

    @property
    def log_path(self) -> Path:
        return self._dir() / "ippeveprinter.log"

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> IppEvePrinter:
        if shutil.which(self.program) is None:
            raise RuntimeError(f"{self.program} not found (Debian package cups-ipp-utils)")
        workdir = self._dir()
        (workdir / "spool").mkdir(parents=True, exist_ok=True)
        (workdir / "keys").mkdir(exist_ok=True)
        script = workdir / "print-command.sh"
        script.write_text(_PRINT_COMMAND)
        script.chmod(0o755)
        self._dbus, bus_address = _start_private_bus()
        try:
            self._start_printer(bus_address, script)
        except BaseException:
            self.stop()
            raise
        self.history.record("start", port=self._port)
        return self

    def stop(self) -> None:
        """Terminate and reap ippeveprinter and its private bus; remove our temporary directory."""
        for proc in (self._proc, self._dbus):
            if proc is not None:
                terminate(proc)
        if self._proc is not None:
            self.history.record("stop", returncode=self._proc.returncode)
        self._proc, self._dbus = None, None
        if self._own_dir and self._state_dir is not None:
            shutil.rmtree(self._state_dir, ignore_errors=True)
            self._state_dir = None

    def __enter__(self) -> IppEvePrinter:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _dir(self) -> Path:
        if self._state_dir is None:
            self._state_dir = Path(tempfile.mkdtemp(prefix="ippeve-"))
        return self._state_dir

    def _start_printer(self, bus_address: str, script: Path) -> None:
        # A free port can be taken between our probe and ippeveprinter's bind: retry a few.
        attempts = 1 if self._wanted_port else 3
        for attempt in range(attempts):
            self._port = self._wanted_port or free_port()
            self._proc = self._spawn(bus_address, script)
            try:
                self._wait_ready(self._proc)
                return
            except RuntimeError:
                terminate(self._proc)
                if attempt == attempts - 1 or "listener" not in self._log_tail():
                    raise

    def _spawn(self, bus_address: str, script: Path) -> subprocess.Popen[bytes]:
        args = [self.program, "-p", str(self._port), "-n", "localhost", "-r", "off"]
        args += ["-d", str(self._dir() / "spool"), "-c", str(script), "-f", "text/plain"]
        # With a key directory it makes itself a self-signed certificate, so ipps:// works too.
        args += ["-K", str(self._dir() / "keys")]
        args += ["-M", self.make, "-m", self.model, "-v", self.name]
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=bus_address)
        with self.log_path.open("ab") as log:
            return subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)

    def _wait_ready(self, proc: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        target = IppTarget(self.url)
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"ippeveprinter exited with status {proc.returncode} at start: {self._log_tail()}"
                )
            request = ipp.IppMessage(
                ipp.GET_PRINTER_ATTRIBUTES,
                next(self._request_ids),
                (ipp.operation_attributes(target.printer_uri),),
            )
            with contextlib.suppress(DriverError):
                if ipp_call(target, request, timeout_s=1.0).code < 0x0400:
                    return
            time.sleep(0.05)
        raise RuntimeError(
            f"ippeveprinter did not answer on port {self._port} in {self.start_timeout_s:g} s: "
            f"{self._log_tail()}"
        )

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-2000:].strip() or "(no output)"
        return "(no log)"

    # ------------------------------------------------------------------ test verbs

    def set_media(self, main_sheets: int, bypass_sheets: int = 25) -> None:
        """Sheets in the main tray and the by-pass tray, through ippeveprinter's /media form."""
        self.history.record("set_media", main_sheets=main_sheets, bypass_sheets=bypass_sheets)
        trays = {1: main_sheets, 3: bypass_sheets}  # the form's indexes for "main" and "by-pass-tray"
        query: dict[str, str | int] = {}
        for index, sheets in trays.items():
            query |= {f"size{index}": "iso_a4_210x297mm", f"type{index}": "stationery"}
            query[f"level{index}"] = sheets
        self._web_form("/media", query)

    def media_empty(self) -> None:
        """Both trays empty: ``media-empty-report`` while idle."""
        self.set_media(0, 0)

    def refill(self) -> None:
        """Both trays full; also releases a job that was waiting for paper."""
        self.set_media(250, 25)

    def set_supplies(self, toner_pct: int, waste_pct: int = 25) -> None:
        """Black toner and waste-toner levels through the /supplies form (the printer-supply attribute)."""
        self.history.record("set_supplies", toner_pct=toner_pct, waste_pct=waste_pct)
        self._web_form("/supplies", {"supply0": waste_pct, "supply1": toner_pct})

    def report_state(self, change: str) -> None:
        """Apply a ``STATE:`` line: "+media-jam-error" adds, "-media-jam" removes, "a,b" replaces.

        Only keywords ippeveprinter knows are kept (media-*, toner-*, marker-*, cover-open, ...).
        """
        self.history.record("report_state", change=change)
        self.print_document(f"STATE: {change}\n".encode())

    def set_markers(self, names: list[str], levels: list[int], colors: list[str], types: list[str]) -> None:
        """marker-names/levels/colors/types through an ``ATTR:`` line of a print job."""
        self.history.record("set_markers", names=names, levels=levels, colors=colors, types=types)
        fields: dict[str, list[str] | list[int]] = {
            "marker-names": names,
            "marker-levels": levels,
            "marker-colors": colors,
            "marker-types": types,
        }
        line = " ".join(f"{key}={_option_value(values)}" for key, values in fields.items())
        self.print_document(f"ATTR: {line}\n".encode())

    def print_document(self, document: bytes, timeout_s: float = 5.0) -> int:
        """Print-Job with a text/plain document; waits until the job is done and returns its id."""
        target = IppTarget(self.url)
        extra = (
            ipp.Attribute.of("requesting-user-name", ipp.NAME, "busagent-test"),
            ipp.Attribute.of("document-format", ipp.MIME_MEDIA_TYPE, "text/plain"),
        )
        request = ipp.IppMessage(
            ipp.PRINT_JOB,
            next(self._request_ids),
            (ipp.operation_attributes(target.printer_uri, *extra),),
            document=document,
        )
        answer = self._call(target, request)
        job_id = answer.find("job-id", ipp.JOB_GROUP)
        if job_id is None or not isinstance(job_id.data[0], int):
            raise RuntimeError("ippeveprinter accepted the job but gave no job-id")
        self.history.record("print_job", job_id=job_id.data[0], document_bytes=len(document))
        self._wait_job(target, job_id.data[0], timeout_s)
        return job_id.data[0]

    def _wait_job(self, target: IppTarget, job_id: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            request = ipp.IppMessage(
                ipp.GET_JOB_ATTRIBUTES,
                next(self._request_ids),
                (
                    ipp.operation_attributes(
                        target.printer_uri,
                        ipp.Attribute.of("job-id", ipp.INTEGER, job_id),
                        ipp.keyword_list("requested-attributes", ["job-state"]),
                    ),
                ),
            )
            state = self._call(target, request).find("job-state", ipp.JOB_GROUP)
            if state is not None and state.data[0] in _JOB_DONE:
                return
            time.sleep(0.02)
        raise RuntimeError(
            f"job {job_id} not done after {timeout_s:g} s (a job waits while media is empty: refill())"
        )

    def _call(self, target: IppTarget, request: ipp.IppMessage) -> ipp.IppMessage:
        try:
            answer = ipp_call(target, request, timeout_s=5.0)
        except DriverError as exc:
            raise RuntimeError(f"ippeveprinter request failed: {exc}") from exc
        if answer.code >= 0x0400:
            raise RuntimeError(describe_status(answer))
        return answer

    def _web_form(self, path: str, query: dict[str, str | int]) -> None:
        # The forms are plain GETs on the IPP port (ippeveprinter serves both on one socket).
        conn = http.client.HTTPConnection("127.0.0.1", self._port, timeout=5.0)
        try:
            conn.request("GET", f"{path}?{urllib.parse.urlencode(query)}")
            response = conn.getresponse()
            response.read()
        finally:
            conn.close()
        if response.status != 200:
            raise RuntimeError(f"ippeveprinter {path} form answered HTTP {response.status} {response.reason}")


def _option_value(values: list[str] | list[int]) -> str:
    """Comma-separated values for ippeveprinter's option parser; quoted when they hold spaces."""
    return ",".join(f'"{v}"' if " " in str(v) else str(v) for v in values)


def _start_private_bus() -> tuple[subprocess.Popen[bytes], str]:
    """A throwaway session-config dbus-daemon; returns it and the address it printed."""
    if shutil.which(DBUS_DAEMON) is None:
        raise RuntimeError("dbus-daemon not found: ippeveprinter needs a D-Bus bus to start")
    proc = subprocess.Popen(
        [DBUS_DAEMON, "--session", "--nofork", "--address=unix:tmpdir=/tmp", "--print-address"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 5.0)
    address = proc.stdout.readline().decode().strip() if ready else ""
    if not address:
        terminate(proc)
        raise RuntimeError("private dbus-daemon did not print its address within 5 s")
    return proc, address
