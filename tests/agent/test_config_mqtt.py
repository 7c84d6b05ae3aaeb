"""The [mqtt] section: the example block parses, mistakes name file and key, the publisher gets it right."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import ConfigError, parse_config
from agent.config.schema import MqttSection
from agent.runtime.mqtt_settings import SECRETS_CREDENTIAL, link_settings, publisher_settings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "systemd" / "agent.example.toml"
MINIMAL = '[agent]\nvehicle_id = "bus-01"\n'


def mqtt_errors(body: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(MINIMAL + "[mqtt]\n" + body, "bus.toml")
    return info.value.errors


def example_mqtt_block() -> str:
    """The commented [mqtt] block of the example, uncommented (nested comments stay comments)."""
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    start = lines.index("# [mqtt]")
    return "\n".join(line.removeprefix("# ") for line in lines[start:])


def test_example_mqtt_block_parses_once_uncommented() -> None:
    config = parse_config(MINIMAL + example_mqtt_block(), "example")
    assert config.mqtt == MqttSection(
        url="mqtts://broker.example.org:8883",
        ca_file="/etc/busagent/ca.pem",
        secrets_file="/etc/busagent/secrets.toml",
    )


def test_mqtt_section_is_optional() -> None:
    assert parse_config(MINIMAL).mqtt is None


def test_url_is_required() -> None:
    assert mqtt_errors("window = 5\n") == ["bus.toml:mqtt.url: missing (this key is required)"]


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://broker:1883", "must be mqtts://host[:port]"),
        ("mqtts://user:pw@broker", "credentials go in secrets_file"),
        ("mqtts://broker/topic", "scheme://host[:port] only"),
        ("mqtts://:8883", "needs a host"),
        ("mqtts://broker:99999", "invalid port"),
    ],
)
def test_bad_broker_urls_are_rejected_with_the_reason(url: str, words: str) -> None:
    errors = mqtt_errors(f'url = "{url}"\n')
    assert len(errors) == 1 and errors[0].startswith("bus.toml:mqtt.url: ")
    assert words in errors[0]


def test_relative_tls_paths_are_rejected() -> None:
    errors = mqtt_errors('url = "mqtts://b"\nca_file = "ca.pem"\n')
    assert errors == ["bus.toml:mqtt.ca_file: must be an absolute path, got 'ca.pem'"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('cert_file = "/etc/b.crt"\n', "cert_file is set but key_file is not"),
        ('key_file = "/etc/b.key"\n', "key_file is set but cert_file is not"),
    ],
)
def test_a_client_certificate_needs_both_cert_and_key(body: str, message: str) -> None:
    errors = mqtt_errors('url = "mqtts://b"\n' + body)
    assert errors == [f"bus.toml:mqtt: {message}; a client certificate needs both"]


def test_tls_files_with_a_plain_mqtt_url_are_rejected() -> None:
    errors = mqtt_errors('url = "mqtt://127.0.0.1"\nca_file = "/etc/ca.pem"\n')
    assert errors == ["bus.toml:mqtt: TLS files are set but url 'mqtt://127.0.0.1' is not mqtts://"]


@pytest.mark.parametrize(("key", "value"), [("window", "0"), ("window", "1001"), ("protocol", '"4"')])
def test_out_of_range_window_and_unknown_protocol_are_rejected(key: str, value: str) -> None:
    errors = mqtt_errors(f'url = "mqtts://b"\n{key} = {value}\n')
    assert len(errors) == 1 and errors[0].startswith(f"bus.toml:mqtt.{key}: ")


def test_publisher_settings_default_client_id_to_the_vehicle_id() -> None:
    settings = publisher_settings(MqttSection(url="mqtts://broker"), "bus-07")
    assert settings.link.client_id == "bus-07"
    assert str(settings.link.url) == "mqtts://broker:8883"
    assert (settings.window, settings.batch.wait_s, settings.link.keepalive_s) == (20, 60.0, 60)


def private_secrets(path: Path) -> Path:
    """A secrets file as install.sh leaves it: private (0600), no login yet."""
    path.write_text("[mqtt]\n", encoding="utf-8")
    path.chmod(0o600)
    return path


def test_publisher_settings_carry_every_configured_value(tmp_path: Path) -> None:
    secrets = private_secrets(tmp_path / "secrets.toml")
    section = MqttSection(
        url="mqtts://broker:8884",
        client_id="pub-07",
        ca_file="/etc/ca.pem",
        cert_file="/etc/b.crt",
        key_file="/etc/b.key",
        secrets_file=str(secrets),
        protocol="3.1.1",
        window=500,
        batch_seconds=5.0,
        keepalive_s=30,
    )
    settings = publisher_settings(section, "bus-07")
    link = settings.link
    assert (link.client_id, link.url.port, link.url.tls, link.protocol) == ("pub-07", 8884, True, "3.1.1")
    assert (link.ca_file, link.cert_file, link.key_file) == (
        Path("/etc/ca.pem"),
        Path("/etc/b.crt"),
        Path("/etc/b.key"),
    )
    assert link.secrets_file == secrets
    assert (settings.window, settings.batch.wait_s, link.keepalive_s) == (500, 5.0, 30)
    # A large window needs more read-ahead than the publisher's default; the mapping grows it.
    assert settings.read_ahead >= 500 * settings.batch.max_records


def test_systemd_credential_wins_over_the_configured_secrets_path(tmp_path: Path) -> None:
    (tmp_path / SECRETS_CREDENTIAL).write_text('[mqtt]\nusername = "bus"\n', encoding="utf-8")
    (tmp_path / SECRETS_CREDENTIAL).chmod(0o400)  # what systemd's LoadCredential= gives
    section = MqttSection(url="mqtts://b", secrets_file="/etc/busagent/secrets.toml")
    assert link_settings(section, "bus-07", str(tmp_path)).secrets_file == tmp_path / SECRETS_CREDENTIAL


def test_configured_secrets_path_is_used_without_a_credential(tmp_path: Path) -> None:
    secrets = private_secrets(tmp_path / "secrets.toml")
    section = MqttSection(url="mqtts://b", secrets_file=str(secrets))
    assert link_settings(section, "bus-07", str(tmp_path)).secrets_file == secrets
    assert link_settings(MqttSection(url="mqtts://b"), "bus-07", str(tmp_path)).secrets_file is None
