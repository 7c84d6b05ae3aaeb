"""IppPrinterDriver against the IPP simulator and the real ippeveprinter, over HTTP on 127.0.0.1."""

from __future__ import annotations

import http.client
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from drivers.printer import ipp
from drivers.printer.driver import (
    IppPrinterDriver,
    IppTarget,
    ipp_call,
    snapshot_from_answer,
)
from drivers.printer.reasons import describe_reasons, problems, split_reason
from drivers.snapshots import PrinterMarker, PrinterSnapshot
from simulators.ippeve import IppEvePrinter
from simulators.printer import IppPrinterSimulator


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def sim() -> Iterator[IppPrinterSimulator]:
    with IppPrinterSimulator() as printer:
        yield printer


@pytest.fixture
def eve(tmp_path: Path) -> Iterator[IppEvePrinter]:
    with IppEvePrinter(state_dir=tmp_path / "ippeve") as printer:
        yield printer


def read(url: str, timeout_s: float = 2.0) -> PrinterSnapshot:
    return IppPrinterDriver(url, timeout_s=timeout_s).read()


def request(url: str, operation: int, *extra: ipp.Attribute, document: bytes = b"") -> ipp.IppMessage:
    target = IppTarget(url)
    message = ipp.IppMessage(
        operation, 9, (ipp.operation_attributes(target.printer_uri, *extra),), document=document
    )
    return ipp_call(target, message, timeout_s=2.0)


def post_raw(url: str, body: bytes, *, chunked: bool = False) -> tuple[int, bytes]:
    target = IppTarget(url)
    conn = http.client.HTTPConnection(target.host, target.port, timeout=2.0)
    try:
        payload = iter([body]) if chunked else body
        headers = {"Content-Type": "application/ipp"}
        conn.request("POST", target.path, payload, headers, encode_chunked=chunked)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


# --------------------------------------------------------------------------- against the simulator


def test_idle_printer_reads_idle_accepting_with_its_model_and_toner(sim: IppPrinterSimulator) -> None:
    snap = read(sim.url)
    assert snap.ok, snap.reason
    assert (snap.state, snap.reasons, snap.accepting_jobs) == ("idle", (), True)
    assert snap.make_and_model == "BusOffice LaserJet 100"
    assert snap.markers == (PrinterMarker("Black Toner", "#000000", "toner", 80),)
    assert problems(snap) == ()


def test_out_of_paper_reads_stopped_with_media_empty_error_in_plain_words(sim: IppPrinterSimulator) -> None:
    sim.media_empty()
    snap = read(sim.url)
    assert snap.state == "stopped"
    assert "media-empty-error" in snap.reasons
    assert snap.message == "Out of paper."
    assert describe_reasons(snap.reasons) == ["out of paper"]
    assert problems(snap) == ("out of paper",)


def test_paper_jam_reads_stopped_with_paper_jam(sim: IppPrinterSimulator) -> None:
    sim.jam()
    snap = read(sim.url)
    assert (snap.state, snap.reasons) == ("stopped", ("media-jam-error",))
    assert problems(snap) == ("paper jam",)


def test_toner_low_lowers_the_marker_level_and_is_a_warning(sim: IppPrinterSimulator) -> None:
    sim.toner_low()
    snap = read(sim.url)
    assert snap.state == "idle"
    assert snap.reasons == ("toner-low-warning",)
    assert snap.markers[0].level_pct == 4
    assert problems(snap) == ("toner low",)


def test_cover_open_and_low_paper_together_are_both_reported(sim: IppPrinterSimulator) -> None:
    sim.media_low()
    sim.cover_open()
    snap = read(sim.url)
    assert snap.state == "stopped"
    assert problems(snap) == ("paper low", "cover open")


def test_switched_off_printer_is_not_ok_and_comes_back_on_the_same_url(sim: IppPrinterSimulator) -> None:
    url = sim.url
    sim.offline()
    snap = read(url)
    assert not snap.ok
    assert snap.reason == f"printer not reachable at {url} (connection refused)"
    assert problems(snap) == (snap.reason,)
    sim.online()
    assert sim.url == url
    assert read(url).ok


