"""systemd/busagent.service and busagent.sysusers: systemd accepts them as installed, as we need them."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

from agent.runtime.mqtt_settings import SECRETS_CREDENTIAL

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "systemd" / "busagent.service"
SYSUSERS = ROOT / "systemd" / "busagent.sysusers"
INSTALL = ROOT / "systemd" / "install.sh"
EXEC_START = "/opt/busagent/venv/bin/busagent run --config /etc/busagent/agent.toml"
INSTALLED_UNIT = Path("etc/systemd/system/busagent.service")


def unit_section(name: str) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(strict=False, interpolation=None, comment_prefixes=("#", ";"))
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    parser.read_string(UNIT.read_text(encoding="utf-8"))
    return parser[name]


def all_values(key: str) -> list[str]:
    """Every assignment of a key that systemd allows to repeat (configparser keeps only the last)."""
    prefix = f"{key}="
    return [line[len(prefix) :] for line in UNIT.read_text().splitlines() if line.startswith(prefix)]


def test_unit_is_a_notify_service_with_a_watchdog_and_restarts() -> None:
    section = unit_section("Service")
    assert section["Type"] == "notify"
    assert section["WatchdogSec"] == "30"
    assert (section["Restart"], section["RestartSec"]) == ("on-failure", "5")
    # agent/cli.py exits 78 (EX_CONFIG) on a bad config: restarting cannot mend that.
    assert section["RestartPreventExitStatus"] == "78"
    assert section["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert section["ExecStart"] == EXEC_START


def test_unit_starts_after_gpsd_and_the_network() -> None:
    section = unit_section("Unit")
    assert set(section["After"].split()) >= {"network-online.target", "gpsd.service", "gpsd.socket"}
    assert section["Wants"] == "network-online.target"
    assert unit_section("Install")["WantedBy"] == "multi-user.target"


def test_unit_keeps_serial_ports_reachable_without_private_devices() -> None:
    section = unit_section("Service")
    assert "PrivateDevices" not in section
    assert section["DevicePolicy"] == "closed"
    assert set(all_values("DeviceAllow")) == {"char-ttyUSB rw", "char-ttyACM rw", "char-gpiochip rw"}
    assert section["SupplementaryGroups"].split() == ["dialout", "gpio"]


def test_unit_runs_as_busagent_with_its_directories_and_the_secrets_credential() -> None:
    section = unit_section("Service")
    assert (section["User"], section["Group"]) == ("busagent", "busagent")
    assert (section["StateDirectory"], section["StateDirectoryMode"]) == ("busagent", "0700")
    # Group members (technicians) must traverse /run/busagent to reach control.sock (0660).
    assert (section["RuntimeDirectory"], section["RuntimeDirectoryMode"]) == ("busagent", "0750")
    assert section["LoadCredential"] == f"{SECRETS_CREDENTIAL}:/etc/busagent/secrets.toml"
    assert section["ProtectSystem"] == "strict" and section["NoNewPrivileges"] == "yes"
    assert section["CapabilityBoundingSet"] == ""


@pytest.fixture(scope="module")
def installed_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A root laid out by install.sh, plus what verify looks for in it: a stand-in for the venv's
    entry point, /bin/kill and this machine's own unit files (targets, gpsd)."""
    root = tmp_path_factory.mktemp("root")
    subprocess.run(["bash", str(INSTALL), "--root", str(root)], check=True, capture_output=True, timeout=60)
    entry = root / "opt/busagent/venv/bin/busagent"
    entry.parent.mkdir(parents=True)
    entry.write_text("#!/bin/sh\nexit 0\n")
    entry.chmod(0o755)
    system_units = next(
        p for p in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system")) if p.is_dir()
    )
    shutil.copytree(system_units, root / "usr/lib/systemd/system", symlinks=True)
    (root / "usr/bin").mkdir(parents=True, exist_ok=True)
    shutil.copy2(shutil.which("kill") or "/bin/kill", root / "usr/bin/kill")
    (root / "bin").symlink_to("usr/bin")
    return root


def verify(root: Path) -> tuple[int, list[str]]:
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", f"--root={root}", "busagent.service"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result.returncode, (result.stdout + result.stderr).splitlines()


def about_us(lines: list[str]) -> list[str]:
    """Lines that concern our unit: every line, except those another unit file is named at the start of."""
    ours = []
    for line in lines:
        head = line.split(":", 1)[0]
        foreign_unit = "busagent" not in line and head.rsplit(".", 1)[-1] in ("service", "socket", "target")
        if not foreign_unit:
            ours.append(line)
    return ours


def test_systemd_analyze_verify_accepts_the_installed_unit_without_a_warning(installed_root: Path) -> None:
    # The unit is verified byte for byte as install.sh put it; only the venv is a stand-in.
    assert (installed_root / INSTALLED_UNIT).read_bytes() == UNIT.read_bytes()
    code, lines = verify(installed_root)
    assert (code, about_us(lines)) == (0, [])


def test_verify_harness_reports_a_misspelt_key(installed_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(installed_root, root, symlinks=True)
    unit = root / INSTALLED_UNIT
    unit.write_text(unit.read_text().replace("ProtectSystem=strict", "ProtectSytem=strict"))
    _, lines = verify(root)
    assert any("Unknown key" in line and "ProtectSytem" in line for line in about_us(lines)), lines


def test_verify_harness_reports_a_missing_entry_point(installed_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(installed_root, root, symlinks=True)
    (root / "opt/busagent/venv/bin/busagent").unlink()
    code, lines = verify(root)
    assert code != 0 and any("/opt/busagent/venv/bin/busagent" in line for line in about_us(lines)), lines


def test_sysusers_creates_the_service_account_and_the_gpio_group(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    result = subprocess.run(
        ["systemd-sysusers", f"--root={tmp_path}", str(SYSUSERS)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    passwd = {
        line.split(":")[0]: line.split(":") for line in (tmp_path / "etc/passwd").read_text().splitlines()
    }
    groups = {line.split(":")[0] for line in (tmp_path / "etc/group").read_text().splitlines()}
    assert passwd["busagent"][5:] == ["/var/lib/busagent", "/usr/sbin/nologin"]
    assert {"busagent", "gpio"} <= groups


def test_every_group_the_unit_needs_exists_on_debian_or_is_created() -> None:
    created = {line.split()[1] for line in SYSUSERS.read_text().splitlines() if line[:2] in ("u ", "g ")}
    # dialout comes with Debian's base-passwd; anything else must be created by busagent.sysusers.
    for group in unit_section("Service")["SupplementaryGroups"].split():
        assert group == "dialout" or group in created, group
