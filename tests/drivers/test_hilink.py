"""HiLink driver: XML parsing on docs/protocols.md section 2 bodies, and the driver against its simulator."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.modem.hilink import MAX_BODY_BYTES, HiLinkDriver, parse_reply, snapshot_from
from simulators.hilink import HiLinkSimulator

# --------------------------------------------------------------------------- bodies from docs/protocols.md

SIGNAL_XML = b"""<?xml version="1.0" encoding="UTF-8"?>
<response>
<pci>318</pci><sc></sc><cell_id>27439044</cell_id>
<rsrq>-11dB</rsrq><rsrp>-97dBm</rsrp><rssi>-68dBm</rssi><sinr>9dB</sinr>
<rscp></rscp><ecio></ecio><mode>7</mode>
<ulbandwidth>10MHz</ulbandwidth><dlbandwidth>10MHz</dlbandwidth>
<band>20</band><earfcn>DL:6300 UL:24300</earfcn><tac>40001</tac><plmn>20801</plmn>
</response>
"""
STATUS_XML = b"""<?xml version="1.0" encoding="UTF-8"?>
<response><ConnectionStatus>901</ConnectionStatus><SignalIcon>3</SignalIcon><maxsignal>5</maxsignal>
<CurrentNetworkType>19</CurrentNetworkType><CurrentNetworkTypeEx>101</CurrentNetworkTypeEx>
<SimStatus>1</SimStatus><ServiceStatus>2</ServiceStatus><RoamingStatus>0</RoamingStatus>
<WanIPAddress>10.64.12.7</WanIPAddress><flymode>0</flymode><classify>hilink</classify></response>
"""
PLMN_XML = (
    b"<response><State>0</State><FullName>Orange F</FullName><ShortName>Orange F</ShortName>"
    b"<Numeric>20801</Numeric><Rat>7</Rat></response>"
)
ERROR_XML = b'<?xml version="1.0" encoding="UTF-8"?><error><code>125002</code><message></message></error>'
OLD_FIRMWARE_SIGNAL_XML = (
    b"<response><pci>318</pci><sc></sc><cell_id>27439044</cell_id><rsrq>-11.0dB</rsrq><rsrp>-97dBm</rsrp>"
    b"<rssi>&gt;=-51dBm</rssi><sinr>9dB</sinr><rscp></rscp><ecio></ecio><mode>7</mode></response>"
)
BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
    b"<response><pci>&lol2;</pci></response>"
)


def fields(body: bytes) -> dict[str, str]:
    reply = parse_reply(body)
    assert reply.problem is None and reply.error_code is None, reply
    return reply.fields


# --------------------------------------------------------------------------- parser


def test_signal_example_parses_into_every_field() -> None:
    snap = snapshot_from(fields(SIGNAL_XML), fields(STATUS_XML), fields(PLMN_XML))
    assert (snap.rsrp_dbm, snap.rsrq_db, snap.sinr_db, snap.rssi_dbm) == (-97.0, -11.0, 9.0, -68.0)
    assert (snap.cell_id, snap.tac, snap.pci, snap.band, snap.earfcn) == (27439044, 40001, 318, 20, 6300)
    assert (snap.operator_code, snap.operator_name, snap.rat) == ("20801", "Orange F", "LTE")
    assert snap.registration == "home"
    assert snap.quality == "fair"  # -97 dBm is fair; -11 dB good; 9 dB fair
    assert snap.source == "hilink"


def test_empty_elements_mean_unknown_not_zero() -> None:
    signal = fields(SIGNAL_XML)
    assert signal["sc"] == "" and signal["rscp"] == ""
    snap = snapshot_from({"rsrp": "", "rsrq": "", "sinr": "", "cell_id": ""}, {}, {})
    assert (snap.rsrp_dbm, snap.rsrq_db, snap.sinr_db, snap.cell_id) == (None, None, None, None)
    assert snap.quality == "none"
    assert snap.registration == "unknown"


def test_old_firmware_decimal_rsrq_and_escaped_strong_rssi() -> None:
    snap = snapshot_from(fields(OLD_FIRMWARE_SIGNAL_XML), {}, {})
    assert snap.rsrq_db == -11.0
    assert snap.rssi_dbm == -51.0  # "&gt;=-51dBm" is a floor, reported as the number
    assert (snap.band, snap.earfcn, snap.tac) == (None, None, None)
    assert snap.rat == "LTE"  # from the signal "mode" when current-plmn is not there


def test_error_body_gives_the_code() -> None:
    reply = parse_reply(ERROR_XML)
    assert reply.error_code == 125002
    assert reply.fields == {} and reply.problem is None


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"", "not XML"),
        (b"<html><body>Bad gateway</body></html>", "unexpected root element <html>"),
        (SIGNAL_XML[:90], "not XML"),  # truncated mid-element
        (b"<error><message>x</message></error>", "without a numeric code"),
        (b'<?xml version="1.0" encoding="x-bogus"?><response/>', "not XML"),
        (BILLION_LAUGHS, "DTD"),
        (b"<response>" + b"<a>1</a>" * (MAX_BODY_BYTES // 8) + b"</response>", "too large"),
    ],
    ids=["empty", "html", "truncated", "error-without-code", "bogus-encoding", "billion-laughs", "huge"],
)
def test_bodies_that_are_not_hilink_replies_are_refused_with_a_reason(body: bytes, problem: str) -> None:
    reply = parse_reply(body)
    assert reply.problem is not None and problem in reply.problem
    assert reply.fields == {} and reply.error_code is None


@pytest.mark.parametrize(
    ("signal", "status", "plmn", "rat"),
    [
        ({}, {}, {"Rat": "12"}, "NR"),
        ({"mode": "2"}, {"CurrentNetworkType": "19"}, {"Rat": ""}, "UMTS"),  # plmn empty: signal mode
        ({"mode": ""}, {"CurrentNetworkTypeEx": "46"}, {}, "UMTS"),
        ({}, {"CurrentNetworkType": "3"}, {}, "GSM"),
        ({}, {"CurrentNetworkType": "0"}, {}, None),  # 0 = no service
    ],
)
def test_rat_taken_from_plmn_then_signal_then_status(
    signal: dict[str, str], status: dict[str, str], plmn: dict[str, str], rat: str | None
) -> None:
    assert snapshot_from(signal, status, plmn).rat == rat


@pytest.mark.parametrize(
    ("status", "registration"),
    [
        ({"ServiceStatus": "2", "RoamingStatus": "0", "ConnectionStatus": "902"}, "home"),
        ({"ServiceStatus": "2", "RoamingStatus": "1"}, "roaming"),
        ({"ServiceStatus": "0", "SimStatus": "1", "ConnectionStatus": "900"}, "searching"),
        ({"ServiceStatus": "0", "SimStatus": "255"}, "not-registered"),
        ({"ConnectionStatus": "901"}, "home"),
        ({"ConnectionStatus": "900"}, "searching"),
        ({"ConnectionStatus": "902"}, "unknown"),
    ],
)
def test_registration_from_service_roaming_and_connection_status(
    status: dict[str, str], registration: str
) -> None:
    assert snapshot_from({}, status, {}).registration == registration


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_never_make_the_parser_raise(body: bytes) -> None:
    reply = parse_reply(body)
    assert (reply.problem is not None) + (reply.error_code is not None) <= 1


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(st.sampled_from(["rsrp", "rsrq", "sinr", "cell_id", "earfcn", "mode", "tac"]), st.text())
)
def test_arbitrary_element_text_never_makes_the_mapping_raise(signal: dict[str, str]) -> None:
    status = {"ServiceStatus": signal.get("mode", ""), "CurrentNetworkType": signal.get("tac", "")}
    snap = snapshot_from(signal, status, {"Rat": signal.get("sinr", "")})
    assert snap.quality in ("excellent", "good", "fair", "poor", "none")


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=["Cs", "Cc"]), max_size=40))
def test_element_text_survives_a_round_trip_through_the_parser(text: str) -> None:
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").encode()
    reply = parse_reply(b"<response><rsrp>" + escaped + b"</rsrp></response>")
    if "\ufffe" in text or "\uffff" in text:  # not XML characters: refused, never raised
        assert reply.problem is not None
    else:
        assert reply.fields == {"rsrp": text.strip()}


# --------------------------------------------------------------------------- driver against simulator


@pytest.fixture
def sim() -> Iterator[HiLinkSimulator]:
    with HiLinkSimulator() as simulator:
        yield simulator


@pytest.fixture
def driver(sim: HiLinkSimulator) -> HiLinkDriver:
    return HiLinkDriver(sim.url, timeout_s=2.0)


def requests_to(sim: HiLinkSimulator, path: str) -> list[dict[str, object]]:
    return [e.detail for e in sim.history.events if e.name == "request" and e.detail["path"] == path]


def test_driver_reads_every_field_over_http(sim: HiLinkSimulator, driver: HiLinkDriver) -> None:
    sim.set_signal(-78, -8, 22, rssi_dbm=-55)
    sim.set_operator("20810", "SFR", rat="LTE")
    sim.set_cell(cell_id=123456789, tac=1234, pci=42, band=3, earfcn_dl=1850, earfcn_ul=19850)
    snap = driver.read()
    assert snap.ok, snap.reason
    assert (snap.rsrp_dbm, snap.rsrq_db, snap.sinr_db, snap.rssi_dbm) == (-78.0, -8.0, 22.0, -55.0)
    assert (snap.operator_code, snap.operator_name, snap.rat) == ("20810", "SFR", "LTE")
    assert (snap.cell_id, snap.tac, snap.pci, snap.band, snap.earfcn) == (123456789, 1234, 42, 3, 1850)
    assert snap.registration == "home"
    assert snap.quality == "excellent"
    assert snap.source == "hilink" and snap.read_mono_s > 0


def test_3g_without_lte_measurements_reads_umts_and_no_quality(
    sim: HiLinkSimulator, driver: HiLinkDriver
) -> None:
    sim.set_operator("20820", "Bouygues Telecom", rat="UMTS")
    sim.set_signal(None, None, None, rssi_dbm=-81.5)
    snap = driver.read()
    assert (snap.rat, snap.rssi_dbm, snap.rsrp_dbm, snap.quality) == ("UMTS", -81.5, None, "none")


def test_roaming_and_searching_follow_the_connection_state(
    sim: HiLinkSimulator, driver: HiLinkDriver
) -> None:
    sim.set_connection(901, roaming=True)
    assert driver.read().registration == "roaming"
    sim.set_connection(900, service=0)
    assert driver.read().registration == "searching"
    sim.set_connection(902, service=0, sim=255)
    assert driver.read().registration == "not-registered"


def test_session_is_opened_once_and_sent_as_cookie(sim: HiLinkSimulator, driver: HiLinkDriver) -> None:
    assert driver.read().ok and driver.read().ok
    assert len(requests_to(sim, "/api/webserver/SesTokInfo")) == 1
    signal_requests = requests_to(sim, "/api/device/signal")
    assert len(signal_requests) == 2
    assert all(str(r["cookie"]).startswith("SessionID=sim") for r in signal_requests)


def test_expired_session_is_renewed_transparently(sim: HiLinkSimulator, driver: HiLinkDriver) -> None:
    assert driver.read().ok
    sim.expire_sessions()
    snap = driver.read()
    assert snap.ok, snap.reason
    assert len(requests_to(sim, "/api/webserver/SesTokInfo")) == 2
    assert [r["body"] for r in requests_to(sim, "/api/device/signal")].count(
        b'<?xml version="1.0" encoding="UTF-8"?>\n<error><code>125002</code><message/></error>'
    ) == 1


def test_session_is_renewed_only_once_per_request(sim: HiLinkSimulator, driver: HiLinkDriver) -> None:
    sim.fail_next(125003)
    sim.fail_next(125003)
    snap = driver.read()
    assert not snap.ok
    assert snap.reason == "HiLink error 125003 (wrong session token) on /api/device/signal"
    assert len(requests_to(sim, "/api/device/signal")) == 2


def test_device_error_code_is_reported_with_its_meaning(sim: HiLinkSimulator, driver: HiLinkDriver) -> None:
    assert driver.read().ok
    sim.fail_next(100004)
    snap = driver.read()
    assert not snap.ok
    assert snap.reason == "HiLink error 100004 (system busy) on /api/device/signal"
    assert snap.rsrp_dbm is None and snap.source == "hilink"
    assert driver.read().ok  # one busy answer does not poison the next read


def test_garbage_body_is_a_protocol_error(sim: HiLinkSimulator, driver: HiLinkDriver) -> None:
    sim.serve_garbage(True)
    snap = driver.read()
    assert not snap.ok
    assert snap.reason is not None
    assert snap.reason.startswith(f"bad answer from {sim.url}/api/webserver/SesTokInfo: not XML")
    sim.serve_garbage(False)
    assert driver.read().ok


def test_stopped_stick_is_not_reachable_then_recovers_after_restart(
    sim: HiLinkSimulator, driver: HiLinkDriver
) -> None:
    assert driver.read().ok
    sim.stop()
    snap = driver.read()
    assert not snap.ok
    assert snap.reason == f"HiLink not reachable at {driver.endpoint} (connection refused)"
    sim.start()
    assert driver.read().ok


def test_slow_stick_times_out_within_the_configured_time(sim: HiLinkSimulator) -> None:
    driver = HiLinkDriver(sim.url, timeout_s=0.5)
    sim.set_delay(5.0)
    started = time.monotonic()
    snap = driver.read()
    elapsed = time.monotonic() - started
    assert not snap.ok
    assert snap.reason == f"no answer from HiLink at {sim.url} within 0.5 s"
    assert 0.45 <= elapsed < 1.5


def test_timeout_bounds_the_whole_read_not_each_request(sim: HiLinkSimulator) -> None:
    driver = HiLinkDriver(sim.url, timeout_s=0.9)
    sim.set_delay(0.3)  # each request alone is in time; session + three GETs are not
    started = time.monotonic()
    snap = driver.read()
    assert not snap.ok and snap.reason is not None and "within 0.9 s" in snap.reason
    assert time.monotonic() - started < 1.5


def test_old_firmware_gives_the_fields_it_has(sim: HiLinkSimulator, driver: HiLinkDriver) -> None:
    sim.old_firmware(True)
    snap = driver.read()
    assert snap.ok, snap.reason
    assert (snap.pci, snap.cell_id, snap.rsrp_dbm, snap.rsrq_db, snap.sinr_db) == (318, 27439044, -97, -11, 9)
    assert (snap.band, snap.earfcn, snap.tac) == (None, None, None)
    assert (snap.operator_code, snap.rat, snap.quality) == ("20801", "LTE", "fair")


def test_newer_firmware_session_from_token_endpoint_and_set_cookie(
    sim: HiLinkSimulator, driver: HiLinkDriver
) -> None:
    sim.sestokinfo_missing(True)
    snap = driver.read()
    assert snap.ok, snap.reason
    assert len(requests_to(sim, "/api/webserver/token")) == 1
    assert str(requests_to(sim, "/api/net/current-plmn")[0]["cookie"]).startswith("SessionID=sim")


def test_endpoint_that_is_not_http_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="http://host"):
        HiLinkDriver("/dev/ttyUSB2")