def test_clear_returns_to_an_idle_printer_with_full_supplies(sim: IppPrinterSimulator) -> None:
    sim.jam()
    sim.toner_low()
    sim.set_accepting(False)
    sim.clear()
    snap = read(sim.url)
    assert (snap.state, snap.reasons, snap.accepting_jobs, snap.message) == ("idle", (), True, None)
    assert snap.markers[0].level_pct == 80


def test_set_state_serves_any_state_and_reasons_and_rejects_unknown_states(sim: IppPrinterSimulator) -> None:
    sim.set_state("printing", ["none", "offline-report"])
    snap = read(sim.url)
    assert (snap.state, snap.reasons) == ("printing", ("offline-report",))
    assert problems(snap) == ("offline",)  # CUPS's "report" that the printer cannot be reached
    with pytest.raises(ValueError, match="state must be one of"):
        sim.set_state("processing", [])


def test_a_print_job_keeps_the_printer_printing_for_a_moment() -> None:
    clock = FakeClock()
    with IppPrinterSimulator(clock=clock, print_time_s=5.0) as sim:
        answer = request(sim.url, ipp.PRINT_JOB, document=b"%PDF-1.4 hello")
        assert answer.code == 0x0000
        job_id = answer.find("job-id", ipp.JOB_GROUP)
        assert job_id is not None and job_id.data == (1,)
        assert read(sim.url).state == "printing"
        clock.now += 5.1
        assert read(sim.url).state == "idle"
        assert [e.detail["document_bytes"] for e in sim.history.events if e.name == "print_job"] == [14]


def test_a_printer_not_accepting_jobs_says_so_and_refuses_print_jobs(sim: IppPrinterSimulator) -> None:
    sim.set_accepting(False)
    snap = read(sim.url)
    assert snap.accepting_jobs is False
    assert problems(snap) == ("not accepting jobs",)
    assert request(sim.url, ipp.PRINT_JOB, document=b"x").code == 0x0506


def test_marker_levels_that_are_not_percentages_read_as_none(sim: IppPrinterSimulator) -> None:
    for level in (-1, -2, -3):
        sim.set_marker_level(level)
        assert read(sim.url).markers[0].level_pct is None
    sim.set_marker_level(55)
    assert read(sim.url).markers[0].level_pct == 55


def test_wrong_path_is_not_ok_with_the_ipp_status_name(sim: IppPrinterSimulator) -> None:
    snap = read(sim.url.replace("/ipp/print", "/printers/nope"))
    assert not snap.ok
    assert snap.reason == "printer answered client-error-not-found (0x0406): No printer at /printers/nope."


def test_an_answer_that_is_not_ipp_is_a_protocol_error(sim: IppPrinterSimulator) -> None:
    sim.serve_garbage(True)
    snap = read(sim.url)
    assert not snap.ok
    assert snap.reason is not None and "sent something that is not IPP" in snap.reason


def test_a_printer_without_markers_reads_ok_with_no_markers(sim: IppPrinterSimulator) -> None:
    sim.omit_attributes("marker-names", "marker-colors", "marker-types", "marker-levels")
    snap = read(sim.url)
    assert snap.ok and snap.markers == ()


def test_an_answer_without_printer_state_is_a_protocol_error(sim: IppPrinterSimulator) -> None:
    sim.omit_attributes("printer-state")
    snap = read(sim.url)
    assert snap.reason == f"answer from {sim.url} has no printer-state"


def test_an_http_error_status_is_reported_with_its_code(sim: IppPrinterSimulator) -> None:
    sim.fail_http(403)
    snap = read(sim.url)
    assert snap.reason == f"printer at {sim.url} answered HTTP 403 Forbidden"


