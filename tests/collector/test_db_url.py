"""``--db`` values to stores (collector.db.open_store): paths and sqlite:/// URLs open SQLite,
postgresql:// opens PostgreSQL, anything else is refused naming the URL with its password hidden,
and a collector on SQLite never loads the PostgreSQL driver."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from collector.db import open_store
from collector.store import Store
from collector.store_api import CollectorStore, StoreError
from collector.store_pg import PgStore
from simulators.process import free_port
from tests.collector.postgres import Postgres


def test_a_path_or_sqlite_url_opens_sqlite_and_a_postgresql_url_opens_postgresql(
    tmp_path: Path, postgres: Postgres
) -> None:
    opened: list[CollectorStore] = [
        open_store(str(tmp_path / "plain:colon.db")),
        open_store(f"sqlite://{tmp_path}/url.db"),
        open_store(postgres.new_database()),
        open_store(postgres.new_database().replace("postgresql://", "postgres://")),
    ]
    try:
        assert [type(s) for s in opened] == [Store, Store, PgStore, PgStore]
        assert (tmp_path / "plain:colon.db").exists() and (tmp_path / "url.db").exists()
    finally:
        for store in opened:
            store.close()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("mysql://ops:s3cret@db.example/fleet", "mysql://ops:***@db.example/fleet: not a database URL"),
        ("sqlite://relative/c.db", "sqlite://relative/c.db: a SQLite URL names a file"),
        ("sqlite://", "sqlite://: a SQLite URL names a file"),
    ],
)
def test_a_url_naming_no_store_is_refused_naming_it_without_its_password(url: str, shown: str) -> None:
    with pytest.raises(ValueError) as caught:
        open_store(url)
    assert str(caught.value).startswith(shown) and "s3cret" not in str(caught.value)


def test_an_unreachable_postgresql_is_reported_with_the_password_hidden() -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(StoreError) as caught:
        open_store(f"postgresql://ops:s3cret@127.0.0.1:{port}/fleet?connect_timeout=5")
    message = str(caught.value)
    assert message.startswith(f"postgresql://ops:***@127.0.0.1:{port}/fleet?connect_timeout=5: cannot open")
    assert "s3cret" not in message


def test_a_sqlite_collector_never_loads_the_postgresql_driver(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "import collector.cli, collector.ingest\n"
        "from collector.db import open_store\n"
        f"open_store({str(tmp_path / 'c.db')!r}).close()\n"
        "assert 'psycopg' not in sys.modules, 'psycopg loaded'\n"
        "assert 'collector.store_pg' not in sys.modules, 'store_pg loaded'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
