"""JSON Schema validation of incoming MQTT documents, against the schemas kept in docs/schemas/.

The schemas are the contract of docs/mqtt.md; the collector and the tests read the very same
files, so a payload the agent starts sending without updating them is caught in the test suite.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

#: The repository's docs/schemas/, beside the collector package in a source checkout.
DEFAULT_DIR = Path(__file__).resolve().parent.parent / "docs" / "schemas"
KINDS = ("record", "batch", "status", "dropped", "ack")


class Schemas:
    """One validator per document kind, loaded once."""

    def __init__(self, directory: Path = DEFAULT_DIR) -> None:
        self.directory = directory
        self._validators: dict[str, Draft202012Validator] = {}
        for kind in KINDS:
            path = directory / f"{kind}.json"
            try:
                schema = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise RuntimeError(f"cannot load the MQTT schema {path}: {exc}") from exc
            Draft202012Validator.check_schema(schema)
            self._validators[kind] = Draft202012Validator(schema)

    def problem(self, kind: str, doc: Any) -> str | None:
        """None when ``doc`` is a valid ``kind`` document, else the first problem, short."""
        validator = self._validators.get(kind)
        if validator is None:
            return f"unknown kind {kind!r}"
        error = next(iter(validator.iter_errors(doc)), None)
        if error is None:
            return None
        where = "/".join(str(part) for part in error.absolute_path) or "(top)"
        return f"{where}: {error.message[:160]}"