def test_a_printer_that_does_not_answer_in_time_times_out(sim: IppPrinterSimulator) -> None:
    sim.set_delay(2.0)
    snap = read(sim.url, timeout_s=0.2)
    assert snap.reason == f"no answer from printer at {sim.url} within 0.2 s"


@pytest.mark.parametrize("chunked", [False, True])
def test_malformed_requests_get_ipp_bad_request_and_the_server_keeps_serving(
    sim: IppPrinterSimulator, chunked: bool
) -> None:
    status, body = post_raw(sim.url, b"\x02\x00\x00\x0b\x00\x00\x00\x05\x04\x44\xff", chunked=chunked)
    assert status == 200
    answer = ipp.decode(body)
    assert (answer.code, answer.request_id) == (0x0400, 5)
    missing_charset = ipp.IppMessage(ipp.GET_PRINTER_ATTRIBUTES, 6, (ipp.AttributeGroup(1, ()),))
    assert ipp.decode(post_raw(sim.url, ipp.encode(missing_charset), chunked=chunked)[1]).code == 0x0400
    assert read(sim.url).ok


def test_history_records_verbs_and_requests(sim: IppPrinterSimulator) -> None:
    sim.jam()
    read(sim.url)
    sim.clear()
    assert sim.history.names() == ["jam", "request", "clear"]
    (asked,) = [e for e in sim.history.events if e.name == "request"]
    assert asked.detail == {"path": "/ipp/print", "operation": ipp.GET_PRINTER_ATTRIBUTES, "status": 0}


# --------------------------------------------------------------------------- pure helpers


def test_reason_suffixes_are_split_and_a_bare_keyword_counts_as_an_error() -> None:
    assert split_reason("media-empty-error") == ("media-empty", "error")
    assert split_reason("toner-low-report") == ("toner-low", "report")
    assert split_reason("media-empty") == ("media-empty", "error")
    assert split_reason("cups-missing-filter-warning") == ("cups-missing-filter", "warning")


def test_describe_reasons_gives_plain_words_once_each_and_drops_none() -> None:
    reasons = ["none", "media-empty-error", "media-needed-error", "media-jam", "cover-open-report"]
    assert describe_reasons(reasons) == ["out of paper", "paper jam", "cover open"]
    assert describe_reasons(["toner-low-warning", "offline-report"]) == ["toner low", "offline"]
    assert describe_reasons(["cups-missing-filter-warning"]) == ["cups missing filter"]


def test_problems_leave_out_reports_but_keep_offline() -> None:
    snap = PrinterSnapshot(reasons=("media-low-report", "toner-low-warning", "offline-report"))
    assert problems(snap) == ("toner low", "offline")
    assert problems(PrinterSnapshot(ok=False, reason="no answer")) == ("no answer",)


def test_snapshot_tolerates_uneven_marker_lists_and_names_with_language() -> None:
    printer = ipp.AttributeGroup(
        ipp.PRINTER_GROUP,
        (
            ipp.Attribute.of("printer-state", ipp.ENUM, 4),
            ipp.Attribute.of("printer-state-reasons", ipp.KEYWORD, "none"),
            ipp.Attribute.of("marker-names", ipp.NAME_WITH_LANGUAGE, ipp.TextWithLanguage("fr", "Noir")),
            ipp.Attribute(
                "marker-names",
                (ipp.Value(ipp.NAME, "ignored: only the first attribute of a name counts"),),
            ),
            ipp.Attribute.of("marker-levels", ipp.INTEGER, 101, 40),
        ),
    )
    snap = snapshot_from_answer(ipp.IppMessage(0, 1, (printer,)))
    assert (snap.state, snap.reasons, snap.accepting_jobs, snap.make_and_model) == (
        "printing",
        (),
        None,
        None,
    )
    assert snap.markers == (PrinterMarker("Noir", None, None, None),)


