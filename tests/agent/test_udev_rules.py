"""systemd/99-busagent.rules: udev parses it, every rule can match, and it names the documented devices."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "systemd" / "99-busagent.rules"
HARDWARE_DOC = ROOT / "docs" / "hardware.md"

# key, optional {attribute}, operator, "value", then a comma or the end of the line (udev(7)).
TOKEN = re.compile(r'\s*([A-Z_]+)(?:\{([^}]+)\})?\s*(==|!=|\+=|-=|:=|=)\s*"([^"\\]*)"\s*(?:,|$)')
MATCH_OPS, ASSIGN_OPS = {"==", "!="}, {"=", "+=", "-=", ":="}
# key -> (operators it takes, whether it takes an {attribute}); the subset of udev(7) we use.
KEYS = {
    "SUBSYSTEM": (MATCH_OPS, False),
    "KERNEL": (MATCH_OPS, False),
    "ATTRS": (MATCH_OPS, True),
    "ENV": (MATCH_OPS | ASSIGN_OPS, True),
    "SYMLINK": (MATCH_OPS | {"+=", "-="}, False),
    "GROUP": ({"=", ":="}, False),
    "MODE": ({"=", ":="}, False),
}
# udev(7): "If multiple ATTRS matches are specified, all of them must match on the same device."
USB_DEVICE_ATTRS = {"idVendor", "idProduct", "serial", "manufacturer", "product"}
USB_INTERFACE_ATTRS = {"bInterfaceNumber", "bInterfaceClass", "interface"}

# (vendor, product, USB interface or None) -> (symlink, ModemManager property set to "1")
DOCUMENTED = {
    ("2c7c", "0125", "02"): ("busagent-modem", "ID_MM_PORT_IGNORE"),  # Quectel EC25 AT port
    ("2c7c", "0125", "01"): ("busagent-modem-nmea", None),  # Quectel EC25 NMEA port
    ("1199", "9071", "03"): ("busagent-modem", "ID_MM_PORT_IGNORE"),  # Sierra MC7455 AT port
    ("1199", "9079", "03"): ("busagent-modem", "ID_MM_PORT_IGNORE"),  # Sierra EM7455 AT port
    ("1546", "01a7", None): ("busagent-gps", "ID_MM_DEVICE_IGNORE"),  # u-blox 7
    ("1546", "01a8", None): ("busagent-gps", "ID_MM_DEVICE_IGNORE"),  # u-blox 8
    ("0403", "6015", None): ("busagent-vedirect", "ID_MM_DEVICE_IGNORE"),  # VE.Direct-USB (FT231X)
}


@dataclass(frozen=True)
class Token:
    key: str
    attr: str
    op: str
    value: str


def rule_lines() -> list[tuple[int, str]]:
    lines = RULES.read_text(encoding="utf-8").splitlines()
    return [
        (n, line) for n, line in enumerate(lines, 1) if line.strip() and not line.lstrip().startswith("#")
    ]


def parse_rule(line: str) -> list[Token]:
    """Every token of one rule line; fails the test on anything that is not key[{attr}] op "value"."""
    tokens, pos = [], 0
    while pos < len(line):
        match = TOKEN.match(line, pos)
        assert match, f"{RULES.name}: cannot parse {line[pos:]!r}"
        key, attr, op, value = match.groups()
        tokens.append(Token(key, attr or "", op, value))
        pos = match.end()
    return tokens


def rules() -> list[list[Token]]:
    return [parse_rule(line) for _, line in rule_lines()]


def matches(rule: list[Token]) -> dict[str, str]:
    return {t.key + (f"{{{t.attr}}}" if t.attr else ""): t.value for t in rule if t.op == "=="}


def assigns(rule: list[Token]) -> dict[str, str]:
    return {t.key + (f"{{{t.attr}}}" if t.attr else ""): t.value for t in rule if t.op in ASSIGN_OPS}


def test_every_line_is_a_rule_of_known_keys_and_operators() -> None:
    assert rule_lines(), "no rules"
    for number, line in rule_lines():
        assert not line.endswith("\\"), f"line {number}: no continuation lines"
        for token in parse_rule(line):
            assert token.key in KEYS, f"line {number}: unknown key {token.key}"
            ops, takes_attr = KEYS[token.key]
            assert token.op in ops, f"line {number}: {token.key} does not take {token.op}"
            assert bool(token.attr) == takes_attr, f"line {number}: {token.key}{{{token.attr}}}"


def test_every_rule_matches_ttys_and_gives_them_to_dialout() -> None:
    for rule in rules():
        assert matches(rule)["SUBSYSTEM"] == "tty"
        assert (assigns(rule)["GROUP"], assigns(rule)["MODE"]) == ("dialout", "0660")


def test_attrs_of_one_rule_sit_on_one_sysfs_device() -> None:
    # A rule mixing idVendor (USB device) with bInterfaceNumber (USB interface) never matches:
    # the interface number comes from ENV{ID_USB_INTERFACE_NUM} instead.
    for rule in rules():
        attrs = {t.attr for t in rule if t.key == "ATTRS"}
        assert attrs <= USB_DEVICE_ATTRS or attrs <= USB_INTERFACE_ATTRS, attrs


def test_usb_ids_are_four_lowercase_hex_digits_as_sysfs_prints_them() -> None:
    for rule in rules():
        for key in ("ATTRS{idVendor}", "ATTRS{idProduct}"):
            assert re.fullmatch(r"[0-9a-f]{4}", matches(rule)[key]), matches(rule)[key]
        interface = matches(rule).get("ENV{ID_USB_INTERFACE_NUM}")
        assert interface is None or re.fullmatch(r"[0-9a-f]{2}", interface), interface


def test_the_rules_name_exactly_the_documented_devices() -> None:
    found = {}
    for rule in rules():
        match, assign = matches(rule), assigns(rule)
        ident = (match["ATTRS{idVendor}"], match["ATTRS{idProduct}"], match.get("ENV{ID_USB_INTERFACE_NUM}"))
        ignored = [
            key[4:-1] for key, value in assign.items() if key.startswith("ENV{ID_MM_") and value == "1"
        ]
        assert len(ignored) <= 1, ignored
        found[ident] = (assign["SYMLINK"], ignored[0] if ignored else None)
    assert found == DOCUMENTED


def test_interface_numbers_need_a_file_sorting_after_60_serial_rules() -> None:
    # ID_USB_INTERFACE_NUM is set by the usb_id builtin that 60-serial.rules imports.
    assert any("ENV{ID_USB_INTERFACE_NUM}" in line for _, line in rule_lines())
    assert RULES.name > "60-serial.rules"


def test_every_rule_is_explained_by_a_comment_just_above_it() -> None:
    lines = RULES.read_text().splitlines()
    for number, _ in rule_lines():
        assert lines[number - 2].startswith("#"), f"line {number}"


def test_hardware_doc_lists_every_device_name_and_id() -> None:
    doc = HARDWARE_DOC.read_text(encoding="utf-8")
    for (vendor, product, _), (link, _) in DOCUMENTED.items():
        assert f"{vendor}:{product}" in doc, f"{vendor}:{product}"
        assert f"/dev/{link}" in doc, link


def udevadm_test(rules_dir: Path) -> list[str]:
    """Let udev's own parser read ``rules_dir`` as /etc/udev/rules.d, in a private mount namespace
    with /run and /dev on tmpfs, on a device without a device node: nothing on this machine changes."""
    script = (
        "mount -t tmpfs none /run && mount -t tmpfs none /dev && "
        f"mount --bind '{rules_dir}' /etc/udev/rules.d && "
        "udevadm test --action=add /sys/devices/system/cpu/cpu0"
    )
    result = subprocess.run(
        ["unshare", "--map-root-user", "--mount", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return (result.stdout + result.stderr).splitlines()


def test_udev_parses_the_rules_without_a_complaint(tmp_path: Path) -> None:
    (tmp_path / RULES.name).write_bytes(RULES.read_bytes())
    lines = udevadm_test(tmp_path)
    installed = f"/etc/udev/rules.d/{RULES.name}"
    assert f"Reading rules file: {installed}" in lines
    assert [line for line in lines if installed in line and not line.startswith("Reading")] == []


def test_udev_harness_reports_a_broken_rule(tmp_path: Path) -> None:
    broken = RULES.read_text().replace('ATTRS{idVendor}=="0403"', 'ATTRS{idVendor}="0403"')
    (tmp_path / RULES.name).write_text(broken)
    lines = udevadm_test(tmp_path)
    assert any(f"{RULES.name}:" in line and "Invalid operator for ATTRS" in line for line in lines), lines
