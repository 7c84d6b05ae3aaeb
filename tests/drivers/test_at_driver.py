"""AtModemDriver and AtChannel against the AT modem simulator over a real pty, one test per behaviour."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from drivers.base import DeviceUnavailable
from drivers.modem.at_channel import AtChannel, AtCommandError
from drivers.modem.at_driver import AtModemDriver
from simulators.modem_at import AtModemSimulator
from simulators.modem_at_answers import VARIANTS
from simulators.pty import PtyPort

# What each variant's vendor line adds beyond 27.007: (pci, band, earfcn, sinr_db)
VENDOR_EXTRAS = {
    "quectel": (101, 3, 1300, 4.0),
    "quectel18": (101, 3, 1300, 4.0),
    "sierra": (None, 3, 1300, 4.0),
    "huawei": (None, None, None, 4.0),
    "generic": (None, None, None, None),
}


@pytest.fixture
def port(tmp_path: Path) -> Iterator[PtyPort]:
    pty = PtyPort(tmp_path / "ttyUSB2")
    yield pty
    pty.close()


@pytest.fixture(params=sorted(VARIANTS))
def variant(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def sim(port: PtyPort, variant: str) -> Iterator[AtModemSimulator]:
    with AtModemSimulator(port, variant=variant) as modem:
        yield modem


@pytest.fixture
def quectel(port: PtyPort) -> Iterator[AtModemSimulator]:
    with AtModemSimulator(port, variant="quectel") as modem:
        yield modem


@pytest.fixture
def driver(port: PtyPort) -> Iterator[AtModemDriver]:
    drv = AtModemDriver(port.path, timeout_s=0.5)
    yield drv
    drv.close()


def test_each_variant_reports_signal_operator_and_cell(sim: AtModemSimulator, driver: AtModemDriver) -> None:
    sim.set_signal(-103, -13, 4)
    sim.set_operator("20810")
    sim.set_cell(cell_id=0x2B3C4D5, tac=0x1F40, pci=101, band=3, earfcn=1300)
    snap = driver.read()
    assert snap.ok, snap.reason
    assert snap.rsrp_dbm == -103 and -140 <= snap.rsrp_dbm <= -44 and snap.rsrq_db == -13
    assert (snap.operator_code, snap.operator_name, snap.rat) == ("20810", "SFR", "LTE")
    assert (snap.cell_id, snap.tac, snap.registration) == (0x2B3C4D5, 0x1F40, "home")
    assert (snap.pci, snap.band, snap.earfcn, snap.sinr_db) == VENDOR_EXTRAS[sim.variant]
    assert snap.quality == "poor"  # RSRP under -100 dBm
    assert snap.imei == sim.imei and snap.iccid == sim.iccid
    assert snap.model is not None and sim.vendor.model in snap.model


def test_auto_model_sends_the_identified_vendors_cell_command(
    sim: AtModemSimulator, driver: AtModemDriver
) -> None:
    assert driver.read().ok
    sent = sim.commands()
    assert sent[:2] == ["ATE0", "AT+CMEE=1"] and "AT+CGMI" in sent
    vendor_lines = {'AT+QENG="servingcell"', "AT!GSTATUS?", "AT^HCSQ?"} & set(sent)
    expected = {sim.vendor.cell_command} if sim.vendor.cell_command else set()
    assert {line.upper() for line in vendor_lines} == expected


def test_registration_changes_are_read_and_their_urcs_set_aside(
    quectel: AtModemSimulator, driver: AtModemDriver
) -> None:
    assert driver.read().registration == "home"
    quectel.set_registration(2)
    searching = driver.read()
    assert searching.ok and searching.registration == "searching"
    assert searching.rsrp_dbm is None and searching.quality == "none"  # QENG SEARCH, no CESQ on EC25
    quectel.set_registration(5)
    assert driver.read().registration == "roaming"
    assert driver.channel.take_urcs() == ["+CEREG: 2", '+CEREG: 5,"9C41","1A2B3C4",7']


def test_silent_modem_gives_a_timeout_reason_within_a_bounded_time(
    quectel: AtModemSimulator, driver: AtModemDriver, port: PtyPort
) -> None:
    assert driver.read().ok
    quectel.go_silent()
    started = time.monotonic()
    snap = driver.read()
    assert time.monotonic() - started < 1.5
    assert not snap.ok and snap.reason == f"no answer from {port.path} to AT+COPS? within 0.5 s"
    quectel.resume()
    assert driver.read().ok


def test_modem_silent_from_power_up_fails_on_the_first_command(port: PtyPort, driver: AtModemDriver) -> None:
    with AtModemSimulator(port, variant="huawei") as modem:
        modem.go_silent()
        snap = driver.read()
    assert not snap.ok and snap.reason is not None and "no answer" in snap.reason and "ATE0" in snap.reason


def test_missing_sim_is_reported_as_the_cme_error_with_its_meaning(
    quectel: AtModemSimulator, driver: AtModemDriver
) -> None:
    assert driver.read().ok
    quectel.remove_sim()
    snap = driver.read()
    assert not snap.ok and snap.reason == "+CME ERROR: 10 (SIM not inserted) in answer to AT+COPS?"
    quectel.insert_sim()
    assert driver.read().ok


def test_unplug_fails_and_replug_recovers_without_a_new_driver(
    quectel: AtModemSimulator, driver: AtModemDriver, port: PtyPort
) -> None:
    assert driver.read().ok
    quectel.unplug()
    for _ in range(2):
        snap = driver.read()
        assert not snap.ok and snap.reason == f"modem port {port.path} missing"
    quectel.replug()
    again = driver.read()
    assert again.ok and again.rsrp_dbm == -97, again.reason
    assert quectel.commands().count("ATE0") == 2  # a replugged modem is set up again (echo back on)
    assert quectel.history.names().count("unplug") == 1 and "replug" in quectel.history.names()


def test_garbage_bytes_do_not_break_the_next_read(quectel: AtModemSimulator, driver: AtModemDriver) -> None:
    assert driver.read().ok
    quectel.inject_garbage(b"\xff\xfe\x00\x1b[31m\x80\r\n\xc3(junk+CSQ: 1,1\r\n\x00\xff")
    snap = driver.read()
    assert snap.ok and (snap.rsrp_dbm, snap.rssi_dbm, snap.operator_code) == (-97, -69, "20801")


def test_urcs_in_the_middle_of_answers_are_not_taken_for_the_answer(
    port: PtyPort, driver: AtModemDriver
) -> None:
    with AtModemSimulator(port, variant="huawei") as modem:
        assert driver.read().ok
        modem.inject_urc("+CEREG: 1", during="AT+CEREG?")
        modem.inject_urc('^HCSQ: "LTE",20,10,0,0', during="AT+CSQ")
        modem.inject_urc("RING", during="AT^HCSQ?")
        modem.inject_urc('+CEREG: 1,"0001","0000001",7', during="AT+COPS?")
        snap = driver.read()
    assert snap.ok and (snap.rsrp_dbm, snap.tac, snap.registration) == (-97, 0x9C41, "home")
    assert driver.channel.take_urcs() == [
        '+CEREG: 1,"0001","0000001",7',
        "+CEREG: 1",
        '^HCSQ: "LTE",20,10,0,0',
        "RING",
    ]


def test_failing_vendor_command_degrades_to_27007_values(port: PtyPort, driver: AtModemDriver) -> None:
    with AtModemSimulator(port, variant="sierra") as modem:
        modem.set_signal(-85, -9, 15)
        modem.answer_error("AT!GSTATUS")
        snap = driver.read()
    assert snap.ok and (snap.rsrp_dbm, snap.rsrq_db) == (-85, -9)  # from CESQ
    assert snap.sinr_db is None and snap.band is None and snap.cell_id == 0x1A2B3C4  # cell id from CEREG
    assert snap.quality == "good"


def test_wrong_explicit_model_still_reads_27007_values(port: PtyPort) -> None:
    drv = AtModemDriver(port.path, model="sierra", timeout_s=0.5)
    with AtModemSimulator(port, variant="huawei") as modem:
        snap = drv.read()
    drv.close()
    assert snap.ok and snap.rsrp_dbm == -97 and snap.model == "Sierra Wireless ME909s-120"
    assert "AT!GSTATUS?" in modem.commands() and "AT^HCSQ?" not in modem.commands()


def test_cgmi_refused_falls_back_to_ati_for_identification(port: PtyPort, driver: AtModemDriver) -> None:
    with AtModemSimulator(port, variant="sierra") as modem:
        modem.answer_error("AT+CGMI")
        snap = driver.read()
    assert snap.ok and snap.band == 20 and "ATI" in modem.commands()


def test_identity_failures_are_not_fatal(quectel: AtModemSimulator, driver: AtModemDriver) -> None:
    quectel.answer_error("AT+QCCID", 3)
    quectel.answer_error("AT+CGSN")
    snap = driver.read()
    assert snap.ok and snap.iccid is None and snap.imei is None and snap.rsrp_dbm == -97


def test_operator_code_comes_from_qeng_when_cops_stays_alphanumeric(
    quectel: AtModemSimulator, driver: AtModemDriver
) -> None:
    quectel.answer_error("AT+COPS=3")  # modem refuses numeric format: COPS? stays "Orange F"
    snap = driver.read()
    assert snap.ok and (snap.operator_name, snap.operator_code) == ("Orange F", "20801")


def test_missing_port_at_start_is_reported_plainly(tmp_path: Path) -> None:
    path = str(tmp_path / "ttyUSB9")
    snap = AtModemDriver(path, timeout_s=0.2).read()
    assert not snap.ok and snap.reason == f"modem port {path} missing"


def test_channel_skips_echo_at_power_up_and_honours_cmee_modes(
    quectel: AtModemSimulator, port: PtyPort
) -> None:
    channel = AtChannel(port.path, timeout_s=0.5)
    try:
        assert channel.command("AT+CSQ").lines == ("+CSQ: 22,99",)  # echo is on: "AT+CSQ" came back first
        quectel.remove_sim()
        with pytest.raises(AtCommandError, match=r"^ERROR in answer to AT\+CIMI$"):
            channel.command("AT+CIMI")  # CMEE=0 at power-up
        channel.command("AT+CMEE=2")
        with pytest.raises(AtCommandError, match="CME ERROR: SIM not inserted"):
            channel.command("AT+CIMI")
        with pytest.raises(AtCommandError, match=r"^ERROR in answer to AT\+NOPE$"):
            channel.command("AT+NOPE")
        assert channel.take_urcs() == ["+CPIN: NOT INSERTED"]
    finally:
        channel.close()


def test_channel_reopens_after_close_and_reports_a_vanished_port(
    quectel: AtModemSimulator, port: PtyPort
) -> None:
    channel = AtChannel(port.path, timeout_s=0.5)
    assert channel.command("AT").final == "OK"
    channel.close()
    assert channel.command("AT").final == "OK" and channel.is_open
    quectel.unplug()
    with pytest.raises(DeviceUnavailable, match="missing"):
        channel.command("AT")
    assert not channel.is_open
    channel.close()


def test_simulator_history_records_verbs_and_commands(
    quectel: AtModemSimulator, driver: AtModemDriver
) -> None:
    quectel.set_signal(-80, -8, 22)
    assert driver.read().quality == "excellent"
    events = quectel.history.events
    assert events[0].name == "set_signal" and events[0].detail["rsrp_dbm"] == -80
    assert quectel.history.count("command") == len(quectel.commands()) > 5


def test_a_command_the_modem_does_not_implement_is_not_asked_again(
    quectel: AtModemSimulator, driver: AtModemDriver
) -> None:
    for _ in range(3):
        assert driver.read().ok
    assert quectel.commands().count("AT+CESQ") == 1, "the EC25 refuses CESQ: asked once per connection"
    quectel.unplug()
    assert not driver.read().ok
    quectel.replug()
    assert driver.read().ok
    assert quectel.commands().count("AT+CESQ") == 2, "a replugged modem may be another model: ask again"
