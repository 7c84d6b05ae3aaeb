"""``busagent-collector --db URL``: run, stats and map on PostgreSQL as on SQLite; bad URLs and an
unreachable server are one-line errors with exit status 2."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import structlog
from paho.mqtt.enums import CallbackAPIVersion

from agent.mqtt import wire
from collector.cli import main
from collector.ingest import Ingest
from collector.store_pg import PgStore
from collector.validate import Schemas
from simulators.process import free_port
from tests.collector.map_fleet import build_fleet
from tests.collector.postgres import Postgres
from tests.collector.test_store_behaviour import EPOCH, VEHICLE
from tests.collector.test_store_pg import record_message
from tests.mqtt.conftest import Mosquitto, wait_until

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def keep_logging() -> Iterator[None]:
    """``run`` points structlog at the captured stderr; give later tests their logging back."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


def test_stats_reads_a_postgresql_store(postgres: Postgres, capsys: pytest.CaptureFixture[str]) -> None:
    url = postgres.new_database()
    store = PgStore(url)
    ingest = Ingest(store, Schemas())
    for seq in (1, 3, 3):
        ingest.handle(f"busagent/{VEHICLE}/events", record_message(seq))
    store.close()
    capsys.readouterr()
    assert main(["stats", "--db", url, "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["streams"]
    assert (row["received"], row["missing"], row["duplicates"]) == (2, 1, 1)


def test_map_writes_the_files_from_a_postgresql_store(
    postgres: Postgres, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = postgres.new_database()
    store = PgStore(url)
    build_fleet(store)  # type: ignore[arg-type]
    store.close()
    assert main(["map", "--db", url, "--out", str(tmp_path / "maps")]) == 0
    assert "written to" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "maps").iterdir()) == [
        "stops.csv",
        "stops.geojson",
        "stops.html",
    ]


@pytest.mark.parametrize(
    "command", [["stats"], ["map", "--out", "maps"], ["run", "--broker", "mqtt://127.0.0.1:1"]]
)
def test_a_bad_or_unreachable_database_url_is_one_line_and_exit_2(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*command, "--db", "mysql://ops:s3cret@127.0.0.1/fleet"]) == 2
    err = capsys.readouterr().err
    assert (
        err == "busagent-collector: --db mysql://ops:***@127.0.0.1/fleet: not a database URL this collector"
        " knows; use a SQLite file path, sqlite:///path/to/file.db or postgresql://user@host:port/database\n"
    )
    unreachable = f"postgresql://ops:s3cret@127.0.0.1:{free_port()}/fleet"
    assert main([*command, "--db", unreachable]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        f"busagent-collector: {unreachable.replace('s3cret', '***')}: cannot open the database"
    )
    assert "s3cret" not in err and len(err.strip().splitlines()) <= 2  # libpq's own message may take two


def test_run_stores_into_postgresql_and_acks_from_it_until_sigterm(
    postgres: Postgres, tmp_path: Path
) -> None:
    url = postgres.new_database()
    broker = Mosquitto(tmp_path)
    broker.start()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from collector.cli import main; sys.exit(main())",
         "run", "--broker", f"mqtt://127.0.0.1:{broker.port}", "--db", url, "--group", "collectors",
         "--ack-interval", "0.1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
    )  # fmt: skip
    acks: list[bytes] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bus", protocol=mqtt.MQTTv5)
    client.on_message = lambda c, u, m: acks.append(bytes(m.payload))
    try:
        client.connect("127.0.0.1", broker.port)
        client.subscribe(f"busagent/{VEHICLE}/ack", qos=1)
        client.loop_start()

        def acked() -> bool:
            # Sent again until the collector's shared subscription exists: earlier copies are lost.
            client.publish(f"busagent/{VEHICLE}/events", record_message(1), qos=1).wait_for_publish(5)
            time.sleep(0.2)
            return any(acked_upto(ack) == 1 for ack in acks)

        wait_until(acked, 20, "the ack of the record stored in PostgreSQL")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        client.loop_stop()
        client.disconnect()
        broker.stop()


def acked_upto(payload: bytes) -> int:
    """The events seq the collector's ack covers for this test's epoch (0 if it is not such an ack)."""
    parsed = wire.parse_ack(payload)
    if parsed is None or parsed[0] != EPOCH or "events" not in parsed[1]:
        return 0
    return parsed[1]["events"].upto
