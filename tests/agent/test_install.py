"""systemd/install.sh (`make install`) staged into a temporary root: the tree, the modes, and a
second run that upgrades the shipped files but never the configuration."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from agent.mqtt.connection import load_credentials

ROOT = Path(__file__).resolve().parents[2]
INSTALL = ROOT / "systemd" / "install.sh"

SHIPPED = {  # installed path -> source file, refreshed on every run
    "etc/systemd/system/busagent.service": "systemd/busagent.service",
    "etc/udev/rules.d/99-busagent.rules": "systemd/99-busagent.rules",
    "etc/sysusers.d/busagent.conf": "systemd/busagent.sysusers",
    "etc/busagent/agent.example.toml": "systemd/agent.example.toml",
    "opt/busagent/docs/hardware.md": "docs/hardware.md",
    "opt/busagent/docs/control.md": "docs/control.md",
}


def install(*args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        ["bash", str(INSTALL), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_install_lays_out_the_tree_with_its_modes(tmp_path: Path) -> None:
    install("--root", str(tmp_path))
    for installed, source in SHIPPED.items():
        assert (tmp_path / installed).read_bytes() == (ROOT / source).read_bytes(), installed
        assert mode(tmp_path / installed) == 0o644, installed
    config = tmp_path / "etc/busagent/agent.toml"
    assert config.read_bytes() == (ROOT / "systemd/agent.example.toml").read_bytes()
    assert mode(config) == 0o644
    assert mode(tmp_path / "etc/busagent/secrets.toml") == 0o600
    assert mode(tmp_path / "etc/busagent") == 0o755
    agentctl = tmp_path / "usr/local/bin/agentctl"
    assert os.readlink(agentctl) == "/opt/busagent/venv/bin/agentctl"


def test_staging_leaves_this_machine_alone_and_says_so(tmp_path: Path) -> None:
    out = install("--root", str(tmp_path))
    assert "Skipped the busagent account" in out
    assert "Skipped systemctl daemon-reload and udevadm" in out
    assert "the venv is not built" in out
    assert not (tmp_path / "opt/busagent/venv").exists()
    assert not (tmp_path / "etc/passwd").exists()


def test_install_prints_the_next_steps(tmp_path: Path) -> None:
    out = install("--root", str(tmp_path))
    for step in (
        "/etc/busagent/agent.toml",
        "agentctl config check",
        "systemctl enable --now busagent",
        "agentctl status",
        "usermod -aG busagent",
    ):
        assert step in out, step


def test_a_second_run_keeps_the_config_and_secrets_and_restores_shipped_files(tmp_path: Path) -> None:
    install("--root", str(tmp_path))
    config = tmp_path / "etc/busagent/agent.toml"
    secrets = tmp_path / "etc/busagent/secrets.toml"
    config.write_text(config.read_text() + "# this bus: bus-tdc-07\n")
    secrets.write_text('[mqtt]\nusername = "bus-tdc-07"\npassword = "s3cret"\n')
    unit = tmp_path / "etc/systemd/system/busagent.service"
    unit.write_text("# edited in place, lost on upgrade\n")

    out = install("--root", str(tmp_path))

    assert config.read_text().endswith("# this bus: bus-tdc-07\n")
    assert "s3cret" in secrets.read_text() and mode(secrets) == 0o600
    assert unit.read_bytes() == (ROOT / "systemd/busagent.service").read_bytes()
    assert "Kept /etc/busagent/agent.toml" in out and "Kept /etc/busagent/secrets.toml" in out


def test_a_secrets_file_others_can_read_is_reported(tmp_path: Path) -> None:
    install("--root", str(tmp_path))
    (tmp_path / "etc/busagent/secrets.toml").chmod(0o644)
    out = install("--root", str(tmp_path))
    assert "WARNING: " in out and "secrets.toml is mode 644" in out


def test_the_secrets_template_is_a_valid_secrets_file_with_no_login_yet(tmp_path: Path) -> None:
    install("--root", str(tmp_path))
    credentials = load_credentials(tmp_path / "etc/busagent/secrets.toml")
    assert (credentials.username, credentials.password) == (None, None)


def test_the_installed_config_passes_agentctl_config_check(tmp_path: Path) -> None:
    install("--root", str(tmp_path))
    config = tmp_path / "etc/busagent/agent.toml"
    agentctl = ROOT / ".venv/bin/agentctl"
    result = subprocess.run(
        [str(agentctl), "config", "check", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout.strip()) == (0, f"{config}: OK"), result.stderr


def test_make_install_destdir_stages_like_root(tmp_path: Path) -> None:
    result = subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), "install", f"DESTDIR={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Staging into {tmp_path}" in result.stdout
    assert (tmp_path / "etc/systemd/system/busagent.service").is_file()


def test_destdir_in_the_environment_is_a_root_too(tmp_path: Path) -> None:
    out = install(env={"DESTDIR": str(tmp_path)})
    assert f"Staging into {tmp_path}" in out
    assert (tmp_path / "etc/busagent/agent.toml").is_file()


def test_a_relative_root_is_refused(tmp_path: Path) -> None:
    result = subprocess.run(
        ["bash", str(INSTALL), "--root", "relative/dir"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "--root 'relative/dir' must be an absolute path" in result.stderr
    assert not (tmp_path / "relative").exists()
