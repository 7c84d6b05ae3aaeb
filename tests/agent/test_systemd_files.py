"""systemd/busagent.service and systemd/99-busagent.rules: systemd accepts them and they say what we need."""

from __future__ import annotations

import configparser
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "busagent.service"
RULES = ROOT / "systemd" / "99-busagent.rules"
EXEC_START = "/opt/busagent/venv/bin/busagent run --config /etc/busagent/agent.toml"


def service() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(strict=False, interpolation=None, comment_prefixes=("#", ";"))
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    parser.read_string(UNIT.read_text(encoding="utf-8"))
    return parser["Service"]


def all_values(key: str) -> list[str]:
    """Every assignment of a key that systemd allows to repeat (configparser keeps only the last)."""
    prefix = f"{key}="
    return [line[len(prefix) :] for line in UNIT.read_text().splitlines() if line.startswith(prefix)]


def test_unit_is_a_notify_service_with_a_watchdog() -> None:
    section = service()
    assert section["Type"] == "notify"
    assert section["WatchdogSec"] == "30"
    assert (section["Restart"], section["RestartSec"]) == ("on-failure", "5")
    assert section["ExecReload"] == "/bin/kill -HUP $MAINPID"


def test_unit_runs_busagent_run_with_the_config() -> None:
    assert service()["ExecStart"] == EXEC_START
    assert "busagent run --config" in service()["ExecStart"]


def test_unit_keeps_devices_reachable_without_private_devices() -> None:
    section = service()
    assert "PrivateDevices" not in section
    assert section["DevicePolicy"] == "closed"
    assert set(all_values("DeviceAllow")) == {
        "char-ttyUSB rw",
        "char-ttyACM rw",
        "/dev/gpiochip0 rw",
        "char-usb rw",
    }
    assert section["SupplementaryGroups"].split() == ["dialout", "gpio", "lp"]


def test_unit_has_its_directories_user_and_secrets_credential() -> None:
    section = service()
    assert (section["User"], section["StateDirectory"], section["RuntimeDirectory"]) == ("busagent",) * 3
    assert section["LoadCredential"] == "mqtt-secrets:/etc/busagent/secrets.toml"
    assert section["ProtectSystem"] == "strict" and section["NoNewPrivileges"] == "yes"


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    # verify checks that ExecStart is executable; this machine has no /opt/busagent venv, so the
    # copy points at a stand-in. Every other line is verified exactly as shipped.
    stand_in = tmp_path / "busagent"
    stand_in.write_text("#!/bin/sh\nexit 0\n")
    stand_in.chmod(0o755)
    text = UNIT.read_text(encoding="utf-8")
    assert text.count("/opt/busagent/venv/bin/busagent ") == 1
    copy = tmp_path / "busagent.service"
    copy.write_text(text.replace("/opt/busagent/venv/bin/busagent ", f"{stand_in} "), encoding="utf-8")
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(copy)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


# udevadm verify only exists from systemd 254 on (Debian 12 ships 252): check the rules by hand.
RULE_TOKEN = re.compile(r'\s*([A-Z_]+)(\{[^}]+\})?\s*(==|!=|\+=|-=|:=|=)\s*"([^"]*)"\s*(,|$)')
MATCH_KEYS = {"SUBSYSTEM", "KERNEL", "ACTION", "ATTRS", "ATTR", "ENV", "DRIVERS"}
ASSIGN_KEYS = {"SYMLINK", "GROUP", "MODE", "ENV", "OWNER", "TAG"}


def rule_lines() -> list[str]:
    return [line for line in RULES.read_text().splitlines() if line.strip() and not line.startswith("#")]


def parse_rule(line: str) -> list[tuple[str, str, str, str]]:
    """(key, {attr}, operator, value) per token; fails the test on anything unparsable."""
    tokens, pos = [], 0
    while pos < len(line):
        match = RULE_TOKEN.match(line, pos)
        assert match, f"cannot parse rule at {line[pos:]!r}"
        key, attr, op, value, _ = match.groups()
        tokens.append((key, attr or "", op, value))
        pos = match.end()
    return tokens


def test_every_rule_line_has_balanced_quotes_and_known_keys() -> None:
    assert len(rule_lines()) == 3
    for line in rule_lines():
        assert line.count('"') % 2 == 0, line
        for key, _, op, _ in parse_rule(line):
            known = MATCH_KEYS if op in ("==", "!=") else ASSIGN_KEYS
            assert key in known, f"{key}{op} in {line}"


def test_rules_name_each_device_and_keep_modemmanager_off_the_at_port() -> None:
    by_link = {}
    for line in rule_lines():
        tokens = {(key + attr, op): value for key, attr, op, value in parse_rule(line)}
        assert tokens[("SUBSYSTEM", "==")] == "tty"
        assert (tokens[("GROUP", "=")], tokens[("MODE", "=")]) == ("dialout", "0660")
        by_link[tokens[("SYMLINK", "+=")]] = tokens
    assert set(by_link) == {"busagent-modem", "busagent-gps", "busagent-vedirect"}
    modem = by_link["busagent-modem"]
    assert (modem[("ATTRS{idVendor}", "==")], modem[("ATTRS{idProduct}", "==")]) == ("2c7c", "0125")
    assert modem[("ATTRS{bInterfaceNumber}", "==")] == "02"
    assert modem[("ENV{ID_MM_PORT_IGNORE}", "=")] == "1"
    gps, vedirect = by_link["busagent-gps"], by_link["busagent-vedirect"]
    assert (gps[("ATTRS{idVendor}", "==")], gps[("ATTRS{idProduct}", "==")]) == ("1546", "01a7")
    assert (vedirect[("ATTRS{idVendor}", "==")], vedirect[("ATTRS{idProduct}", "==")]) == ("0403", "6015")


def test_every_rule_is_explained_by_a_comment_just_above_it() -> None:
    lines = RULES.read_text().splitlines()
    for index, line in enumerate(lines):
        if line.strip() and not line.startswith("#"):
            assert lines[index - 1].startswith("#"), line
