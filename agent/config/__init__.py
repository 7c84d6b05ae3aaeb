"""Load and validate the agent's TOML configuration file."""

from __future__ import annotations

import tomllib
from pathlib import Path

from agent.config.loader import ConfigError, build
from agent.config.schema import (
    AgentConfig,
    AgentSection,
    GpsSection,
    ModemSection,
    PowerSection,
    PrinterSection,
    SystemSection,
)

DEFAULT_PATH = "/etc/busagent/agent.toml"

__all__ = [
    "DEFAULT_PATH",
    "AgentConfig",
    "AgentSection",
    "ConfigError",
    "GpsSection",
    "ModemSection",
    "PowerSection",
    "PrinterSection",
    "SystemSection",
    "load_config",
    "parse_config",
]


def parse_config(text: str, source: str = "<config>") -> AgentConfig:
    """Parse TOML text into an AgentConfig or raise ConfigError naming every problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{source}: not valid TOML: {exc}"]) from exc
    return build(AgentConfig, data, source)


def load_config(path: str | Path) -> AgentConfig:
    """Read and validate a config file; unreadable files are reported like invalid ones."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not UTF-8 text (byte {exc.start})"]) from exc
    return parse_config(text, str(path))
