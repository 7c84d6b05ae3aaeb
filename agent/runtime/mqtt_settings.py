"""Turn the [mqtt] config section into the publisher's settings (the link, the window, batching)."""

from __future__ import annotations

from pathlib import Path

from agent.config import ConfigError
from agent.config.schema import MqttSection
from agent.mqtt.connection import BrokerUrl, LinkError, LinkSettings, check_private, load_credentials
from agent.mqtt.publisher import PublisherSettings
from agent.mqtt.staging import BatchPolicy

#: The name systemd/busagent.service gives the secrets file in LoadCredential=.
SECRETS_CREDENTIAL = "mqtt-secrets"

# A dataclass default is also a class attribute: the publisher's own read-ahead, kept in one place.
_READ_AHEAD: int = PublisherSettings.read_ahead


def link_settings(section: MqttSection, vehicle_id: str, credentials_dir: str | None = None) -> LinkSettings:
    """How to reach the broker; raises LinkError (a ValueError) for a URL the schema let through, and
    ConfigError for a secrets file that cannot be used (unreadable, not private, malformed)."""
    secrets_file = _secrets_file(section, credentials_dir)
    _check_secrets(section, secrets_file)
    return LinkSettings(
        url=BrokerUrl.parse(section.url),
        client_id=section.client_id or vehicle_id,
        ca_file=_path(section.ca_file),
        cert_file=_path(section.cert_file),
        key_file=_path(section.key_file),
        secrets_file=secrets_file,
        protocol=section.protocol,
        keepalive_s=section.keepalive_s,
    )


def publisher_settings(
    section: MqttSection, vehicle_id: str, credentials_dir: str | None = None
) -> PublisherSettings:
    """The publisher's settings; ``credentials_dir`` is systemd's $CREDENTIALS_DIRECTORY, if any."""
    batch = BatchPolicy(wait_s=section.batch_seconds)
    # The publisher insists on reading ahead at least a full window of full batches.
    read_ahead = max(_READ_AHEAD, section.window * batch.max_records)
    return PublisherSettings(
        link=link_settings(section, vehicle_id, credentials_dir),
        window=section.window,
        batch=batch,
        read_ahead=read_ahead,
    )


def _secrets_file(section: MqttSection, credentials_dir: str | None) -> Path | None:
    """Under systemd the service user cannot read /etc/busagent/secrets.toml (root 0600): it gets
    a copy through LoadCredential=, which wins over the configured path when present."""
    if section.secrets_file is None:
        return None
    if credentials_dir:
        credential = Path(credentials_dir) / SECRETS_CREDENTIAL
        if credential.is_file():
            return credential
    return Path(section.secrets_file)


def _check_secrets(section: MqttSection, secrets_file: Path | None) -> None:
    """The secrets file is read at every connection; a missing, unreadable, malformed or not private
    one is refused at start, not at the first connection hours later. When systemd hands a copy
    (always 0400), the configured original must be private too: systemd copies it whatever its mode."""
    if secrets_file is None or section.secrets_file is None:
        return
    original = Path(section.secrets_file)
    try:
        load_credentials(secrets_file)
        if secrets_file != original:
            try:
                info = original.stat()
            except OSError:
                return  # out of the service's reach: the copy is what it reads
            check_private(original, info)
    except LinkError as exc:
        raise ConfigError([str(exc)]) from exc


def _path(value: str | None) -> Path | None:
    return None if value is None else Path(value)
