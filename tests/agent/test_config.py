"""Configuration: the example parses; every user mistake is named with file, key and value."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agent.config import ConfigError, load_config, parse_config

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "systemd" / "agent.example.toml"
MINIMAL = '[agent]\nvehicle_id = "bus-01"\n'


def errors_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "bus.toml")
    return info.value.errors


def test_example_config_is_valid_and_complete() -> None:
    config = load_config(EXAMPLE)
    assert config.agent.vehicle_id == "bus-tdc-01"
    assert set(config.devices()) == {"gps", "modem", "power", "printer", "system"}
    assert config.modem is not None and config.modem.url == "/dev/ttyUSB2"


def test_minimal_config_uses_defaults_and_no_devices() -> None:
    config = parse_config(MINIMAL)
    assert config.agent.data_dir == "/var/lib/busagent"
    assert config.devices() == {}


def test_unknown_key_is_rejected_with_its_path() -> None:
    errors = errors_of(MINIMAL + '[gps]\nurl = "gpsd://127.0.0.1:2947"\npol_s = 2\n')
    assert len(errors) == 1
    assert errors[0].startswith("bus.toml:gps.pol_s: unknown key")
    assert "poll_s" in errors[0]


def test_unknown_section_is_rejected() -> None:
    assert errors_of(MINIMAL + "[modme]\n")[0].startswith("bus.toml:modme: unknown key")


def test_wrong_type_names_key_and_value() -> None:
    errors = errors_of(MINIMAL + '[gps]\npoll_s = "fast"\n')
    assert errors == ["bus.toml:gps.poll_s: must be a number, got str 'fast'"]


def test_boolean_is_not_accepted_as_a_number() -> None:
    assert "got bool True" in errors_of(MINIMAL + '[modem]\nurl = "/dev/ttyUSB2"\nbaudrate = true\n')[0]


def test_out_of_range_value_is_rejected() -> None:
    errors = errors_of(MINIMAL + "[gps]\npoll_s = 0\n")
    assert errors == ["bus.toml:gps.poll_s: must be at least 0.1, got 0.0"]


def test_every_error_is_reported_not_just_the_first() -> None:
    text = '[agent]\nvehicle_id = "bus 01/x"\n[gps]\nurl = "ftp://x"\n[printer]\nurl = "lpd://p"\n'
    errors = errors_of(text)
    keys = [e.split(": ")[0] for e in errors]
    assert keys == ["bus.toml:agent.vehicle_id", "bus.toml:gps.url", "bus.toml:printer.url"]


def test_missing_required_key_is_named() -> None:
    assert errors_of('[agent]\n[modem]\nurl = "/dev/ttyUSB2"\n')[0] == (
        "bus.toml:agent.vehicle_id: missing (this key is required)"
    )
    assert errors_of(MINIMAL + "[modem]\n")[0] == "bus.toml:modem.url: missing (this key is required)"


def test_literal_choice_lists_the_allowed_values() -> None:
    error = errors_of(MINIMAL + '[modem]\nurl = "/dev/ttyUSB2"\nmodel = "telit"\n')[0]
    assert error.startswith("bus.toml:modem.model: must be one of 'auto', 'generic'")
    assert "'telit'" in error


def test_power_needs_at_least_one_source() -> None:
    assert errors_of(MINIMAL + "[power]\n") == ["bus.toml:power: set at least one of sysfs, vedirect, gpio"]


@pytest.mark.parametrize(
    ("section", "url"),
    [
        ("gps", "gpsd://127.0.0.1:2947"),
        ("gps", "/dev/ttyACM0"),
        ("gps", "socket://127.0.0.1:5000"),
        ("modem", "http://192.168.8.1"),
        ("modem", "rfc2217://127.0.0.1:7000"),
        ("printer", "ipps://printer.local/ipp/print"),
    ],
)
def test_endpoint_urls_accepted(section: str, url: str) -> None:
    parse_config(MINIMAL + f'[{section}]\nurl = "{url}"\n')


@pytest.mark.parametrize(
    ("section", "url"),
    [("gps", "gpsd://:2947"), ("modem", "ttyUSB2"), ("printer", "ipp://host:99999/x"), ("gps", "gpsd://h:0")],
)
def test_bad_endpoint_urls_rejected(section: str, url: str) -> None:
    assert errors_of(MINIMAL + f'[{section}]\nurl = "{url}"\n')[0].startswith(f"bus.toml:{section}.url:")


def test_invalid_toml_names_the_file() -> None:
    assert errors_of("[agent\n")[0].startswith("bus.toml: not valid TOML:")


def test_unreadable_and_non_utf8_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.toml")
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(b'[agent]\nvehicle_id = "bus-\xe9"\n')
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(bad)


def run_agentctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent.ctl", *args], capture_output=True, text=True, timeout=30, check=False
    )


def test_agentctl_config_check_prints_ok_for_a_good_file() -> None:
    result = run_agentctl("config", "check", str(EXAMPLE))
    assert result.returncode == 0
    assert result.stdout.strip() == f"{EXAMPLE}: OK"


def test_agentctl_config_check_prints_each_error_and_fails(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text('[agent]\nvehicle_id = "x"\nfoo = 1\n[gps]\npoll_s = -1\n')
    result = run_agentctl("config", "check", str(path))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"{path}:agent.foo: unknown key (known keys here: control_group, data_dir, log_level,"
        " outbox_cap_mb, runtime_dir, vehicle_id, watchdog_stall_s)",
        f"{path}:gps.poll_s: must be at least 0.1, got -1.0",
    ]


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_numbers_are_rejected(value: str) -> None:
    assert errors_of(MINIMAL + f"[gps]\ntimeout_s = {value}\n") == [
        f"bus.toml:gps.timeout_s: must be a finite number, got {float(value)!r}"
    ]


@pytest.mark.parametrize(
    ("section", "url"), [("modem", "http://[::1"), ("gps", "gpsd://[::1"), ("printer", "ipp://[zz]/x")]
)
def test_unparsable_urls_are_config_errors_not_crashes(section: str, url: str) -> None:
    errors = errors_of(MINIMAL + f'[{section}]\nurl = "{url}"\n')
    assert len(errors) == 1 and errors[0].startswith(f"bus.toml:{section}.url: cannot be parsed")


def test_vehicle_id_with_a_trailing_newline_is_rejected() -> None:
    assert errors_of('[agent]\nvehicle_id = "bus-01\\n"\n')[0].startswith("bus.toml:agent.vehicle_id:")
