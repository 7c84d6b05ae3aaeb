"""Power: sysfs trees (odd ones included), the GPIO mains line, and PowerDriver against the simulators."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from drivers.base import DeviceUnavailable, ProtocolError
from drivers.power.driver import PowerDriver, merge_sources
from drivers.power.gpio import SysfsValueLine, mains_present
from drivers.power.sysfs import SysfsPowerReading, read_power_supplies
from drivers.power.vedirect import reading_from_fields
from simulators.power import GpioLineSimulator, ShorePowerSim, SysfsPowerSimulator
from simulators.pty import PtyPort


def supply(root: Path, name: str, **attributes: str) -> Path:
    """One power_supply directory with exactly the given attribute files (newline-terminated, as sysfs)."""
    folder = root / name
    folder.mkdir(parents=True)
    for attribute, value in attributes.items():
        (folder / attribute).write_text(value + "\n")
    return folder


# -- sysfs -----------------------------------------------------------------------------------------


def test_mains_supply_is_found_by_type_whatever_its_name(tmp_path: Path) -> None:
    supply(tmp_path, "ups-mains", type="Mains", online="1", voltage_now="5100000")
    supply(tmp_path, "BAT0", type="Battery", status="Charging", capacity="87", voltage_now="12650000")
    reading = read_power_supplies(tmp_path)
    assert reading.shore_connected is True
    assert reading.mains_supplies == ("ups-mains",)
    assert reading.mains_voltage_v == 5.1
    assert (reading.battery, reading.battery_v, reading.battery_soc_pct) == ("BAT0", 12.65, 87.0)
    assert reading.charging_state == "charging"


def test_offline_mains_and_a_programmable_usb_input_online_count_as_shore(tmp_path: Path) -> None:
    supply(tmp_path, "ac", type="Mains", online="0")
    supply(tmp_path, "usb", type="USB", online="2")
    assert read_power_supplies(tmp_path).shore_connected is True


def test_every_mains_offline_means_no_shore(tmp_path: Path) -> None:
    supply(tmp_path, "ac", type="Mains", online="0")
    supply(tmp_path, "usb", type="USB", online="0")
    assert read_power_supplies(tmp_path).shore_connected is False


def test_tree_without_mains_supply_gives_battery_only(tmp_path: Path) -> None:
    supply(tmp_path, "BAT1", type="Battery", status="Discharging", capacity="40", current_now="-800000")
    reading = read_power_supplies(tmp_path)
    assert reading.shore_connected is None and reading.mains_supplies == ()
    assert (reading.battery_soc_pct, reading.battery_current_a) == (40.0, -0.8)
    assert reading.charging_state == "discharging"


def test_battery_with_capacity_only_leaves_the_rest_unknown(tmp_path: Path) -> None:
    supply(tmp_path, "fuel", type="Battery", capacity="55")
    reading = read_power_supplies(tmp_path)
    assert reading.battery_soc_pct == 55.0
    assert (reading.battery_v, reading.battery_current_a, reading.charging_state) == (None, None, None)


def test_soc_falls_back_to_energy_then_charge_counters(tmp_path: Path) -> None:
    supply(tmp_path, "BAT0", type="Battery", energy_now="30000000", energy_full="40000000")
    supply(tmp_path / "b", "BAT0", type="Battery", charge_now="1000", charge_full="3000")
    assert read_power_supplies(tmp_path).battery_soc_pct == 75.0
    assert read_power_supplies(tmp_path / "b").battery_soc_pct == 33.3


def test_mains_without_online_file_says_unknown(tmp_path: Path) -> None:
    supply(tmp_path, "mains", type="Mains")
    assert read_power_supplies(tmp_path).shore_connected is None


def test_unreadable_and_garbled_attributes_are_treated_as_absent(tmp_path: Path) -> None:
    battery = supply(tmp_path, "BAT0", type="Battery", capacity="n/a", status="Full")
    (battery / "voltage_now").mkdir()  # reading it fails with an OSError, like ENODEV from a driver
    (battery / "current_now").write_bytes(b"\xff\xfe")
    reading = read_power_supplies(tmp_path)
    assert (reading.battery_v, reading.battery_current_a, reading.battery_soc_pct) == (None, None, None)
    assert reading.charging_state == "full"


def test_magnitude_only_current_is_made_negative_while_discharging(tmp_path: Path) -> None:
    supply(tmp_path, "BAT0", type="Battery", status="Discharging", current_now="1200000")
    assert read_power_supplies(tmp_path).battery_current_a == -1.2


def test_peripheral_and_empty_slot_batteries_are_not_the_house_battery(tmp_path: Path) -> None:
    supply(tmp_path, "BAT0", type="Battery", present="0")
    supply(tmp_path, "UPS", type="UPS", capacity="64")
    sim = SysfsPowerSimulator(tmp_path / "sim")
    sim.remove_battery()
    sim.add_peripheral_battery("hidpp_battery_0", capacity=12)
    assert read_power_supplies(tmp_path).battery == "UPS"
    assert read_power_supplies(tmp_path / "sim").battery is None


def test_missing_root_and_a_tree_without_supplies_are_unavailable(tmp_path: Path) -> None:
    with pytest.raises(DeviceUnavailable, match="does not exist"):
        read_power_supplies(tmp_path / "nope")
    supply(tmp_path, "hidpp_battery_0", type="Wireless")
    with pytest.raises(DeviceUnavailable, match=r"no Mains, USB, Battery or UPS supply .*Wireless"):
        read_power_supplies(tmp_path)


# -- GPIO ------------------------------------------------------------------------------------------


def test_active_low_line_reads_present_when_low(tmp_path: Path) -> None:
    sim = GpioLineSimulator(tmp_path / "gpio17" / "value", active_low=True)
    line = SysfsValueLine(sim.path)
    assert line.read() == 0 and mains_present(line, active_low=True) is True
    sim.set_mains(False)
    assert line.read() == 1 and mains_present(line, active_low=True) is False
    assert sim.history.names() == ["set_mains"]


def test_active_high_line_reads_present_when_high(tmp_path: Path) -> None:
    sim = GpioLineSimulator(tmp_path / "value", active_low=False)
    assert SysfsValueLine(sim.path).read() == 1
    assert mains_present(SysfsValueLine(sim.path), active_low=False) is True


def test_missing_value_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "gpio27" / "value"
    with pytest.raises(DeviceUnavailable, match=str(path)):
        mains_present(SysfsValueLine(path))


def test_garbage_in_value_file_is_a_protocol_error(tmp_path: Path) -> None:
    (tmp_path / "value").write_text("high\n")
    with pytest.raises(ProtocolError, match="expected 0 or 1"):
        SysfsValueLine(tmp_path / "value").read()


# -- merging ---------------------------------------------------------------------------------------

SYSFS = SysfsPowerReading(
    shore_connected=False, mains_voltage_v=5.0, battery="BAT0", battery_v=4.1, battery_soc_pct=90.0
)
CHARGER = reading_from_fields({"V": "13800", "I": "5000", "CS": "3", "OR": "0x0"})


def test_shore_prefers_gpio_then_sysfs_then_vedirect() -> None:
    merged = merge_sources(gpio=True, sysfs=SYSFS, vedirect=CHARGER, vedirect_configured=True)
    assert (merged.shore_connected, merged.shore_source) == (True, "gpio")
    merged = merge_sources(gpio=None, sysfs=SYSFS, vedirect=CHARGER, vedirect_configured=True)
    assert (merged.shore_connected, merged.shore_source) == (False, "sysfs")
    merged = merge_sources(gpio=None, sysfs=None, vedirect=CHARGER, vedirect_configured=True)
    assert (merged.shore_connected, merged.shore_source) == (True, "vedirect")


def test_battery_never_mixes_a_ups_hat_cell_with_the_house_battery() -> None:
    merged = merge_sources(gpio=None, sysfs=SYSFS, vedirect=CHARGER, vedirect_configured=True)
    assert (merged.battery_v, merged.battery_soc_pct, merged.charging_state) == (13.8, None, "bulk")
    merged = merge_sources(gpio=None, sysfs=SYSFS, vedirect=None, vedirect_configured=True)
    assert merged.battery_v is None  # VE.Direct configured but failed: not the HAT's 4.1 V cell
    merged = merge_sources(gpio=None, sysfs=SYSFS, vedirect=None, vedirect_configured=False)
    assert (merged.battery_v, merged.mains_voltage_v) == (4.1, 5.0)


def test_driver_needs_at_least_one_source_and_names_them_in_its_endpoint() -> None:
    with pytest.raises(ValueError, match="at least one"):
        PowerDriver()
    driver = PowerDriver(sysfs="/sys/class/power_supply", gpio="/sys/class/gpio/gpio17/value")
    assert driver.kind == "power"
    assert driver.endpoint == "gpio=/sys/class/gpio/gpio17/value (active low); sysfs=/sys/class/power_supply"


# -- PowerDriver against the simulators -----------------------------------------------------------


@pytest.fixture
def pty(tmp_path: Path) -> Iterator[PtyPort]:
    with PtyPort(tmp_path / "ttyVE0") as port:
        yield port


@pytest.fixture
def bus(tmp_path: Path, pty: PtyPort) -> Iterator[ShorePowerSim]:
    with ShorePowerSim(tmp_path / "power", pty, interval_s=0.03) as sim:
        yield sim


def driver_for(bus: ShorePowerSim, pty: PtyPort, *, timeout_s: float = 1.0, **only: bool) -> PowerDriver:
    use = {"gpio": True, "sysfs": True, "vedirect": True, **only}
    return PowerDriver(
        gpio=str(bus.gpio_path) if use["gpio"] else None,
        sysfs=str(bus.sysfs_root) if use["sysfs"] else None,
        vedirect=pty.path if use["vedirect"] else None,
        timeout_s=timeout_s,
    )


def test_plugged_bus_reads_shore_connected_with_battery_from_vedirect(
    bus: ShorePowerSim, pty: PtyPort
) -> None:
    bus.set_battery(13.3, 91.0)
    driver = driver_for(bus, pty)
    snap = driver.read()
    driver.close()
    assert snap.ok and snap.reason is None
    assert (snap.shore_connected, snap.shore_source) == (True, "gpio")
    assert (snap.battery_v, snap.battery_soc_pct, snap.battery_current_a) == (13.3, 91.0, 5.0)
    assert snap.charging_state == "charging"


def test_unplug_is_visible_on_the_next_read_and_plug_after_it(bus: ShorePowerSim, pty: PtyPort) -> None:
    driver = driver_for(bus, pty)
    assert driver.read().shore_connected is True
    bus.unplug()
    unplugged = driver.read()
    bus.plug()
    plugged = driver.read()
    driver.close()
    assert (unplugged.shore_connected, unplugged.battery_current_a) == (False, -3.0)
    assert unplugged.charging_state == "discharging"
    assert plugged.shore_connected is True and plugged.charging_state == "charging"
    assert bus.history.names() == ["unplug", "plug"]


def test_sysfs_only_driver_sees_the_oddly_named_mains_supply(bus: ShorePowerSim, pty: PtyPort) -> None:
    driver = driver_for(bus, pty, gpio=False, vedirect=False)
    bus.unplug()
    bus.set_battery(12.2, 48.0)
    snap = driver.read()
    assert (snap.shore_connected, snap.shore_source) == (False, "sysfs")
    assert (snap.battery_v, snap.battery_soc_pct, snap.charging_state) == (12.2, 48.0, "discharging")
    bus.sysfs.remove_battery()
    assert driver.read().battery_v is None


def test_vedirect_charger_alone_tells_shore_presence(tmp_path: Path, pty: PtyPort) -> None:
    with ShorePowerSim(tmp_path / "power", pty, vedirect_device="charger", interval_s=0.03) as sim:
        driver = driver_for(sim, pty, gpio=False, sysfs=False)
        before = driver.read()
        sim.unplug()
        after = driver.read()
        driver.close()
    assert (before.shore_connected, before.shore_source, before.charging_state) == (True, "vedirect", "bulk")
    assert (after.shore_connected, after.shore_source, after.charging_state) == (False, "vedirect", "off")


def test_failing_gpio_still_gives_shore_from_sysfs_with_the_reason(bus: ShorePowerSim, pty: PtyPort) -> None:
    driver = driver_for(bus, pty, vedirect=False)
    bus.unplug()
    bus.gpio.unexport()
    snap = driver.read()
    assert snap.ok is True
    assert (snap.shore_connected, snap.shore_source) == (False, "sysfs")
    assert snap.reason is not None and str(bus.gpio_path) in snap.reason


def test_silent_vedirect_leaves_shore_visible_and_battery_unknown(bus: ShorePowerSim, pty: PtyPort) -> None:
    assert bus.vedirect is not None
    bus.vedirect.go_silent()
    driver = driver_for(bus, pty, timeout_s=0.3)
    snap = driver.read()
    bus.vedirect.resume()
    recovered = driver.read()
    driver.close()
    assert snap.ok is True and snap.shore_connected is True
    assert snap.battery_v is None
    assert snap.reason is not None and "no data from VE.Direct port" in snap.reason
    assert recovered.reason is None and recovered.battery_v == 13.2


def test_every_source_failing_is_not_ok_and_names_each(bus: ShorePowerSim, pty: PtyPort) -> None:
    driver = driver_for(bus, pty, timeout_s=0.3)
    bus.gpio.unexport()
    shutil.rmtree(bus.sysfs_root)
    pty.vanish()
    snap = driver.read()
    assert snap.ok is False
    assert snap.shore_connected is None and snap.battery_v is None
    assert snap.reason is not None
    for culprit in (str(bus.gpio_path), str(bus.sysfs_root), pty.path):
        assert culprit in snap.reason


def test_vedirect_port_is_reopened_after_the_adapter_comes_back(bus: ShorePowerSim, pty: PtyPort) -> None:
    driver = driver_for(bus, pty, gpio=False, sysfs=False, timeout_s=0.3)
    assert driver.read().ok
    pty.vanish()
    gone = driver.read()
    pty.reappear()
    back = driver.read()
    driver.close()
    assert gone.ok is False and gone.reason is not None and pty.path in gone.reason
    assert back.ok is True and back.battery_v == 13.2
