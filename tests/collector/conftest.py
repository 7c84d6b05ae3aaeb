"""Collector fixtures: one real PostgreSQL server for the whole session (started on first use)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.collector.postgres import Postgres


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    server = Postgres()
    try:
        server.start()
        yield server
    finally:
        server.stop()
