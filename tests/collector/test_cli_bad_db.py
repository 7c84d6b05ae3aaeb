"""``busagent-collector stats`` and ``run`` on a file that is not a collector database: one line, exit 2."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from collector.cli import main


@pytest.fixture(params=["garbage", "truncated-sqlite"])
def bad_db(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    path = tmp_path / "c.db"
    if request.param == "garbage":
        path.write_bytes(os.urandom(8192))
    else:  # a real SQLite header followed by nonsense, as a half-copied file would be
        path.write_bytes(b"SQLite format 3\x00" + b"\x10\x00\x01\x01" + os.urandom(8172))
    return path


@pytest.fixture(autouse=True)
def keep_logging() -> Iterator[None]:
    """``run`` points structlog at the captured stderr; give later tests their logging back."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest.mark.parametrize("command", [["stats"], ["run", "--broker", "mqtt://127.0.0.1:1"]])
def test_a_corrupt_database_is_reported_in_one_line_with_exit_status_2(
    bad_db: Path, command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*command, "--db", str(bad_db)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{bad_db}: not a collector database (") and "Traceback" not in err