def test_endpoints_pick_transport_port_and_printer_uri() -> None:
    cups = IppTarget("ipp://localhost/printers/bus")
    assert (cups.host, cups.port, cups.path, cups.tls) == ("localhost", 631, "/printers/bus", False)
    secure = IppTarget("ipps://printer.local:8443/ipp/print")
    assert (secure.port, secure.tls, secure.printer_uri) == (
        8443,
        True,
        "ipps://printer.local:8443/ipp/print",
    )
    assert IppTarget("http://10.0.0.5:631/ipp/print").printer_uri == "ipp://10.0.0.5:631/ipp/print"
    for bad in ("lpd://host/queue", "ipp:///nohost", "ipp://host:99999/x"):
        with pytest.raises(ValueError, match="printer endpoint"):
            IppPrinterDriver(bad)


# --------------------------------------------------------------------------- against real ippeveprinter


def test_real_ippeveprinter_reads_idle_accepting_with_its_make_and_model(eve: IppEvePrinter) -> None:
    snap = read(eve.url)
    assert snap.ok, snap.reason
    assert (snap.state, snap.reasons, snap.accepting_jobs) == ("idle", (), True)
    assert snap.make_and_model == eve.make_and_model == "Acme LaserBus 100"
    assert snap.message == "Idle."


def test_real_ippeveprinter_reads_the_same_over_ipps_with_its_self_signed_certificate(
    eve: IppEvePrinter,
) -> None:
    snap = read(eve.ipps_url)
    assert snap.ok, snap.reason
    assert (snap.state, snap.make_and_model) == ("idle", "Acme LaserBus 100")


def test_wrong_path_on_real_ippeveprinter_is_not_ok_with_the_ipp_status(eve: IppEvePrinter) -> None:
    url = eve.url.replace("/ipp/print", "/printers/nope")
    snap = read(url)
    assert not snap.ok
    assert snap.reason == f"printer answered client-error-not-found (0x0406): printer-uri {url} not found."


def test_real_ippeveprinter_empty_trays_are_reported_as_out_of_paper(eve: IppEvePrinter) -> None:
    eve.media_empty()
    snap = read(eve.url)
    # ippeveprinter suffixes reasons by its own state: idle -> "-report", never "-error".
    assert (snap.state, snap.reasons) == ("idle", ("media-empty-report",))
    assert describe_reasons(snap.reasons) == ["out of paper"]
    assert problems(snap) == ()
    eve.refill()
    assert read(eve.url).reasons == ()


def test_real_ippeveprinter_takes_reasons_and_markers_from_print_jobs(eve: IppEvePrinter) -> None:
    eve.report_state("+media-jam-error")
    assert read(eve.url).reasons == ("media-jam-report",)
    eve.set_markers(["Black Toner", "Cyan"], [7, -2], ["#000000", "#00FFFF"], ["toner", "toner"])
    snap = read(eve.url)
    assert snap.markers == (
        PrinterMarker("Black Toner", "#000000", "toner", 7),
        PrinterMarker("Cyan", "#00FFFF", "toner", None),
    )
    eve.report_state("-media-jam")
    assert read(eve.url).reasons == ()


def test_real_ippeveprinter_low_toner_from_its_supplies_form(eve: IppEvePrinter) -> None:
    eve.set_supplies(toner_pct=3)
    assert describe_reasons(read(eve.url).reasons) == ["toner low"]


def test_stopping_ippeveprinter_reaps_it_and_the_driver_sees_it_gone(tmp_path: Path) -> None:
    printer = IppEvePrinter(state_dir=tmp_path).start()
    url = printer.url
    printer.stop()
    assert printer.history.events[-1].name == "stop"
    assert printer.history.events[-1].detail["returncode"] is not None
    assert read(url).reason == f"printer not reachable at {url} (connection refused)"


def test_ippeveprinter_that_cannot_start_fails_with_its_own_words(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        printer = IppEvePrinter(port=taken.getsockname()[1], state_dir=tmp_path, start_timeout_s=5)
        with pytest.raises(
            RuntimeError, match=r"(?s)exited with status 1 at start:.*Unable to create IPv4 listener"
        ):
            printer.start()
